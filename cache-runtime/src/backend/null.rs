//! A backend that stores nothing: every read misses, every write is accepted and dropped.

use std::time::Duration;

use crate::backend::{Backend, CallOptions};
use crate::error::Result;
use crate::value::{CasToken, RawReply, Value};

/// Stores nothing. What `CACHE_DISABLE=1` swaps in for every backend, and useful to switch caching off per
/// alias (`{"cache": "null"}`).
///
/// `increment` returns `delta` (an absent key starts at 0, and every key is absent).
///
/// ```
/// use cache_runtime::{Cache, NullBackend, Ttl};
///
/// let cache = Cache::builder().backend(NullBackend).build().unwrap();
/// cache.set("k", &1, Ttl::Default).unwrap();
/// assert_eq!(cache.get::<i32>("k").unwrap(), None);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct NullBackend;

impl Backend for NullBackend {
    fn name(&self) -> &str {
        "null"
    }
    fn stores_objects(&self) -> bool {
        true
    }
    fn default_timeout(&self) -> Option<Duration> {
        None
    }
    fn get(&self, _key: &str, _opts: &CallOptions) -> Result<Option<Value>> {
        Ok(None)
    }
    fn multi_get(&self, keys: &[&str], _opts: &CallOptions) -> Result<Vec<Option<Value>>> {
        Ok(vec![None; keys.len()])
    }
    fn set(
        &self,
        _key: &str,
        _value: Value,
        _ttl: Option<Duration>,
        _opts: &CallOptions,
    ) -> Result<()> {
        Ok(())
    }
    fn multi_set(
        &self,
        _entries: Vec<(&str, Value)>,
        _ttl: Option<Duration>,
        _opts: &CallOptions,
    ) -> Result<()> {
        Ok(())
    }
    fn add(
        &self,
        _key: &str,
        _value: Value,
        _ttl: Option<Duration>,
        _opts: &CallOptions,
    ) -> Result<bool> {
        Ok(true)
    }
    fn exists(&self, _key: &str, _opts: &CallOptions) -> Result<bool> {
        Ok(false)
    }
    fn increment(&self, _key: &str, delta: i64, _opts: &CallOptions) -> Result<i64> {
        Ok(delta)
    }
    fn delete(&self, _key: &str, _opts: &CallOptions) -> Result<u64> {
        Ok(0)
    }
    fn expire(&self, _key: &str, _ttl: Option<Duration>, _opts: &CallOptions) -> Result<bool> {
        Ok(false)
    }
    fn clear(&self, _prefix: Option<&str>, _opts: &CallOptions) -> Result<u64> {
        Ok(0)
    }
    fn keys(&self, _pattern: &str, _opts: &CallOptions) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
    fn raw(&self, _command: &str, _args: &[Vec<u8>], _opts: &CallOptions) -> Result<RawReply> {
        Ok(RawReply::Nil)
    }
    fn get_versioned(&self, _key: &str, _opts: &CallOptions) -> Result<(Option<Value>, CasToken)> {
        Ok((None, CasToken::Absent))
    }
    fn compare_and_set(
        &self,
        _key: &str,
        _expected: &CasToken,
        _value: Value,
        _ttl: Option<Duration>,
        _opts: &CallOptions,
    ) -> Result<bool> {
        Ok(true)
    }
    fn compare_and_delete(
        &self,
        _key: &str,
        _expected: &[u8],
        _opts: &CallOptions,
    ) -> Result<bool> {
        Ok(false)
    }
}
