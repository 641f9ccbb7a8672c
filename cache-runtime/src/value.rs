//! What backends store and return.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

/// A stored value as a backend sees it.
///
/// Network and disk backends only ever hold [`Value::Bytes`]. The memory backend with the
/// [`NullSerializer`](crate::NullSerializer) holds [`Value::Object`]: the typed value itself, returned by clone,
/// so a hit does no serialization at all.
#[derive(Clone)]
pub enum Value {
    /// Serialized bytes.
    Bytes(Vec<u8>),
    /// A typed value, shared.
    Object(Arc<dyn Any + Send + Sync>),
}

impl Value {
    /// The bytes, if this is a byte value.
    ///
    /// ```
    /// use cache_runtime::Value;
    /// assert_eq!(Value::Bytes(b"x".to_vec()).as_bytes(), Some(&b"x"[..]));
    /// ```
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            Value::Object(_) => None,
        }
    }

    /// The bytes, or for an object an [`Error::InvalidInput`](crate::Error::InvalidInput) naming `backend`:
    /// what backends that store only bytes answer when handed an object.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use cache_runtime::Value;
    /// assert_eq!(Value::Bytes(b"x".to_vec()).require_bytes("redis").unwrap(), b"x");
    /// assert!(Value::Object(Arc::new(1u8)).require_bytes("redis").is_err());
    /// ```
    pub fn require_bytes(&self, backend: &str) -> crate::Result<&[u8]> {
        self.as_bytes().ok_or_else(|| {
            crate::Error::InvalidInput(format!(
                "the {backend} backend stores bytes; configure a byte serializer such as `json`"
            ))
        })
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bytes(b) => match std::str::from_utf8(b) {
                Ok(s) => write!(f, "Bytes({s:?})"),
                Err(_) => write!(f, "Bytes({} bytes)", b.len()),
            },
            Value::Object(_) => f.write_str("Object(..)"),
        }
    }
}

/// A reply to [`Cache::raw`](crate::Cache::raw), shaped like a RESP reply so every backend can answer in it.
#[derive(Clone, Debug, PartialEq)]
pub enum RawReply {
    /// No value.
    Nil,
    /// An integer.
    Int(i64),
    /// Bytes.
    Bytes(Vec<u8>),
    /// A status line such as `OK`.
    Status(String),
    /// A list of replies.
    Array(Vec<RawReply>),
}

/// A version of a key as seen by [`OptimisticLock`](crate::OptimisticLock), opaque to callers.
///
/// Backends choose what identifies a version: a per-entry counter (memory), a CAS id (memcached), or the
/// stored bytes themselves (Redis, compared by a script).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CasToken {
    /// The key was absent.
    Absent,
    /// A counter or CAS id.
    Version(u64),
    /// The stored bytes.
    Bytes(Vec<u8>),
}
