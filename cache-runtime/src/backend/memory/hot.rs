//! The memory backend's hot index: hits on primitive values without taking the shard's lock.
//!
//! A read under a shard's read lock costs two atomic read-modify-writes on the lock word, and readers of one
//! shard on different cores pass that word's cache line back and forth. The hot index is a fixed-size array
//! per shard of seqlock-guarded copies of small entries, two slots per key (two-way set-associative): a key of
//! up to [`HOT_KEY`] bytes whose value is a primitive ([`Small`]) kept in place. A reader loads the slot's words and checks its
//! sequence number before and after: plain loads, no write to shared memory (but the reference bit, once).
//!
//! An entry gets a copy when a reader finds it under the lock (so keys written and never read cost the index
//! nothing). The copy is never the truth: every write to an entry (replace, remove, expire, clear, evict)
//! runs under the shard's write lock and drops the entry's copy before changing it, so a reader either sees
//! the old value from the copy, before the write, or waits for the lock and sees the new one. Dropping rather
//! than updating keeps a `multi_set` atomic for readers: none of its keys can be read from a copy until all
//! are written. A key whose slots hold other keys, or whose value is not a primitive, is read under the lock
//! as before. Everything here is safe Rust: every shared word is an atomic.

use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};

use once_cell::sync::OnceCell;

use super::Small;

/// Key words a slot holds.
const HOT_KEY_WORDS: usize = 11;
/// The longest key a slot holds, in bytes.
pub(super) const HOT_KEY: usize = HOT_KEY_WORDS * 8;
/// Expiry times must fit in the low 48 bits of the meta word (milliseconds since the epoch: year 10889).
const EXPIRES_MASK: u64 = (1 << 48) - 1;

/// One slot: two cache lines, the first of which holds everything for keys of up to 32 bytes.
#[repr(align(128))]
#[derive(Default)]
struct Slot {
    /// Even while the slot is stable, odd while its writer changes it.
    seq: AtomicU64,
    /// `expires_at` (bits 0-47, 0 = never), key length (bits 48-55), the value's tag (bits 56-63, 0 = empty).
    meta: AtomicU64,
    /// The primitive's bits.
    value: AtomicU64,
    /// Set by a reader that hit: the entry's CLOCK reference bit while reads bypass the entry.
    visited: AtomicBool,
    /// Set by a reader that hit, cleared by a promotion that wanted the slot: the slot's own second chance,
    /// kept apart from `visited` so competing keys do not cost each other their place in the cache.
    recent: AtomicBool,
    /// The key, little-endian words, the last one zero-padded.
    key: [AtomicU64; HOT_KEY_WORDS],
}

/// What a reader found in the hot index.
#[derive(Clone, Copy)]
pub(super) struct HotHit {
    pub(super) value: Small,
    /// Milliseconds since the epoch; 0 = never.
    pub(super) expires_at: u64,
}

/// The hot slots of one shard, allocated on the shard's first promotion.
pub(super) struct HotIndex {
    slots: OnceCell<Box<[Slot]>>,
    len: usize,
}

/// Word `i` of `key` (zero-padded past its end). Reads whole words, never a variable-length copy.
#[inline(always)]
fn key_word(key: &[u8], i: usize) -> u64 {
    let start = i * 8;
    let len = key.len();
    if start + 8 <= len {
        let mut word = [0; 8];
        word.copy_from_slice(&key[start..start + 8]);
        u64::from_le_bytes(word)
    } else if len >= 8 {
        // The last partial word: the key's last 8 bytes, shifted so only the bytes past `start` remain.
        let mut word = [0; 8];
        word.copy_from_slice(&key[len - 8..]);
        let rest = len.saturating_sub(start);
        if rest == 0 {
            0
        } else {
            u64::from_le_bytes(word) >> ((8 - rest) * 8)
        }
    } else {
        key.iter()
            .skip(start)
            .enumerate()
            .fold(0, |word, (j, &b)| word | (u64::from(b) << (8 * j)))
    }
}

impl HotIndex {
    /// An index of `len` slots (a power of two), not allocated yet.
    pub(super) fn new(len: usize) -> HotIndex {
        HotIndex {
            slots: OnceCell::new(),
            len: len.next_power_of_two(),
        }
    }

    /// The two slots (ways) `hash` may use: a pair of neighbours, so the second is usually prefetched with
    /// the first.
    #[inline(always)]
    fn ways(slots: &[Slot], hash: u64) -> Option<[&Slot; 2]> {
        // The table takes the low bits, the shard bits 32 and up: the slots use bits 16 and up.
        let first = (hash >> 16) as usize & (slots.len() - 1);
        Some([slots.get(first)?, slots.get(first ^ 1)?])
    }

    /// The value of `key`, if one of its slots holds it (live or not: the caller checks `expires_at`).
    #[inline(always)]
    pub(super) fn read(&self, hash: u64, key: &[u8]) -> Option<HotHit> {
        let [first, second] = Self::ways(self.slots.get()?, hash)?;
        Self::read_slot(first, key).or_else(|| Self::read_slot(second, key))
    }

    #[inline(always)]
    fn read_slot(slot: &Slot, key: &[u8]) -> Option<HotHit> {
        let before = slot.seq.load(Ordering::Acquire);
        let meta = slot.meta.load(Ordering::Relaxed);
        if before & 1 == 1 || !Self::holds(slot, meta, key) {
            return None;
        }
        let bits = slot.value.load(Ordering::Relaxed);
        // Seqlock read: the loads above happen before the second look at `seq`.
        fence(Ordering::Acquire);
        if slot.seq.load(Ordering::Relaxed) != before {
            return None;
        }
        let value = Small::from_bits((meta >> 56) as u8, bits)?;
        // Each flag is written only when it changes, so steady hits write nothing shared.
        if !slot.visited.load(Ordering::Relaxed) {
            slot.visited.store(true, Ordering::Relaxed);
        }
        if !slot.recent.load(Ordering::Relaxed) {
            slot.recent.store(true, Ordering::Relaxed);
        }
        Some(HotHit {
            value,
            expires_at: meta & EXPIRES_MASK,
        })
    }

    /// Whether `slot`, whose meta word is `meta`, holds `key`. The tag is not checked: for an empty slot (tag
    /// 0) a reader's [`Small::from_bits`] gives nothing, and [`Self::holding`] checks it. Written as a loop with
    /// early returns: the same test as `Iterator::all` made the `#[cached]` hit about 15% slower.
    #[inline(always)]
    fn holds(slot: &Slot, meta: u64, key: &[u8]) -> bool {
        if (meta >> 48) as u8 as usize != key.len() {
            return false;
        }
        for (i, word) in slot.key.iter().take(key.len().div_ceil(8)).enumerate() {
            if word.load(Ordering::Relaxed) != key_word(key, i) {
                return false;
            }
        }
        true
    }

    /// The slots holding `key`: both, when two readers promoted it at once. Exact for the shard's writer,
    /// which nothing changes slots beside. A promoting reader also asks, to skip a key another reader just
    /// copied; a torn read there can only answer wrongly "held", which leaves the entry out of the index
    /// (its state says `HOT_IN`, so writers look for a copy and find none).
    fn holding<'s>(&'s self, hash: u64, key: &'s [u8]) -> impl Iterator<Item = &'s Slot> + 's {
        let ways = self.slots.get().and_then(|slots| Self::ways(slots, hash));
        ways.into_iter().flatten().filter(move |slot| {
            let meta = slot.meta.load(Ordering::Relaxed);
            meta >> 56 != 0 && Self::holds(slot, meta, key)
        })
    }

    /// Changes `slot` as one seqlock write. Only the shard's writer calls it, holding the write lock (so no
    /// reader is promoting either).
    fn write(slot: &Slot, change: impl FnOnce(&Slot)) {
        let seq = slot.seq.load(Ordering::Relaxed);
        slot.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        change(slot);
        slot.seq.store(seq.wrapping_add(2), Ordering::Release);
    }

    /// Copies an entry a reader just found under the shard's read lock into one of its slots, so later reads
    /// skip the lock. It takes an empty slot, else one whose key was not read since the last promotion that
    /// wanted it; when both keys were, each loses that mark (a second chance) and the entry stays out for now.
    /// Readers promote concurrently, so a slot is claimed by a compare-and-swap of its sequence number
    /// (writers are shut out by the lock the caller holds). Returns whether `key` is now in the index.
    pub(super) fn promote(&self, hash: u64, key: &[u8], value: Small, expires_at: u64) -> bool {
        if key.len() > HOT_KEY || expires_at > EXPIRES_MASK {
            return false;
        }
        let slots = self
            .slots
            .get_or_init(|| (0..self.len).map(|_| Slot::default()).collect());
        let Some(ways) = Self::ways(slots, hash) else {
            return false;
        };
        if self.holding(hash, key).next().is_some() {
            return true; // another reader just promoted it
        }
        let empty = |slot: &&&Slot| slot.meta.load(Ordering::Relaxed) >> 56 == 0;
        let stale = |slot: &&&Slot| !slot.recent.load(Ordering::Relaxed);
        let Some(&slot) = ways.iter().find(empty).or_else(|| ways.iter().find(stale)) else {
            for slot in ways {
                slot.recent.store(false, Ordering::Relaxed);
            }
            return false;
        };
        let seq = slot.seq.load(Ordering::Acquire);
        // The swap fails if anyone changed the slot since it was looked at (a write always moves `seq`).
        if seq & 1 == 1
            || slot
                .seq
                .compare_exchange(
                    seq,
                    seq.wrapping_add(1),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_err()
        {
            return false;
        }
        fence(Ordering::Release);
        Self::fill(slot, key, value, expires_at);
        slot.visited.store(true, Ordering::Relaxed);
        slot.recent.store(true, Ordering::Relaxed);
        slot.seq.store(seq.wrapping_add(2), Ordering::Release);
        true
    }

    fn fill(slot: &Slot, key: &[u8], value: Small, expires_at: u64) {
        let (tag, bits) = value.to_bits();
        slot.meta.store(
            (u64::from(tag) << 56) | ((key.len() as u64) << 48) | expires_at,
            Ordering::Relaxed,
        );
        slot.value.store(bits, Ordering::Relaxed);
        for (i, word) in slot.key.iter().enumerate() {
            word.store(key_word(key, i), Ordering::Relaxed);
        }
    }

    /// Empties `slot` (its meta word 0: no tag, no key).
    fn empty(slot: &Slot) {
        Self::write(slot, |slot| slot.meta.store(0, Ordering::Relaxed));
    }

    /// Drops every copy of `key`.
    pub(super) fn forget(&self, hash: u64, key: &[u8]) {
        self.holding(hash, key).for_each(Self::empty);
    }

    /// Takes the reference bit readers set on the copy of `key` (false when there is no copy).
    pub(super) fn take_visited(&self, hash: u64, key: &[u8]) -> bool {
        self.holding(hash, key).fold(false, |read, slot| {
            slot.visited.swap(false, Ordering::Relaxed) | read
        })
    }

    /// Drops every copy.
    pub(super) fn clear(&self) {
        for slot in self.slots.get().into_iter().flatten() {
            if slot.meta.load(Ordering::Relaxed) >> 56 != 0 {
                Self::empty(slot);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_words_are_the_bytes_zero_padded() {
        for len in 0..=40 {
            let key: Vec<u8> = (1..=len as u8).collect();
            for i in 0..HOT_KEY_WORDS {
                let mut word = [0u8; 8];
                for (j, b) in word.iter_mut().enumerate() {
                    *b = key.get(i * 8 + j).copied().unwrap_or(0);
                }
                assert_eq!(
                    key_word(&key, i),
                    u64::from_le_bytes(word),
                    "len {len} word {i}"
                );
            }
        }
    }

    #[test]
    fn a_slot_serves_only_its_key_and_forgets_it() {
        let index = HotIndex::new(4);
        let hash = 7 << 16;
        assert!(index.read(hash, b"a").is_none());
        assert!(index.promote(hash, b"key-1", Small::U64(5), 0));
        let hit = index.read(hash, b"key-1").unwrap();
        assert_eq!((hit.value, hit.expires_at), (Small::U64(5), 0));
        // Same slot, other keys: a prefix, a longer key, another key of the same length.
        assert!(index.read(hash, b"key-").is_none());
        assert!(index.read(hash, b"key-10").is_none());
        assert!(index.read(hash, b"key-2").is_none());
        // Two ways: a second key takes the other slot; a third finds both just read, and gets one only on
        // its second try (the second chance), from the key not read since.
        assert!(index.promote(hash, b"key-2", Small::Bool(true), 9));
        assert!(index.read(hash, b"key-1").is_some());
        assert!(index.read(hash, b"key-2").is_some());
        assert!(!index.promote(hash, b"key-3", Small::U8(3), 0));
        assert!(index.read(hash, b"key-2").is_some());
        assert!(index.promote(hash, b"key-3", Small::U8(3), 0));
        assert!(index.read(hash, b"key-1").is_none());
        assert_eq!(index.read(hash, b"key-3").unwrap().value, Small::U8(3));
        // Forgetting a key the slot does not hold changes nothing; forgetting its key empties it.
        index.forget(hash, b"key-1");
        let hit = index.read(hash, b"key-2").unwrap();
        assert_eq!((hit.value, hit.expires_at), (Small::Bool(true), 9));
        index.forget(hash, b"key-2");
        assert!(index.read(hash, b"key-2").is_none());
        // Too long for a slot; the longest that fits.
        let long = vec![b'x'; HOT_KEY + 1];
        assert!(!index.promote(hash, &long, Small::U8(1), 0));
        let longest = vec![b'y'; HOT_KEY];
        assert!(index.promote(hash, &longest, Small::U8(1), 0));
        assert_eq!(index.read(hash, &longest).unwrap().value, Small::U8(1));
        assert!(index.take_visited(hash, &longest));
        assert!(!index.take_visited(hash, &longest));
        index.clear();
        assert!(index.read(hash, &longest).is_none());
    }
}
