//! A user-defined backend, registered by name and used through an alias config.
//!
//! Run: `cargo run --example custom_backend`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cache_runtime::{
    caches, Backend, BackendSpec, CallOptions, Config, Error, RawReply, Ttl, Value,
};
use parking_lot::Mutex;

/// An ordered in-process store that also records an audit trail of writes.
struct AuditedStore {
    entries: Mutex<BTreeMap<String, Value>>,
    audit: Mutex<Vec<String>>,
    label: String,
}

impl Backend for AuditedStore {
    fn name(&self) -> &str {
        &self.label
    }
    fn stores_objects(&self) -> bool {
        true
    }
    fn default_timeout(&self) -> Option<Duration> {
        None
    }
    fn get(&self, key: &str, _: &CallOptions) -> Result<Option<Value>, Error> {
        Ok(self.entries.lock().get(key).cloned())
    }
    fn set(
        &self,
        key: &str,
        value: Value,
        _: Option<Duration>,
        _: &CallOptions,
    ) -> Result<(), Error> {
        self.audit.lock().push(format!("set {key}"));
        self.entries.lock().insert(key.to_string(), value);
        Ok(())
    }
    fn add(
        &self,
        key: &str,
        value: Value,
        _: Option<Duration>,
        _: &CallOptions,
    ) -> Result<bool, Error> {
        let mut entries = self.entries.lock();
        if entries.contains_key(key) {
            return Ok(false);
        }
        self.audit.lock().push(format!("add {key}"));
        entries.insert(key.to_string(), value);
        Ok(true)
    }
    fn delete(&self, key: &str, _: &CallOptions) -> Result<u64, Error> {
        self.audit.lock().push(format!("delete {key}"));
        Ok(u64::from(self.entries.lock().remove(key).is_some()))
    }
    fn keys(&self, pattern: &str, _: &CallOptions) -> Result<Vec<String>, Error> {
        Ok(self
            .entries
            .lock()
            .keys()
            .filter(|k| cache_runtime::glob_match(pattern, k))
            .cloned()
            .collect())
    }
    fn raw(&self, command: &str, _: &[Vec<u8>], _: &CallOptions) -> Result<RawReply, Error> {
        match command {
            "audit" => Ok(RawReply::Array(
                self.audit
                    .lock()
                    .iter()
                    .map(|a| RawReply::Status(a.clone()))
                    .collect(),
            )),
            _ => Err(Error::unsupported(
                "raw",
                self.name(),
                "only `audit` is understood",
            )),
        }
    }
}

fn main() -> cache_runtime::Result<()> {
    caches::register_backend(
        "audited",
        BackendSpec::new(&["label"], |cfg| {
            Ok(Arc::new(AuditedStore {
                entries: Mutex::new(BTreeMap::new()),
                audit: Mutex::new(Vec::new()),
                label: cfg.str("label")?.unwrap_or("audited").to_string(),
            }))
        }),
    );
    caches::set_config(Config::from_json(
        r#"{"default": {"cache": "memory"},
            "orders": {"cache": "audited", "label": "orders-store", "namespace": "orders"}}"#,
    )?)?;

    let orders = caches::get("orders")?;
    orders.set("1001", &"pending".to_string(), Ttl::Default)?;
    orders.add("1002", &"paid".to_string(), Ttl::Default)?;
    orders.delete("1001")?;
    println!("backend: {}", orders.backend().name());
    println!("keys: {:?}", orders.keys("*")?);
    println!("1002: {:?}", orders.get::<String>("1002")?);
    println!("audit: {:?}", orders.raw::<&str>("audit", &[])?);
    // A command the backend does not implement is a clear error, not a panic.
    println!("increment: {}", orders.increment("n", 1).unwrap_err());
    Ok(())
}
