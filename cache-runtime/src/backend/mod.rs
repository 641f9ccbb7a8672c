//! The storage side: the [`Backend`] trait every backend implements, and the options a registered backend is
//! built from.
//!
//! Operations are I/O-shaped (one call = one request to the store, results returned by value) so that an async
//! twin of this trait can mirror it method for method.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::config::ConfigValue;
use crate::error::{Error, Result};
use crate::value::{CasToken, RawReply, Value};

#[cfg(feature = "disk")]
pub mod disk;
#[cfg(feature = "memcached")]
pub mod memcached;
#[cfg(feature = "memory")]
pub mod memory;
pub mod null;
#[cfg(feature = "redis")]
pub mod redis;

/// `increment` on a value that is not an integer: the same typed error on every backend.
#[cfg(any(
    feature = "memory",
    feature = "redis",
    feature = "memcached",
    feature = "disk"
))]
pub(crate) fn not_an_integer(key: &str) -> Error {
    Error::NotAnInteger {
        key: key.to_string(),
    }
}

/// `increment` past the range of `i64`: the same typed error on every backend.
#[cfg(any(
    feature = "memory",
    feature = "redis",
    feature = "memcached",
    feature = "disk"
))]
pub(crate) fn increment_overflow(key: &str, delta: i64) -> Error {
    Error::InvalidInput(format!("increment of `{key}` by {delta} overflows i64"))
}

/// `delta` added to the counter `key` holds (`current`: `None` when its value is not an integer), or the typed
/// error.
#[cfg(any(feature = "memory", feature = "memcached", feature = "disk"))]
pub(crate) fn increment_integer(key: &str, current: Option<i64>, delta: i64) -> Result<i64> {
    current
        .ok_or_else(|| not_an_integer(key))?
        .checked_add(delta)
        .ok_or_else(|| increment_overflow(key, delta))
}

/// `delta` added to a counter stored as decimal text (`current` of `key`), or the typed error.
#[cfg(any(feature = "memory", feature = "memcached", feature = "disk"))]
pub(crate) fn increment_decimal(key: &str, current: &[u8], delta: i64) -> Result<i64> {
    let current = std::str::from_utf8(current)
        .ok()
        .and_then(|s| s.parse().ok());
    increment_integer(key, current, delta)
}

/// Per-call options a [`Cache`](crate::Cache) passes to its backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallOptions {
    /// Give up after this long (`None`: wait as long as the backend does).
    pub timeout: Option<Duration>,
}

/// A store of keyed values. Implement it to add a backend of your own; register it by name with
/// [`caches::register_backend`](crate::caches::register_backend) to use it from alias configs.
///
/// Keys reach the backend fully built (namespace applied). TTLs are validated (never zero) and `None` means
/// "never expires". Commands not overridden return [`Error::Unsupported`] or fall back to single-key calls.
///
/// ```
/// use std::collections::HashMap;
/// use std::time::Duration;
/// use parking_lot::Mutex;
/// use cache_runtime::{Backend, Cache, CallOptions, Error, Ttl, Value};
///
/// /// A toy backend: a map behind one lock, no TTL support.
/// #[derive(Default)]
/// struct MapBackend(Mutex<HashMap<String, Value>>);
///
/// impl Backend for MapBackend {
///     fn name(&self) -> &str { "map" }
///     fn get(&self, key: &str, _: &CallOptions) -> Result<Option<Value>, Error> {
///         Ok(self.0.lock().get(key).cloned())
///     }
///     fn set(&self, key: &str, value: Value, _: Option<Duration>, _: &CallOptions) -> Result<(), Error> {
///         self.0.lock().insert(key.to_string(), value);
///         Ok(())
///     }
///     fn add(&self, key: &str, value: Value, _: Option<Duration>, _: &CallOptions) -> Result<bool, Error> {
///         let mut map = self.0.lock();
///         if map.contains_key(key) { return Ok(false); }
///         map.insert(key.to_string(), value);
///         Ok(true)
///     }
///     fn delete(&self, key: &str, _: &CallOptions) -> Result<u64, Error> {
///         Ok(u64::from(self.0.lock().remove(key).is_some()))
///     }
/// }
///
/// let cache = Cache::builder().backend(MapBackend::default()).build().unwrap();
/// cache.set("k", &"v".to_string(), Ttl::Default).unwrap();
/// assert_eq!(cache.get::<String>("k").unwrap().as_deref(), Some("v"));
/// ```
pub trait Backend: std::any::Any + Send + Sync + 'static {
    /// The backend's name (`memory`, `redis`, ...), used in errors and logs.
    fn name(&self) -> &str;

    /// True if the backend can hold [`Value::Object`] (only in-process backends can).
    fn stores_objects(&self) -> bool {
        false
    }

    /// The per-command timeout a cache uses unless configured (5 s; `None` for in-process backends).
    fn default_timeout(&self) -> Option<Duration> {
        Some(Duration::from_secs(5))
    }

    /// Reads a key.
    fn get(&self, key: &str, opts: &CallOptions) -> Result<Option<Value>>;

    /// Reads a key and lends the stored value to `read` instead of returning it; returns whether the key was
    /// found. The default calls [`get`](Backend::get). In-process backends override it to decode in place
    /// (no copy of the stored bytes, no reference-count traffic on a hit); `read` then runs under the
    /// backend's read lock, so it must not write to the same backend.
    fn get_with(
        &self,
        key: &str,
        opts: &CallOptions,
        read: &mut dyn FnMut(&Value),
    ) -> Result<bool> {
        match self.get(key, opts)? {
            Some(value) => {
                read(&value);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Reads many keys, results in input order. The default issues one `get` per key.
    fn multi_get(&self, keys: &[&str], opts: &CallOptions) -> Result<Vec<Option<Value>>> {
        keys.iter().map(|k| self.get(k, opts)).collect()
    }

    /// Writes a key.
    fn set(&self, key: &str, value: Value, ttl: Option<Duration>, opts: &CallOptions)
        -> Result<()>;

    /// Writes many keys. The default issues one `set` per key (not atomic).
    fn multi_set(
        &self,
        entries: Vec<(&str, Value)>,
        ttl: Option<Duration>,
        opts: &CallOptions,
    ) -> Result<()> {
        entries
            .into_iter()
            .try_for_each(|(k, v)| self.set(k, v, ttl, opts))
    }

    /// Writes a key only if it is absent, atomically; returns whether it wrote.
    fn add(
        &self,
        key: &str,
        value: Value,
        ttl: Option<Duration>,
        opts: &CallOptions,
    ) -> Result<bool>;

    /// Whether a key is present.
    fn exists(&self, key: &str, opts: &CallOptions) -> Result<bool> {
        Ok(self.get(key, opts)?.is_some())
    }

    /// Adds `delta` to the integer at `key` atomically (an absent key starts at 0); returns the new value.
    /// A value that is not an integer is [`Error::NotAnInteger`] and stays as it was.
    fn increment(&self, key: &str, delta: i64, opts: &CallOptions) -> Result<i64> {
        let _ = (key, delta, opts);
        Err(Error::unsupported(
            "increment",
            self.name(),
            "not implemented by this backend",
        ))
    }

    /// Deletes a key; returns how many were deleted (0 or 1).
    fn delete(&self, key: &str, opts: &CallOptions) -> Result<u64>;

    /// Sets a key's TTL (`None`: persist); returns whether the key existed.
    fn expire(&self, key: &str, ttl: Option<Duration>, opts: &CallOptions) -> Result<bool> {
        let _ = (key, ttl, opts);
        Err(Error::unsupported(
            "expire",
            self.name(),
            "not implemented by this backend",
        ))
    }

    /// Deletes every key starting with `prefix`, or everything when `prefix` is `None`; returns how many
    /// were deleted when the backend knows.
    fn clear(&self, prefix: Option<&str>, opts: &CallOptions) -> Result<u64> {
        let _ = (prefix, opts);
        Err(Error::unsupported(
            "clear",
            self.name(),
            "not implemented by this backend",
        ))
    }

    /// Lists stored keys matching a Redis-style glob over full keys.
    fn keys(&self, pattern: &str, opts: &CallOptions) -> Result<Vec<String>> {
        let _ = (pattern, opts);
        Err(Error::unsupported(
            "keys",
            self.name(),
            "not implemented by this backend",
        ))
    }

    /// Runs a backend-native command.
    fn raw(&self, command: &str, args: &[Vec<u8>], opts: &CallOptions) -> Result<RawReply> {
        let _ = (command, args, opts);
        Err(Error::unsupported(
            "raw",
            self.name(),
            "not implemented by this backend",
        ))
    }

    /// Releases connections; the backend may reconnect on its next use.
    fn close(&self) -> Result<()> {
        Ok(())
    }

    /// Reads a key with a token identifying its current version, for optimistic locking.
    fn get_versioned(&self, key: &str, opts: &CallOptions) -> Result<(Option<Value>, CasToken)> {
        let _ = (key, opts);
        Err(Error::unsupported(
            "get_versioned",
            self.name(),
            "optimistic locking is not implemented by this backend",
        ))
    }

    /// Writes `value` only if the key is still at version `expected`; returns whether it wrote.
    fn compare_and_set(
        &self,
        key: &str,
        expected: &CasToken,
        value: Value,
        ttl: Option<Duration>,
        opts: &CallOptions,
    ) -> Result<bool> {
        let _ = (key, expected, value, ttl, opts);
        Err(Error::unsupported(
            "compare_and_set",
            self.name(),
            "optimistic locking is not implemented by this backend",
        ))
    }

    /// Deletes the key only if it holds exactly `expected` bytes; returns whether it deleted (lock release).
    fn compare_and_delete(&self, key: &str, expected: &[u8], opts: &CallOptions) -> Result<bool> {
        let _ = (key, expected, opts);
        Err(Error::unsupported(
            "compare_and_delete",
            self.name(),
            "locks are not implemented by this backend",
        ))
    }
}

/// What a registered backend is built from: the alias's backend-specific options plus shared settings.
///
/// Getters return a [`Error::Config`] naming the alias and the field when a value has the wrong type.
pub struct BackendConfig<'a> {
    pub(crate) alias: &'a str,
    pub(crate) backend: &'a str,
    pub(crate) options: &'a BTreeMap<String, ConfigValue>,
    pub(crate) clock: Option<Arc<dyn Clock>>,
    pub(crate) timeout: Option<Duration>,
}

impl<'a> BackendConfig<'a> {
    /// The alias being built.
    pub fn alias(&self) -> &str {
        self.alias
    }

    /// The configured clock, if the alias was given one in code.
    pub fn clock(&self) -> Option<Arc<dyn Clock>> {
        self.clock.clone()
    }

    /// The cache's per-command timeout, if configured.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// The raw value of a field.
    pub fn value(&self, field: &str) -> Option<&'a ConfigValue> {
        self.options.get(field)
    }

    /// A config error about `field` of this alias.
    pub fn error(&self, field: &str, message: impl std::fmt::Display) -> Error {
        Error::config(format!(
            "alias `{}`: field `{field}` (cache `{}`): {message}",
            self.alias, self.backend
        ))
    }

    /// A string field.
    pub fn str(&self, field: &str) -> Result<Option<&'a str>> {
        match self.value(field) {
            None | Some(ConfigValue::Null) => Ok(None),
            Some(ConfigValue::String(s)) => Ok(Some(s)),
            Some(other) => {
                Err(self.error(field, format!("expected a string, found {}", other.kind())))
            }
        }
    }

    /// A non-negative integer field.
    pub fn u64(&self, field: &str) -> Result<Option<u64>> {
        match self.value(field) {
            None | Some(ConfigValue::Null) => Ok(None),
            Some(ConfigValue::Int(i)) if *i >= 0 => Ok(Some(*i as u64)),
            Some(other) => Err(self.error(
                field,
                format!(
                    "expected a non-negative integer, found {}",
                    other.describe()
                ),
            )),
        }
    }

    /// A boolean field.
    pub fn bool(&self, field: &str) -> Result<Option<bool>> {
        match self.value(field) {
            None | Some(ConfigValue::Null) => Ok(None),
            Some(ConfigValue::Bool(b)) => Ok(Some(*b)),
            Some(other) => {
                Err(self.error(field, format!("expected a boolean, found {}", other.kind())))
            }
        }
    }

    /// A duration field given in seconds (integer or fractional), which must be positive.
    pub fn secs(&self, field: &str) -> Result<Option<Duration>> {
        match self.value(field) {
            None | Some(ConfigValue::Null) => Ok(None),
            Some(v) => v
                .as_secs()
                .map(Some)
                .map_err(|message| self.error(field, message)),
        }
    }

    /// A list of strings (a single string is a list of one).
    pub fn strings(&self, field: &str) -> Result<Option<Vec<&'a str>>> {
        match self.value(field) {
            None | Some(ConfigValue::Null) => Ok(None),
            Some(ConfigValue::String(s)) => Ok(Some(vec![s.as_str()])),
            Some(ConfigValue::List(items)) => items
                .iter()
                .map(|item| match item {
                    ConfigValue::String(s) => Ok(s.as_str()),
                    other => Err(self.error(
                        field,
                        format!("expected a list of strings, found {} in it", other.kind()),
                    )),
                })
                .collect::<Result<Vec<_>>>()
                .map(Some),
            Some(other) => Err(self.error(
                field,
                format!("expected a list of strings, found {}", other.kind()),
            )),
        }
    }
}
