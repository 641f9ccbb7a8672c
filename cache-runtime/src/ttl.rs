//! Time to live of stored values.

use std::time::Duration;

use crate::error::{Error, Result};

/// How long a value lives.
///
/// Differs from aiocache: a TTL of zero is rejected ([`Error::InvalidInput`]) instead of meaning "forever";
/// say [`Ttl::Never`] for that. Precision is the millisecond end to end; a non-zero duration shorter than one
/// millisecond is rounded up to one.
///
/// ```
/// use std::time::Duration;
/// use cache_runtime::{Cache, Ttl};
///
/// let cache = Cache::memory();
/// cache.set("session", &"alice".to_string(), Ttl::secs(30)).unwrap();
/// cache.set("config", &1u8, Ttl::Never).unwrap();
/// cache.set("token", &2u8, Duration::from_millis(1500)).unwrap(); // a Duration converts
/// assert!(cache.set("bad", &1, Ttl::secs(0)).is_err());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Ttl {
    /// Use the cache's default TTL (itself "never" unless configured).
    #[default]
    Default,
    /// Never expires.
    Never,
    /// Expires this long after the write.
    After(Duration),
}

impl Ttl {
    /// Expires after `secs` seconds.
    ///
    /// ```
    /// # use cache_runtime::Ttl;
    /// assert_eq!(Ttl::secs(2), Ttl::After(std::time::Duration::from_secs(2)));
    /// ```
    pub const fn secs(secs: u64) -> Ttl {
        Ttl::After(Duration::from_secs(secs))
    }

    /// Expires after `millis` milliseconds.
    ///
    /// ```
    /// # use cache_runtime::Ttl;
    /// assert_eq!(Ttl::millis(250), Ttl::After(std::time::Duration::from_millis(250)));
    /// ```
    pub const fn millis(millis: u64) -> Ttl {
        Ttl::After(Duration::from_millis(millis))
    }

    /// Resolves against a default: `None` means "never expires".
    pub(crate) fn resolve(self, default: Option<Duration>) -> Result<Option<Duration>> {
        match self {
            Ttl::Default => Ok(default),
            Ttl::Never => Ok(None),
            Ttl::After(d) => validate(d).map(Some),
        }
    }
}

/// Rejects zero and rounds sub-millisecond durations up to one millisecond.
pub(crate) fn validate(ttl: Duration) -> Result<Duration> {
    if ttl.is_zero() {
        return Err(Error::InvalidInput(
            "a TTL of zero is invalid; use `Ttl::Never` for values that never expire".into(),
        ));
    }
    Ok(ttl.max(Duration::from_millis(1)))
}

/// Whole milliseconds of a validated TTL (at least 1).
pub fn ttl_millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl From<Duration> for Ttl {
    fn from(d: Duration) -> Self {
        Ttl::After(d)
    }
}
