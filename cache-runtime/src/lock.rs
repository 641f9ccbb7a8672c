//! Locks built on any backend: [`RedLock`] (distributed mutual exclusion with a lease) and
//! [`OptimisticLock`] (compare-and-set).

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use crate::cache::{Cache, Cacheable};
use crate::error::{Error, Result};
use crate::ttl::{self, Ttl};
use crate::value::{CasToken, Value};

/// A token unique to this process and call, so only the holder can release a lock.
fn new_token() -> Vec<u8> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = (
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
        std::thread::current().id(),
    );
    let mut out = String::with_capacity(32);
    for _ in 0..2 {
        // Each RandomState has its own random keys, so two rounds give 128 unpredictable bits.
        let half = std::collections::hash_map::RandomState::new().hash_one(seed);
        out.push_str(&format!("{half:016x}"));
    }
    out.into_bytes()
}

/// A lock on a key shared by every process using the same cache: `SET NX PX` with a random token, released
/// by compare-and-delete so a holder whose lease ran out cannot release someone else's lock.
///
/// The lock lives at `{key}-lock` (namespaced like any key). On memory it is an in-process equivalent.
///
/// ```
/// use std::time::Duration;
/// use cache_runtime::{Cache, RedLock};
///
/// let cache = Cache::memory();
/// let lock = RedLock::new(&cache, "report", Duration::from_secs(10)).unwrap();
/// let guard = lock.try_acquire().unwrap().expect("nobody holds it");
/// let rival = RedLock::new(&cache, "report", Duration::from_secs(10)).unwrap();
/// assert!(rival.try_acquire().unwrap().is_none());
/// assert!(guard.release().unwrap());
/// assert!(rival.try_acquire().unwrap().is_some());
/// ```
#[derive(Debug)]
pub struct RedLock {
    cache: Cache,
    key: String,
    lease: Duration,
    token: Vec<u8>,
}

/// A held [`RedLock`]; released when dropped (or explicitly with [`release`](RedLockGuard::release)).
#[derive(Debug)]
pub struct RedLockGuard<'a> {
    lock: &'a RedLock,
    released: bool,
}

impl RedLock {
    /// A lock on `key` held for at most `lease` (zero is an error).
    pub fn new(cache: &Cache, key: &str, lease: Duration) -> Result<RedLock> {
        Ok(RedLock {
            cache: cache.clone(),
            key: format!("{key}-lock"),
            lease: ttl::validate(lease)?,
            token: new_token(),
        })
    }

    /// The lease.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// One attempt: the guard if the lock was free.
    pub fn try_acquire(&self) -> Result<Option<RedLockGuard<'_>>> {
        let full = self.cache.stored_key(&self.key);
        let acquired = self.cache.backend().add(
            &full,
            Value::Bytes(self.token.clone()),
            Some(self.lease),
            &self.cache.call_options(),
        )?;
        Ok(acquired.then_some(RedLockGuard {
            lock: self,
            released: false,
        }))
    }

    /// Waits (polling with backoff) until the lock is free or `max_wait` passes; returns whether it is free.
    /// Waiters use this to wait for the holder's result instead of computing it again.
    pub fn wait_released(&self, max_wait: Duration) -> Result<bool> {
        let full = self.cache.stored_key(&self.key);
        let deadline = Instant::now() + max_wait;
        let mut pause = Duration::from_millis(1);
        loop {
            if !self
                .cache
                .backend()
                .exists(&full, &self.cache.call_options())?
            {
                return Ok(true);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            std::thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    /// Acquires, waiting up to `max_wait` for the holder to release or its lease to run out.
    pub fn acquire(&self, max_wait: Duration) -> Result<Option<RedLockGuard<'_>>> {
        let deadline = Instant::now() + max_wait;
        loop {
            if let Some(guard) = self.try_acquire()? {
                return Ok(Some(guard));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !self.wait_released(left)? {
                return Ok(None);
            }
        }
    }
}

impl RedLockGuard<'_> {
    /// Releases the lock; false if it was no longer ours (the lease ran out and someone else took it).
    pub fn release(mut self) -> Result<bool> {
        self.released = true;
        self.release_inner()
    }

    fn release_inner(&self) -> Result<bool> {
        let lock = self.lock;
        let full = lock.cache.stored_key(&lock.key);
        lock.cache
            .backend()
            .compare_and_delete(&full, &lock.token, &lock.cache.call_options())
    }
}

impl Drop for RedLockGuard<'_> {
    fn drop(&mut self) {
        if !self.released {
            if let Err(e) = self.release_inner() {
                tracing::warn!(key = %self.lock.key, error = %e, "releasing a RedLock failed; its lease will expire");
            }
        }
    }
}

/// Compare-and-set on one key: remembers the key's version when created; [`cas`](OptimisticLock::cas) writes
/// only if nobody changed the key since, else fails with [`Error::OptimisticLock`].
///
/// Versions are a per-entry counter on memory, the CAS id on Memcached, and the stored bytes (compared by a
/// Lua script) on Redis.
///
/// ```
/// use cache_runtime::{Cache, Error, OptimisticLock, Ttl};
///
/// let cache = Cache::memory();
/// cache.set("balance", &10, Ttl::Default).unwrap();
/// let lock = OptimisticLock::new(&cache, "balance").unwrap();
/// let seen: i32 = lock.value().unwrap().unwrap();
/// lock.cas(&(seen + 5), Ttl::Default).unwrap();
///
/// let stale = OptimisticLock::new(&cache, "balance").unwrap();
/// cache.set("balance", &0, Ttl::Default).unwrap(); // someone else writes
/// assert!(matches!(stale.cas(&1, Ttl::Default), Err(Error::OptimisticLock { .. })));
/// assert_eq!(cache.get::<i32>("balance").unwrap(), Some(0));
/// ```
#[derive(Debug)]
pub struct OptimisticLock {
    cache: Cache,
    key: String,
    seen: Option<Value>,
    token: CasToken,
}

impl OptimisticLock {
    /// Reads the key's current version.
    pub fn new(cache: &Cache, key: &str) -> Result<OptimisticLock> {
        let full = cache.stored_key(key);
        let (seen, token) = cache
            .backend()
            .get_versioned(&full, &cache.call_options())?;
        Ok(OptimisticLock {
            cache: cache.clone(),
            key: key.to_string(),
            seen,
            token,
        })
    }

    /// The value seen when the lock was taken.
    pub fn value<T: Cacheable>(&self) -> Result<Option<T>> {
        self.seen
            .as_ref()
            .map(|v| self.cache.decode_value(v))
            .transpose()
    }

    /// Writes `value` if the key is still as it was when the lock was taken.
    pub fn cas<T: Cacheable>(&self, value: &T, ttl: impl Into<Ttl>) -> Result<()> {
        let ttl = self.cache.resolve_ttl(ttl.into())?;
        let value = self.cache.encode_value(value)?;
        let full = self.cache.stored_key(&self.key);
        if self.cache.backend().compare_and_set(
            &full,
            &self.token,
            value,
            ttl,
            &self.cache.call_options(),
        )? {
            Ok(())
        } else {
            Err(Error::OptimisticLock {
                key: self.key.clone(),
            })
        }
    }
}
