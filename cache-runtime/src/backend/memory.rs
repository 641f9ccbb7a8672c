//! The in-process memory backend.
//!
//! Design, and why it is not a wrapped cache crate: a hit must cost no more than a `Mutex<HashMap>` lookup and
//! must scale across threads. The store is split into cache-line-padded shards, each a `RwLock` over a
//! `hashbrown::HashTable` of slot indices; a hit takes one shard's read lock, so readers of different shards
//! never touch the same cache line and readers of the same shard share it. Eviction is CLOCK (second chance):
//! a hit sets a per-entry flag with a plain atomic store only when it is not set yet, so steady-state hits write
//! nothing shared. Primitive values read once are also copied into each shard's [`hot`] index, a seqlock-guarded
//! array read with no lock at all (the lock's two atomic read-modify-writes were a third of a memoized hit, and
//! readers of one shard on two cores passed its cache line back and forth). Expiry is checked lazily on read;
//! each shard also keeps a heap of deadlines that every write drains a few steps, so expired entries do not pile
//! up in a cache nobody reads. See BENCHMARKS.md for the numbers against quick_cache, moka and a locked HashMap.

use std::any::{Any, TypeId};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hashbrown::HashTable;
use parking_lot::{RwLock, RwLockWriteGuard};

use crate::backend::{increment_decimal, increment_integer, not_an_integer, Backend, CallOptions};
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::key::glob_match;
use crate::ttl::ttl_millis;
use crate::value::{CasToken, RawReply, Value};

mod hot;
use hot::HotIndex;

/// A locked read of a primitive whose hot slots were taken retries its promotion once in this many locked
/// reads on a thread.
const PROMOTION_RETRY: u32 = 64;

/// Whether this locked read on this thread may retry a promotion (a thread-local count: no shared write).
fn promotion_turn() -> bool {
    thread_local!(static READS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) });
    READS
        .try_with(|reads| {
            let n = reads.get().wrapping_add(1);
            reads.set(n);
            n % PROMOTION_RETRY == 0
        })
        .unwrap_or(false)
}

/// Hot-index slots of an unbounded backend, across all shards.
const HOT_SLOTS: usize = 4096;

/// How many due deadlines one write retires at most.
const SWEEP_PER_WRITE: usize = 4;

/// Keeps a shard on its own cache lines so neighbouring locks do not false-share.
#[repr(align(128))]
struct Padded<T>(T);

/// Keys up to this many bytes are stored inside the table's bucket.
const KEY_INLINE: usize = 46;

/// A stored key: in place up to [`KEY_INLINE`] bytes (generated memoization keys such as
/// `app::users::load(42,"eu")` usually are), so comparing it touches no memory beyond the bucket; longer keys
/// live on the heap.
enum KeyStr {
    Inline { len: u8, bytes: [u8; KEY_INLINE] },
    Heap(Box<str>),
}

impl KeyStr {
    fn new(key: &str) -> KeyStr {
        if key.len() <= KEY_INLINE {
            let mut bytes = [0; KEY_INLINE];
            bytes[..key.len()].copy_from_slice(key.as_bytes());
            KeyStr::Inline {
                len: key.len() as u8,
                bytes,
            }
        } else {
            KeyStr::Heap(key.into())
        }
    }

    #[inline]
    fn as_bytes(&self) -> &[u8] {
        match self {
            KeyStr::Inline { len, bytes } => &bytes[..usize::from(*len)],
            KeyStr::Heap(key) => key.as_bytes(),
        }
    }

    #[inline]
    fn is(&self, key: &[u8]) -> bool {
        self.as_bytes() == key
    }

    /// The key as text (built from a `&str`, so always valid UTF-8).
    fn as_str(&self) -> &str {
        match self {
            KeyStr::Inline { .. } => std::str::from_utf8(self.as_bytes()).unwrap_or_default(),
            KeyStr::Heap(key) => key,
        }
    }
}

/// A typed primitive kept in the bucket itself: reading it clones no `Arc` and follows no pointer, which is
/// one cache miss less per hit for the most common memoized results (numbers, flags).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Small {
    U8(u8),
    U16(u16),
    U32(u32),
    U64(u64),
    Usize(usize),
    I8(i8),
    I16(i16),
    I32(i32),
    I64(i64),
    Isize(isize),
    F32(f32),
    F64(f64),
    Bool(bool),
    Char(char),
}

/// Runs `$body` with `$v` bound to the primitive inside a [`Small`], whatever its type.
macro_rules! with_small {
    ($small:expr, $v:ident => $body:expr) => {
        match $small {
            Small::U8($v) => $body,
            Small::U16($v) => $body,
            Small::U32($v) => $body,
            Small::U64($v) => $body,
            Small::Usize($v) => $body,
            Small::I8($v) => $body,
            Small::I16($v) => $body,
            Small::I32($v) => $body,
            Small::I64($v) => $body,
            Small::Isize($v) => $body,
            Small::F32($v) => $body,
            Small::F64($v) => $body,
            Small::Bool($v) => $body,
            Small::Char($v) => $body,
        }
    };
}

/// `Small::to_bits` and its inverse `Small::from_bits`, for the hot index, from one table: per variant its
/// tag, how its value becomes bits and how bits become the value again.
macro_rules! small_bits {
    ($($tag:literal $variant:ident: |$v:ident| $to:expr, |$b:ident| $from:expr;)*) => {
        /// A tag (1-14) and the value's bits.
        fn to_bits(self) -> (u8, u64) {
            match self {
                $(Small::$variant($v) => ($tag, $to),)*
            }
        }

        /// The value of a tag and bits from [`to_bits`](Small::to_bits) (`None` for any other tag).
        #[inline(always)]
        fn from_bits(tag: u8, bits: u64) -> Option<Small> {
            match tag {
                $($tag => {
                    let $b = bits;
                    ($from).map(Small::$variant)
                })*
                _ => None,
            }
        }
    };
}

impl Small {
    /// The primitive inside `obj`, if it is one: one `type_id` call, then compares. Inlined where the type is
    /// known, the whole test folds to a constant.
    #[inline]
    fn of(obj: &dyn Any) -> Option<Small> {
        let id = obj.type_id();
        macro_rules! try_types {
            ($($t:ty => $variant:ident),*) => {
                $(if id == TypeId::of::<$t>() {
                    return obj.downcast_ref::<$t>().map(|v| Small::$variant(*v));
                })*
            };
        }
        try_types!(
            u8 => U8, u16 => U16, u32 => U32, u64 => U64, usize => Usize,
            i8 => I8, i16 => I16, i32 => I32, i64 => I64, isize => Isize,
            f32 => F32, f64 => F64, bool => Bool, char => Char
        );
        None
    }

    /// The value as a `T`, if it is one (the type test folds away for a known `T`).
    #[inline]
    pub(crate) fn get<T: Any + Clone>(&self) -> Option<T> {
        with_small!(self, v => (v as &dyn Any).downcast_ref::<T>().cloned())
    }

    /// The value as an `i64`, for `increment`.
    fn integer(&self) -> Option<i64> {
        match *self {
            Small::U8(v) => Some(i64::from(v)),
            Small::U16(v) => Some(i64::from(v)),
            Small::U32(v) => Some(i64::from(v)),
            Small::U64(v) => i64::try_from(v).ok(),
            Small::Usize(v) => i64::try_from(v).ok(),
            Small::I8(v) => Some(i64::from(v)),
            Small::I16(v) => Some(i64::from(v)),
            Small::I32(v) => Some(i64::from(v)),
            Small::I64(v) => Some(v),
            Small::Isize(v) => i64::try_from(v).ok(),
            Small::F32(_) | Small::F64(_) | Small::Bool(_) | Small::Char(_) => None,
        }
    }

    small_bits! {
        1 U8: |v| u64::from(v), |b| Some(b as u8);
        2 U16: |v| u64::from(v), |b| Some(b as u16);
        3 U32: |v| u64::from(v), |b| Some(b as u32);
        4 U64: |v| v, |b| Some(b);
        5 Usize: |v| v as u64, |b| Some(b as usize);
        6 I8: |v| v as u64, |b| Some(b as i8);
        7 I16: |v| v as u64, |b| Some(b as i16);
        8 I32: |v| v as u64, |b| Some(b as i32);
        9 I64: |v| v as u64, |b| Some(b as i64);
        10 Isize: |v| v as u64, |b| Some(b as isize);
        11 F32: |v| u64::from(v.to_bits()), |b| Some(f32::from_bits(b as u32));
        12 F64: |v| v.to_bits(), |b| Some(f64::from_bits(b));
        13 Bool: |v| u64::from(v), |b| Some(b != 0);
        14 Char: |v| u64::from(v), |b| char::from_u32(b as u32);
    }

    /// As the backend interface's [`Value`] (allocates; not on the hit path).
    fn to_value(self) -> Value {
        with_small!(self, v => Value::Object(Arc::new(v)))
    }
}

/// What an entry holds: a primitive in place, or the [`Value`] as written.
pub(crate) enum Stored {
    Small(Small),
    Value(Value),
}

impl Stored {
    /// A typed object for the store: a primitive in place, anything else in an `Arc` (no `Arc` is allocated
    /// for a primitive).
    #[inline]
    pub(crate) fn typed<T: Any + Clone + Send + Sync>(value: &T) -> Stored {
        match Small::of(value) {
            Some(small) => Stored::Small(small),
            None => Stored::Value(Value::Object(Arc::new(value.clone()))),
        }
    }

    fn new(value: Value) -> Stored {
        match &value {
            Value::Object(obj) => Small::of(&**obj).map_or(Stored::Value(value), Stored::Small),
            Value::Bytes(_) => Stored::Value(value),
        }
    }

    fn to_value(&self) -> Value {
        match self {
            Stored::Small(small) => small.to_value(),
            Stored::Value(value) => value.clone(),
        }
    }

    fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Stored::Small(_) => None,
            Stored::Value(value) => value.as_bytes(),
        }
    }
}

/// A stored value lent to a reader under the shard's read lock.
pub(crate) enum Found<'a> {
    Small(Small),
    Value(&'a Value),
}

/// What the hash table holds: the key and everything a read needs, in one bucket, so a hit loads the bucket
/// and the value and nothing else.
struct Entry {
    key: KeyStr,
    value: Stored,
    /// Milliseconds since the epoch; 0 = never.
    expires_at: u64,
    /// Changes on every write: the optimistic-lock token.
    version: u64,
    /// What the entry counts against `max_weight`.
    weight: usize,
    /// Its index in the shard's slot list (the CLOCK ring and the deadline heap refer to entries by slot).
    slot: u32,
    visited: AtomicBool,
    /// The entry in the shard's hot index: [`HOT_UNTRIED`], [`HOT_IN`] (a reader copied it there; the copy
    /// may since have lost its slot to another key, writers check) or [`HOT_LOST`].
    hot: AtomicU8,
}

/// Not in the hot index; the next locked read tries to copy it there.
const HOT_UNTRIED: u8 = 0;
/// Copied into the hot index.
const HOT_IN: u8 = 1;
/// A read tried and found the key's slots taken; later reads retry now and then ([`promotion_turn`]).
const HOT_LOST: u8 = 2;

impl Entry {
    fn live(&self, now: impl FnOnce() -> u64) -> bool {
        self.expires_at == 0 || self.expires_at > now()
    }

    /// Drops the entry's hot copy, if a reader made one, before the entry changes or goes (`hash`: its key's).
    fn drop_hot_copy(&self, hot: &HotIndex, hash: u64) {
        if self.hot.swap(HOT_UNTRIED, Ordering::Relaxed) == HOT_IN {
            hot.forget(hash, self.key.as_bytes());
        }
    }
}

struct Shard {
    table: HashTable<Entry>,
    /// The key hash of each occupied slot, so an entry can be found by slot.
    slots: Vec<Option<u64>>,
    free: Vec<u32>,
    len: usize,
    /// Entries and weight across all shards, shared: the bounds are global, not per shard.
    totals: Arc<Totals>,
    hand: usize,
    next_version: u64,
    /// (deadline, slot, version) of entries with a TTL; stale rows are skipped when popped.
    deadlines: BinaryHeap<Reverse<(u64, u32, u64)>>,
    /// Every shard's lock-free copies of small entries (see [`hot`]), this one's at `id`; kept in step by
    /// every write below.
    hots: Arc<[HotIndex]>,
    id: usize,
}

impl Shard {
    fn new(totals: Arc<Totals>, hots: Arc<[HotIndex]>, id: usize) -> Shard {
        Shard {
            hots,
            id,
            table: HashTable::new(),
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
            totals,
            hand: 0,
            next_version: 0,
            deadlines: BinaryHeap::new(),
        }
    }

    /// The entry stored under `key`, live or not.
    #[inline]
    fn lookup(&self, hash: u64, key: &[u8]) -> Option<&Entry> {
        self.table.find(hash, |e| e.key.is(key))
    }

    #[inline]
    fn find(&self, hash: u64, key: &[u8]) -> Option<u32> {
        self.lookup(hash, key).map(|e| e.slot)
    }

    /// The entry in slot `idx`, if the slot is occupied.
    fn at(&self, idx: u32) -> Option<&Entry> {
        self.at_hashed(idx).map(|(_, entry)| entry)
    }

    /// The entry in slot `idx` with its key's hash, if the slot is occupied.
    fn at_hashed(&self, idx: u32) -> Option<(u64, &Entry)> {
        let hash = (*self.slots.get(idx as usize)?)?;
        self.table.find(hash, |e| e.slot == idx).map(|e| (hash, e))
    }

    fn entry(&self, idx: u32) -> &Entry {
        self.at(idx)
            .expect("the table holds an entry for every occupied slot")
    }

    /// The slot of a live entry for `key`, removing an expired one on the way.
    fn find_live(&mut self, hash: u64, key: &[u8], clock: &dyn Clock) -> Option<u32> {
        let idx = self.find(hash, key)?;
        if self.entry(idx).live(|| clock.now_millis()) {
            Some(idx)
        } else {
            self.remove_slot(idx);
            None
        }
    }

    fn remove_slot(&mut self, idx: u32) -> Option<Entry> {
        let hash = self.slots.get_mut(idx as usize)?.take()?;
        let entry = self
            .table
            .find_entry(hash, |e| e.slot == idx)
            .ok()
            .map(|found| found.remove().0)?;
        entry.drop_hot_copy(self.hot(), hash);
        self.free.push(idx);
        self.len -= 1;
        self.totals.entries.fetch_sub(1, Ordering::Relaxed);
        self.totals
            .weight
            .fetch_sub(entry.weight, Ordering::Relaxed);
        Some(entry)
    }

    /// This shard's hot index.
    fn hot(&self) -> &HotIndex {
        &self.hots[self.id]
    }

    /// Gives entry `idx` a new expiry (0: none), as a write: a new version, its hot copy dropped first.
    fn set_expiry(&mut self, idx: u32, expires_at: u64) {
        let version = self.next_version();
        let hash = self.slots[idx as usize].expect("only occupied slots are looked up");
        let entry = self
            .table
            .find_mut(hash, |e| e.slot == idx)
            .expect("the table holds an entry for every occupied slot");
        entry.drop_hot_copy(&self.hots[self.id], hash);
        entry.expires_at = expires_at;
        entry.version = version;
        self.track_deadline(idx, expires_at, version);
    }

    fn next_version(&mut self) -> u64 {
        self.next_version += 1;
        self.next_version
    }

    /// Records the deadline `at` (0: none) of the entry in slot `idx` at `version`.
    fn track_deadline(&mut self, idx: u32, at: u64, version: u64) {
        if at != 0 {
            self.deadlines.push(Reverse((at, idx, version)));
            // Rewriting long-lived keys leaves stale rows behind; rebuild before they outnumber live ones.
            if self.deadlines.len() > 2 * self.len + 64 {
                self.rebuild_deadlines();
            }
        }
    }

    fn rebuild_deadlines(&mut self) {
        self.deadlines = self
            .table
            .iter()
            .filter(|e| e.expires_at != 0)
            .map(|e| Reverse((e.expires_at, e.slot, e.version)))
            .collect();
    }

    /// Removes up to `budget` entries whose deadline has passed; returns how many.
    fn sweep(&mut self, now: u64, budget: usize) -> usize {
        let mut removed = 0;
        let mut steps = 0;
        while steps < budget {
            match self.deadlines.peek() {
                Some(Reverse((at, _, _))) if *at <= now => {}
                _ => break,
            }
            let Some(Reverse((at, idx, version))) = self.deadlines.pop() else {
                break;
            };
            steps += 1;
            let current = self
                .at(idx)
                .is_some_and(|e| e.version == version && e.expires_at == at);
            if current {
                self.remove_slot(idx);
                removed += 1;
            }
        }
        removed
    }

    /// Frees one slot other than `keep`: an expired entry if one is due, else the CLOCK victim (an entry not
    /// read since the hand last passed). Returns whether it freed anything.
    fn evict_one(&mut self, now: u64, keep: Option<u32>) -> bool {
        if now != 0 && self.sweep(now, usize::MAX) > 0 {
            return true;
        }
        if self.slots.is_empty() {
            return false;
        }
        for _ in 0..2 * self.slots.len() + 1 {
            let idx = self.hand;
            self.hand = (self.hand + 1) % self.slots.len();
            if Some(idx as u32) == keep {
                continue;
            }
            if let Some((hash, entry)) = self.at_hashed(idx as u32) {
                // Read under the lock, or through the hot index: both bits are taken.
                let read = entry.visited.swap(false, Ordering::Relaxed);
                let read_hot = entry.hot.load(Ordering::Relaxed) == HOT_IN
                    && self.hot().take_visited(hash, entry.key.as_bytes());
                if !(read || read_hot) {
                    self.remove_slot(idx as u32);
                    return true;
                }
            }
        }
        false
    }

    /// Inserts or replaces; returns the slot and whether the key is new.
    fn upsert(
        &mut self,
        hash: u64,
        key: &str,
        value: Stored,
        weight: usize,
        expires_at: u64,
    ) -> (u32, bool) {
        let version = self.next_version();
        if let Some(entry) = self.table.find_mut(hash, |e| e.key.is(key.as_bytes())) {
            entry.drop_hot_copy(&self.hots[self.id], hash);
            let old_weight = std::mem::replace(&mut entry.weight, weight);
            entry.value = value;
            entry.expires_at = expires_at;
            entry.version = version;
            let idx = entry.slot;
            self.totals.weight.fetch_add(weight, Ordering::Relaxed);
            self.totals.weight.fetch_sub(old_weight, Ordering::Relaxed);
            self.track_deadline(idx, expires_at, version);
            return (idx, false);
        }
        let idx = match self.free.pop() {
            Some(idx) => {
                self.slots[idx as usize] = Some(hash);
                idx
            }
            None => {
                self.slots.push(Some(hash));
                (self.slots.len() - 1) as u32
            }
        };
        let entry = Entry {
            key: KeyStr::new(key),
            value,
            expires_at,
            version,
            weight,
            slot: idx,
            visited: AtomicBool::new(false),
            hot: AtomicU8::new(HOT_UNTRIED),
        };
        let slots = &self.slots;
        self.table
            .insert_unique(hash, entry, |e| slots[e.slot as usize].unwrap_or_default());
        self.len += 1;
        self.totals.entries.fetch_add(1, Ordering::Relaxed);
        self.totals.weight.fetch_add(weight, Ordering::Relaxed);
        self.track_deadline(idx, expires_at, version);
        (idx, true)
    }
}

/// Counts shared by every shard.
#[derive(Default)]
struct Totals {
    entries: AtomicUsize,
    weight: AtomicUsize,
}

/// Weighs an entry for [`MemoryBackendBuilder::max_weight`] from its key and stored value.
pub type Weigher = Arc<dyn Fn(&str, &Value) -> usize + Send + Sync>;

/// The default weight: key length plus stored bytes, or the shallow size of a stored object.
fn default_weight(key: &str, value: &Stored) -> usize {
    key.len()
        + match value {
            Stored::Small(small) => with_small!(small, v => std::mem::size_of_val(v)),
            Stored::Value(Value::Bytes(bytes)) => bytes.len(),
            Stored::Value(Value::Object(obj)) => std::mem::size_of_val(&**obj),
        }
}

/// The in-process backend: the default of every cache.
///
/// Bounded with [`MemoryBackendBuilder::max_entries`] (CLOCK eviction, which keeps recently read entries);
/// unbounded by default. `add`, `increment`, `multi_set` and the lock commands are atomic: `multi_set` takes
/// every shard it touches, in order, before writing.
///
/// `raw` understands `len` (entries stored, expired ones not yet swept included) and `sweep` (remove every
/// expired entry now; returns how many).
///
/// ```
/// use cache_runtime::{Cache, MemoryBackend, Ttl};
///
/// let cache = Cache::builder()
///     .backend(MemoryBackend::builder().max_entries(10_000).build())
///     .build()
///     .unwrap();
/// cache.set("k", &"v".to_string(), Ttl::secs(60)).unwrap();
/// assert!(cache.exists("k").unwrap());
/// ```
pub struct MemoryBackend {
    shards: Box<[Padded<RwLock<Shard>>]>,
    /// Each shard's hot index, read without its lock.
    hot: Arc<[HotIndex]>,
    totals: Arc<Totals>,
    max_weight: Option<usize>,
    weigher: Option<Weigher>,
    hasher: foldhash::fast::RandomState,
    shard_mask: usize,
    clock: Arc<dyn Clock>,
    max_entries: Option<usize>,
}

/// Configures a [`MemoryBackend`].
#[derive(Default)]
pub struct MemoryBackendBuilder {
    max_entries: Option<usize>,
    max_weight: Option<usize>,
    weigher: Option<Weigher>,
    clock: Option<Arc<dyn Clock>>,
    shards: Option<usize>,
}

impl MemoryBackendBuilder {
    /// Keep at most this many entries, evicting the least recently read (CLOCK). Must be positive.
    pub fn max_entries(mut self, max_entries: usize) -> Self {
        self.max_entries = Some(max_entries);
        self
    }

    /// Keep the total weight of entries at most this (CLOCK eviction). By default an entry weighs its key's
    /// length plus its stored bytes, or the shallow `size_of_val` of a stored object (heap it owns is not
    /// counted; give a [`weigher`](Self::weigher) for exact object weights). A value heavier than the whole
    /// bound is not stored, and any older value of its key is removed.
    ///
    /// ```
    /// use cache_runtime::{Cache, JsonSerializer, MemoryBackend, Ttl};
    ///
    /// let cache = Cache::builder()
    ///     .backend(MemoryBackend::builder().max_weight(1 << 20).build())
    ///     .serializer(JsonSerializer)
    ///     .build()
    ///     .unwrap();
    /// cache.set("page", &"x".repeat(100), Ttl::Default).unwrap();
    /// assert!(cache.exists("page").unwrap());
    /// cache.set("huge", &"x".repeat(2 << 20), Ttl::Default).unwrap(); // over the bound: not kept
    /// assert!(!cache.exists("huge").unwrap());
    /// ```
    pub fn max_weight(mut self, max_weight: usize) -> Self {
        self.max_weight = Some(max_weight);
        self
    }

    /// How entries are weighed for [`max_weight`](Self::max_weight).
    pub fn weigher(
        mut self,
        weigher: impl Fn(&str, &Value) -> usize + Send + Sync + 'static,
    ) -> Self {
        self.weigher = Some(Arc::new(weigher));
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

    /// How many lock shards (rounded up to a power of two; default 64, fewer for small bounds).
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards);
        self
    }

    /// Builds the backend.
    pub fn build(self) -> MemoryBackend {
        let max_entries = self.max_entries.map(|m| m.max(1));
        // Eviction runs per shard, so a bounded cache keeps enough entries per shard (~256) for CLOCK to
        // tell hot from cold; an unbounded one takes the most shards.
        let default_shards = max_entries.map_or(64, |m| (m / 256).clamp(1, 64));
        let count = self
            .shards
            .unwrap_or(default_shards)
            .clamp(1, 1024)
            .next_power_of_two();
        let totals = Arc::new(Totals::default());
        // Hot slots for about twice the bound (at most 4,096 in all, 512 KiB once every shard has one).
        let hot_slots = max_entries.map_or(HOT_SLOTS, |m| {
            m.saturating_mul(2).next_power_of_two().clamp(64, HOT_SLOTS)
        });
        let hot: Arc<[HotIndex]> = (0..count)
            .map(|_| HotIndex::new((hot_slots / count).max(8)))
            .collect();
        let shards = (0..count)
            .map(|id| Padded(RwLock::new(Shard::new(totals.clone(), hot.clone(), id))))
            .collect::<Vec<_>>()
            .into_boxed_slice();
        MemoryBackend {
            shards,
            hot,
            totals,
            max_weight: self.max_weight,
            weigher: self.weigher,
            hasher: foldhash::fast::RandomState::default(),
            shard_mask: count - 1,
            clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
            max_entries,
        }
    }
}

impl Default for MemoryBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryBackend {
    /// An unbounded memory backend on the system clock.
    ///
    /// ```
    /// let backend = cache_runtime::MemoryBackend::new();
    /// assert_eq!(backend.len(), 0);
    /// ```
    pub fn new() -> Self {
        MemoryBackendBuilder::default().build()
    }

    /// Configures one.
    pub fn builder() -> MemoryBackendBuilder {
        MemoryBackendBuilder::default()
    }

    /// Entries stored, including expired ones not swept yet.
    pub fn len(&self) -> usize {
        self.totals.entries.load(Ordering::Relaxed)
    }

    /// The total weight of stored entries (see [`MemoryBackendBuilder::max_weight`]).
    pub fn weight(&self) -> usize {
        self.totals.weight.load(Ordering::Relaxed)
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entry bound, if any.
    pub fn max_entries(&self) -> Option<usize> {
        self.max_entries
    }

    /// Removes every expired entry now; returns how many.
    pub fn sweep(&self) -> usize {
        let now = self.clock.now_millis();
        self.shards
            .iter()
            .map(|s| s.0.write().sweep(now, usize::MAX))
            .sum()
    }

    #[inline]
    fn hash(&self, key: &str) -> u64 {
        self.hash_bytes(key.as_bytes())
    }

    /// The key's bytes hashed as they are (no `str` terminator): memoized reads hash the key they built as
    /// bytes, and must land where `set` put it.
    #[inline]
    fn hash_bytes(&self, key: &[u8]) -> u64 {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = self.hasher.build_hasher();
        hasher.write(key);
        hasher.finish()
    }

    #[inline]
    fn shard(&self, hash: u64) -> &RwLock<Shard> {
        &self.shards[self.shard_index(hash)].0
    }

    #[inline]
    fn shard_index(&self, hash: u64) -> usize {
        // The table uses the low bits for buckets and the top seven for tags; shard on bits in between.
        (hash >> 32) as usize & self.shard_mask
    }

    fn expires_at(&self, ttl: Option<Duration>) -> u64 {
        match ttl {
            None => 0,
            Some(ttl) => self.clock.now_millis().saturating_add(ttl_millis(ttl)),
        }
    }

    /// The current time if the shard has deadlines to sweep; 0 (no clock read) otherwise.
    fn sweep_time(&self, shard: &Shard) -> u64 {
        if shard.deadlines.is_empty() {
            0
        } else {
            self.clock.now_millis()
        }
    }

    /// Brings the entry count back within the bound after inserting `keep` into `shard`: evicts from the
    /// writing shard first, then from other shards that are free right now (never blocking on a second lock,
    /// so no lock-order deadlock). Concurrent writers may overshoot by one entry each until their next write.
    fn enforce_bound(&self, shard: &mut Shard, keep: u32, now: u64) {
        if self.max_entries.is_none() && self.max_weight.is_none() {
            return;
        }
        while self.over_bound() {
            if !shard.evict_one(now, Some(keep)) {
                break;
            }
        }
        for other in self.shards.iter() {
            if !self.over_bound() {
                return;
            }
            if let Some(mut other) = other.0.try_write() {
                let now = self.sweep_time(&other);
                other.evict_one(now, None);
            }
        }
    }

    fn over_bound(&self) -> bool {
        self.max_entries
            .is_some_and(|max| self.totals.entries.load(Ordering::Relaxed) > max)
            || self
                .max_weight
                .is_some_and(|max| self.totals.weight.load(Ordering::Relaxed) > max)
    }

    fn weigh(&self, key: &str, value: &Stored) -> usize {
        match (&self.max_weight, &self.weigher, value) {
            (None, ..) => 0,
            (Some(_), Some(weigher), Stored::Value(value)) => weigher(key, value),
            (Some(_), Some(weigher), Stored::Small(small)) => weigher(key, &small.to_value()),
            (Some(_), None, _) => default_weight(key, value),
        }
    }

    fn write_entry(
        &self,
        shard: &mut RwLockWriteGuard<'_, Shard>,
        hash: u64,
        key: &str,
        value: Stored,
        expires_at: u64,
    ) {
        let now = self.sweep_time(shard);
        if now != 0 {
            shard.sweep(now, SWEEP_PER_WRITE);
        }
        let weight = self.weigh(key, &value);
        if self.max_weight.is_some_and(|max| weight > max) {
            // Heavier than the whole cache: keep nothing rather than evict everything, and drop any older
            // value so it is not served as current.
            if let Some(idx) = shard.find(hash, key.as_bytes()) {
                shard.remove_slot(idx);
            }
            tracing::debug!(
                key,
                weight,
                "value heavier than the memory cache's max_weight; not stored"
            );
            return;
        }
        let (idx, new) = shard.upsert(hash, key, value, weight, expires_at);
        if new || self.max_weight.is_some() {
            self.enforce_bound(shard, idx, now);
        }
    }
}

impl MemoryBackend {
    /// Lends the live value of `key` to `read` under the shard's read lock; `None` when there is none.
    ///
    /// Generic, so [`Cache::get`](crate::Cache::get) inlines its decode into the lookup; `read` must not
    /// write to this backend.
    #[inline]
    pub(crate) fn read<R>(&self, key: &[u8], read: impl FnOnce(Found<'_>) -> R) -> Option<R> {
        let hash = self.hash_bytes(key);
        let index = self.shard_index(hash);
        if let Some(hit) = self.hot.get(index).and_then(|hot| hot.read(hash, key)) {
            if hit.expires_at == 0 || hit.expires_at > self.clock.now_millis() {
                return Some(read(Found::Small(hit.value)));
            }
        }
        let lock = self.shard(hash);
        {
            let shard = lock.read();
            let entry = shard.lookup(hash, key)?;
            if entry.live(|| self.clock.now_millis()) {
                // Write the flag only when it changes, so steady hits write nothing shared.
                if !entry.visited.load(Ordering::Relaxed) {
                    entry.visited.store(true, Ordering::Relaxed);
                }
                let found = match &entry.value {
                    Stored::Small(small) => {
                        // A key that found its slots taken retries now and then, not on every read: each
                        // try writes to the slots of the keys in them.
                        let hot = entry.hot.load(Ordering::Relaxed);
                        if hot == HOT_UNTRIED || (hot == HOT_LOST && promotion_turn()) {
                            self.promote(index, hash, key, *small, entry);
                        }
                        Found::Small(*small)
                    }
                    Stored::Value(value) => Found::Value(value),
                };
                return Some(read(found));
            }
        }
        self.drop_expired(lock, hash, key);
        None
    }

    /// Copies an entry just read into the hot index, so its next reads take no lock.
    #[cold]
    #[inline(never)]
    fn promote(&self, index: usize, hash: u64, key: &[u8], small: Small, entry: &Entry) {
        if let Some(hot) = self.hot.get(index) {
            if hot.promote(hash, key, small, entry.expires_at) {
                entry.hot.store(HOT_IN, Ordering::Relaxed);
            } else {
                // Not over `HOT_IN`: a reader beside this one may just have copied it.
                let _ = entry.hot.compare_exchange(
                    HOT_UNTRIED,
                    HOT_LOST,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
            }
        }
    }

    /// Removes an entry a read found expired, rather than waiting for the sweep.
    #[cold]
    fn drop_expired(&self, lock: &RwLock<Shard>, hash: u64, key: &[u8]) {
        lock.write().find_live(hash, key, &*self.clock);
    }
}

impl MemoryBackend {
    /// `set` of a value already in its stored form (see [`Stored::typed`]).
    pub(crate) fn set_stored(&self, key: &str, value: Stored, ttl: Option<Duration>) {
        let hash = self.hash(key);
        let expires_at = self.expires_at(ttl);
        let mut shard = self.shard(hash).write();
        self.write_entry(&mut shard, hash, key, value, expires_at);
    }

    /// `multi_set` of values already in their stored form: every shard involved is locked, in index order,
    /// before any is written, so readers see all writes or none.
    pub(crate) fn multi_set_stored(&self, entries: Vec<(&str, Stored)>, ttl: Option<Duration>) {
        let expires_at = self.expires_at(ttl);
        let mut hashed: Vec<(usize, u64, &str, Stored)> = entries
            .into_iter()
            .map(|(key, value)| {
                let hash = self.hash(key);
                (self.shard_index(hash), hash, key, value)
            })
            .collect();
        // Lock every shard involved, in index order (no deadlock), so readers see all writes or none.
        hashed.sort_by_key(|row| row.0);
        let mut guards: Vec<(usize, RwLockWriteGuard<'_, Shard>)> = Vec::new();
        for (shard_idx, ..) in &hashed {
            if guards.last().map(|g| g.0) != Some(*shard_idx) {
                guards.push((*shard_idx, self.shards[*shard_idx].0.write()));
            }
        }
        let mut g = 0;
        for (shard_idx, hash, key, value) in hashed {
            while guards[g].0 != shard_idx {
                g += 1;
            }
            self.write_entry(&mut guards[g].1, hash, key, value, expires_at);
        }
    }
}

impl Backend for MemoryBackend {
    fn name(&self) -> &str {
        "memory"
    }

    fn stores_objects(&self) -> bool {
        true
    }

    fn default_timeout(&self) -> Option<Duration> {
        None
    }

    fn get(&self, key: &str, opts: &CallOptions) -> Result<Option<Value>> {
        let mut found = None;
        self.get_with(key, opts, &mut |value| found = Some(value.clone()))?;
        Ok(found)
    }

    #[inline]
    fn get_with(
        &self,
        key: &str,
        _opts: &CallOptions,
        read: &mut dyn FnMut(&Value),
    ) -> Result<bool> {
        Ok(self
            .read(key.as_bytes(), |found| match found {
                Found::Small(small) => read(&small.to_value()),
                Found::Value(value) => read(value),
            })
            .is_some())
    }

    fn set(
        &self,
        key: &str,
        value: Value,
        ttl: Option<Duration>,
        _opts: &CallOptions,
    ) -> Result<()> {
        self.set_stored(key, Stored::new(value), ttl);
        Ok(())
    }

    fn multi_set(
        &self,
        entries: Vec<(&str, Value)>,
        ttl: Option<Duration>,
        _opts: &CallOptions,
    ) -> Result<()> {
        self.multi_set_stored(
            entries
                .into_iter()
                .map(|(key, value)| (key, Stored::new(value)))
                .collect(),
            ttl,
        );
        Ok(())
    }

    fn add(
        &self,
        key: &str,
        value: Value,
        ttl: Option<Duration>,
        _opts: &CallOptions,
    ) -> Result<bool> {
        let hash = self.hash(key);
        let expires_at = self.expires_at(ttl);
        let mut shard = self.shard(hash).write();
        if shard
            .find_live(hash, key.as_bytes(), &*self.clock)
            .is_some()
        {
            return Ok(false);
        }
        self.write_entry(&mut shard, hash, key, Stored::new(value), expires_at);
        Ok(true)
    }

    fn exists(&self, key: &str, _opts: &CallOptions) -> Result<bool> {
        let hash = self.hash(key);
        let shard = self.shard(hash).read();
        Ok(shard
            .lookup(hash, key.as_bytes())
            .is_some_and(|e| e.live(|| self.clock.now_millis())))
    }

    fn increment(&self, key: &str, delta: i64, _opts: &CallOptions) -> Result<i64> {
        let hash = self.hash(key);
        let mut shard = self.shard(hash).write();
        match shard.find_live(hash, key.as_bytes(), &*self.clock) {
            Some(idx) => {
                let entry = shard.entry(idx);
                let expires_at = entry.expires_at;
                let (new, value) = match &entry.value {
                    Stored::Small(small) => {
                        let new = increment_integer(key, small.integer(), delta)?;
                        (new, Stored::Small(Small::I64(new)))
                    }
                    Stored::Value(Value::Bytes(bytes)) => {
                        let new = increment_decimal(key, bytes, delta)?;
                        (
                            new,
                            Stored::Value(Value::Bytes(new.to_string().into_bytes())),
                        )
                    }
                    // Every primitive object is stored as `Small`, so this one is not an integer.
                    Stored::Value(Value::Object(_)) => return Err(not_an_integer(key)),
                };
                // Same key, same TTL: a replace that keeps the version and weight totals right.
                let weight = self.weigh(key, &value);
                shard.upsert(hash, key, value, weight, expires_at);
                Ok(new)
            }
            None => {
                self.write_entry(
                    &mut shard,
                    hash,
                    key,
                    Stored::Value(Value::Bytes(delta.to_string().into_bytes())),
                    0,
                );
                Ok(delta)
            }
        }
    }

    fn delete(&self, key: &str, _opts: &CallOptions) -> Result<u64> {
        let hash = self.hash(key);
        let mut shard = self.shard(hash).write();
        match shard.find_live(hash, key.as_bytes(), &*self.clock) {
            Some(idx) => {
                shard.remove_slot(idx);
                Ok(1)
            }
            None => Ok(0),
        }
    }

    fn expire(&self, key: &str, ttl: Option<Duration>, _opts: &CallOptions) -> Result<bool> {
        let hash = self.hash(key);
        let expires_at = self.expires_at(ttl);
        let mut shard = self.shard(hash).write();
        match shard.find_live(hash, key.as_bytes(), &*self.clock) {
            Some(idx) => {
                shard.set_expiry(idx, expires_at);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn clear(&self, prefix: Option<&str>, _opts: &CallOptions) -> Result<u64> {
        let mut removed = 0u64;
        for lock in self.shards.iter() {
            let mut shard = lock.0.write();
            match prefix {
                None => {
                    removed += shard.len as u64;
                    let weight: usize = shard.table.iter().map(|e| e.weight).sum();
                    self.totals.entries.fetch_sub(shard.len, Ordering::Relaxed);
                    self.totals.weight.fetch_sub(weight, Ordering::Relaxed);
                    shard.hot().clear();
                    *shard = Shard::new(self.totals.clone(), self.hot.clone(), shard.id);
                }
                Some(prefix) => {
                    let doomed: Vec<u32> = shard
                        .table
                        .iter()
                        .filter(|e| e.key.as_bytes().starts_with(prefix.as_bytes()))
                        .map(|e| e.slot)
                        .collect();
                    for idx in doomed {
                        shard.remove_slot(idx);
                        removed += 1;
                    }
                }
            }
        }
        Ok(removed)
    }

    fn keys(&self, pattern: &str, _opts: &CallOptions) -> Result<Vec<String>> {
        let now = self.clock.now_millis();
        let mut out = Vec::new();
        for lock in self.shards.iter() {
            let shard = lock.0.read();
            out.extend(
                shard
                    .table
                    .iter()
                    .filter(|e| e.live(|| now) && glob_match(pattern, e.key.as_str()))
                    .map(|e| e.key.as_str().to_string()),
            );
        }
        Ok(out)
    }

    fn raw(&self, command: &str, _args: &[Vec<u8>], _opts: &CallOptions) -> Result<RawReply> {
        match command.to_ascii_lowercase().as_str() {
            "len" => Ok(RawReply::Int(self.len() as i64)),
            "sweep" => Ok(RawReply::Int(self.sweep() as i64)),
            _ => Err(Error::unsupported(
                "raw",
                "memory",
                format!(
                    "unknown command `{command}`; the memory backend understands `len` and `sweep`"
                ),
            )),
        }
    }

    fn get_versioned(&self, key: &str, _opts: &CallOptions) -> Result<(Option<Value>, CasToken)> {
        let hash = self.hash(key);
        let shard = self.shard(hash).read();
        match shard.lookup(hash, key.as_bytes()) {
            Some(e) if e.live(|| self.clock.now_millis()) => {
                Ok((Some(e.value.to_value()), CasToken::Version(e.version)))
            }
            _ => Ok((None, CasToken::Absent)),
        }
    }

    fn compare_and_set(
        &self,
        key: &str,
        expected: &CasToken,
        value: Value,
        ttl: Option<Duration>,
        _opts: &CallOptions,
    ) -> Result<bool> {
        let hash = self.hash(key);
        let expires_at = self.expires_at(ttl);
        let mut shard = self.shard(hash).write();
        let current = shard
            .find_live(hash, key.as_bytes(), &*self.clock)
            .map(|idx| shard.entry(idx).version);
        let matches = match (expected, current) {
            (CasToken::Absent, None) => true,
            (CasToken::Version(v), Some(c)) => *v == c,
            _ => false,
        };
        if matches {
            self.write_entry(&mut shard, hash, key, Stored::new(value), expires_at);
        }
        Ok(matches)
    }

    fn compare_and_delete(&self, key: &str, expected: &[u8], _opts: &CallOptions) -> Result<bool> {
        let hash = self.hash(key);
        let mut shard = self.shard(hash).write();
        let Some(idx) = shard.find_live(hash, key.as_bytes(), &*self.clock) else {
            return Ok(false);
        };
        if shard.entry(idx).value.as_bytes() == Some(expected) {
            shard.remove_slot(idx);
            Ok(true)
        } else {
            Ok(false)
        }
    }
}
