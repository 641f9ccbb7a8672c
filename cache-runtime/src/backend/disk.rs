//! The disk backend: a persistent cache for one machine, in an SQLite database (WAL mode) inside a directory.
//!
//! Why SQLite (through rusqlite, compiled in): it is what Python's diskcache, the model for this backend, is
//! built on, and it is the one candidate that makes *several processes* on the same path safe, not just
//! several threads: writers are serialized by SQLite's file locks, readers never block on a writer (WAL), and
//! a write transaction that dies with its process is rolled back on the next open. redb and fjall lock the
//! database to one process (a second one fails to open), so every CLI run or worker would need its own cache.
//! Transactions also give the commands their atomicity for free: `add`, `increment`, `multi_set` and the lock
//! commands each run in one `BEGIN IMMEDIATE` transaction.
//!
//! Layout: `{dir}/cache.sqlite3` (+ `-wal`, `-shm`). One row per key: the value, its absolute expiry in
//! milliseconds since the epoch on the backend's clock (0 = never), its size, and an ever-increasing id
//! (never reused, even after deletes) that is both the optimistic-lock version and the eviction order. Triggers
//! keep the entry count, the byte total and the next id in a one-row table, so bounds cost no scan and stay
//! right across processes (and no `AUTOINCREMENT` bookkeeping page is written per commit).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use once_cell::sync::Lazy;
use parking_lot::Mutex;
use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior};

use crate::backend::{increment_decimal, Backend, BackendConfig, CallOptions};
use crate::caches::BackendSpec;
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::key::glob_match;
use crate::ttl::ttl_millis;
use crate::value::{CasToken, RawReply, Value};

const NAME: &str = "disk";
const FILE_NAME: &str = "cache.sqlite3";
/// `PRAGMA application_id` of our databases ("CRDK"), so a foreign SQLite file is refused, not altered.
const APPLICATION_ID: i32 = 0x4352_444b;
const FORMAT_VERSION: i32 = 1;
/// Expired rows one sweep removes at most.
const SWEEP_BATCH: i64 = 64;
/// Writes sweep at most this often (milliseconds on the handle's clock), unless the last sweep found a full
/// batch: a sweep query on every write would cost half again the write itself.
const SWEEP_INTERVAL_MS: i64 = 1000;
/// Idle read connections kept per database.
const MAX_IDLE_READERS: usize = 8;
/// How long SQLite waits for another process's lock when the call has no timeout.
const DEFAULT_BUSY: Duration = Duration::from_secs(5);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    value BLOB NOT NULL,
    expires_at INTEGER NOT NULL,
    size INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_expiry ON entries(expires_at) WHERE expires_at > 0;
CREATE TABLE IF NOT EXISTS totals (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    count INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    next_id INTEGER NOT NULL
);
INSERT OR IGNORE INTO totals VALUES (0, 0, 0, 1);
CREATE TRIGGER IF NOT EXISTS entries_insert AFTER INSERT ON entries BEGIN
    UPDATE totals SET count = count + 1, bytes = bytes + NEW.size, next_id = max(next_id, NEW.id + 1) WHERE id = 0;
END;
CREATE TRIGGER IF NOT EXISTS entries_delete AFTER DELETE ON entries BEGIN
    UPDATE totals SET count = count - 1, bytes = bytes - OLD.size WHERE id = 0;
END;
CREATE TRIGGER IF NOT EXISTS entries_resize AFTER UPDATE OF size ON entries BEGIN
    UPDATE totals SET bytes = bytes - OLD.size + NEW.size WHERE id = 0;
END;
";

/// One open database, shared by every handle on the same directory in this process.
struct Store {
    dir: PathBuf,
    writer: Mutex<Conn>,
    readers: Mutex<Vec<Conn>>,
}

struct Conn {
    conn: Connection,
    busy: Duration,
}

impl Conn {
    fn busy_timeout(&mut self, timeout: Option<Duration>) -> rusqlite::Result<()> {
        let busy = timeout.unwrap_or(DEFAULT_BUSY);
        if busy != self.busy {
            self.conn.busy_timeout(busy)?;
            self.busy = busy;
        }
        Ok(())
    }
}

/// Open databases by canonical directory. Weak, so the last handle dropped closes the file.
static OPEN: Lazy<Mutex<HashMap<PathBuf, Weak<Store>>>> = Lazy::new(|| Mutex::new(HashMap::new()));

/// The embedded persistent backend: an SQLite database in a directory.
///
/// - **Persistence**: entries and their TTLs survive restarts; TTLs are absolute times on the backend's
///   [`Clock`] (milliseconds).
/// - **Expiry**: an expired entry reads as absent and is deleted on that read; writes also run a bounded sweep
///   (at most 64 expired entries, at most once a second per handle, sooner while sweeps find full batches);
///   `raw("sweep")` deletes all of them.
/// - **Bounds** (optional): [`max_entries`](DiskBackendBuilder::max_entries) and
///   [`max_bytes`](DiskBackendBuilder::max_bytes) (keys + values); a write that goes over evicts the least
///   recently *stored* entries in the same transaction.
/// - **Sharing**: handles on the same directory in one process share one database (a process-wide registry
///   by canonical path); other processes may open it too: SQLite's locks serialize writers, readers never
///   block. A lock held longer than the call's timeout is [`Error::Timeout`].
/// - **Crashes**: every command is one transaction (WAL, `synchronous=NORMAL`): a process killed mid-write
///   leaves the previous value, never a torn one; a power cut may lose the last commits, never corrupts.
/// - **Atomic**: `add`, `increment`, `multi_set`, `compare_and_set`/`compare_and_delete`; `multi_get` reads
///   one snapshot.
/// - `raw`: `len` (entries, expired not yet swept included), `bytes`, `sweep`, `vacuum`, `checkpoint`.
///
/// ```
/// use cache_runtime::{Cache, DiskBackend, Ttl};
///
/// let dir = tempfile::tempdir().unwrap();
/// let cache = Cache::builder().backend(DiskBackend::open(dir.path()).unwrap()).build().unwrap();
/// cache.set("report", &vec![1, 2, 3], Ttl::secs(3600)).unwrap();
/// drop(cache);
///
/// // A new handle (or a new process) on the same directory reads it back.
/// let cache = Cache::builder().backend(DiskBackend::open(dir.path()).unwrap()).build().unwrap();
/// assert_eq!(cache.get::<Vec<i32>>("report").unwrap(), Some(vec![1, 2, 3]));
/// ```
pub struct DiskBackend {
    /// When the next write sweeps expired entries (milliseconds on `clock`).
    next_sweep: AtomicI64,
    store: Arc<Store>,
    clock: Arc<dyn Clock>,
    max_entries: Option<u64>,
    max_bytes: Option<u64>,
}

/// Configures a [`DiskBackend`].
///
/// ```
/// use cache_runtime::{DiskBackend, ManualClock};
///
/// let dir = tempfile::tempdir().unwrap();
/// let backend = DiskBackend::builder(dir.path())
///     .max_entries(10_000)
///     .max_bytes(64 << 20)
///     .clock(ManualClock::new())
///     .build()
///     .unwrap();
/// assert_eq!(backend.max_entries(), Some(10_000));
/// ```
pub struct DiskBackendBuilder {
    dir: PathBuf,
    clock: Option<Arc<dyn Clock>>,
    max_entries: Option<u64>,
    max_bytes: Option<u64>,
}

impl DiskBackendBuilder {
    /// Keep at most this many entries (must be positive).
    pub fn max_entries(mut self, max: u64) -> Self {
        self.max_entries = Some(max);
        self
    }

    /// Keep keys and values to at most this many bytes in all (must be positive; SQLite's own overhead comes
    /// on top). A single entry larger than the bound is refused with [`Error::InvalidInput`].
    pub fn max_bytes(mut self, max: u64) -> Self {
        self.max_bytes = Some(max);
        self
    }

    /// The time source for expiry (a [`ManualClock`](crate::ManualClock) in tests).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Like [`clock`](Self::clock) for a shared clock.
    pub fn clock_shared(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Opens (creating the directory and database if needed).
    pub fn build(self) -> Result<DiskBackend> {
        if self.max_entries == Some(0) {
            return Err(Error::config("disk `max_entries` must be at least 1"));
        }
        if self.max_bytes == Some(0) {
            return Err(Error::config("disk `max_bytes` must be at least 1"));
        }
        Ok(DiskBackend {
            store: Store::open(&self.dir)?,
            clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
            max_entries: self.max_entries,
            max_bytes: self.max_bytes,
            next_sweep: AtomicI64::new(0),
        })
    }
}

/// The alias-config spec: `path` (required; `disk:///var/cache/app` gives it), `max_entries`, `max_bytes`.
pub(crate) fn spec() -> BackendSpec {
    fn builder(cfg: &BackendConfig<'_>) -> Result<DiskBackendBuilder> {
        let path = cfg.str("path")?.ok_or_else(|| {
            cfg.error(
                "path",
                "the disk backend needs the directory to keep its database in",
            )
        })?;
        let mut b = DiskBackend::builder(path);
        if let Some(max) = cfg.u64("max_entries")? {
            if max == 0 {
                return Err(cfg.error("max_entries", "must be at least 1"));
            }
            b = b.max_entries(max);
        }
        if let Some(max) = cfg.u64("max_bytes")? {
            if max == 0 {
                return Err(cfg.error("max_bytes", "must be at least 1"));
            }
            b = b.max_bytes(max);
        }
        if let Some(clock) = cfg.clock() {
            b = b.clock_shared(clock);
        }
        Ok(b)
    }
    BackendSpec::new(&["path", "max_entries", "max_bytes"], |cfg| {
        Ok(Arc::new(
            builder(cfg)?.build().map_err(|e| cfg.error("path", e))?,
        ))
    })
    .with_check(|cfg| builder(cfg).map(drop))
}

fn open_error(dir: &Path, message: impl std::fmt::Display) -> Error {
    Error::backend(
        NAME,
        format!(
            "cannot open the disk cache in `{}`: {message}",
            dir.display()
        ),
    )
}

impl Store {
    fn open(dir: &Path) -> Result<Arc<Store>> {
        std::fs::create_dir_all(dir).map_err(|e| open_error(dir, e))?;
        let dir = dir.canonicalize().map_err(|e| open_error(dir, e))?;
        let mut open = OPEN.lock();
        if let Some(store) = open.get(&dir).and_then(Weak::upgrade) {
            return Ok(store);
        }
        let writer = Self::connect(&dir, true)?;
        let store = Arc::new(Store {
            dir: dir.clone(),
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
        });
        open.retain(|_, weak| weak.strong_count() > 0);
        open.insert(dir, Arc::downgrade(&store));
        Ok(store)
    }

    fn connect(dir: &Path, writer: bool) -> Result<Conn> {
        let file = dir.join(FILE_NAME);
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(&file, flags).map_err(|e| open_error(dir, e))?;
        conn.busy_timeout(DEFAULT_BUSY)
            .map_err(|e| open_error(dir, e))?;
        if writer {
            Self::prepare_retrying(&conn).map_err(|e| open_error(dir, e))?;
        }
        Ok(Conn {
            conn,
            busy: DEFAULT_BUSY,
        })
    }

    /// [`prepare`](Store::prepare), tried again while another process holds the file: two processes opening a
    /// new cache at once contend for the switch to WAL mode and the schema, and SQLite answers some of those
    /// contentions with "database is locked" without waiting. Retries start for `DEFAULT_BUSY`; as each try may
    /// itself wait out the busy timeout, an open gives up after about twice that.
    fn prepare_retrying(conn: &Connection) -> std::result::Result<(), String> {
        let deadline = Instant::now() + DEFAULT_BUSY;
        let mut pause = Duration::from_millis(1);
        loop {
            match Self::prepare(conn) {
                Err(Prepare::Sql(e)) if is_busy(&e) && Instant::now() < deadline => {
                    // Back off (not a synchronization: the other process's open takes milliseconds).
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                Err(Prepare::Sql(e)) => return Err(e.to_string()),
                Err(Prepare::Refused(message)) => return Err(message),
                Ok(()) => return Ok(()),
            }
        }
    }

    /// Checks the file is ours (or new), then sets WAL mode and creates the schema.
    fn prepare(conn: &Connection) -> std::result::Result<(), Prepare> {
        let sql = Prepare::Sql;
        // One read transaction, so the three reads see one state of the file: another process may be creating
        // the schema and stamping the application id right now, and tables without the id would look foreign.
        let (app, version, tables) = {
            let read = conn.unchecked_transaction().map_err(sql)?;
            let app: i32 = read
                .pragma_query_value(None, "application_id", |r| r.get(0))
                .map_err(sql)?;
            let version: i32 = read
                .pragma_query_value(None, "user_version", |r| r.get(0))
                .map_err(sql)?;
            let tables: i64 = read
                .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
                .map_err(sql)?;
            read.commit().map_err(sql)?;
            (app, version, tables)
        };
        if app != APPLICATION_ID && (app != 0 || tables > 0) {
            return Err(Prepare::Refused(format!(
                "`{FILE_NAME}` is an SQLite database of another application; refusing to touch it"
            )));
        }
        if version > FORMAT_VERSION {
            return Err(Prepare::Refused(format!(
                "the database has format {version}, written by a newer cache-runtime (this one reads {FORMAT_VERSION})"
            )));
        }
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(sql)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Prepare::Refused(format!(
                "the file system does not support WAL mode (got `{mode}`)"
            )));
        }
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql)?;
        // A REPLACE deletes the old row; the delete trigger must see it to keep the totals right.
        conn.pragma_update(None, "recursive_triggers", "ON")
            .map_err(sql)?;
        // Rolled back when dropped on an error, so a busy try leaves no transaction open for the next one.
        let write =
            rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)
                .map_err(sql)?;
        write
            .execute_batch(&format!(
                "{SCHEMA} PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {FORMAT_VERSION};"
            ))
            .map_err(sql)?;
        write.commit().map_err(sql)
    }
}

/// Why [`Store::prepare`] failed.
enum Prepare {
    /// SQLite's error (retried while it is a busy file).
    Sql(rusqlite::Error),
    /// The file is not one this backend may use.
    Refused(String),
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

impl DiskBackend {
    /// Opens the cache kept in directory `dir` (created if missing), unbounded, on the system clock.
    ///
    /// ```
    /// use cache_runtime::{Cache, DiskBackend, Ttl};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let cache = Cache::builder().backend(DiskBackend::open(dir.path()).unwrap()).build().unwrap();
    /// assert_eq!(cache.increment("runs", 1).unwrap(), 1);
    /// ```
    pub fn open(dir: impl AsRef<Path>) -> Result<DiskBackend> {
        Self::builder(dir).build()
    }

    /// Configures one (see [`DiskBackendBuilder`]).
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let backend = cache_runtime::DiskBackend::builder(dir.path()).max_bytes(1 << 20).build().unwrap();
    /// assert_eq!(backend.max_bytes(), Some(1 << 20));
    /// ```
    pub fn builder(dir: impl AsRef<Path>) -> DiskBackendBuilder {
        DiskBackendBuilder {
            dir: dir.as_ref().to_path_buf(),
            clock: None,
            max_entries: None,
            max_bytes: None,
        }
    }

    /// The directory (canonical).
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let backend = cache_runtime::DiskBackend::open(dir.path()).unwrap();
    /// assert!(backend.dir().join("cache.sqlite3").exists());
    /// ```
    pub fn dir(&self) -> &Path {
        &self.store.dir
    }

    /// The entry bound, if any.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// assert_eq!(cache_runtime::DiskBackend::open(dir.path()).unwrap().max_entries(), None);
    /// ```
    pub fn max_entries(&self) -> Option<u64> {
        self.max_entries
    }

    /// The byte bound, if any.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// assert_eq!(cache_runtime::DiskBackend::open(dir.path()).unwrap().max_bytes(), None);
    /// ```
    pub fn max_bytes(&self) -> Option<u64> {
        self.max_bytes
    }

    fn now(&self) -> i64 {
        i64::try_from(self.clock.now_millis()).unwrap_or(i64::MAX)
    }

    fn expires_at(&self, ttl: Option<Duration>) -> i64 {
        match ttl {
            None => 0,
            Some(ttl) => self
                .now()
                .saturating_add(i64::try_from(ttl_millis(ttl)).unwrap_or(i64::MAX)),
        }
    }

    fn live(expires_at: i64, now: i64) -> bool {
        expires_at == 0 || expires_at > now
    }

    fn sql_error(&self, command: &'static str, opts: &CallOptions, e: rusqlite::Error) -> Error {
        if is_busy(&e) {
            return Error::Timeout {
                command,
                timeout: opts.timeout.unwrap_or(DEFAULT_BUSY),
            };
        }
        Error::backend(
            NAME,
            format!("`{command}` on `{}`: {e}", self.store.dir.display()),
        )
    }

    fn check_size(&self, key: &str, value: &[u8]) -> Result<i64> {
        let size = (key.len() + value.len()) as u64;
        if let Some(max) = self.max_bytes {
            if size > max {
                return Err(Error::InvalidInput(format!(
                    "an entry of {size} bytes does not fit the disk cache's `max_bytes` of {max}"
                )));
            }
        }
        Ok(i64::try_from(size).unwrap_or(i64::MAX))
    }

    /// Runs `f` on a pooled read connection.
    fn read<T>(
        &self,
        command: &'static str,
        opts: &CallOptions,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let pooled = self.store.readers.lock().pop();
        let mut conn = match pooled {
            Some(conn) => conn,
            None => Store::connect(&self.store.dir, false)?,
        };
        let out = conn
            .busy_timeout(opts.timeout)
            .and_then(|()| f(&mut conn.conn))
            .map_err(|e| self.sql_error(command, opts, e));
        let mut idle = self.store.readers.lock();
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
        out
    }

    /// Runs `f` in one write transaction, then the bounded sweep and eviction, then commits. An error from
    /// `f` rolls everything back.
    fn write<T>(
        &self,
        command: &'static str,
        opts: &CallOptions,
        f: impl FnOnce(&rusqlite::Transaction<'_>, i64) -> Result<T>,
    ) -> Result<T> {
        let started = Instant::now();
        let mut writer = match opts.timeout {
            Some(timeout) => self
                .store
                .writer
                .try_lock_for(timeout)
                .ok_or(Error::Timeout { command, timeout })?,
            None => self.store.writer.lock(),
        };
        // The wait for this process's writer counts against the timeout: SQLite's lock gets only what is left,
        // so a call never waits twice its timeout.
        let remaining = opts
            .timeout
            .map(|timeout| timeout.saturating_sub(started.elapsed()));
        writer
            .busy_timeout(remaining)
            .map_err(|e| self.sql_error(command, opts, e))?;
        let tx = writer
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.sql_error(command, opts, e))?;
        let now = self.now();
        let out = f(&tx, now)?;
        self.maintain(&tx, now)
            .map_err(|e| self.sql_error(command, opts, e))?;
        tx.commit().map_err(|e| self.sql_error(command, opts, e))?;
        Ok(out)
    }

    /// The bounded sweep of expired rows, then eviction down to the bounds.
    fn maintain(&self, tx: &rusqlite::Transaction<'_>, now: i64) -> rusqlite::Result<()> {
        if now >= self.next_sweep.load(Ordering::Relaxed) {
            let removed = tx
                .prepare_cached(
                    "DELETE FROM entries WHERE id IN (SELECT id FROM entries WHERE expires_at > 0 AND expires_at <= ?1 \
                     ORDER BY expires_at LIMIT ?2)",
                )?
                .execute(params![now, SWEEP_BATCH])?;
            let next = if removed as i64 == SWEEP_BATCH {
                now
            } else {
                now.saturating_add(SWEEP_INTERVAL_MS)
            };
            self.next_sweep.store(next, Ordering::Relaxed);
        }
        if self.max_entries.is_none() && self.max_bytes.is_none() {
            return Ok(());
        }
        let (count, bytes): (i64, i64) = tx
            .prepare_cached("SELECT count, bytes FROM totals WHERE id = 0")?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        let over_entries = self.max_entries.map_or(0, |m| {
            count
                .saturating_sub(i64::try_from(m).unwrap_or(i64::MAX))
                .max(0)
        });
        let over_bytes = self.max_bytes.map_or(0, |m| {
            bytes
                .saturating_sub(i64::try_from(m).unwrap_or(i64::MAX))
                .max(0)
        });
        if over_entries == 0 && over_bytes == 0 {
            return Ok(());
        }
        // Oldest stores first, until both bounds hold.
        let mut doomed: Vec<i64> = Vec::new();
        {
            let mut stmt = tx.prepare_cached("SELECT id, size FROM entries ORDER BY id")?;
            let mut rows = stmt.query([])?;
            let mut freed = 0i64;
            while let Some(row) = rows.next()? {
                if doomed.len() as i64 >= over_entries && freed >= over_bytes {
                    break;
                }
                doomed.push(row.get(0)?);
                freed += row.get::<_, i64>(1)?;
            }
        }
        let mut delete = tx.prepare_cached("DELETE FROM entries WHERE id = ?1")?;
        for id in doomed {
            delete.execute([id])?;
        }
        Ok(())
    }

    fn put(
        tx: &rusqlite::Transaction<'_>,
        key: &str,
        value: &[u8],
        expires_at: i64,
        size: i64,
    ) -> rusqlite::Result<()> {
        tx.prepare_cached(
            "INSERT OR REPLACE INTO entries (id, key, value, expires_at, size) \
             VALUES ((SELECT next_id FROM totals WHERE id = 0), ?1, ?2, ?3, ?4)",
        )?
        .execute(params![key, value, expires_at, size])?;
        Ok(())
    }

    /// The live row of `key`: (id, value, expires_at).
    fn row(
        conn: &Connection,
        key: &str,
        now: i64,
    ) -> rusqlite::Result<Option<(i64, Vec<u8>, i64)>> {
        let row = conn
            .prepare_cached("SELECT id, value, expires_at FROM entries WHERE key = ?1")?
            .query_row([key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        Ok(row.filter(|(_, _, expires_at)| Self::live(*expires_at, now)))
    }

    /// Deletes an entry found expired on a read, unless a writer is busy (the sweep will get it then).
    fn forget_expired(&self, key: &str, expires_at: i64) {
        if let Some(mut writer) = self.store.writer.try_lock() {
            // Best effort and never blocking: with no busy wait, another process's write lock makes the delete
            // fail at once (SQLITE_BUSY) instead of holding up the read. The next write sets its own timeout.
            let result = writer.busy_timeout(Some(Duration::ZERO)).and_then(|()| {
                writer
                    .conn
                    .prepare_cached("DELETE FROM entries WHERE key = ?1 AND expires_at = ?2")
                    .and_then(|mut s| s.execute(params![key, expires_at]))
            });
            if let Err(e) = result {
                tracing::debug!(error = %e, "disk cache: deleting an expired entry failed; the sweep will retry");
            }
        }
    }

    /// Deletes every expired entry now; returns how many.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let backend = cache_runtime::DiskBackend::open(dir.path()).unwrap();
    /// assert_eq!(backend.sweep().unwrap(), 0);
    /// ```
    pub fn sweep(&self) -> Result<u64> {
        self.write("raw", &CallOptions::default(), |tx, now| {
            tx.prepare_cached("DELETE FROM entries WHERE expires_at > 0 AND expires_at <= ?1")?
                .execute([now])
                .map(|n| n as u64)
                .map_err(Into::into)
        })
    }

    fn totals(&self, opts: &CallOptions) -> Result<(i64, i64)> {
        self.read("raw", opts, |conn| {
            conn.prepare_cached("SELECT count, bytes FROM totals WHERE id = 0")?
                .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        })
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::backend(NAME, e)
    }
}

/// The smallest string greater than every string starting with `prefix`, if there is one.
fn prefix_successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (u32::from(last) + 1..=u32::from(char::MAX)).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// The literal text every key matching the glob starts with.
fn literal_prefix(pattern: &str) -> &str {
    let end = pattern.find(['*', '?', '[', '\\']).unwrap_or(pattern.len());
    &pattern[..end]
}

impl Backend for DiskBackend {
    fn name(&self) -> &str {
        NAME
    }

    fn get(&self, key: &str, opts: &CallOptions) -> Result<Option<Value>> {
        let row = self.read("get", opts, |conn| {
            conn.prepare_cached("SELECT value, expires_at FROM entries WHERE key = ?1")?
                .query_row([key], |r| {
                    Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?))
                })
                .optional()
        })?;
        match row {
            Some((value, 0)) => Ok(Some(Value::Bytes(value))),
            Some((value, expires_at)) => {
                if Self::live(expires_at, self.now()) {
                    Ok(Some(Value::Bytes(value)))
                } else {
                    self.forget_expired(key, expires_at);
                    Ok(None)
                }
            }
            None => Ok(None),
        }
    }

    fn multi_get(&self, keys: &[&str], opts: &CallOptions) -> Result<Vec<Option<Value>>> {
        let now = self.now();
        self.read("multi_get", opts, |conn| {
            // One read transaction: every key from the same snapshot.
            let tx = conn.transaction()?;
            let mut out = Vec::with_capacity(keys.len());
            {
                let mut stmt =
                    tx.prepare_cached("SELECT value, expires_at FROM entries WHERE key = ?1")?;
                for key in keys {
                    let row = stmt
                        .query_row([key], |r| {
                            Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?))
                        })
                        .optional()?;
                    out.push(
                        row.filter(|(_, at)| Self::live(*at, now))
                            .map(|(v, _)| Value::Bytes(v)),
                    );
                }
            }
            tx.commit()?;
            Ok(out)
        })
    }

    fn set(
        &self,
        key: &str,
        value: Value,
        ttl: Option<Duration>,
        opts: &CallOptions,
    ) -> Result<()> {
        let data = value.require_bytes("disk")?;
        let size = self.check_size(key, data)?;
        let expires_at = self.expires_at(ttl);
        self.write("set", opts, |tx, _| {
            Ok(Self::put(tx, key, data, expires_at, size)?)
        })
    }

    fn multi_set(
        &self,
        entries: Vec<(&str, Value)>,
        ttl: Option<Duration>,
        opts: &CallOptions,
    ) -> Result<()> {
        let rows = entries
            .iter()
            .map(|(k, v)| {
                let data = v.require_bytes("disk")?;
                Ok((*k, data, self.check_size(k, data)?))
            })
            .collect::<Result<Vec<_>>>()?;
        let expires_at = self.expires_at(ttl);
        self.write("multi_set", opts, |tx, _| {
            for (key, data, size) in rows {
                Self::put(tx, key, data, expires_at, size)?;
            }
            Ok(())
        })
    }

    fn add(
        &self,
        key: &str,
        value: Value,
        ttl: Option<Duration>,
        opts: &CallOptions,
    ) -> Result<bool> {
        let data = value.require_bytes("disk")?;
        let size = self.check_size(key, data)?;
        let expires_at = self.expires_at(ttl);
        self.write("add", opts, |tx, now| {
            if Self::row(tx, key, now)?.is_some() {
                return Ok(false);
            }
            Self::put(tx, key, data, expires_at, size)?;
            Ok(true)
        })
    }

    fn exists(&self, key: &str, opts: &CallOptions) -> Result<bool> {
        let now = self.now();
        let expires_at = self.read("exists", opts, |conn| {
            conn.prepare_cached("SELECT expires_at FROM entries WHERE key = ?1")?
                .query_row([key], |r| r.get::<_, i64>(0))
                .optional()
        })?;
        Ok(expires_at.is_some_and(|at| Self::live(at, now)))
    }

    /// Atomic (one write transaction). The counter keeps its TTL.
    fn increment(&self, key: &str, delta: i64, opts: &CallOptions) -> Result<i64> {
        self.write("increment", opts, |tx, now| {
            match Self::row(tx, key, now)? {
                Some((_, bytes, expires_at)) => {
                    let new = increment_decimal(key, &bytes, delta)?;
                    let data = new.to_string();
                    let size = self.check_size(key, data.as_bytes())?;
                    // A REPLACE gives the row a new id: the optimistic-lock version changes with the value.
                    Self::put(tx, key, data.as_bytes(), expires_at, size)?;
                    Ok(new)
                }
                None => {
                    let data = delta.to_string();
                    let size = self.check_size(key, data.as_bytes())?;
                    Self::put(tx, key, data.as_bytes(), 0, size)?;
                    Ok(delta)
                }
            }
        })
    }

    fn delete(&self, key: &str, opts: &CallOptions) -> Result<u64> {
        self.write("delete", opts, |tx, now| {
            let live = Self::row(tx, key, now)?.is_some();
            tx.prepare_cached("DELETE FROM entries WHERE key = ?1")?
                .execute([key])?;
            Ok(u64::from(live))
        })
    }

    fn expire(&self, key: &str, ttl: Option<Duration>, opts: &CallOptions) -> Result<bool> {
        let expires_at = self.expires_at(ttl);
        self.write("expire", opts, |tx, now| {
            let changed = tx
                .prepare_cached(
                    "UPDATE entries SET expires_at = ?2 WHERE key = ?1 AND (expires_at = 0 OR expires_at > ?3)",
                )?
                .execute(params![key, expires_at, now])?;
            Ok(changed == 1)
        })
    }

    fn clear(&self, prefix: Option<&str>, opts: &CallOptions) -> Result<u64> {
        self.write("clear", opts, |tx, _| {
            let deleted = match (prefix, prefix.and_then(prefix_successor)) {
                (None, _) | (Some(""), _) => tx.execute("DELETE FROM entries", [])?,
                (Some(p), Some(end)) => tx.execute(
                    "DELETE FROM entries WHERE key >= ?1 AND key < ?2",
                    params![p, end],
                )?,
                (Some(p), None) => tx.execute("DELETE FROM entries WHERE key >= ?1", [p])?,
            };
            Ok(deleted as u64)
        })
    }

    fn keys(&self, pattern: &str, opts: &CallOptions) -> Result<Vec<String>> {
        let now = self.now();
        let prefix = literal_prefix(pattern);
        self.read("keys", opts, |conn| {
            let mut out = Vec::new();
            let mut collect = |key: String, expires_at: i64| {
                if Self::live(expires_at, now) && glob_match(pattern, &key) {
                    out.push(key);
                }
            };
            match prefix_successor(prefix).filter(|_| !prefix.is_empty()) {
                Some(end) => {
                    let mut stmt = conn.prepare_cached(
                        "SELECT key, expires_at FROM entries WHERE key >= ?1 AND key < ?2",
                    )?;
                    let mut rows = stmt.query(params![prefix, end])?;
                    while let Some(r) = rows.next()? {
                        collect(r.get(0)?, r.get(1)?);
                    }
                }
                None => {
                    let mut stmt =
                        conn.prepare_cached("SELECT key, expires_at FROM entries WHERE key >= ?1")?;
                    let mut rows = stmt.query([prefix])?;
                    while let Some(r) = rows.next()? {
                        collect(r.get(0)?, r.get(1)?);
                    }
                }
            }
            Ok(out)
        })
    }

    fn raw(&self, command: &str, _args: &[Vec<u8>], opts: &CallOptions) -> Result<RawReply> {
        match command.to_ascii_lowercase().as_str() {
            "len" => Ok(RawReply::Int(self.totals(opts)?.0)),
            "bytes" => Ok(RawReply::Int(self.totals(opts)?.1)),
            "sweep" => Ok(RawReply::Int(i64::try_from(self.sweep()?).unwrap_or(i64::MAX))),
            "vacuum" | "checkpoint" => {
                let sql = if command.eq_ignore_ascii_case("vacuum") {
                    "VACUUM"
                } else {
                    "PRAGMA wal_checkpoint(TRUNCATE)"
                };
                let writer = self.store.writer.lock();
                writer
                    .conn
                    .execute_batch(sql)
                    .map_err(|e| self.sql_error("raw", opts, e))?;
                Ok(RawReply::Status("OK".into()))
            }
            _ => Err(Error::unsupported(
                "raw",
                NAME,
                format!(
                    "unknown command `{command}`; the disk backend understands `len`, `bytes`, `sweep`, `vacuum` and \
                     `checkpoint`"
                ),
            )),
        }
    }

    /// Closes the idle read connections; the shared write connection stays open while any handle lives.
    fn close(&self) -> Result<()> {
        self.store.readers.lock().clear();
        Ok(())
    }

    fn get_versioned(&self, key: &str, opts: &CallOptions) -> Result<(Option<Value>, CasToken)> {
        let now = self.now();
        let row = self.read("get_versioned", opts, |conn| Self::row(conn, key, now))?;
        Ok(match row {
            Some((id, value, _)) => (Some(Value::Bytes(value)), CasToken::Version(id as u64)),
            None => (None, CasToken::Absent),
        })
    }

    fn compare_and_set(
        &self,
        key: &str,
        expected: &CasToken,
        value: Value,
        ttl: Option<Duration>,
        opts: &CallOptions,
    ) -> Result<bool> {
        if let CasToken::Bytes(_) = expected {
            return Err(Error::InvalidInput(
                "a byte-valued CAS token comes from another backend; the disk backend uses row versions"
                    .into(),
            ));
        }
        let data = value.require_bytes("disk")?;
        let size = self.check_size(key, data)?;
        let expires_at = self.expires_at(ttl);
        self.write("compare_and_set", opts, |tx, now| {
            let current = Self::row(tx, key, now)?.map(|(id, _, _)| id as u64);
            let matches = match (expected, current) {
                (CasToken::Absent, None) => true,
                (CasToken::Version(v), Some(c)) => *v == c,
                _ => false,
            };
            if matches {
                Self::put(tx, key, data, expires_at, size)?;
            }
            Ok(matches)
        })
    }

    fn compare_and_delete(&self, key: &str, expected: &[u8], opts: &CallOptions) -> Result<bool> {
        self.write("compare_and_delete", opts, |tx, now| {
            match Self::row(tx, key, now)? {
                Some((id, value, _)) if value == expected => {
                    tx.prepare_cached("DELETE FROM entries WHERE id = ?1")?
                        .execute([id])?;
                    Ok(true)
                }
                _ => Ok(false),
            }
        })
    }
}

impl std::fmt::Debug for DiskBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskBackend")
            .field("dir", &self.store.dir)
            .field("max_entries", &self.max_entries)
            .field("max_bytes", &self.max_bytes)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_successor_bounds_every_extension() {
        assert_eq!(prefix_successor("ns:").as_deref(), Some("ns;"));
        assert_eq!(prefix_successor("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_successor("\u{10FFFF}"), None);
        assert_eq!(prefix_successor(""), None);
        let end = prefix_successor("ns:").unwrap();
        for key in ["ns:", "ns:a", "ns:\u{10FFFF}\u{10FFFF}", "ns:\u{0}"] {
            assert!(key >= "ns:" && key < end.as_str(), "{key:?}");
        }
        assert!("ns;" >= end.as_str());
    }

    #[test]
    fn literal_prefix_stops_at_the_first_glob_character() {
        assert_eq!(literal_prefix("ns:user:*"), "ns:user:");
        assert_eq!(literal_prefix("a?b"), "a");
        assert_eq!(literal_prefix("x[ab]"), "x");
        assert_eq!(literal_prefix(r"a\*"), "a");
        assert_eq!(literal_prefix("exact"), "exact");
    }
}
