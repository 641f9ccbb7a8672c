//! Time sources for expiry, swappable so TTL behaviour can be tested without sleeping.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time in milliseconds since the Unix epoch.
///
/// Backends that keep expiry themselves (memory, disk) read it only for entries that carry a TTL.
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_millis(&self) -> u64;
}

/// The system clock.
///
/// ```
/// use cache_runtime::{Clock, SystemClock};
/// assert!(SystemClock.now_millis() > 1_600_000_000_000);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}

/// A clock that moves only when told to: for tests of expiry.
///
/// Clones share the same time.
///
/// ```
/// use std::time::Duration;
/// use cache_runtime::{Cache, ManualClock, MemoryBackend, Ttl};
///
/// let clock = ManualClock::new();
/// let cache = Cache::builder()
///     .backend(MemoryBackend::builder().clock(clock.clone()).build())
///     .build()
///     .unwrap();
/// cache.set("k", &1u8, Ttl::secs(10)).unwrap();
/// clock.advance(Duration::from_secs(9));
/// assert_eq!(cache.get::<u8>("k").unwrap(), Some(1));
/// clock.advance(Duration::from_secs(1));
/// assert_eq!(cache.get::<u8>("k").unwrap(), None);
/// ```
#[derive(Clone, Debug)]
pub struct ManualClock {
    now: Arc<AtomicU64>,
}

impl ManualClock {
    /// Starts at the current system time.
    pub fn new() -> Self {
        ManualClock {
            now: Arc::new(AtomicU64::new(SystemClock.now_millis())),
        }
    }

    /// Moves time forward.
    pub fn advance(&self, by: Duration) {
        let millis = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.now.fetch_add(millis, Ordering::SeqCst);
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now_millis(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }
}
