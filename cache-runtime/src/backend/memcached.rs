//! The Memcached backend: one or more servers behind a consistent-hash ring, spoken to over the ASCII
//! protocol by a small client written for this crate.
//!
//! Why not the `memcache` crate (0.21): tuned (ASCII protocol, no `version` probe on checkout) it still
//! measured 2-2.4x a raw round trip on `get` and 4-6x on `set` here (its ASCII writer issues one `write` per
//! format fragment on a `TCP_NODELAY` socket; see `benches/results/memcached.md`), and it has no per-call
//! timeout (socket timeouts are fixed per connection; `set_read_timeout` reaches only one pooled connection),
//! a connection whose reply was cut short by a timeout goes back to the pool and answers the *next* command
//! with the previous reply, `multi_set` is one round trip per key, servers are picked by `hash % n` (adding a
//! server remaps almost every key), and `SERVER_ERROR` replies cannot be told apart from transport failures.
//! This client: one `write` per request; a connection that fails in any way mid-command is dropped, never
//! reused; `multi_get` and `multi_set` pipeline every server's commands, one write per server per bounded
//! batch (one round trip per batch; most calls are one batch), so neither side ever waits on a full socket
//! buffer; servers sit on a ring of 160 points each, so adding or removing one moves only its share of keys.
//!
//! Protocol notes that shape the commands:
//! - Keys: at most 250 bytes of printable ASCII without spaces. Any other key is sent as
//!   `#sha256:` + the hex SHA-256 of the key (and so is any key that itself starts with `#sha256:`), so the
//!   mapping is injective up to SHA-256 collisions and no key can inject a command.
//! - TTLs are whole seconds, rounded up; beyond 30 days memcached reads the number as a Unix time, so longer
//!   TTLs are sent as `now + ttl`, capped at 2038-01-19 (memcached's exptime is a signed 32-bit number; a
//!   later time would wrap into the past and expire the item at once). Memcached's clock ticks once a
//!   second: an entry may expire up to a second before its TTL is up.
//! - `increment` reads value, CAS id and remaining TTL with one meta `mg`, and writes with `ms` and that CAS
//!   id and TTL (an absent key is created with `add`), retried until no other write intervened: exact signed
//!   64-bit arithmetic, no lost update, the TTL kept. memcached's `incr` is not used: it is
//!   unsigned, and racing with `gets` it can hand out the old number with the new CAS id (see `increment`).

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use crate::backend::{increment_decimal, Backend, BackendConfig, CallOptions};
use crate::caches::BackendSpec;
use crate::error::{Error, Result};
use crate::value::{CasToken, RawReply, Value};

/// Memcached's longest key.
const MAX_KEY_LEN: usize = 250;
/// Marks a key sent as its hash.
const HASHED_PREFIX: &str = "#sha256:";
/// Relative TTLs longer than this are read by memcached as Unix times.
const MAX_RELATIVE_TTL_SECS: u64 = 60 * 60 * 24 * 30;
/// The latest absolute `exptime`: memcached parses it into a signed 32-bit number, so a later time (past
/// 2038-01-19) is refused or wraps into the past and the item expires at once. Longer TTLs are capped here.
const MAX_EXPTIME: u64 = i32::MAX as u64;
/// Points per server on the ring (libmemcached's ketama uses 160 too).
const RING_POINTS: u32 = 160;
/// Keys per `get` line; longer multi-gets are several pipelined lines.
const KEYS_PER_GET: usize = 100;
/// Request bytes per pipelined write in `multi_get`: every batch is small enough to sit in the socket buffers
/// whole, so the write completes even while the server, its replies unread, has stopped reading; then its
/// replies are read before the next batch is written (otherwise both sides wait on full buffers).
const GET_BATCH_BYTES: usize = 32 * 1024;
/// Commands per pipelined write in `multi_set`, so replies never fill the socket buffer while we still write.
const SETS_PER_BATCH: usize = 1000;
/// The longest reply line we accept (a `VALUE` header is at most ~300 bytes; `stats` lines are short).
const MAX_LINE: u64 = 64 * 1024;
/// The largest value memcached can hold (its `-I` maximum); a longer announced value is a protocol error.
const MAX_ITEM: usize = 1 << 30;
/// Rounds of read and CAS write before `increment` gives up under contention.
const MAX_CAS_ROUNDS: usize = 10_000;

const NAME: &str = "memcached";

/// A key as sent and its value.
type WireEntry<'k> = (Cow<'k, str>, &'k [u8]);

/// The Memcached backend: one server or several on a consistent-hash ring, with a pool of connections per
/// server.
///
/// Every command honours the call's timeout (socket reads, writes and connects); a connection that fails or
/// times out mid-command is closed, never reused. A server that refuses a connection is skipped (its keys
/// fail fast with [`Error::Backend`]) for [`dead_retry`](MemcachedBackendBuilder::dead_retry), then tried
/// again; its keys are not moved to another server, so no stale copy is ever read after it comes back.
///
/// | command | how |
/// |---|---|
/// | `get`, `multi_get` | `get`; many keys: one pipelined write per server per batch of up to 32 KiB of keys, one round trip per batch. A server that fails in a `multi_get` counts as misses (logged) while any other server answered |
/// | `set`, `multi_set` | `set`; many keys pipelined like `multi_get` (not atomic) |
/// | `add` | `add` |
/// | `exists` | `mg` (meta get without the value) |
/// | `increment` | `mg` + `ms` with CAS and TTL (see the module docs) |
/// | `delete`, `expire` | `delete`, `touch` |
/// | `clear` | `flush_all` on every server for a cache without namespace; `Unsupported` with a namespace |
/// | `keys` | `Unsupported`: memcached cannot list keys |
/// | `raw` | `version`, `stats [group]`, `flush_all [delay]`, `server_for <key>` |
/// | locks | `OptimisticLock`: `gets` + `cas`. `RedLock`: `add`, released by `gets` + `cas` to an already-expired item (atomic compare-and-delete) |
///
/// ```no_run
/// use cache_runtime::{Cache, MemcachedBackend, Ttl};
///
/// let backend = MemcachedBackend::builder()
///     .server("127.0.0.1:11211")
///     .server("127.0.0.1:11212")
///     .build()
///     .unwrap();
/// let cache = Cache::builder().backend(backend).build().unwrap();
/// cache.set("greeting", &"hello".to_string(), Ttl::secs(60)).unwrap();
/// assert_eq!(cache.get::<String>("greeting").unwrap().as_deref(), Some("hello"));
/// // Or from a URL: Cache::from_url("memcached://127.0.0.1:11211,127.0.0.1:11212")
/// ```
pub struct MemcachedBackend {
    servers: Box<[Server]>,
    /// (point, server index), sorted by point; empty with a single server.
    ring: Box<[(u64, usize)]>,
    pool_size: usize,
    connect_timeout: Duration,
    dead_retry: Duration,
}

/// Configures a [`MemcachedBackend`]. Nothing connects until the first command.
///
/// ```
/// use std::time::Duration;
/// use cache_runtime::MemcachedBackend;
///
/// let backend = MemcachedBackend::builder()
///     .server("127.0.0.1:11211")
///     .pool_size(4)
///     .connect_timeout(Duration::from_millis(500))
///     .build()
///     .unwrap();
/// # drop(backend);
/// assert!(MemcachedBackend::builder().server("no port here").build().is_err());
/// ```
#[derive(Clone, Debug)]
pub struct MemcachedBackendBuilder {
    servers: Vec<String>,
    pool_size: usize,
    connect_timeout: Duration,
    dead_retry: Duration,
}

impl Default for MemcachedBackendBuilder {
    fn default() -> Self {
        MemcachedBackendBuilder {
            servers: Vec::new(),
            pool_size: 16,
            connect_timeout: Duration::from_secs(1),
            dead_retry: Duration::from_secs(2),
        }
    }
}

impl MemcachedBackendBuilder {
    /// Adds a server as `host:port` (default when none is added: `127.0.0.1:11211`).
    pub fn server(mut self, addr: impl Into<String>) -> Self {
        self.servers.push(addr.into());
        self
    }

    /// Idle connections kept per server (default 16; busier moments open more, closed after use).
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size;
        self
    }

    /// Longest wait for a TCP connect (default 1 s; the call's timeout caps it too).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// After a failed connect, how long a server's commands fail fast before it is tried again (default 2 s).
    pub fn dead_retry(mut self, wait: Duration) -> Self {
        self.dead_retry = wait;
        self
    }

    /// Builds the backend after checking every address is `host:port`.
    pub fn build(self) -> Result<MemcachedBackend> {
        let servers = if self.servers.is_empty() {
            vec!["127.0.0.1:11211".to_string()]
        } else {
            self.servers
        };
        for addr in &servers {
            check_addr(addr)
                .map_err(|m| Error::config(format!("memcached server `{addr}`: {m}")))?;
        }
        if self.connect_timeout.is_zero() {
            return Err(Error::config(
                "memcached `connect_timeout` must be positive",
            ));
        }
        let ring = if servers.len() > 1 {
            build_ring(&servers)
        } else {
            Vec::new()
        };
        Ok(MemcachedBackend {
            servers: servers
                .into_iter()
                .map(|addr| Server {
                    addr,
                    idle: Mutex::new(Vec::new()),
                    down_until: AtomicU64::new(0),
                })
                .collect(),
            ring: ring.into_boxed_slice(),
            pool_size: self.pool_size,
            connect_timeout: self.connect_timeout,
            dead_retry: self.dead_retry,
        })
    }
}

/// Checks `host:port`: `name:port`, `1.2.3.4:port` or `[v6 address]:port` (an IPv6 address needs its
/// brackets, or its last group would be read as the port).
fn check_addr(addr: &str) -> std::result::Result<(), String> {
    if addr.parse::<std::net::SocketAddr>().is_ok() {
        return Ok(());
    }
    let (host, port) = if let Some(rest) = addr.strip_prefix('[') {
        let (ip, port) = rest
            .split_once("]:")
            .ok_or_else(|| "expected `[IPv6 address]:port`".to_string())?;
        ip.parse::<std::net::Ipv6Addr>()
            .map_err(|_| format!("`{ip}` is not an IPv6 address"))?;
        (ip, port)
    } else {
        let (host, port) = addr
            .rsplit_once(':')
            .ok_or_else(|| "expected `host:port`".to_string())?;
        if host.contains(':') {
            return Err(
                "an IPv6 address needs brackets around it, as in `[::1]:11211`".to_string(),
            );
        }
        (host, port)
    };
    if host.is_empty() {
        return Err("the host is empty".into());
    }
    port.parse::<u16>()
        .map_err(|_| format!("port `{port}` is not a number from 0 to 65535"))?;
    Ok(())
}

/// A `servers` entry as `host:port`: the entry itself when it has a port, else with the default port 11211
/// (`::1` and `[::1]` are hosts without a port: `[::1]:11211`).
fn with_default_port(entry: &str) -> String {
    if entry.parse::<std::net::Ipv6Addr>().is_ok() {
        format!("[{entry}]:11211")
    } else if entry.starts_with('[') && entry.ends_with(']') {
        format!("{entry}:11211")
    } else if entry.contains(':') {
        entry.to_string()
    } else {
        format!("{entry}:11211")
    }
}

/// `endpoint` and `port` as `host:port`, with brackets around an IPv6 address (given with or without them).
fn endpoint_addr(host: &str, port: u16) -> String {
    if host.parse::<std::net::Ipv6Addr>().is_ok() {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The alias-config spec: `endpoint` + `port`, or `servers` (a list of `host:port`); `pool_size`,
/// `connect_timeout` and `dead_retry` (seconds).
pub(crate) fn spec() -> BackendSpec {
    fn builder(cfg: &BackendConfig<'_>) -> Result<MemcachedBackendBuilder> {
        let mut b = MemcachedBackend::builder();
        let single = cfg.str("endpoint")?.is_some() || cfg.u64("port")?.is_some();
        match cfg.strings("servers")? {
            Some(_) if single => {
                return Err(cfg.error(
                    "servers",
                    "give either `servers` or `endpoint`/`port`, not both",
                ));
            }
            Some(list) if list.is_empty() => return Err(cfg.error("servers", "the list is empty")),
            Some(list) => {
                for s in list {
                    let addr = with_default_port(s);
                    check_addr(&addr).map_err(|m| cfg.error("servers", format!("`{s}`: {m}")))?;
                    b = b.server(addr);
                }
            }
            None => {
                let host = cfg.str("endpoint")?.unwrap_or("127.0.0.1");
                let port = cfg.u64("port")?.unwrap_or(11211);
                let port = u16::try_from(port)
                    .map_err(|_| cfg.error("port", format!("{port} is not a port")))?;
                let addr = endpoint_addr(host, port);
                check_addr(&addr).map_err(|m| cfg.error("endpoint", m))?;
                b = b.server(addr);
            }
        }
        if let Some(size) = cfg.u64("pool_size")? {
            b = b.pool_size(usize::try_from(size).unwrap_or(usize::MAX));
        }
        if let Some(t) = cfg.secs("connect_timeout")? {
            b = b.connect_timeout(t);
        }
        if let Some(t) = cfg.secs("dead_retry")? {
            b = b.dead_retry(t);
        }
        Ok(b)
    }
    BackendSpec::new(
        &[
            "endpoint",
            "port",
            "servers",
            "pool_size",
            "connect_timeout",
            "dead_retry",
        ],
        |cfg| {
            Ok(Arc::new(
                builder(cfg)?.build().map_err(|e| cfg.error("servers", e))?,
            ))
        },
    )
    .with_check(|cfg| {
        builder(cfg)?
            .build()
            .map(drop)
            .map_err(|e| cfg.error("servers", e))
    })
}

// ---------------------------------------------------------------------------------------------------------
// Keys, TTLs and the ring

/// The key as sent: the key itself when memcached accepts it, else its hash.
fn wire_key(key: &str) -> Cow<'_, str> {
    let plain = key.len() <= MAX_KEY_LEN
        && !key.is_empty()
        && key.bytes().all(|b| b.is_ascii_graphic())
        && !key.starts_with(HASHED_PREFIX);
    if plain {
        return Cow::Borrowed(key);
    }
    let digest = Sha256::digest(key.as_bytes());
    let mut out = String::with_capacity(HASHED_PREFIX.len() + 64);
    out.push_str(HASHED_PREFIX);
    for byte in digest {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    Cow::Owned(out)
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Memcached's `exptime`: 0 = never; whole seconds rounded up; a Unix time beyond 30 days, capped at
/// [`MAX_EXPTIME`] (2038-01-19), the latest time memcached can hold.
fn exptime(ttl: Option<Duration>) -> u64 {
    let Some(ttl) = ttl else { return 0 };
    let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    let secs = millis.div_ceil(1000).max(1);
    if secs <= MAX_RELATIVE_TTL_SECS {
        secs
    } else {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        now.saturating_add(secs).min(MAX_EXPTIME)
    }
}

/// [`exptime`] as the signed number the storage commands carry (-1 expires at once); it is never above
/// [`MAX_EXPTIME`].
fn store_exptime(ttl: Option<Duration>) -> i64 {
    i64::try_from(exptime(ttl)).unwrap_or(i64::MAX)
}

/// FNV-1a with a final avalanche: stable across processes, versions and machines, so every client of the
/// same server list puts a key on the same server.
fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // splitmix64's finalizer spreads FNV's weak low bits over the whole word.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

fn build_ring(servers: &[String]) -> Vec<(u64, usize)> {
    let mut ring: Vec<(u64, usize)> = servers
        .iter()
        .enumerate()
        .flat_map(|(i, addr)| {
            (0..RING_POINTS).map(move |p| (stable_hash(format!("{addr}-{p}").as_bytes()), i))
        })
        .collect();
    ring.sort_unstable();
    ring
}

// ---------------------------------------------------------------------------------------------------------
// Connections

struct Server {
    addr: String,
    idle: Mutex<Vec<Conn>>,
    /// Milliseconds since the epoch until which connects are not attempted; 0 = up.
    down_until: AtomicU64,
}

struct Conn {
    reader: BufReader<TcpStream>,
    /// The socket timeout in force, to skip the syscall when it does not change.
    timeout: Option<Duration>,
    line: Vec<u8>,
    out: Vec<u8>,
    /// Set when a reply was not the complete, clean sequence the command expects (an error in the middle of
    /// a pipeline, `CLIENT_ERROR` or `ERROR` to a storage command): the stream may be out of step, so the
    /// connection is closed instead of going back to the pool.
    broken: bool,
}

/// How a command on one connection went wrong.
enum Fault {
    /// Transport or protocol failure: the connection is out of step and must be closed.
    Broken(io::Error),
}

impl From<io::Error> for Fault {
    fn from(e: io::Error) -> Self {
        Fault::Broken(e)
    }
}

type Step<T> = std::result::Result<T, Fault>;

/// Whether the fault is a timeout (the server is slow, not gone: no retry, and the pool is kept).
fn timed_out(fault: &Fault) -> bool {
    let Fault::Broken(e) = fault;
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn protocol_error(message: impl Into<String>) -> Fault {
    Fault::Broken(io::Error::new(io::ErrorKind::InvalidData, message.into()))
}

impl Conn {
    fn set_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        if self.timeout != timeout {
            let stream = self.reader.get_ref();
            // A socket refuses a zero timeout; the shortest it takes stands for "no time at all".
            let socket_timeout = timeout.map(|t| t.max(Duration::from_millis(1)));
            stream.set_read_timeout(socket_timeout)?;
            stream.set_write_timeout(socket_timeout)?;
            self.timeout = timeout;
        }
        Ok(())
    }

    fn send(&mut self) -> io::Result<()> {
        self.reader.get_mut().write_all(&self.out)
    }

    /// One reply line without its CRLF.
    fn read_line(&mut self) -> Step<&[u8]> {
        self.line.clear();
        let n = (&mut self.reader)
            .take(MAX_LINE)
            .read_until(b'\n', &mut self.line)?;
        if n == 0 {
            return Err(protocol_error("the server closed the connection"));
        }
        if !self.line.ends_with(b"\r\n") {
            return Err(protocol_error(
                "reply line not terminated by CRLF or too long",
            ));
        }
        let len = self.line.len() - 2;
        Ok(&self.line[..len])
    }

    /// `len` bytes of data followed by CRLF.
    fn read_data(&mut self, len: usize) -> Step<Vec<u8>> {
        if len > MAX_ITEM {
            return Err(protocol_error(format!(
                "the server announced a value of {len} bytes"
            )));
        }
        let mut data = vec![0u8; len + 2];
        self.reader.read_exact(&mut data)?;
        if !data.ends_with(b"\r\n") {
            return Err(protocol_error("value not terminated by CRLF"));
        }
        data.truncate(len);
        Ok(data)
    }

    /// Reads `VALUE` blocks up to `END`, handing each to `found`.
    fn read_values(
        &mut self,
        mut found: impl FnMut(&[u8], Vec<u8>, Option<u64>),
    ) -> Step<Reply<()>> {
        loop {
            let line = self.read_line()?;
            if line == b"END" {
                return Ok(Ok(()));
            }
            if let Some(err) = server_error(line) {
                // What follows (the rest of this reply, later pipelined replies) is unknown: never reuse.
                self.broken = true;
                return Ok(Err(err));
            }
            let mut parts = line.split(|&b| b == b' ');
            if parts.next() != Some(b"VALUE") {
                return Err(protocol_error(format!(
                    "unexpected reply `{}`",
                    String::from_utf8_lossy(line)
                )));
            }
            let key = parts.next().unwrap_or_default().to_vec();
            let _flags = parts.next();
            let len: usize = parse_num(parts.next())?;
            let cas = parts.next().map(|c| parse_num(Some(c))).transpose()?;
            let data = self.read_data(len)?;
            found(&key, data, cas);
        }
    }

    /// A storage reply: `STORED` and friends, or their meta forms (`HD`, `NS`, `EX`, `NF`) after `ms`.
    fn read_store(&mut self, meta: bool) -> Step<Reply<StoreReply>> {
        let line = self.read_line()?;
        let reply = match (meta, line) {
            (false, b"STORED") | (true, b"HD") => Ok(StoreReply::Stored),
            (false, b"NOT_STORED") | (true, b"NS") => Ok(StoreReply::NotStored),
            (false, b"EXISTS") | (true, b"EX") => Ok(StoreReply::Exists),
            (false, b"NOT_FOUND") | (true, b"NF") => Ok(StoreReply::NotFound),
            (_, other) => Err(server_error(other).ok_or_else(|| unexpected(other))?),
        };
        // After `CLIENT_ERROR` or `ERROR` memcached may not have swallowed the data block and read it as
        // commands of its own: the stream is out of step. (`SERVER_ERROR` replies, e.g. "object too large",
        // come after memcached has set itself to swallow the data, so the connection stays in step.)
        if matches!(
            reply,
            Err(ServerSaid::Client(_) | ServerSaid::UnknownCommand)
        ) {
            self.broken = true;
        }
        Ok(reply)
    }

    /// The reply to `mg <key> v c t`: `EN` (absent), or `VA <len> c<cas> t<secs>` and the data.
    fn read_meta_value(&mut self) -> Step<Reply<Option<Versioned>>> {
        let line = self.read_line()?;
        if line == b"EN" {
            return Ok(Ok(None));
        }
        // A one-line command: after `ERROR` or `*_ERROR` the stream is still in step.
        if let Some(said) = server_error(line) {
            return Ok(Err(said));
        }
        let mut parts = line.split(|&b| b == b' ');
        let size = match parts.next() {
            Some(b"VA") => parse_num::<usize>(parts.next()).ok(),
            _ => None,
        };
        let Some(len) = size else {
            // Another dialect of the meta commands (memcached 1.6 before they settled), or a reply out of
            // step: how much follows is unknown, so the connection is closed, and the caller takes the
            // classic commands.
            self.broken = true;
            return Ok(Err(ServerSaid::UnknownCommand));
        };
        let (mut cas, mut ttl) = (None, None);
        for flag in parts {
            match flag.split_first() {
                Some((b'c', n)) => cas = Some(parse_num(Some(n))?),
                Some((b't', n)) => ttl = Some(parse_num::<i64>(Some(n))?),
                _ => {}
            }
        }
        let data = self.read_data(len)?;
        match (cas, ttl) {
            (Some(cas), Some(ttl)) => {
                // -1: no TTL. A live item has at least a second left; 0 would read as "never", so it is 1.
                let kept = match ttl {
                    -1 => 0,
                    secs => store_exptime(Some(Duration::from_secs(secs.max(0).unsigned_abs()))),
                };
                Ok(Ok(Some(Versioned {
                    data,
                    cas,
                    exptime: Some(kept),
                })))
            }
            _ => Err(protocol_error(
                "`mg` answered without the CAS id or TTL it was asked for",
            )),
        }
    }
}

fn parse_num<T: std::str::FromStr>(field: Option<&[u8]>) -> Step<T> {
    field
        .and_then(|f| std::str::from_utf8(f).ok())
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| protocol_error("malformed number in reply"))
}

/// A single-key `get`/`gets` answered with a value for another key (or more than one value): the connection
/// is out of step, reading someone else's reply; it is closed and the value never returned.
fn stray_value(wire: &str) -> Fault {
    protocol_error(format!(
        "the reply to a read of `{wire}` carried another key's value; the connection was out of step"
    ))
}

/// Whether a one-line reply is one the command can give with the stream still in step: one of `known`, or
/// what the server said went wrong with the command (`CLIENT_ERROR`, `SERVER_ERROR`, which end its reply).
fn one_of(reply: &[u8], known: &[&[u8]]) -> bool {
    known.contains(&reply)
        || reply.starts_with(b"CLIENT_ERROR")
        || reply.starts_with(b"SERVER_ERROR")
}

fn unexpected(line: &[u8]) -> Fault {
    protocol_error(format!(
        "unexpected reply `{}`",
        String::from_utf8_lossy(line)
    ))
}

/// What the server said went wrong, with the connection still in step.
#[derive(Debug)]
enum ServerSaid {
    /// `SERVER_ERROR object too large for cache` and the like.
    Server(String),
    /// `CLIENT_ERROR ...`.
    Client(String),
    /// `ERROR`: the server does not know the command.
    UnknownCommand,
}

type Reply<T> = std::result::Result<T, ServerSaid>;

fn server_error(line: &[u8]) -> Option<ServerSaid> {
    let text = || String::from_utf8_lossy(line).into_owned();
    if line.starts_with(b"SERVER_ERROR") {
        Some(ServerSaid::Server(text()))
    } else if line.starts_with(b"CLIENT_ERROR") {
        Some(ServerSaid::Client(text()))
    } else if line == b"ERROR" {
        Some(ServerSaid::UnknownCommand)
    } else {
        None
    }
}

/// A counter as `increment` read it.
struct Versioned {
    data: Vec<u8>,
    cas: u64,
    /// The `exptime` that keeps its remaining TTL (0: none); `None` when the server cannot tell.
    exptime: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StoreReply {
    Stored,
    NotStored,
    Exists,
    NotFound,
}

/// One storage command on one key: `{verb} {key} 0 {exptime} {len} [{cas}]`, or for the meta `ms`
/// `ms {key} {len} C{cas} T{exptime}`, then the data.
#[derive(Clone, Copy)]
struct StoreCmd<'a> {
    verb: &'static str,
    data: &'a [u8],
    exptime: i64,
    cas: Option<u64>,
}

impl<'a> StoreCmd<'a> {
    fn set(data: &'a [u8], exptime: i64) -> Self {
        StoreCmd {
            verb: "set",
            data,
            exptime,
            cas: None,
        }
    }

    fn add(data: &'a [u8], exptime: i64) -> Self {
        StoreCmd {
            verb: "add",
            data,
            exptime,
            cas: None,
        }
    }

    fn cas(data: &'a [u8], exptime: i64, cas: u64) -> Self {
        StoreCmd {
            verb: "cas",
            data,
            exptime,
            cas: Some(cas),
        }
    }

    /// `cas` as the meta `ms`: its `exptime` may be an item's remaining TTL, which the classic `cas` cannot
    /// be given back for every server.
    fn meta_cas(data: &'a [u8], exptime: i64, cas: u64) -> Self {
        StoreCmd {
            verb: "ms",
            data,
            exptime,
            cas: Some(cas),
        }
    }
}

fn push_store(
    out: &mut Vec<u8>,
    verb: &str,
    key: &str,
    exptime: i64,
    data: &[u8],
    cas: Option<u64>,
) {
    // Writing into a Vec cannot fail.
    if verb == "ms" {
        let _ = write!(out, "ms {key} {} T{exptime}", data.len());
        if let Some(cas) = cas {
            let _ = write!(out, " C{cas}");
        }
    } else {
        let _ = write!(out, "{verb} {key} 0 {exptime} {}", data.len());
        if let Some(cas) = cas {
            let _ = write!(out, " {cas}");
        }
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// A server's part of a pipelined `multi_get` or `multi_set`.
enum Pending {
    /// Sent on this connection (from the pool?), expecting this many replies.
    Sent(Conn, bool, usize),
    /// Sending on a pooled connection failed: run it again on a new one.
    Retry,
    /// Nothing was sent.
    Failed(Error),
}

/// Splits a server's keys into the batches `multi_get` writes one at a time: at most [`GET_BATCH_BYTES`] of
/// keys each (at least one key).
fn get_batches<'a, 'k>(keys: &'a [&'k str]) -> Vec<&'a [&'k str]> {
    let mut batches = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, key) in keys.iter().enumerate() {
        let len = key.len() + 1;
        if i > start && bytes + len > GET_BATCH_BYTES {
            batches.push(&keys[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += len;
    }
    if start < keys.len() {
        batches.push(&keys[start..]);
    }
    batches
}

/// Writes `get` lines for `keys` (several lines for many keys); returns how many.
fn send_gets(conn: &mut Conn, keys: &[&str]) -> Step<usize> {
    conn.out.clear();
    let mut lines = 0;
    for chunk in keys.chunks(KEYS_PER_GET) {
        conn.out.extend_from_slice(b"get");
        for k in chunk {
            conn.out.push(b' ');
            conn.out.extend_from_slice(k.as_bytes());
        }
        conn.out.extend_from_slice(b"\r\n");
        lines += 1;
    }
    conn.send()?;
    Ok(lines)
}

/// Reads the replies of the `lines` `get` lines [`send_gets`] wrote for `keys` into `values`. A value for a
/// key its line did not ask for means the connection is out of step (reading another command's reply):
/// nothing of that line is kept and the connection is closed.
fn read_gets(
    conn: &mut Conn,
    keys: &[&str],
    lines: usize,
    values: &mut HashMap<Vec<u8>, Vec<u8>>,
) -> Step<Reply<()>> {
    for chunk in keys.chunks(KEYS_PER_GET).take(lines) {
        let asked: std::collections::HashSet<&[u8]> = chunk.iter().map(|k| k.as_bytes()).collect();
        let mut found = Vec::new();
        let mut stray = false;
        // An error reply leaves the later replies unread: `read_values` marks the connection broken, so it
        // is closed rather than pooled (the next command would read those replies as its own).
        let end = conn.read_values(|k, data, _| {
            if asked.contains(k) {
                found.push((k.to_vec(), data));
            } else {
                stray = true;
            }
        })?;
        if stray {
            return Err(protocol_error(
                "a `get` reply carried a key that was not asked for; the connection was out of step",
            ));
        }
        values.extend(found);
        if let Err(said) = end {
            return Ok(Err(said));
        }
    }
    Ok(Ok(()))
}

/// Writes one `set` per entry; returns how many replies to expect.
fn send_sets(conn: &mut Conn, entries: &[WireEntry<'_>], exptime: i64) -> Step<usize> {
    conn.out.clear();
    for (wire, data) in entries {
        push_store(&mut conn.out, "set", wire, exptime, data, None);
    }
    conn.send()?;
    Ok(entries.len())
}

/// Reads `count` storage replies, all of them even after a failure so the connection stays in step; the
/// first failure is returned (a reply other than `STORED`, or what the server said). After a reply that
/// leaves the stream out of step (`CLIENT_ERROR`, `ERROR`) it stops: the connection is closed anyway, and the
/// replies still to come can no longer be counted.
fn read_sets(conn: &mut Conn, count: usize) -> Step<std::result::Result<(), Reply<StoreReply>>> {
    let mut failure = None;
    for _ in 0..count {
        match conn.read_store(false)? {
            Ok(StoreReply::Stored) => {}
            other => {
                failure.get_or_insert(other);
            }
        }
        if conn.broken {
            break;
        }
    }
    Ok(failure.map_or(Ok(()), Err))
}

/// Refuses, before anything is sent, a value no memcached can hold: a data block that large could be refused
/// with `CLIENT_ERROR` without being swallowed, and memcached would read the data as commands.
fn check_item_size(command: &str, data: &[u8]) -> Result<()> {
    if data.len() > MAX_ITEM {
        return Err(Error::InvalidInput(format!(
            "`{command}`: a value of {} bytes is larger than the item size limit of any memcached \
             ({MAX_ITEM} bytes; the server's own `-I` setting is 1 MiB by default)",
            data.len()
        )));
    }
    Ok(())
}

/// Whether a failed connect marks the server down for `dead_retry`: a refusal, a resolution failure, an
/// unreachable network, or a timeout of the full `connect_timeout` (`full_wait`); not a timeout cut short by
/// the call's shorter timeout.
fn marks_down(e: &io::Error, full_wait: bool) -> bool {
    full_wait
        || !matches!(
            e.kind(),
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
        )
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl MemcachedBackend {
    /// A backend for one server at `host:port` (nothing connects until the first command).
    ///
    /// ```
    /// let backend = cache_runtime::MemcachedBackend::new("127.0.0.1:11211").unwrap();
    /// # drop(backend);
    /// ```
    pub fn new(addr: impl Into<String>) -> Result<MemcachedBackend> {
        MemcachedBackend::builder().server(addr).build()
    }

    /// Configures one (see [`MemcachedBackendBuilder`]).
    ///
    /// ```
    /// let backend = cache_runtime::MemcachedBackend::builder().server("127.0.0.1:11211").build().unwrap();
    /// assert_eq!(backend.servers(), vec!["127.0.0.1:11211"]);
    /// ```
    pub fn builder() -> MemcachedBackendBuilder {
        MemcachedBackendBuilder::default()
    }

    /// The servers, in configuration order.
    ///
    /// ```
    /// let backend = cache_runtime::MemcachedBackend::new("127.0.0.1:11211").unwrap();
    /// assert_eq!(backend.servers(), vec!["127.0.0.1:11211"]);
    /// ```
    pub fn servers(&self) -> Vec<&str> {
        self.servers.iter().map(|s| s.addr.as_str()).collect()
    }

    /// The server a stored key lives on (`host:port`).
    ///
    /// ```
    /// let backend = cache_runtime::MemcachedBackend::builder()
    ///     .server("10.0.0.1:11211")
    ///     .server("10.0.0.2:11211")
    ///     .build()
    ///     .unwrap();
    /// let server = backend.server_for("user:1");
    /// assert_eq!(server, backend.server_for("user:1"));
    /// ```
    pub fn server_for(&self, key: &str) -> &str {
        &self.servers[self.locate(&wire_key(key))].addr
    }

    fn locate(&self, wire: &str) -> usize {
        if self.ring.is_empty() {
            return 0;
        }
        let h = stable_hash(wire.as_bytes());
        let i = self.ring.partition_point(|&(p, _)| p < h);
        self.ring[if i == self.ring.len() { 0 } else { i }].1
    }

    fn connect(&self, server: &Server, opts: &CallOptions) -> Result<Conn> {
        let now = now_millis();
        let down_until = server.down_until.load(Ordering::Relaxed);
        if down_until > now {
            return Err(Error::backend(
                NAME,
                format!(
                    "server {} is skipped for {} ms more after a failed connect (`dead_retry`)",
                    server.addr,
                    down_until - now
                ),
            ));
        }
        let timeout = match opts.timeout {
            Some(t) => t.min(self.connect_timeout),
            None => self.connect_timeout,
        }
        .max(Duration::from_millis(1));
        // Only a connect that had all of `connect_timeout` may mark the server down by timing out; one cut short
        // by the call's own shorter timeout says nothing about the server.
        let full_wait = timeout >= self.connect_timeout;
        let attempt = || -> io::Result<TcpStream> {
            let mut last =
                io::Error::new(io::ErrorKind::NotFound, "the host resolved to no address");
            for addr in server.addr.to_socket_addrs()? {
                match TcpStream::connect_timeout(&addr, timeout) {
                    Ok(stream) => return Ok(stream),
                    Err(e) => last = e,
                }
            }
            Err(last)
        };
        match attempt() {
            Ok(stream) => {
                server.down_until.store(0, Ordering::Relaxed);
                stream
                    .set_nodelay(true)
                    .map_err(|e| Error::backend(NAME, format!("server {}: {e}", server.addr)))?;
                Ok(Conn {
                    reader: BufReader::with_capacity(16 * 1024, stream),
                    timeout: None,
                    line: Vec::with_capacity(128),
                    out: Vec::with_capacity(256),
                    broken: false,
                })
            }
            Err(e) => {
                let retry = u64::try_from(self.dead_retry.as_millis()).unwrap_or(u64::MAX);
                if retry > 0 && marks_down(&e, full_wait) {
                    server
                        .down_until
                        .store(now.saturating_add(retry), Ordering::Relaxed);
                }
                Err(Error::backend(
                    NAME,
                    format!("cannot connect to server {}: {e}", server.addr),
                ))
            }
        }
    }

    /// A connection to server `idx` (pooled, or new) and whether it came from the pool.
    fn checkout(&self, idx: usize, opts: &CallOptions) -> Result<(Conn, bool)> {
        let server = &self.servers[idx];
        if let Some(conn) = server.idle.lock().pop() {
            return Ok((conn, true));
        }
        self.connect(server, opts).map(|c| (c, false))
    }

    /// Returns a connection to the pool, unless its last command left it out of step.
    fn checkin(&self, idx: usize, conn: Conn) {
        if conn.broken {
            return;
        }
        let mut idle = self.servers[idx].idle.lock();
        if idle.len() < self.pool_size {
            idle.push(conn);
        }
    }

    fn fault_to_error(
        &self,
        idx: usize,
        command: &'static str,
        opts: &CallOptions,
        fault: Fault,
    ) -> Error {
        let Fault::Broken(e) = fault;
        match (e.kind(), opts.timeout) {
            (io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut, Some(timeout)) => {
                Error::Timeout { command, timeout }
            }
            _ => Error::backend(
                NAME,
                format!("`{command}` on server {}: {e}", self.servers[idx].addr),
            ),
        }
    }

    /// After a connection to server `idx` failed other than by a timeout, its idle connections are likely
    /// just as dead (a restarted server): all are dropped, so later commands, retried or not (`add` and `cas`
    /// are never retried), connect afresh instead of each meeting a dead one.
    fn forget_idle(&self, idx: usize, fault: &Fault) {
        if !timed_out(fault) {
            self.servers[idx].idle.lock().clear();
        }
    }

    /// What becomes of a command (or a server's part of a pipelined one) whose connection failed, writing or
    /// reading: `Ok` to run it again on a new connection when `retry` allows it (the failed connection came
    /// from the pool, and the command is safe to repeat) and it did not time out (a slow server is not a dead
    /// one, and the caller's time is spent); otherwise the error.
    fn after_fault(
        &self,
        idx: usize,
        command: &'static str,
        opts: &CallOptions,
        retry: bool,
        fault: Fault,
    ) -> Result<()> {
        self.forget_idle(idx, &fault);
        if retry && !timed_out(&fault) {
            Ok(())
        } else {
            Err(self.fault_to_error(idx, command, opts, fault))
        }
    }

    /// Runs `op` on a connection to server `idx`. A connection that fails is closed; when it came from the
    /// pool and `op` is safe to repeat, it is run once more on a new connection (a restarted server leaves
    /// every pooled connection dead, and the first command after the restart should not fail for it).
    fn with_conn<T>(
        &self,
        idx: usize,
        command: &'static str,
        idempotent: bool,
        opts: &CallOptions,
        mut op: impl FnMut(&mut Conn) -> Step<T>,
    ) -> Result<T> {
        let (mut conn, mut pooled) = self.checkout(idx, opts)?;
        loop {
            let outcome = conn
                .set_timeout(opts.timeout)
                .map_err(Fault::from)
                .and_then(|()| op(&mut conn));
            match outcome {
                Ok(value) => {
                    self.checkin(idx, conn);
                    return Ok(value);
                }
                Err(fault) => {
                    drop(conn);
                    self.after_fault(idx, command, opts, pooled && idempotent, fault)?;
                    conn = self.connect(&self.servers[idx], opts)?;
                    pooled = false;
                }
            }
        }
    }

    /// One pipelined round over several servers: `send` writes each server's `work` (returning how many
    /// replies to expect) before any reply is read, then `read` takes each server's replies in turn, so the
    /// round costs one round trip. A pooled connection that fails is tried once more on a new one, as in
    /// [`Self::with_conn`]. Returns each server's outcome.
    fn pipeline<W: Copy, R>(
        &self,
        command: &'static str,
        opts: &CallOptions,
        work: Vec<(usize, W)>,
        send: impl Fn(&mut Conn, W) -> Step<usize>,
        mut read: impl FnMut(&mut Conn, W, usize) -> Step<R>,
    ) -> Vec<(usize, Result<R>)> {
        let mut pending = Vec::with_capacity(work.len());
        for (idx, w) in work {
            let state = match self.checkout(idx, opts) {
                Err(e) => Pending::Failed(e),
                Ok((mut conn, pooled)) => match conn
                    .set_timeout(opts.timeout)
                    .map_err(Fault::from)
                    .and_then(|()| send(&mut conn, w))
                {
                    Ok(replies) => Pending::Sent(conn, pooled, replies),
                    Err(f) => self
                        .after_fault(idx, command, opts, pooled, f)
                        .map_or_else(Pending::Failed, |()| Pending::Retry),
                },
            };
            pending.push((idx, w, state));
        }
        let mut outcomes = Vec::with_capacity(pending.len());
        for (idx, w, state) in pending {
            // `Ok(None)`: a pooled connection failed (the server restarted?), so once more on a new one.
            let first = match state {
                Pending::Failed(e) => Err(e),
                Pending::Retry => Ok(None),
                Pending::Sent(mut conn, pooled, replies) => match read(&mut conn, w, replies) {
                    Ok(reply) => {
                        self.checkin(idx, conn);
                        Ok(Some(reply))
                    }
                    Err(f) => {
                        drop(conn);
                        self.after_fault(idx, command, opts, pooled, f)
                            .map(|()| None)
                    }
                },
            };
            let outcome = first.and_then(|reply| match reply {
                Some(reply) => Ok(reply),
                None => self.with_conn(idx, command, false, opts, |conn| {
                    let replies = send(conn, w)?;
                    read(conn, w, replies)
                }),
            });
            outcomes.push((idx, outcome));
        }
        outcomes
    }

    fn said(&self, idx: usize, command: &'static str, said: ServerSaid) -> Error {
        let server = &self.servers[idx].addr;
        match said {
            ServerSaid::Server(m) if m.contains("too large") => Error::InvalidInput(format!(
                "`{command}`: the value is larger than the item size limit of memcached server {server} \
                 (its `-I` setting, 1 MiB by default): {m}"
            )),
            ServerSaid::Server(m) | ServerSaid::Client(m) => {
                Error::backend(NAME, format!("`{command}` on server {server}: {m}"))
            }
            ServerSaid::UnknownCommand => Error::backend(
                NAME,
                format!("`{command}`: server {server} does not know the command (memcached 1.6 or later is needed)"),
            ),
        }
    }

    /// One storage command (`set`, `add`, `cas`) on one key.
    fn store(
        &self,
        command: &'static str,
        key: &str,
        cmd: StoreCmd<'_>,
        opts: &CallOptions,
    ) -> Result<StoreReply> {
        let (idx, reply) = self.store_reply(command, key, cmd, opts)?;
        reply.map_err(|said| self.said(idx, command, said))
    }

    /// [`store`](Self::store) with what the server said left to the caller, and the server's index.
    fn store_reply(
        &self,
        command: &'static str,
        key: &str,
        cmd: StoreCmd<'_>,
        opts: &CallOptions,
    ) -> Result<(usize, Reply<StoreReply>)> {
        check_item_size(command, cmd.data)?;
        let wire = wire_key(key);
        let idx = self.locate(&wire);
        let idempotent = cmd.verb == "set";
        let reply = self.with_conn(idx, command, idempotent, opts, |conn| {
            conn.out.clear();
            push_store(
                &mut conn.out,
                cmd.verb,
                &wire,
                cmd.exptime,
                cmd.data,
                cmd.cas,
            );
            conn.send()?;
            conn.read_store(cmd.verb == "ms")
        })?;
        Ok((idx, reply))
    }

    /// `gets` on one key: the value and its CAS id.
    fn gets(
        &self,
        command: &'static str,
        key: &str,
        opts: &CallOptions,
    ) -> Result<Option<(Vec<u8>, u64)>> {
        Ok(self
            .fetch_one(command, b"gets ", key, opts)?
            .map(|(data, cas)| (data, cas.unwrap_or(0))))
    }

    /// The value, CAS id and the `exptime` that keeps the key's remaining TTL (0: it has none), read with
    /// one `mg <key> v c t`. A server without meta commands (before 1.6) is read with `gets`, and the
    /// `exptime` is `None`: its TTL cannot be read.
    fn versioned(&self, key: &str, opts: &CallOptions) -> Result<Option<Versioned>> {
        let wire = wire_key(key);
        let idx = self.locate(&wire);
        let reply = self.with_conn(idx, "increment", true, opts, |conn| {
            conn.out.clear();
            conn.out.extend_from_slice(b"mg ");
            conn.out.extend_from_slice(wire.as_bytes());
            conn.out.extend_from_slice(b" v c t\r\n");
            conn.send()?;
            conn.read_meta_value()
        })?;
        match reply {
            Ok(found) => Ok(found),
            Err(ServerSaid::UnknownCommand) => {
                Ok(self
                    .gets("increment", key, opts)?
                    .map(|(data, cas)| Versioned {
                        data,
                        cas,
                        exptime: None,
                    }))
            }
            Err(said) => Err(self.said(idx, "increment", said)),
        }
    }

    /// `ms` with CAS id `cas` and `exptime` (0: no TTL): stores `data` only if the key still has that id.
    /// `None` when the server refused the command line (`ERROR`, `CLIENT_ERROR`: a memcached whose `ms` takes
    /// another form); nothing was stored then.
    fn meta_cas(
        &self,
        key: &str,
        data: &[u8],
        cas: u64,
        exptime: i64,
        opts: &CallOptions,
    ) -> Result<Option<StoreReply>> {
        let cmd = StoreCmd::meta_cas(data, exptime, cas);
        match self.store_reply("increment", key, cmd, opts)? {
            (_, Ok(stored)) => Ok(Some(stored)),
            (_, Err(ServerSaid::UnknownCommand | ServerSaid::Client(_))) => Ok(None),
            (idx, Err(said)) => Err(self.said(idx, "increment", said)),
        }
    }

    /// `get` or `gets` (`verb`) on one key: the value and, for `gets`, its CAS id. A reply naming another key,
    /// or naming it twice, means the connection is out of step: it is closed and nothing is returned.
    fn fetch_one(
        &self,
        command: &'static str,
        verb: &'static [u8],
        key: &str,
        opts: &CallOptions,
    ) -> Result<Option<(Vec<u8>, Option<u64>)>> {
        let wire = wire_key(key);
        let idx = self.locate(&wire);
        let reply = self.with_conn(idx, command, true, opts, |conn| {
            conn.out.clear();
            conn.out.extend_from_slice(verb);
            conn.out.extend_from_slice(wire.as_bytes());
            conn.out.extend_from_slice(b"\r\n");
            conn.send()?;
            let mut found = None;
            let mut stray = false;
            let end = conn.read_values(|k, data, cas| {
                stray |= k != wire.as_bytes() || found.is_some();
                found = Some((data, cas));
            })?;
            if stray {
                return Err(stray_value(&wire));
            }
            Ok(end.map(|()| found))
        })?;
        reply.map_err(|said| self.said(idx, command, said))
    }

    /// A one-line command with a one-line reply. A reply `in_step` does not recognise (another command's,
    /// read by a connection out of step) closes the connection after the caller gets it.
    fn simple(
        &self,
        command: &'static str,
        line: &str,
        key: &str,
        opts: &CallOptions,
        in_step: impl Fn(&[u8]) -> bool,
    ) -> Result<(usize, Vec<u8>)> {
        let idx = self.locate(key);
        let reply = self.with_conn(idx, command, true, opts, |conn| {
            conn.out.clear();
            conn.out.extend_from_slice(line.as_bytes());
            conn.send()?;
            let reply = conn.read_line()?.to_vec();
            if !in_step(&reply) {
                conn.broken = true;
            }
            Ok(reply)
        })?;
        Ok((idx, reply))
    }
}

impl Backend for MemcachedBackend {
    fn name(&self) -> &str {
        NAME
    }

    fn get(&self, key: &str, opts: &CallOptions) -> Result<Option<Value>> {
        Ok(self
            .fetch_one("get", b"get ", key, opts)?
            .map(|(data, _)| Value::Bytes(data)))
    }

    fn multi_get(&self, keys: &[&str], opts: &CallOptions) -> Result<Vec<Option<Value>>> {
        let wires: Vec<Cow<'_, str>> = keys.iter().map(|k| wire_key(k)).collect();
        // Unique wire keys per server.
        let mut per_server: HashMap<usize, Vec<&str>> = HashMap::new();
        let mut seen: HashMap<&str, ()> = HashMap::with_capacity(wires.len());
        for wire in &wires {
            if seen.insert(wire, ()).is_none() {
                per_server.entry(self.locate(wire)).or_default().push(wire);
            }
        }
        // Each round writes every server one batch of `get` lines, then reads those replies: one round trip
        // per round (one in all for up to `GET_BATCH_BYTES` of keys per server). A server that fails is not
        // asked again.
        let batches: Vec<(usize, Vec<&[&str]>)> = per_server
            .iter()
            .map(|(&idx, server_keys)| (idx, get_batches(server_keys)))
            .collect();
        let rounds = batches.iter().map(|(_, b)| b.len()).max().unwrap_or(0);
        let mut values: HashMap<Vec<u8>, Vec<u8>> = HashMap::with_capacity(seen.len());
        let mut failed: HashMap<usize, Error> = HashMap::new();
        for round in 0..rounds {
            let work: Vec<(usize, &[&str])> = batches
                .iter()
                .filter(|(idx, _)| !failed.contains_key(idx))
                .filter_map(|(idx, server_batches)| Some((*idx, *server_batches.get(round)?)))
                .collect();
            let outcomes =
                self.pipeline("multi_get", opts, work, send_gets, |conn, chunk, lines| {
                    read_gets(conn, chunk, lines, &mut values)
                });
            for (idx, outcome) in outcomes {
                match outcome {
                    Ok(Ok(())) => {}
                    Ok(Err(said)) => {
                        failed.insert(idx, self.said(idx, "multi_get", said));
                    }
                    Err(e) => {
                        failed.insert(idx, e);
                    }
                }
            }
        }
        let answered = batches.len() - failed.len();
        let failures: Vec<Error> = failed.into_values().collect();
        if let Some(first) = failures.into_iter().next() {
            if answered == 0 {
                return Err(first);
            }
            // Fail open per server: the keys of a server that did not answer read as misses.
            tracing::warn!(error = %first, "memcached multi_get: a server failed; its keys read as misses");
        }
        Ok(wires
            .iter()
            .map(|w| values.get(w.as_bytes()).cloned().map(Value::Bytes))
            .collect())
    }

    fn set(
        &self,
        key: &str,
        value: Value,
        ttl: Option<Duration>,
        opts: &CallOptions,
    ) -> Result<()> {
        let data = value.require_bytes("memcached")?;
        let exptime = store_exptime(ttl);
        match self.store("set", key, StoreCmd::set(data, exptime), opts)? {
            StoreReply::Stored => Ok(()),
            other => Err(Error::backend(
                NAME,
                format!("`set` of a key answered {other:?}"),
            )),
        }
    }

    fn multi_set(
        &self,
        entries: Vec<(&str, Value)>,
        ttl: Option<Duration>,
        opts: &CallOptions,
    ) -> Result<()> {
        let exptime = store_exptime(ttl);
        let mut per_server: HashMap<usize, Vec<WireEntry<'_>>> = HashMap::new();
        for (key, value) in &entries {
            let wire = wire_key(key);
            let data = value.require_bytes("memcached")?;
            check_item_size("multi_set", data)?;
            per_server
                .entry(self.locate(&wire))
                .or_default()
                .push((wire, data));
        }
        let batches = per_server
            .values()
            .map(|v| v.len().div_ceil(SETS_PER_BATCH))
            .max()
            .unwrap_or(0);
        let mut first_error: Option<Error> = None;
        for batch in 0..batches {
            let work: Vec<(usize, &[WireEntry<'_>])> = per_server
                .iter()
                .filter_map(|(&idx, items)| {
                    let start = (batch * SETS_PER_BATCH).min(items.len());
                    let chunk = &items[start..(start + SETS_PER_BATCH).min(items.len())];
                    (!chunk.is_empty()).then_some((idx, chunk))
                })
                .collect();
            let outcomes = self.pipeline(
                "multi_set",
                opts,
                work,
                |conn, chunk| send_sets(conn, chunk, exptime),
                |conn, _, count| read_sets(conn, count),
            );
            for (idx, outcome) in outcomes {
                let error = match outcome {
                    Ok(Ok(())) => continue,
                    Ok(Err(Ok(reply))) => {
                        Error::backend(NAME, format!("`multi_set` answered {reply:?}"))
                    }
                    Ok(Err(Err(said))) => self.said(idx, "multi_set", said),
                    Err(e) => e,
                };
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn add(
        &self,
        key: &str,
        value: Value,
        ttl: Option<Duration>,
        opts: &CallOptions,
    ) -> Result<bool> {
        let data = value.require_bytes("memcached")?;
        let exptime = store_exptime(ttl);
        match self.store("add", key, StoreCmd::add(data, exptime), opts)? {
            StoreReply::Stored => Ok(true),
            StoreReply::NotStored | StoreReply::Exists => Ok(false),
            StoreReply::NotFound => Err(Error::backend(NAME, "`add` answered NOT_FOUND")),
        }
    }

    fn exists(&self, key: &str, opts: &CallOptions) -> Result<bool> {
        let wire = wire_key(key);
        let (idx, reply) = self.simple("exists", &format!("mg {wire}\r\n"), &wire, opts, |r| {
            one_of(r, &[b"HD", b"EN", b"ERROR"])
        })?;
        match reply.as_slice() {
            b"HD" => Ok(true),
            b"EN" => Ok(false),
            b"ERROR" => Ok(self.get(key, opts)?.is_some()),
            other => Err(server_error(other)
                .map(|said| self.said(idx, "exists", said))
                .unwrap_or_else(|| {
                    Error::backend(
                        NAME,
                        format!("`mg` answered `{}`", String::from_utf8_lossy(other)),
                    )
                })),
        }
    }

    /// Atomic through a versioned read and a CAS write: read the number, write the sum only if nobody wrote in
    /// between, else again. The read is one meta `mg <key> v c t` (value, CAS id, remaining TTL) and the write
    /// `ms … C<cas> T<ttl>`, so a counter keeps its TTL: a rate-limit window set with a TTL still ends. On a
    /// server without these meta commands (before 1.6, or an early form of them) it is `gets`/`cas`, and the
    /// write drops the TTL. Counters are stored as decimal text (what the JSON and string serializers write
    /// for integers), so `get::<i64>` reads them. An absent key is created with `add`, without TTL.
    ///
    /// memcached's own `incr` is not used. It is unsigned, and when it replaces an item it gives the old item
    /// the new CAS id, so a `gets` racing with it can return the old number with the new id. A `cas` built on
    /// that succeeds and undoes the increment. Mixing `incr` (positive steps) with `cas` (negative ones) lost
    /// about one update in a hundred runs of the concurrency test. Clients that `incr` this key directly share
    /// that race.
    fn increment(&self, key: &str, delta: i64, opts: &CallOptions) -> Result<i64> {
        for _ in 0..MAX_CAS_ROUNDS {
            let Some(Versioned {
                data: bytes,
                cas,
                exptime: kept,
            }) = self.versioned(key, opts)?
            else {
                let data = delta.to_string();
                let cmd = StoreCmd::add(data.as_bytes(), 0);
                if self.store("increment", key, cmd, opts)? == StoreReply::Stored {
                    return Ok(delta);
                }
                continue;
            };
            // Trimmed: a counter another client wrote with memcached's own `incr` may carry padding.
            let text = std::str::from_utf8(&bytes).map_or(&bytes[..], |s| s.trim().as_bytes());
            let new = increment_decimal(key, text, delta)?;
            let data = new.to_string();
            // `ms` keeps the TTL; a server without (this form of) the meta commands gets `cas`, which drops it.
            let meta = kept
                .map(|exptime| self.meta_cas(key, data.as_bytes(), cas, exptime, opts))
                .transpose()?
                .flatten();
            let stored = match meta {
                Some(stored) => stored,
                None => self.store(
                    "increment",
                    key,
                    StoreCmd::cas(data.as_bytes(), 0, cas),
                    opts,
                )?,
            };
            if stored == StoreReply::Stored {
                return Ok(new);
            }
        }
        Err(Error::backend(
            NAME,
            format!("`increment` of `{key}` lost the race {MAX_CAS_ROUNDS} times in a row"),
        ))
    }

    fn delete(&self, key: &str, opts: &CallOptions) -> Result<u64> {
        let wire = wire_key(key);
        let (idx, reply) =
            self.simple("delete", &format!("delete {wire}\r\n"), &wire, opts, |r| {
                one_of(r, &[b"DELETED", b"NOT_FOUND"])
            })?;
        match reply.as_slice() {
            b"DELETED" => Ok(1),
            b"NOT_FOUND" => Ok(0),
            other => Err(self.reply_error(idx, "delete", other)),
        }
    }

    fn expire(&self, key: &str, ttl: Option<Duration>, opts: &CallOptions) -> Result<bool> {
        let wire = wire_key(key);
        let (idx, reply) = self.simple(
            "expire",
            &format!("touch {wire} {}\r\n", exptime(ttl)),
            &wire,
            opts,
            |r| one_of(r, &[b"TOUCHED", b"NOT_FOUND"]),
        )?;
        match reply.as_slice() {
            b"TOUCHED" => Ok(true),
            b"NOT_FOUND" => Ok(false),
            other => Err(self.reply_error(idx, "expire", other)),
        }
    }

    /// `flush_all` on every server when there is no namespace (returns 0: memcached does not say how many
    /// items it dropped). With a namespace: `Unsupported`, since memcached cannot find keys by prefix.
    fn clear(&self, prefix: Option<&str>, opts: &CallOptions) -> Result<u64> {
        if prefix.is_some() {
            return Err(Error::unsupported(
                "clear",
                NAME,
                "memcached cannot find keys by namespace; delete keys one by one, give the namespace its own \
                 server(s), or clear a cache without namespace (flush_all, which drops every key)",
            ));
        }
        for idx in 0..self.servers.len() {
            let reply = self.with_conn(idx, "clear", true, opts, |conn| {
                conn.out.clear();
                conn.out.extend_from_slice(b"flush_all\r\n");
                conn.send()?;
                let reply = conn.read_line()?.to_vec();
                if reply != b"OK" {
                    conn.broken = true;
                }
                Ok(reply)
            })?;
            if reply != b"OK" {
                return Err(self.reply_error(idx, "clear", &reply));
            }
        }
        Ok(0)
    }

    fn keys(&self, _pattern: &str, _opts: &CallOptions) -> Result<Vec<String>> {
        Err(Error::unsupported(
            "keys",
            NAME,
            "memcached cannot list its keys; keep an index under a key of your own, or use the redis or disk backend",
        ))
    }

    /// `version` and `stats [group]` (one reply per server, in configuration order), `flush_all [delay]`,
    /// and `server_for <key>` (the `host:port` a stored key lives on).
    fn raw(&self, command: &str, args: &[Vec<u8>], opts: &CallOptions) -> Result<RawReply> {
        let verb = command.to_ascii_lowercase();
        if verb == "server_for" {
            let [key] = args else {
                return Err(Error::InvalidInput("`server_for` takes one key".into()));
            };
            let key = std::str::from_utf8(key)
                .map_err(|_| Error::InvalidInput("`server_for`: the key is not UTF-8".into()))?;
            return Ok(RawReply::Bytes(self.server_for(key).as_bytes().to_vec()));
        }
        let max_args = match verb.as_str() {
            "version" => 0,
            "stats" | "flush_all" => 1,
            _ => {
                return Err(Error::unsupported(
                    "raw",
                    NAME,
                    format!(
                        "unknown command `{command}`; the memcached backend understands `version`, `stats [group]`, \
                         `flush_all [delay]` and `server_for <key>`"
                    ),
                ))
            }
        };
        if args.len() > max_args {
            return Err(Error::InvalidInput(format!(
                "`{verb}` takes at most {max_args} argument(s)"
            )));
        }
        let mut line = verb.clone().into_bytes();
        for arg in args {
            if arg.eq_ignore_ascii_case(b"noreply") {
                // No reply would come: the read would wait for the next command's.
                return Err(Error::InvalidInput(format!(
                    "`{verb}`: `noreply` is not supported"
                )));
            }
            if arg.is_empty() || !arg.iter().all(u8::is_ascii_graphic) {
                return Err(Error::InvalidInput(format!(
                    "`{verb}`: arguments must be printable ASCII without spaces"
                )));
            }
            line.push(b' ');
            line.extend_from_slice(arg);
        }
        line.extend_from_slice(b"\r\n");
        let multi_line = verb == "stats";
        let mut replies = Vec::with_capacity(self.servers.len());
        for idx in 0..self.servers.len() {
            let reply = self.with_conn(idx, "raw", verb != "flush_all", opts, |conn| {
                conn.out.clear();
                conn.out.extend_from_slice(&line);
                conn.send()?;
                if !multi_line {
                    let l = conn.read_line()?;
                    let expected: &[u8] = if verb == "version" {
                        b"VERSION "
                    } else {
                        b"OK"
                    };
                    let status = String::from_utf8_lossy(l).into_owned();
                    if !l.starts_with(expected) {
                        conn.broken = true;
                    }
                    return Ok(RawReply::Status(status));
                }
                let mut stats = Vec::new();
                loop {
                    let l = conn.read_line()?;
                    if l == b"END" {
                        return Ok(RawReply::Array(stats));
                    }
                    // `stats reset` (and `stats detail on|off`) answer one status line, no `END`.
                    if l == b"RESET" || l == b"OK" {
                        return Ok(RawReply::Status(String::from_utf8_lossy(l).into_owned()));
                    }
                    if l == b"ERROR"
                        || l.starts_with(b"CLIENT_ERROR")
                        || l.starts_with(b"SERVER_ERROR")
                    {
                        let status = String::from_utf8_lossy(l).into_owned();
                        conn.broken = true;
                        return Ok(RawReply::Status(status));
                    }
                    let text = String::from_utf8_lossy(l);
                    let mut parts = text.splitn(3, ' ');
                    let _stat = parts.next();
                    let name = parts.next().unwrap_or_default();
                    let value = parts.next().unwrap_or_default();
                    stats.push(RawReply::Array(vec![
                        RawReply::Bytes(name.as_bytes().to_vec()),
                        RawReply::Bytes(value.as_bytes().to_vec()),
                    ]));
                }
            })?;
            replies.push(reply);
        }
        Ok(RawReply::Array(replies))
    }

    /// Drops every pooled connection; the next command connects again.
    fn close(&self) -> Result<()> {
        for server in self.servers.iter() {
            server.idle.lock().clear();
        }
        Ok(())
    }

    fn get_versioned(&self, key: &str, opts: &CallOptions) -> Result<(Option<Value>, CasToken)> {
        Ok(match self.gets("get_versioned", key, opts)? {
            Some((data, cas)) => (Some(Value::Bytes(data)), CasToken::Version(cas)),
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
        let data = value.require_bytes("memcached")?;
        let exptime = store_exptime(ttl);
        let stored =
            match expected {
                CasToken::Absent => {
                    self.store("compare_and_set", key, StoreCmd::add(data, exptime), opts)?
                }
                CasToken::Version(cas) => self.store(
                    "compare_and_set",
                    key,
                    StoreCmd::cas(data, exptime, *cas),
                    opts,
                )?,
                CasToken::Bytes(_) => return Err(Error::InvalidInput(
                    "a byte-valued CAS token comes from another backend; memcached uses CAS ids"
                        .into(),
                )),
            };
        Ok(stored == StoreReply::Stored)
    }

    /// Atomic: `gets`, then a `cas` of that version to an item that has already expired (exptime -1), which
    /// fails if anyone wrote the key in between.
    fn compare_and_delete(&self, key: &str, expected: &[u8], opts: &CallOptions) -> Result<bool> {
        match self.gets("compare_and_delete", key, opts)? {
            Some((data, cas)) if data == expected => {
                Ok(
                    self.store("compare_and_delete", key, StoreCmd::cas(b"", -1, cas), opts)?
                        == StoreReply::Stored,
                )
            }
            _ => Ok(false),
        }
    }
}

impl MemcachedBackend {
    fn reply_error(&self, idx: usize, command: &'static str, reply: &[u8]) -> Error {
        match server_error(reply) {
            Some(said) => self.said(idx, command, said),
            None => Error::backend(
                NAME,
                format!(
                    "`{command}` on server {}: unexpected reply `{}`",
                    self.servers[idx].addr,
                    String::from_utf8_lossy(reply)
                ),
            ),
        }
    }
}

impl std::fmt::Debug for MemcachedBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemcachedBackend")
            .field("servers", &self.servers())
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("dead_retry", &self.dead_retry)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_keys_pass_through_and_others_are_hashed() {
        assert_eq!(wire_key("user:1"), "user:1");
        for bad in [
            "a b",
            "a\r\nset x 0 0 1",
            "nul\0",
            "é",
            &"k".repeat(251),
            "",
            "#sha256:abc",
        ] {
            let wire = wire_key(bad);
            assert!(wire.starts_with(HASHED_PREFIX), "{bad:?}");
            assert_eq!(wire.len(), HASHED_PREFIX.len() + 64);
            assert!(wire.bytes().all(|b| b.is_ascii_graphic()));
            assert_eq!(wire, wire_key(bad), "deterministic");
        }
        assert_ne!(wire_key("a b"), wire_key("a  b"));
        assert_eq!(wire_key(&"k".repeat(250)).len(), 250);
    }

    #[test]
    fn ttls_round_up_and_turn_absolute_past_thirty_days() {
        assert_eq!(exptime(None), 0);
        assert_eq!(exptime(Some(Duration::from_millis(1))), 1);
        assert_eq!(exptime(Some(Duration::from_millis(1500))), 2);
        assert_eq!(
            exptime(Some(Duration::from_secs(MAX_RELATIVE_TTL_SECS))),
            MAX_RELATIVE_TTL_SECS
        );
        let now = now_millis() / 1000;
        let far = exptime(Some(Duration::from_secs(MAX_RELATIVE_TTL_SECS + 1)));
        assert!(far > now + MAX_RELATIVE_TTL_SECS && far <= now + MAX_RELATIVE_TTL_SECS + 3);
        // Past 2038 memcached's 32-bit exptime would wrap into the past: capped instead.
        assert_eq!(
            exptime(Some(Duration::from_secs(100 * 365 * 24 * 3600))),
            MAX_EXPTIME
        );
        assert_eq!(exptime(Some(Duration::from_secs(u64::MAX))), MAX_EXPTIME);
        assert_eq!(exptime(Some(Duration::MAX)), MAX_EXPTIME);
    }

    #[test]
    fn the_ring_spreads_keys_and_moves_few_when_a_server_joins() {
        let two = MemcachedBackend::builder()
            .server("a:1")
            .server("b:1")
            .build()
            .unwrap();
        let three = MemcachedBackend::builder()
            .server("a:1")
            .server("b:1")
            .server("c:1")
            .build()
            .unwrap();
        let keys: Vec<String> = (0..3000).map(|i| format!("key:{i}")).collect();
        let on_a = keys.iter().filter(|k| two.server_for(k) == "a:1").count();
        assert!((1000..2000).contains(&on_a), "{on_a} of 3000 on a");
        let moved = keys
            .iter()
            .filter(|k| two.server_for(k) != three.server_for(k))
            .count();
        // Only keys that now belong to c move (about a third).
        assert!(moved < 1500, "{moved} moved");
        assert!(keys
            .iter()
            .all(|k| two.server_for(k) == three.server_for(k) || three.server_for(k) == "c:1"));
    }

    #[test]
    fn addresses_are_checked() {
        assert!(MemcachedBackend::new("localhost").is_err());
        assert!(MemcachedBackend::new(":11211").is_err());
        assert!(MemcachedBackend::new("h:99999").is_err());
        assert!(MemcachedBackend::new("[::1]:11211").is_ok());
        assert!(MemcachedBackend::new("[fe80::1%2]:11211").is_ok());
        assert!(MemcachedBackend::new("cache.example:11211").is_ok());
        // An IPv6 address without brackets is not `host ":"` and port 1.
        let err = MemcachedBackend::new("::1").unwrap_err().to_string();
        assert!(err.contains("brackets"), "{err}");
        assert!(MemcachedBackend::new("::1:11211").is_err());
        assert!(MemcachedBackend::new("[::1]").is_err());
        assert!(MemcachedBackend::new("[nothost]:11211").is_err());
        assert!(MemcachedBackend::new("[::1]:x").is_err());
        assert!(MemcachedBackend::new("[]:11211").is_err());
    }

    #[test]
    fn server_entries_and_endpoints_get_ports_and_brackets() {
        assert_eq!(with_default_port("::1"), "[::1]:11211");
        assert_eq!(with_default_port("[::1]"), "[::1]:11211");
        assert_eq!(with_default_port("[::1]:11300"), "[::1]:11300");
        assert_eq!(with_default_port("h"), "h:11211");
        assert_eq!(with_default_port("h:1"), "h:1");
        assert_eq!(endpoint_addr("::1", 5), "[::1]:5");
        assert_eq!(endpoint_addr("[::1]", 5), "[::1]:5");
        assert_eq!(endpoint_addr("h", 5), "h:5");
        for addr in ["[::1]:11211", "[::1]:5", "h:5"] {
            assert!(check_addr(addr).is_ok(), "{addr}");
        }
    }

    #[test]
    fn only_a_full_connect_timeout_or_a_refusal_marks_a_server_down() {
        let timeout = io::Error::new(io::ErrorKind::TimedOut, "t");
        let refused = io::Error::new(io::ErrorKind::ConnectionRefused, "r");
        assert!(!marks_down(&timeout, false));
        assert!(marks_down(&timeout, true));
        assert!(marks_down(&refused, false));
    }

    #[test]
    fn multi_get_batches_are_bounded() {
        let long = "k".repeat(250);
        let keys: Vec<&str> = (0..1000).map(|_| long.as_str()).collect();
        let batches = get_batches(&keys);
        assert!(batches.len() > 1);
        assert_eq!(batches.iter().map(|b| b.len()).sum::<usize>(), 1000);
        assert!(batches
            .iter()
            .all(|b| b.iter().map(|k| k.len() + 1).sum::<usize>() <= GET_BATCH_BYTES));
        assert_eq!(get_batches(&["a", "b"]).len(), 1);
        assert!(get_batches(&[]).is_empty());
    }
}
