//! Serializers: how typed values become stored bytes and back.
//!
//! Every serializer works on any `T: serde::Serialize + serde::de::DeserializeOwned`, so which one a cache
//! uses is a configuration choice, not a type-level one.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};

/// What a [`Sink`] hands a deserializer to: the type-erased `Deserialize` of the requested type.
type Visit<'a> = dyn for<'de> FnMut(&mut dyn erased_serde::Deserializer<'de>) -> Result<(), erased_serde::Error>
    + 'a;

/// Receives a deserializer over stored bytes and builds the requested value from it.
///
/// A [`Serializer`] implementation creates the deserializer for its format and passes it to [`Sink::feed`].
pub struct Sink<'a> {
    visit: &'a mut Visit<'a>,
    serializer: &'a str,
}

impl Sink<'_> {
    /// Builds the requested value from `deserializer`.
    pub fn feed<'de, D>(self, deserializer: D) -> Result<()>
    where
        D: serde::Deserializer<'de>,
    {
        let mut erased = <dyn erased_serde::Deserializer<'de>>::erase(deserializer);
        (self.visit)(&mut erased).map_err(|e| Error::deserialize(self.serializer, e))
    }
}

/// Turns values into bytes and back. Implement it for a format of your own.
///
/// ```
/// use cache_runtime::{Cache, Error, Serializer, Sink, Ttl};
///
/// /// Pretty-printed JSON, for caches people read by hand.
/// struct PrettyJson;
///
/// impl Serializer for PrettyJson {
///     fn name(&self) -> &str { "pretty_json" }
///     fn serialize(&self, value: &dyn cache_runtime::erased_serde::Serialize) -> Result<Vec<u8>, Error> {
///         serde_json::to_vec_pretty(value).map_err(|e| Error::serialize(self.name(), e))
///     }
///     fn deserialize(&self, bytes: &[u8], sink: Sink<'_>) -> Result<(), Error> {
///         sink.feed(&mut serde_json::Deserializer::from_slice(bytes))
///     }
/// }
///
/// let cache = Cache::builder().serializer(PrettyJson).build().unwrap();
/// cache.set("k", &vec![1, 2], Ttl::Default).unwrap();
/// assert_eq!(cache.get::<Vec<i32>>("k").unwrap(), Some(vec![1, 2]));
/// ```
pub trait Serializer: Send + Sync + 'static {
    /// A short name used in errors and configs.
    fn name(&self) -> &str;

    /// Encodes a value.
    fn serialize(&self, value: &dyn erased_serde::Serialize) -> Result<Vec<u8>>;

    /// Decodes `bytes` by feeding a deserializer for them to `sink`.
    fn deserialize(&self, bytes: &[u8], sink: Sink<'_>) -> Result<()>;

    /// True for a serializer that keeps typed values as they are (only [`NullSerializer`]).
    fn stores_objects(&self) -> bool {
        false
    }
}

/// Encodes `value` with `serializer`.
pub(crate) fn encode<T: Serialize + ?Sized>(
    serializer: &dyn Serializer,
    value: &T,
) -> Result<Vec<u8>> {
    serializer.serialize(&value as &dyn erased_serde::Serialize)
}

/// Decodes a `T` from `bytes` with `serializer`.
pub(crate) fn decode<T: DeserializeOwned>(serializer: &dyn Serializer, bytes: &[u8]) -> Result<T> {
    let mut out: Option<T> = None;
    let mut visit = |d: &mut dyn erased_serde::Deserializer<'_>| {
        out = Some(erased_serde::deserialize::<T>(d)?);
        Ok(())
    };
    serializer.deserialize(
        bytes,
        Sink {
            visit: &mut visit,
            serializer: serializer.name(),
        },
    )?;
    out.ok_or_else(|| Error::deserialize(serializer.name(), "the serializer produced no value"))
}

/// Keeps the typed value itself, returned by clone on a hit: the memory backend's default.
///
/// Only the memory backend can hold objects; configuring it for another backend is a config error.
/// Bytes found under a key (for example a counter made by `increment`) are read as plain text.
///
/// ```
/// use cache_runtime::{Cache, NullSerializer, Ttl};
///
/// #[derive(Clone, serde::Serialize, serde::Deserialize, PartialEq, Debug)]
/// struct User { name: String }
///
/// let cache = Cache::builder().serializer(NullSerializer).build().unwrap();
/// cache.set("u", &User { name: "ann".into() }, Ttl::Default).unwrap();
/// assert_eq!(cache.get::<User>("u").unwrap().unwrap().name, "ann");
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct NullSerializer;

impl Serializer for NullSerializer {
    fn name(&self) -> &str {
        "null"
    }
    fn serialize(&self, value: &dyn erased_serde::Serialize) -> Result<Vec<u8>> {
        StringSerializer.serialize(value)
    }
    fn deserialize(&self, bytes: &[u8], sink: Sink<'_>) -> Result<()> {
        StringSerializer.deserialize(bytes, sink)
    }
    fn stores_objects(&self) -> bool {
        true
    }
}

/// Plain text: strings as they are, numbers, booleans, chars and unit enum variants as their text form.
///
/// The analog of aiocache's `StringSerializer`; values that are not scalars (structs, lists, `None`) are a
/// [`Error::Serialize`].
///
/// ```
/// use cache_runtime::{Cache, StringSerializer, Ttl};
///
/// let cache = Cache::builder().serializer(StringSerializer).build().unwrap();
/// cache.set("n", &42u32, Ttl::Default).unwrap();
/// assert_eq!(cache.get::<String>("n").unwrap().as_deref(), Some("42"));
/// assert_eq!(cache.get::<u32>("n").unwrap(), Some(42));
/// assert!(cache.set("v", &vec![1], Ttl::Default).is_err());
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct StringSerializer;

impl Serializer for StringSerializer {
    fn name(&self) -> &str {
        "string"
    }
    fn serialize(&self, value: &dyn erased_serde::Serialize) -> Result<Vec<u8>> {
        serde_plain::to_string(&value)
            .map(String::into_bytes)
            .map_err(|e| Error::serialize(self.name(), e))
    }
    fn deserialize(&self, bytes: &[u8], sink: Sink<'_>) -> Result<()> {
        let text = std::str::from_utf8(bytes).map_err(|e| {
            Error::deserialize(self.name(), format!("stored bytes are not UTF-8: {e}"))
        })?;
        sink.feed(serde_plain::Deserializer::new(text))
    }
}

/// JSON via serde_json: the Redis, Memcached and disk default, readable by aiocache's `JsonSerializer`.
///
/// ```
/// use cache_runtime::{Cache, JsonSerializer, Ttl};
///
/// let cache = Cache::builder().serializer(JsonSerializer).build().unwrap();
/// cache.set("k", &serde_json::json!({"a": [1, 2]}), Ttl::Default).unwrap();
/// assert_eq!(cache.get::<serde_json::Value>("k").unwrap().unwrap()["a"][1], 2);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct JsonSerializer;

impl Serializer for JsonSerializer {
    fn name(&self) -> &str {
        "json"
    }
    fn serialize(&self, value: &dyn erased_serde::Serialize) -> Result<Vec<u8>> {
        serde_json::to_vec(value).map_err(|e| Error::serialize(self.name(), e))
    }
    fn deserialize(&self, bytes: &[u8], sink: Sink<'_>) -> Result<()> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        sink.feed(&mut de)?;
        de.end().map_err(|e| Error::deserialize(self.name(), e))
    }
}

/// MessagePack via rmp-serde (structs as maps, so fields can be added later).
///
/// ```
/// use cache_runtime::{Cache, MsgPackSerializer, Ttl};
///
/// let cache = Cache::builder().serializer(MsgPackSerializer).build().unwrap();
/// cache.set("k", &(1u8, "two".to_string()), Ttl::Default).unwrap();
/// assert_eq!(cache.get::<(u8, String)>("k").unwrap(), Some((1, "two".into())));
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct MsgPackSerializer;

impl Serializer for MsgPackSerializer {
    fn name(&self) -> &str {
        "msgpack"
    }
    fn serialize(&self, value: &dyn erased_serde::Serialize) -> Result<Vec<u8>> {
        rmp_serde::to_vec_named(value).map_err(|e| Error::serialize(self.name(), e))
    }
    fn deserialize(&self, bytes: &[u8], sink: Sink<'_>) -> Result<()> {
        let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
        sink.feed(&mut de)
    }
}

/// A compact binary form (postcard): the safe analog of Python's pickle.
///
/// Reading never executes anything and never allocates more than the stored bytes describe, so values from
/// an untrusted cache can at worst fail to decode.
///
/// ```
/// use cache_runtime::{BinarySerializer, Cache, Ttl};
///
/// let cache = Cache::builder().serializer(BinarySerializer).build().unwrap();
/// cache.set("k", &vec![1u64, 2, 3], Ttl::Default).unwrap();
/// assert_eq!(cache.get::<Vec<u64>>("k").unwrap(), Some(vec![1, 2, 3]));
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct BinarySerializer;

impl Serializer for BinarySerializer {
    fn name(&self) -> &str {
        "binary"
    }
    fn serialize(&self, value: &dyn erased_serde::Serialize) -> Result<Vec<u8>> {
        postcard::to_stdvec(value).map_err(|e| Error::serialize(self.name(), e))
    }
    fn deserialize(&self, bytes: &[u8], sink: Sink<'_>) -> Result<()> {
        let mut de = postcard::Deserializer::from_bytes(bytes);
        sink.feed(&mut de)?;
        match de.finalize() {
            Ok([]) => Ok(()),
            Ok(rest) => Err(Error::deserialize(
                self.name(),
                format!("{} trailing bytes after the value", rest.len()),
            )),
            Err(e) => Err(Error::deserialize(self.name(), e)),
        }
    }
}

/// LZ4 compression (lz4_flex) around any serializer.
///
/// ```
/// use cache_runtime::{Cache, Compressed, JsonSerializer, Ttl};
///
/// let cache = Cache::builder().serializer(Compressed::lz4(JsonSerializer)).build().unwrap();
/// let text = "all work and no play ".repeat(100);
/// cache.set("k", &text, Ttl::Default).unwrap();
/// assert_eq!(cache.get::<String>("k").unwrap(), Some(text.clone()));
/// let stored = cache.get_stored("k").unwrap().unwrap();
/// assert!(stored.as_bytes().unwrap().len() < text.len() / 5);
/// ```
#[derive(Clone)]
pub struct Compressed {
    inner: Arc<dyn Serializer>,
    name: String,
}

impl Compressed {
    /// Compresses what `inner` produces with LZ4 (size-prefixed block format).
    pub fn lz4(inner: impl Serializer) -> Self {
        Self::lz4_shared(Arc::new(inner))
    }

    /// Like [`Compressed::lz4`] for a shared serializer.
    pub fn lz4_shared(inner: Arc<dyn Serializer>) -> Self {
        let name = format!("lz4+{}", inner.name());
        Compressed { inner, name }
    }
}

impl std::fmt::Debug for Compressed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compressed")
            .field("name", &self.name)
            .finish()
    }
}

impl Serializer for Compressed {
    fn name(&self) -> &str {
        &self.name
    }
    fn serialize(&self, value: &dyn erased_serde::Serialize) -> Result<Vec<u8>> {
        let plain = self.inner.serialize(value)?;
        Ok(lz4_flex::compress_prepend_size(&plain))
    }
    fn deserialize(&self, bytes: &[u8], sink: Sink<'_>) -> Result<()> {
        // LZ4 expands at most ~255x; a larger size prefix is corrupt or hostile, so it must not drive an
        // allocation.
        let claimed = bytes
            .get(..4)
            .map(|p| u32::from_le_bytes([p[0], p[1], p[2], p[3]]) as usize)
            .ok_or_else(|| {
                Error::deserialize(&self.name, "not LZ4 data: shorter than its size prefix")
            })?;
        if claimed > bytes.len().saturating_mul(255).saturating_add(64) {
            return Err(Error::deserialize(
                &self.name,
                format!(
                    "not LZ4 data: claims {claimed} bytes from {} stored",
                    bytes.len()
                ),
            ));
        }
        let plain = lz4_flex::decompress_size_prepended(bytes)
            .map_err(|e| Error::deserialize(&self.name, format!("not LZ4 data: {e}")))?;
        self.inner.deserialize(&plain, sink)
    }
}
