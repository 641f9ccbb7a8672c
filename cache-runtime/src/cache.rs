//! The [`Cache`] handle: one configured instance of a backend, serializer, plugins, namespace and TTL.

use std::any::type_name;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

#[cfg(feature = "memory")]
use crate::backend::memory::{Found, MemoryBackend, Stored};
use crate::backend::null::NullBackend;
use crate::backend::{Backend, CallOptions};
use crate::error::{Error, Result};
use crate::key::{escape_glob, namespaced, FullKey, KeyBuilder};
use crate::plugin::{run_post, run_pre, Call, Command, Done, Outcome, Plugin};
use crate::serializer::{self, JsonSerializer, NullSerializer, Serializer};
use crate::ttl::{self, Ttl};
use crate::value::{RawReply, Value};

/// What a cache can hold: serde-encodable, cloneable, shareable values.
///
/// Blanket-implemented; you never implement it yourself. `Clone` is what lets the memory backend hand out
/// stored values without serializing them.
pub trait Cacheable: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}

impl<T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static> Cacheable for T {}

struct Shared {
    backend: Arc<dyn Backend>,
    /// The same backend when it is the in-process memory one, for statically dispatched reads.
    #[cfg(feature = "memory")]
    memory: Option<Arc<MemoryBackend>>,
    serializer: Arc<dyn Serializer>,
    /// Values are stored as typed objects (NullSerializer on an in-process backend).
    objects: bool,
    plugins: Box<[Arc<dyn Plugin>]>,
    key_builder: Option<KeyBuilder>,
    label: String,
}

/// The backend as the concrete memory backend, when it is one.
#[cfg(feature = "memory")]
fn memory_of(backend: &Arc<dyn Backend>) -> Option<Arc<MemoryBackend>> {
    let any: Arc<dyn std::any::Any + Send + Sync> = backend.clone();
    any.downcast::<MemoryBackend>().ok()
}

/// One configured cache: a cheap-to-clone handle (clones share the backend, serializer and plugins).
///
/// Every command of the contract: [`add`](Cache::add), [`get`](Cache::get), [`multi_get`](Cache::multi_get),
/// [`set`](Cache::set), [`multi_set`](Cache::multi_set), [`exists`](Cache::exists),
/// [`increment`](Cache::increment), [`delete`](Cache::delete), [`expire`](Cache::expire),
/// [`clear`](Cache::clear), [`keys`](Cache::keys), [`raw`](Cache::raw), [`close`](Cache::close).
/// Per-call overrides of namespace, default TTL and timeout are views:
/// [`with_namespace`](Cache::with_namespace), [`with_ttl`](Cache::with_ttl),
/// [`with_timeout`](Cache::with_timeout); a TTL can also be passed to each write.
///
/// ```
/// use cache_runtime::{Cache, Ttl};
///
/// let cache = Cache::builder().namespace("app").build().unwrap();
/// cache.set("user:1", &"ann".to_string(), Ttl::secs(60)).unwrap();
/// assert_eq!(cache.get::<String>("user:1").unwrap().as_deref(), Some("ann"));
/// assert_eq!(cache.increment("visits", 2).unwrap(), 2);
/// assert_eq!(cache.keys("user:*").unwrap(), vec!["user:1".to_string()]);
///
/// let other = cache.with_namespace("tenant-2");
/// assert_eq!(other.get::<String>("user:1").unwrap(), None);
/// ```
#[derive(Clone)]
pub struct Cache {
    shared: Arc<Shared>,
    namespace: Option<Arc<str>>,
    default_ttl: Option<Duration>,
    timeout: Option<Duration>,
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("source", &self.shared.label)
            .field("backend", &self.shared.backend.name())
            .field("serializer", &self.shared.serializer.name())
            .field("namespace", &self.namespace)
            .field("default_ttl", &self.default_ttl)
            .field("timeout", &self.timeout)
            .field("plugins", &self.shared.plugins.len())
            .finish()
    }
}

/// The outcome of a command, computed only when plugins are present.
enum Observed {
    Get(bool),
    MultiGet(Vec<bool>),
    Exists(bool),
    Increment(i64),
    Deleted(u64),
    Expired(bool),
    Cleared(u64),
    Keys(usize),
    Done,
}

impl Cache {
    /// A cache on a new unbounded memory backend with the [`NullSerializer`].
    ///
    /// ```
    /// let cache = cache_runtime::Cache::memory();
    /// assert_eq!(cache.backend().name(), "memory");
    /// ```
    #[cfg(feature = "memory")]
    pub fn memory() -> Cache {
        Cache::builder()
            .build()
            .expect("a memory cache with default settings is always valid")
    }

    /// Configures a cache.
    pub fn builder() -> CacheBuilder {
        CacheBuilder::default()
    }

    /// A cache from a URL: `memory://`, `null://`, `redis://[user:password@]host:port/db`, `memcached://host:port`,
    /// `disk:///path`, with query parameters for top-level settings (`namespace`, `ttl` and `timeout` in seconds,
    /// `serializer`) and backend options (e.g. `max_entries`).
    ///
    /// ```
    /// use cache_runtime::Cache;
    ///
    /// let cache = Cache::from_url("memory://?namespace=web&ttl=60&max_entries=1000").unwrap();
    /// assert_eq!(cache.namespace(), Some("web"));
    /// assert!(Cache::from_url("nope://x").is_err());
    /// ```
    pub fn from_url(url: &str) -> Result<Cache> {
        crate::config::AliasConfig::from_url(url)?.build_cache(&crate::config::redact(url))
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.shared.backend
    }

    /// The serializer.
    pub fn serializer(&self) -> &Arc<dyn Serializer> {
        &self.shared.serializer
    }

    /// The namespace in force.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The default TTL (`None`: never expires).
    pub fn default_ttl(&self) -> Option<Duration> {
        self.default_ttl
    }

    /// The per-command timeout (`None`: none).
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// The first plugin of type `P`, to read its stats.
    ///
    /// ```
    /// use cache_runtime::{Cache, HitMissRatioPlugin};
    ///
    /// let cache = Cache::builder().plugin(HitMissRatioPlugin::new()).build().unwrap();
    /// let _ = cache.get::<u8>("nothing");
    /// assert_eq!(cache.plugin::<HitMissRatioPlugin>().unwrap().total(), 1);
    /// ```
    pub fn plugin<P: Plugin>(&self) -> Option<Arc<P>> {
        self.shared.plugins.iter().find_map(|p| {
            let any: Arc<dyn std::any::Any + Send + Sync> = p.clone();
            any.downcast::<P>().ok()
        })
    }

    /// The same cache under another namespace (a per-call override: `cache.with_namespace("x").get(..)`).
    pub fn with_namespace(&self, namespace: impl Into<Arc<str>>) -> Cache {
        Cache {
            namespace: Some(namespace.into()),
            ..self.clone()
        }
    }

    /// The same cache without a namespace.
    pub fn without_namespace(&self) -> Cache {
        Cache {
            namespace: None,
            ..self.clone()
        }
    }

    /// The same cache with another default TTL. A TTL of zero is an error.
    ///
    /// ```
    /// use cache_runtime::{Cache, Ttl};
    /// let short = Cache::memory().with_ttl(Ttl::secs(5)).unwrap();
    /// assert_eq!(short.default_ttl(), Some(std::time::Duration::from_secs(5)));
    /// ```
    pub fn with_ttl(&self, ttl: impl Into<Ttl>) -> Result<Cache> {
        Ok(Cache {
            default_ttl: ttl.into().resolve(self.default_ttl)?,
            ..self.clone()
        })
    }

    /// The same cache with another per-command timeout.
    pub fn with_timeout(&self, timeout: Option<Duration>) -> Cache {
        Cache {
            timeout,
            ..self.clone()
        }
    }

    /// The key as stored: `{namespace}:{key}`, or what the custom key builder makes of it.
    pub fn build_key(&self, key: &str) -> String {
        self.full_key(key).to_string()
    }

    #[inline]
    fn full_key<'k>(&self, key: &'k str) -> FullKey<'k> {
        match &self.shared.key_builder {
            Some(build) => FullKey::Owned(build(key, self.namespace.as_deref())),
            None => namespaced(self.namespace.as_deref(), key),
        }
    }

    #[inline]
    fn opts(&self) -> CallOptions {
        CallOptions {
            timeout: self.timeout,
        }
    }

    fn ttl(&self, ttl: Ttl) -> Result<Option<Duration>> {
        ttl.resolve(self.default_ttl)
    }

    /// Runs `op`, with plugin hooks around it when there are plugins.
    #[inline]
    fn observe<R>(
        &self,
        command: Command,
        keys: &[&str],
        op: impl FnOnce() -> Result<R>,
        observed: impl FnOnce(&R) -> Observed,
    ) -> Result<R> {
        if self.shared.plugins.is_empty() {
            return op();
        }
        self.observe_slow(command, keys, op, observed)
    }

    #[cold]
    fn observe_slow<R>(
        &self,
        command: Command,
        keys: &[&str],
        op: impl FnOnce() -> Result<R>,
        observed: impl FnOnce(&R) -> Observed,
    ) -> Result<R> {
        let call = Call {
            command,
            keys,
            namespace: self.namespace.as_deref(),
        };
        run_pre(&self.shared.plugins, &call);
        let started = Instant::now();
        let result = op();
        let elapsed = started.elapsed();
        let observed = result.as_ref().ok().map(observed);
        let outcome = match (&result, &observed) {
            (Err(e), _) => Outcome::Failed(e),
            (Ok(_), Some(Observed::Get(hit))) => Outcome::Get { hit: *hit },
            (Ok(_), Some(Observed::MultiGet(hits))) => Outcome::MultiGet { hits },
            (Ok(_), Some(Observed::Exists(b))) => Outcome::Exists(*b),
            (Ok(_), Some(Observed::Increment(n))) => Outcome::Increment(*n),
            (Ok(_), Some(Observed::Deleted(n))) => Outcome::Deleted(*n),
            (Ok(_), Some(Observed::Expired(b))) => Outcome::Expired(*b),
            (Ok(_), Some(Observed::Cleared(n))) => Outcome::Cleared(*n),
            (Ok(_), Some(Observed::Keys(n))) => Outcome::Keys(*n),
            (Ok(_), _) => Outcome::Done,
        };
        run_post(&self.shared.plugins, &call, &Done { elapsed, outcome });
        result
    }

    fn encode<T: Cacheable>(&self, value: &T) -> Result<Value> {
        if self.shared.objects {
            Ok(Value::Object(Arc::new(value.clone())))
        } else {
            serializer::encode(&*self.shared.serializer, value).map(Value::Bytes)
        }
    }

    #[cold]
    fn wrong_type<T>(&self) -> Error {
        Error::deserialize(
            self.shared.serializer.name(),
            format!("the stored object is not a `{}`", type_name::<T>()),
        )
    }

    #[inline]
    fn decode<T: Cacheable>(&self, value: &Value) -> Result<T> {
        match value {
            Value::Object(obj) => obj
                .downcast_ref::<T>()
                .cloned()
                .ok_or_else(|| self.wrong_type::<T>()),
            Value::Bytes(bytes) => serializer::decode(&*self.shared.serializer, bytes),
        }
    }

    /// The memory backend, when values are stored as typed objects (not bytes) in it.
    #[cfg(feature = "memory")]
    #[inline]
    fn memory_objects(&self) -> Option<&MemoryBackend> {
        self.shared
            .memory
            .as_deref()
            .filter(|_| self.shared.objects)
    }

    /// A read from the memory backend, decoded under its read lock (primitives straight from the bucket).
    #[cfg(feature = "memory")]
    #[inline]
    fn read_memory<T: Cacheable>(&self, memory: &MemoryBackend, full: &[u8]) -> Result<Option<T>> {
        memory
            .read(full, |found| match found {
                Found::Small(small) => small.get::<T>().ok_or_else(|| self.wrong_type::<T>()),
                Found::Value(value) => self.decode::<T>(value),
            })
            .transpose()
    }

    /// Reads a value: `Ok(None)` on a miss. A value that does not decode as `T` is an
    /// [`Error::Deserialize`] and stays stored as it was.
    ///
    /// ```
    /// use cache_runtime::{Cache, Error, JsonSerializer, Ttl};
    ///
    /// let cache = Cache::builder().serializer(JsonSerializer).build().unwrap();
    /// cache.set("n", &5u32, Ttl::Default).unwrap();
    /// assert_eq!(cache.get::<u32>("n").unwrap(), Some(5));
    /// assert!(matches!(cache.get::<String>("n"), Err(Error::Deserialize { .. })));
    /// assert_eq!(cache.get::<u32>("missing").unwrap(), None);
    /// ```
    #[inline]
    pub fn get<T: Cacheable>(&self, key: &str) -> Result<Option<T>> {
        let full = self.full_key(key);
        self.observe(
            Command::Get,
            &[key],
            || {
                // The memory backend is called directly, so the decode below is inlined into its shard
                // lookup; any other backend lends the value through `get_with`.
                #[cfg(feature = "memory")]
                if let Some(memory) = &self.shared.memory {
                    return self.read_memory(memory, full.as_bytes());
                }
                let mut found: Option<Result<T>> = None;
                self.shared
                    .backend
                    .get_with(&full, &self.opts(), &mut |value| {
                        found = Some(self.decode::<T>(value));
                    })?;
                found.transpose()
            },
            |found| Observed::Get(found.is_some()),
        )
    }

    /// [`get`](Cache::get) of a key built by the memoization macros, as UTF-8 bytes: on the memory backend
    /// with no namespace, key builder or plugin in the way, the bytes are looked up as they are (checking that
    /// they are UTF-8 would cost a hit more than the rest of its key handling).
    #[inline]
    pub(crate) fn get_key_bytes<T: Cacheable>(&self, key: &[u8]) -> Result<Option<T>> {
        #[cfg(feature = "memory")]
        if let Some(memory) = &self.shared.memory {
            if self.namespace.is_none()
                && self.shared.key_builder.is_none()
                && self.shared.plugins.is_empty()
            {
                return self.read_memory(memory, key);
            }
        }
        self.get_key_bytes_slow(key)
    }

    #[cold]
    #[inline(never)]
    fn get_key_bytes_slow<T: Cacheable>(&self, key: &[u8]) -> Result<Option<T>> {
        match std::str::from_utf8(key) {
            Ok(key) => self.get(key),
            Err(e) => Err(Error::serialize(
                "json",
                format!("the cache key is not UTF-8: {e}"),
            )),
        }
    }

    /// Reads the stored value without decoding it (bytes as stored, or the stored object).
    ///
    /// ```
    /// use cache_runtime::{Cache, JsonSerializer, Ttl};
    ///
    /// let cache = Cache::builder().serializer(JsonSerializer).build().unwrap();
    /// cache.set("k", &vec![1, 2], Ttl::Default).unwrap();
    /// assert_eq!(cache.get_stored("k").unwrap().unwrap().as_bytes(), Some(&b"[1,2]"[..]));
    /// ```
    pub fn get_stored(&self, key: &str) -> Result<Option<Value>> {
        let full = self.full_key(key);
        self.observe(
            Command::Get,
            &[key],
            || self.shared.backend.get(&full, &self.opts()),
            |found| Observed::Get(found.is_some()),
        )
    }

    /// Reads many keys in one round trip; results in input order.
    ///
    /// ```
    /// use cache_runtime::{Cache, Ttl};
    ///
    /// let cache = Cache::memory();
    /// cache.multi_set(&[("a", 1), ("b", 2)], Ttl::Default).unwrap();
    /// assert_eq!(cache.multi_get::<i32, _>(&["a", "x", "b"]).unwrap(), vec![Some(1), None, Some(2)]);
    /// ```
    pub fn multi_get<T: Cacheable, K: AsRef<str>>(&self, keys: &[K]) -> Result<Vec<Option<T>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let user_keys: Vec<&str> = keys.iter().map(AsRef::as_ref).collect();
        let full: Vec<FullKey<'_>> = user_keys.iter().map(|k| self.full_key(k)).collect();
        let full_refs: Vec<&str> = full.iter().map(|k| &**k).collect();
        self.observe(
            Command::MultiGet,
            &user_keys,
            || {
                #[cfg(feature = "memory")]
                if let Some(memory) = &self.shared.memory {
                    return full_refs
                        .iter()
                        .map(|key| self.read_memory(memory, key.as_bytes()))
                        .collect();
                }
                self.shared
                    .backend
                    .multi_get(&full_refs, &self.opts())?
                    .into_iter()
                    .map(|v| v.map(|v| self.decode(&v)).transpose())
                    .collect()
            },
            |found: &Vec<Option<T>>| {
                Observed::MultiGet(found.iter().map(Option::is_some).collect())
            },
        )
    }

    /// Writes a value with a TTL ([`Ttl::Default`] for the cache's default).
    ///
    /// ```
    /// use cache_runtime::{Cache, Ttl};
    /// let cache = Cache::memory();
    /// cache.set("k", &vec!["a".to_string()], Ttl::secs(10)).unwrap();
    /// ```
    pub fn set<T: Cacheable>(&self, key: &str, value: &T, ttl: impl Into<Ttl>) -> Result<()> {
        let ttl = self.ttl(ttl.into())?;
        let full = self.full_key(key);
        #[cfg(feature = "memory")]
        if let Some(memory) = self.memory_objects() {
            // Typed straight into the store: a primitive is kept in place, with no `Arc` made for it.
            let stored = Stored::typed(value);
            return self.observe(
                Command::Set,
                &[key],
                || {
                    memory.set_stored(&full, stored, ttl);
                    Ok(())
                },
                |_| Observed::Done,
            );
        }
        let value = self.encode(value)?;
        self.observe(
            Command::Set,
            &[key],
            || self.shared.backend.set(&full, value, ttl, &self.opts()),
            |_| Observed::Done,
        )
    }

    /// Stores a value already in stored form (bytes as the serializer would make them, or an object on an
    /// in-process backend), bypassing the serializer.
    pub fn set_stored(&self, key: &str, value: Value, ttl: impl Into<Ttl>) -> Result<()> {
        let ttl = self.ttl(ttl.into())?;
        if matches!(value, Value::Object(_)) && !self.shared.backend.stores_objects() {
            return Err(Error::InvalidInput(format!(
                "the `{}` backend stores bytes, not objects",
                self.shared.backend.name()
            )));
        }
        let full = self.full_key(key);
        self.observe(
            Command::Set,
            &[key],
            || self.shared.backend.set(&full, value, ttl, &self.opts()),
            |_| Observed::Done,
        )
    }

    /// Writes many values at once, atomically where the backend allows (memory, a single Redis server; not a Redis Cluster).
    ///
    /// ```
    /// use cache_runtime::{Cache, Ttl};
    /// let cache = Cache::memory();
    /// cache.multi_set(&[("a", 1u8), ("b", 2u8)], Ttl::secs(30)).unwrap();
    /// assert_eq!(cache.get::<u8>("b").unwrap(), Some(2));
    /// ```
    pub fn multi_set<T: Cacheable, K: AsRef<str>>(
        &self,
        pairs: &[(K, T)],
        ttl: impl Into<Ttl>,
    ) -> Result<()> {
        let pairs: Vec<(&str, &T)> = pairs.iter().map(|(k, v)| (k.as_ref(), v)).collect();
        self.multi_set_refs(&pairs, ttl.into())
    }

    /// [`multi_set`](Cache::multi_set) of borrowed values: each is cloned once, into the store.
    pub(crate) fn multi_set_refs<T: Cacheable>(
        &self,
        pairs: &[(&str, &T)],
        ttl: Ttl,
    ) -> Result<()> {
        if pairs.is_empty() {
            return Ok(());
        }
        let ttl = self.ttl(ttl)?;
        let user_keys: Vec<&str> = pairs.iter().map(|(k, _)| *k).collect();
        let full: Vec<FullKey<'_>> = user_keys.iter().map(|k| self.full_key(k)).collect();
        #[cfg(feature = "memory")]
        if let Some(memory) = self.memory_objects() {
            let entries = full
                .iter()
                .zip(pairs)
                .map(|(k, (_, v))| (&**k, Stored::typed(*v)))
                .collect();
            return self.observe(
                Command::MultiSet,
                &user_keys,
                || {
                    memory.multi_set_stored(entries, ttl);
                    Ok(())
                },
                |_| Observed::Done,
            );
        }
        let entries = full
            .iter()
            .zip(pairs)
            .map(|(k, (_, v))| Ok((&**k, self.encode(*v)?)))
            .collect::<Result<Vec<_>>>()?;
        self.observe(
            Command::MultiSet,
            &user_keys,
            || self.shared.backend.multi_set(entries, ttl, &self.opts()),
            |_| Observed::Done,
        )
    }

    /// Writes a value only if the key is absent (atomically on every backend); [`Error::KeyExists`] otherwise,
    /// leaving the stored value as it was.
    ///
    /// ```
    /// use cache_runtime::{Cache, Error, Ttl};
    /// let cache = Cache::memory();
    /// cache.add("k", &1, Ttl::Default).unwrap();
    /// assert!(matches!(cache.add("k", &2, Ttl::Default), Err(Error::KeyExists { .. })));
    /// assert_eq!(cache.get::<i32>("k").unwrap(), Some(1));
    /// ```
    pub fn add<T: Cacheable>(&self, key: &str, value: &T, ttl: impl Into<Ttl>) -> Result<()> {
        let ttl = self.ttl(ttl.into())?;
        let value = self.encode(value)?;
        let full = self.full_key(key);
        self.observe(
            Command::Add,
            &[key],
            || {
                if self.shared.backend.add(&full, value, ttl, &self.opts())? {
                    Ok(())
                } else {
                    Err(Error::KeyExists {
                        key: key.to_string(),
                    })
                }
            },
            |_| Observed::Done,
        )
    }

    /// Whether the key is present.
    ///
    /// ```
    /// let cache = cache_runtime::Cache::memory();
    /// assert!(!cache.exists("k").unwrap());
    /// ```
    pub fn exists(&self, key: &str) -> Result<bool> {
        let full = self.full_key(key);
        self.observe(
            Command::Exists,
            &[key],
            || self.shared.backend.exists(&full, &self.opts()),
            |b| Observed::Exists(*b),
        )
    }

    /// Adds `delta` atomically to the integer at `key` (an absent key starts at 0); returns the new value.
    /// A stored value that is not an integer is [`Error::NotAnInteger`] and stays as it was.
    ///
    /// ```
    /// use cache_runtime::{Cache, Error, Ttl};
    /// let cache = Cache::memory();
    /// assert_eq!(cache.increment("hits", 1).unwrap(), 1);
    /// assert_eq!(cache.increment("hits", 5).unwrap(), 6);
    /// assert_eq!(cache.get::<i64>("hits").unwrap(), Some(6));
    /// cache.set("name", &"ann".to_string(), Ttl::Default).unwrap();
    /// assert!(matches!(cache.increment("name", 1), Err(Error::NotAnInteger { .. })));
    /// ```
    pub fn increment(&self, key: &str, delta: i64) -> Result<i64> {
        let full = self.full_key(key);
        self.observe(
            Command::Increment,
            &[key],
            || {
                self.shared
                    .backend
                    .increment(&full, delta, &self.opts())
                    .map_err(|e| match e {
                        Error::NotAnInteger { .. } => Error::NotAnInteger {
                            key: key.to_string(),
                        },
                        other => other,
                    })
            },
            |n| Observed::Increment(*n),
        )
    }

    /// Deletes a key; returns how many were deleted.
    ///
    /// ```
    /// use cache_runtime::{Cache, Ttl};
    /// let cache = Cache::memory();
    /// cache.set("k", &1, Ttl::Default).unwrap();
    /// assert_eq!(cache.delete("k").unwrap(), 1);
    /// assert_eq!(cache.delete("k").unwrap(), 0);
    /// ```
    pub fn delete(&self, key: &str) -> Result<u64> {
        let full = self.full_key(key);
        self.observe(
            Command::Delete,
            &[key],
            || self.shared.backend.delete(&full, &self.opts()),
            |n| Observed::Deleted(*n),
        )
    }

    /// Changes a key's TTL ([`Ttl::Never`] persists it); returns whether the key existed.
    ///
    /// ```
    /// use cache_runtime::{Cache, Ttl};
    /// let cache = Cache::memory();
    /// cache.set("k", &1, Ttl::secs(5)).unwrap();
    /// assert!(cache.expire("k", Ttl::Never).unwrap());
    /// assert!(!cache.expire("missing", Ttl::secs(5)).unwrap());
    /// ```
    pub fn expire(&self, key: &str, ttl: impl Into<Ttl>) -> Result<bool> {
        let ttl = self.ttl(ttl.into())?;
        let full = self.full_key(key);
        self.observe(
            Command::Expire,
            &[key],
            || self.shared.backend.expire(&full, ttl, &self.opts()),
            |b| Observed::Expired(*b),
        )
    }

    /// Deletes every key of this cache's namespace (`{namespace}:*`), or everything when it has none;
    /// returns how many were deleted when the backend knows.
    ///
    /// ```
    /// use cache_runtime::{Cache, Ttl};
    /// let cache = Cache::memory();
    /// let a = cache.with_namespace("a");
    /// a.set("k", &1, Ttl::Default).unwrap();
    /// cache.with_namespace("b").set("k", &2, Ttl::Default).unwrap();
    /// assert_eq!(a.clear().unwrap(), 1);
    /// assert_eq!(cache.with_namespace("b").get::<i32>("k").unwrap(), Some(2));
    /// ```
    pub fn clear(&self) -> Result<u64> {
        let prefix = self.namespace.as_deref().map(|ns| format!("{ns}:"));
        self.observe(
            Command::Clear,
            &[],
            || self.shared.backend.clear(prefix.as_deref(), &self.opts()),
            |n| Observed::Cleared(*n),
        )
    }

    /// Lists this namespace's keys (without the namespace) matching a Redis-style glob (`*`, `?`, `[a-z]`).
    ///
    /// ```
    /// use cache_runtime::{Cache, Ttl};
    /// let cache = Cache::memory().with_namespace("ns");
    /// cache.set("user:1", &1, Ttl::Default).unwrap();
    /// cache.set("post:1", &1, Ttl::Default).unwrap();
    /// assert_eq!(cache.keys("user:*").unwrap(), vec!["user:1"]);
    /// ```
    pub fn keys(&self, pattern: &str) -> Result<Vec<String>> {
        let (full_pattern, prefix_len) = match self.namespace.as_deref() {
            Some(ns) => (format!("{}:{pattern}", escape_glob(ns)), ns.len() + 1),
            None => (pattern.to_string(), 0),
        };
        self.observe(
            Command::Keys,
            &[pattern],
            || {
                let mut keys = self.shared.backend.keys(&full_pattern, &self.opts())?;
                for key in &mut keys {
                    key.drain(..prefix_len);
                }
                keys.sort_unstable();
                Ok(keys)
            },
            |keys| Observed::Keys(keys.len()),
        )
    }

    /// Runs a backend-native command (any Redis command on Redis; see each backend for what it accepts).
    ///
    /// ```
    /// use cache_runtime::{Cache, RawReply, Ttl};
    /// let cache = Cache::memory();
    /// cache.set("k", &1, Ttl::Default).unwrap();
    /// assert_eq!(cache.raw::<&str>("len", &[]).unwrap(), RawReply::Int(1));
    /// ```
    pub fn raw<A: AsRef<[u8]>>(&self, command: &str, args: &[A]) -> Result<RawReply> {
        let args: Vec<Vec<u8>> = args.iter().map(|a| a.as_ref().to_vec()).collect();
        self.observe(
            Command::Raw,
            &[],
            || self.shared.backend.raw(command, &args, &self.opts()),
            |_| Observed::Done,
        )
    }

    /// Releases the backend's connections; the next command reconnects.
    ///
    /// ```
    /// cache_runtime::Cache::memory().close().unwrap();
    /// ```
    pub fn close(&self) -> Result<()> {
        self.observe(
            Command::Close,
            &[],
            || self.shared.backend.close(),
            |_| Observed::Done,
        )
    }

    /// The call options in force, for lock implementations.
    pub(crate) fn call_options(&self) -> CallOptions {
        self.opts()
    }

    /// The stored key, for lock implementations.
    pub(crate) fn stored_key(&self, key: &str) -> String {
        self.build_key(key)
    }

    pub(crate) fn encode_value<T: Cacheable>(&self, value: &T) -> Result<Value> {
        self.encode(value)
    }

    pub(crate) fn decode_value<T: Cacheable>(&self, value: &Value) -> Result<T> {
        self.decode(value)
    }

    pub(crate) fn resolve_ttl(&self, ttl: Ttl) -> Result<Option<Duration>> {
        self.ttl(ttl)
    }

    /// The same backend, namespace, TTL, timeout and key builder with another serializer and/or plugin list,
    /// for functions memoized with `serializer = ..` or `plugins = [..]` on top of an alias.
    /// Whether both handles are the same configured instance (clones of one `Cache`).
    pub(crate) fn same_instance(&self, other: &Cache) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
            && self.namespace == other.namespace
            && self.default_ttl == other.default_ttl
            && self.timeout == other.timeout
    }

    pub(crate) fn derive(
        &self,
        serializer: Option<Arc<dyn Serializer>>,
        plugins: Option<Vec<Arc<dyn Plugin>>>,
    ) -> Result<Cache> {
        let serializer = serializer.unwrap_or_else(|| self.shared.serializer.clone());
        let backend = self.shared.backend.clone();
        let objects = stores_objects(&*serializer, &*backend)?;
        Ok(Cache {
            shared: Arc::new(Shared {
                #[cfg(feature = "memory")]
                memory: memory_of(&backend),
                backend,
                serializer,
                objects,
                plugins: plugins.map_or_else(|| self.shared.plugins.clone(), Vec::into_boxed_slice),
                key_builder: self.shared.key_builder.clone(),
                label: self.shared.label.clone(),
            }),
            ..self.clone()
        })
    }
}

/// Configures a [`Cache`]. Every setting has a default: memory backend, its natural serializer
/// ([`NullSerializer`] on memory, [`JsonSerializer`] elsewhere), no namespace, no default TTL, the backend's
/// default timeout.
///
/// ```
/// use std::time::Duration;
/// use cache_runtime::{Cache, Compressed, JsonSerializer, MemoryBackend, TimingPlugin, Ttl};
///
/// let cache = Cache::builder()
///     .backend(MemoryBackend::builder().max_entries(1_000).build())
///     .serializer(Compressed::lz4(JsonSerializer))
///     .namespace("reports")
///     .default_ttl(Ttl::secs(300))
///     .plugin(TimingPlugin::new())
///     .build()
///     .unwrap();
/// assert_eq!(cache.default_ttl(), Some(Duration::from_secs(300)));
/// ```
#[derive(Default)]
pub struct CacheBuilder {
    backend: Option<Arc<dyn Backend>>,
    serializer: Option<Arc<dyn Serializer>>,
    plugins: Vec<Arc<dyn Plugin>>,
    namespace: Option<String>,
    default_ttl: Ttl,
    timeout: Option<Option<Duration>>,
    key_builder: Option<KeyBuilder>,
    disabled: Option<bool>,
    label: Option<String>,
}

impl CacheBuilder {
    /// The backend.
    pub fn backend(mut self, backend: impl Backend) -> Self {
        self.backend = Some(Arc::new(backend));
        self
    }

    /// The backend, shared with other caches.
    pub fn backend_shared(mut self, backend: Arc<dyn Backend>) -> Self {
        self.backend = Some(backend);
        self
    }

    /// The serializer.
    pub fn serializer(mut self, serializer: impl Serializer) -> Self {
        self.serializer = Some(Arc::new(serializer));
        self
    }

    /// The serializer, shared.
    pub fn serializer_shared(mut self, serializer: Arc<dyn Serializer>) -> Self {
        self.serializer = Some(serializer);
        self
    }

    /// Adds a plugin; hooks run in the order plugins were added.
    pub fn plugin(mut self, plugin: impl Plugin) -> Self {
        self.plugins.push(Arc::new(plugin));
        self
    }

    /// Adds a shared plugin (keep a clone of the `Arc` to read its stats).
    pub fn plugin_shared(mut self, plugin: Arc<dyn Plugin>) -> Self {
        self.plugins.push(plugin);
        self
    }

    /// Keys are stored as `{namespace}:{key}`.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// The TTL of writes that pass [`Ttl::Default`]. Zero is rejected by [`build`](Self::build).
    pub fn default_ttl(mut self, ttl: impl Into<Ttl>) -> Self {
        self.default_ttl = ttl.into();
        self
    }

    /// The per-command timeout (`None`: none). Defaults to the backend's (5 s over the network).
    pub fn timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Replaces `{namespace}:{key}` with a function of the key and namespace.
    pub fn key_builder(
        mut self,
        build: impl Fn(&str, Option<&str>) -> String + Send + Sync + 'static,
    ) -> Self {
        self.key_builder = Some(Arc::new(build));
        self
    }

    /// Forces pass-through (`true`) or caching (`false`) regardless of `CACHE_DISABLE`.
    pub fn disabled(mut self, disabled: bool) -> Self {
        self.disabled = Some(disabled);
        self
    }

    /// A label shown in `Debug` (the alias or URL the cache came from).
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Builds the cache. Fails when the serializer stores objects but the backend cannot hold them, or when
    /// the default TTL is zero.
    pub fn build(self) -> Result<Cache> {
        let mut backend = match self.backend {
            Some(backend) => backend,
            None => default_backend()?,
        };
        let serializer: Arc<dyn Serializer> = match self.serializer {
            Some(s) => s,
            None if backend.stores_objects() => Arc::new(NullSerializer),
            None => Arc::new(JsonSerializer),
        };
        let objects = stores_objects(&*serializer, &*backend)?;
        let disabled = self.disabled.unwrap_or_else(disabled_by_env);
        if disabled {
            backend = Arc::new(NullBackend);
        }
        let default_ttl = match self.default_ttl {
            Ttl::Default | Ttl::Never => None,
            Ttl::After(d) => Some(ttl::validate(d)?),
        };
        let timeout = self.timeout.unwrap_or_else(|| backend.default_timeout());
        let label = self.label.unwrap_or_else(|| backend.name().to_string());
        Ok(Cache {
            shared: Arc::new(Shared {
                #[cfg(feature = "memory")]
                memory: memory_of(&backend),
                backend,
                serializer,
                objects,
                plugins: self.plugins.into_boxed_slice(),
                key_builder: self.key_builder,
                label,
            }),
            namespace: self.namespace.map(Into::into),
            default_ttl,
            timeout,
        })
    }
}

/// Whether values are kept as typed objects; an object serializer on a byte-only backend is a config error.
fn stores_objects(serializer: &dyn Serializer, backend: &dyn Backend) -> Result<bool> {
    match (serializer.stores_objects(), backend.stores_objects()) {
        (true, false) => Err(Error::config(format!(
            "the `{}` serializer keeps values as objects, which only in-process backends can hold; \
             the `{}` backend needs a byte serializer such as `json`",
            serializer.name(),
            backend.name()
        ))),
        (objects, _) => Ok(objects),
    }
}

#[cfg(feature = "memory")]
fn default_backend() -> Result<Arc<dyn Backend>> {
    Ok(Arc::new(crate::backend::memory::MemoryBackend::new()))
}

#[cfg(not(feature = "memory"))]
fn default_backend() -> Result<Arc<dyn Backend>> {
    Err(Error::config(
        "no backend given and the default `memory` backend needs the cargo feature `memory` of cache-runtime",
    ))
}

/// `CACHE_DISABLE` set to `1`, `true`, `yes` or `on` turns every cache built afterwards into a pass-through.
pub(crate) fn disabled_by_env() -> bool {
    disabled_by_value(std::env::var("CACHE_DISABLE").ok().as_deref())
}

pub(crate) fn disabled_by_value(value: Option<&str>) -> bool {
    matches!(
        value.map(|v| v.trim().to_ascii_lowercase()).as_deref(),
        Some("1" | "true" | "yes" | "on")
    )
}
