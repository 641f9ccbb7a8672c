//! Configuration shapes: typed builders in code, deserializable from JSON/TOML in the shape of aiocache's
//! config dict, and buildable from URLs.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize};

use crate::cache::Cache;
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::key::KeyBuilder;
use crate::registry;

/// A configuration value of any self-describing format (JSON, TOML, YAML, ...).
#[derive(Clone, Debug, PartialEq)]
pub enum ConfigValue {
    /// null / none
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    String(String),
    /// A list.
    List(Vec<ConfigValue>),
    /// A map.
    Map(BTreeMap<String, ConfigValue>),
}

impl ConfigValue {
    /// The kind of value, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            ConfigValue::Null => "null",
            ConfigValue::Bool(_) => "a boolean",
            ConfigValue::Int(_) => "an integer",
            ConfigValue::Float(_) => "a float",
            ConfigValue::String(_) => "a string",
            ConfigValue::List(_) => "a list",
            ConfigValue::Map(_) => "a map",
        }
    }

    /// Kind and value, for error messages.
    pub fn describe(&self) -> String {
        match self {
            ConfigValue::Int(i) => format!("{i}"),
            ConfigValue::Float(f) => format!("{f}"),
            ConfigValue::String(s) => format!("{s:?}"),
            other => other.kind().to_string(),
        }
    }

    /// A positive number of seconds.
    pub(crate) fn as_secs(&self) -> std::result::Result<Duration, String> {
        let secs = match self {
            ConfigValue::Int(i) => *i as f64,
            ConfigValue::Float(f) => *f,
            other => {
                return Err(format!(
                    "expected seconds as a number, found {}",
                    other.kind()
                ))
            }
        };
        if !secs.is_finite() || secs <= 0.0 {
            return Err(format!(
                "expected a positive number of seconds, found {}",
                self.describe()
            ));
        }
        Duration::try_from_secs_f64(secs).map_err(|e| e.to_string())
    }

    /// Parses a URL query value: integer, float, boolean, or string.
    fn from_query(value: &str) -> ConfigValue {
        if let Ok(i) = value.parse::<i64>() {
            ConfigValue::Int(i)
        } else if let Ok(f) = value.parse::<f64>() {
            ConfigValue::Float(f)
        } else if let Ok(b) = value.parse::<bool>() {
            ConfigValue::Bool(b)
        } else {
            ConfigValue::String(value.to_string())
        }
    }
}

impl From<&str> for ConfigValue {
    fn from(v: &str) -> Self {
        ConfigValue::String(v.to_string())
    }
}
impl From<String> for ConfigValue {
    fn from(v: String) -> Self {
        ConfigValue::String(v)
    }
}
impl From<i64> for ConfigValue {
    fn from(v: i64) -> Self {
        ConfigValue::Int(v)
    }
}
impl From<u16> for ConfigValue {
    fn from(v: u16) -> Self {
        ConfigValue::Int(i64::from(v))
    }
}
impl From<u32> for ConfigValue {
    fn from(v: u32) -> Self {
        ConfigValue::Int(i64::from(v))
    }
}
impl From<usize> for ConfigValue {
    fn from(v: usize) -> Self {
        ConfigValue::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}
impl From<f64> for ConfigValue {
    fn from(v: f64) -> Self {
        ConfigValue::Float(v)
    }
}
impl From<bool> for ConfigValue {
    fn from(v: bool) -> Self {
        ConfigValue::Bool(v)
    }
}
impl<T: Into<ConfigValue>> From<Vec<T>> for ConfigValue {
    fn from(v: Vec<T>) -> Self {
        ConfigValue::List(v.into_iter().map(Into::into).collect())
    }
}

impl<'de> Deserialize<'de> for ConfigValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct AnyVisitor;
        impl<'de> Visitor<'de> for AnyVisitor {
            type Value = ConfigValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a configuration value")
            }
            fn visit_unit<E>(self) -> std::result::Result<ConfigValue, E> {
                Ok(ConfigValue::Null)
            }
            fn visit_none<E>(self) -> std::result::Result<ConfigValue, E> {
                Ok(ConfigValue::Null)
            }
            fn visit_some<D: Deserializer<'de>>(
                self,
                d: D,
            ) -> std::result::Result<ConfigValue, D::Error> {
                ConfigValue::deserialize(d)
            }
            fn visit_bool<E>(self, v: bool) -> std::result::Result<ConfigValue, E> {
                Ok(ConfigValue::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> std::result::Result<ConfigValue, E> {
                Ok(ConfigValue::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<ConfigValue, E> {
                i64::try_from(v)
                    .map(ConfigValue::Int)
                    .map_err(|_| E::custom(format!("integer {v} is too large")))
            }
            fn visit_f64<E>(self, v: f64) -> std::result::Result<ConfigValue, E> {
                Ok(ConfigValue::Float(v))
            }
            fn visit_str<E>(self, v: &str) -> std::result::Result<ConfigValue, E> {
                Ok(ConfigValue::String(v.to_string()))
            }
            fn visit_string<E>(self, v: String) -> std::result::Result<ConfigValue, E> {
                Ok(ConfigValue::String(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<ConfigValue, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(ConfigValue::List(items))
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<ConfigValue, A::Error> {
                let mut out = BTreeMap::new();
                while let Some((k, v)) = map.next_entry::<String, ConfigValue>()? {
                    out.insert(k, v);
                }
                Ok(ConfigValue::Map(out))
            }
        }
        deserializer.deserialize_any(AnyVisitor)
    }
}

impl Serialize for ConfigValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            ConfigValue::Null => s.serialize_unit(),
            ConfigValue::Bool(b) => s.serialize_bool(*b),
            ConfigValue::Int(i) => s.serialize_i64(*i),
            ConfigValue::Float(f) => s.serialize_f64(*f),
            ConfigValue::String(v) => s.serialize_str(v),
            ConfigValue::List(items) => s.collect_seq(items),
            ConfigValue::Map(map) => s.collect_map(map),
        }
    }
}

/// Which serializer an alias uses: `{"class": "json"}`, optionally `{"class": "json", "compression": "lz4"}`.
///
/// Classes: `null`, `string`, `json`, `msgpack`, `binary`, any registered with
/// [`caches::register_serializer`](crate::caches::register_serializer), and aiocache's class paths
/// (`aiocache.serializers.JsonSerializer`, ...; `PickleSerializer` maps to `binary`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SerializerConfig {
    /// The serializer's name.
    pub class: String,
    /// `lz4` to compress what the serializer produces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
}

impl SerializerConfig {
    /// A serializer by name.
    ///
    /// ```
    /// let s = cache_runtime::SerializerConfig::new("json").compressed("lz4");
    /// assert_eq!(s.compression.as_deref(), Some("lz4"));
    /// ```
    pub fn new(class: impl Into<String>) -> Self {
        SerializerConfig {
            class: class.into(),
            compression: None,
        }
    }

    /// Compresses with the named codec (`lz4`).
    pub fn compressed(mut self, codec: impl Into<String>) -> Self {
        self.compression = Some(codec.into());
        self
    }
}

/// A plugin of an alias: `{"class": "hit_miss_ratio"}` or `{"class": "timing"}` (or a registered name, or
/// aiocache's class paths).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// The plugin's name.
    pub class: String,
}

impl PluginConfig {
    /// A plugin by name.
    ///
    /// ```
    /// let p = cache_runtime::PluginConfig::new("timing");
    /// assert_eq!(p.class, "timing");
    /// ```
    pub fn new(class: impl Into<String>) -> Self {
        PluginConfig {
            class: class.into(),
        }
    }
}

/// The configuration of one alias: which backend (`cache`), its options, and the cache's settings.
///
/// ```
/// use cache_runtime::{AliasConfig, PluginConfig, SerializerConfig};
///
/// let redis = AliasConfig::new("redis")
///     .option("endpoint", "127.0.0.1")
///     .option("port", 6379u16)
///     .namespace("main")
///     .timeout_secs(1.0)
///     .serializer(SerializerConfig::new("binary"))
///     .plugin(PluginConfig::new("hit_miss_ratio"));
/// assert_eq!(redis.cache, "redis");
/// ```
#[derive(Clone, Default)]
pub struct AliasConfig {
    /// The backend's registered name (`memory`, `null`, `redis`, `memcached`, `disk`, or your own).
    pub cache: String,
    /// Keys are stored as `{namespace}:{key}`.
    pub namespace: Option<String>,
    /// Default TTL of writes.
    pub ttl: Option<Duration>,
    /// Per-command timeout.
    pub timeout: Option<Duration>,
    /// The serializer (the backend's natural one when absent).
    pub serializer: Option<SerializerConfig>,
    /// Plugins, in hook order.
    pub plugins: Vec<PluginConfig>,
    /// Backend-specific options (`endpoint`, `port`, `max_entries`, `path`, ...).
    pub options: BTreeMap<String, ConfigValue>,
    /// A clock for expiry, code-only (tests).
    pub clock: Option<Arc<dyn Clock>>,
    /// A custom key builder, code-only.
    pub key_builder: Option<KeyBuilder>,
}

/// Option names whose values are never shown.
const SECRET_FIELDS: [&str; 2] = ["password", "url"];

impl fmt::Debug for AliasConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let options: BTreeMap<&str, String> = self
            .options
            .iter()
            .map(|(k, v)| {
                let shown = if SECRET_FIELDS.contains(&k.as_str()) {
                    "<redacted>".to_string()
                } else {
                    v.describe()
                };
                (k.as_str(), shown)
            })
            .collect();
        f.debug_struct("AliasConfig")
            .field("cache", &self.cache)
            .field("namespace", &self.namespace)
            .field("ttl", &self.ttl)
            .field("timeout", &self.timeout)
            .field("serializer", &self.serializer)
            .field("plugins", &self.plugins)
            .field("options", &options)
            .field("clock", &self.clock.is_some())
            .field("key_builder", &self.key_builder.is_some())
            .finish()
    }
}

impl AliasConfig {
    /// An alias on the named backend.
    pub fn new(cache: impl Into<String>) -> Self {
        AliasConfig {
            cache: cache.into(),
            ..AliasConfig::default()
        }
    }

    /// An alias on the memory backend.
    ///
    /// ```
    /// assert_eq!(cache_runtime::AliasConfig::memory().cache, "memory");
    /// ```
    pub fn memory() -> Self {
        Self::new("memory")
    }

    /// Sets the namespace.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// Sets the default TTL.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Sets the per-command timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets the per-command timeout in (fractional) seconds.
    pub fn timeout_secs(self, secs: f64) -> Self {
        self.timeout(Duration::from_secs_f64(secs.max(0.0)))
    }

    /// Sets the serializer.
    pub fn serializer(mut self, serializer: SerializerConfig) -> Self {
        self.serializer = Some(serializer);
        self
    }

    /// Adds a plugin.
    pub fn plugin(mut self, plugin: PluginConfig) -> Self {
        self.plugins.push(plugin);
        self
    }

    /// Sets a backend option.
    pub fn option(mut self, name: impl Into<String>, value: impl Into<ConfigValue>) -> Self {
        self.options.insert(name.into(), value.into());
        self
    }

    /// Sets the clock the backend uses for expiry.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Sets a custom key builder.
    pub fn key_builder(
        mut self,
        build: impl Fn(&str, Option<&str>) -> String + Send + Sync + 'static,
    ) -> Self {
        self.key_builder = Some(Arc::new(build));
        self
    }

    /// Parses one alias from its fields, naming `alias` and the field in every error.
    pub(crate) fn from_fields(
        alias: &str,
        mut fields: BTreeMap<String, ConfigValue>,
    ) -> Result<Self> {
        let field_error = |field: &str, msg: String| {
            Error::config(format!("alias `{alias}`: field `{field}`: {msg}"))
        };
        let cache = match fields.remove("cache") {
            Some(ConfigValue::String(s)) => s,
            Some(other) => {
                return Err(field_error(
                    "cache",
                    format!("expected a backend name, found {}", other.kind()),
                ))
            }
            None => {
                return Err(Error::config(format!(
                    "alias `{alias}`: missing field `cache`"
                )))
            }
        };
        let mut config = AliasConfig::new(registry::canonical_backend(&cache));
        if let Some(v) = fields.remove("namespace") {
            config.namespace = match v {
                ConfigValue::Null => None,
                ConfigValue::String(s) => Some(s),
                other => {
                    return Err(field_error(
                        "namespace",
                        format!("expected a string, found {}", other.kind()),
                    ))
                }
            };
        }
        for (field, slot) in [("ttl", &mut config.ttl), ("timeout", &mut config.timeout)] {
            if let Some(v) = fields.remove(field) {
                if v != ConfigValue::Null {
                    *slot = Some(v.as_secs().map_err(|m| field_error(field, m))?);
                }
            }
        }
        if let Some(v) = fields.remove("serializer") {
            config.serializer = match v {
                ConfigValue::Null => None,
                ConfigValue::String(class) => Some(SerializerConfig::new(class)),
                map @ ConfigValue::Map(_) => Some(
                    serde_json::to_value(&map)
                        .and_then(serde_json::from_value::<SerializerConfig>)
                        .map_err(|e| field_error("serializer", e.to_string()))?,
                ),
                other => {
                    return Err(field_error(
                        "serializer",
                        format!("expected a map, found {}", other.kind()),
                    ))
                }
            };
        }
        if let Some(v) = fields.remove("plugins") {
            config.plugins = match v {
                ConfigValue::Null => Vec::new(),
                ConfigValue::List(items) => items
                    .into_iter()
                    .enumerate()
                    .map(|(i, item)| {
                        serde_json::to_value(&item)
                            .and_then(serde_json::from_value::<PluginConfig>)
                            .map_err(|e| field_error(&format!("plugins[{i}]"), e.to_string()))
                    })
                    .collect::<Result<_>>()?,
                other => {
                    return Err(field_error(
                        "plugins",
                        format!("expected a list, found {}", other.kind()),
                    ))
                }
            };
        }
        config.options = fields;
        Ok(config)
    }

    /// Checks names and values without connecting anywhere: backend, option names and types, serializer,
    /// plugins, TTL.
    pub fn validate(&self, alias: &str) -> Result<()> {
        if self.ttl.is_some_and(|t| t.is_zero()) {
            return Err(Error::config(format!(
                "alias `{alias}`: field `ttl`: a TTL of zero is invalid; leave it out for values that never expire"
            )));
        }
        registry::check_backend(alias, self)?;
        if let Some(s) = &self.serializer {
            registry::make_serializer(alias, s)?;
        }
        for (i, p) in self.plugins.iter().enumerate() {
            registry::make_plugin(alias, i, p)?;
        }
        Ok(())
    }

    /// Builds a new cache from this config; `alias` names it in errors and `Debug`.
    pub fn build_cache(&self, alias: &str) -> Result<Cache> {
        self.validate(alias)?;
        let backend = registry::build_backend(alias, self)?;
        let mut builder = Cache::builder()
            .backend_shared(backend)
            .label(redact(alias));
        if let Some(s) = &self.serializer {
            builder = builder.serializer_shared(registry::make_serializer(alias, s)?);
        }
        for (i, p) in self.plugins.iter().enumerate() {
            builder = builder.plugin_shared(registry::make_plugin(alias, i, p)?);
        }
        if let Some(ns) = &self.namespace {
            builder = builder.namespace(ns.clone());
        }
        if let Some(ttl) = self.ttl {
            builder = builder.default_ttl(ttl);
        }
        if let Some(timeout) = self.timeout {
            builder = builder.timeout(Some(timeout));
        }
        if let Some(kb) = &self.key_builder {
            let kb = kb.clone();
            builder = builder.key_builder(move |k, ns| kb(k, ns));
        }
        builder.build().map_err(|e| match e {
            Error::Config(m) => Error::config(format!("alias `{alias}`: {m}")),
            other => other,
        })
    }

    /// An alias config from a URL (see [`Cache::from_url`]).
    ///
    /// ```
    /// use cache_runtime::{AliasConfig, ConfigValue};
    ///
    /// let c = AliasConfig::from_url("redis://:secret@127.0.0.1:6380/2?namespace=main&timeout=0.5").unwrap();
    /// assert_eq!(c.cache, "redis");
    /// assert_eq!(c.options["port"], ConfigValue::Int(6380));
    /// assert_eq!(c.options["db"], ConfigValue::Int(2));
    /// assert!(!format!("{c:?}").contains("secret"));
    /// ```
    pub fn from_url(url: &str) -> Result<Self> {
        let bad = |msg: String| Error::config(format!("cache URL `{}`: {msg}", redact(url)));
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("expected `scheme://...`".into()))?;
        let scheme = scheme.to_ascii_lowercase();
        // Several servers (`memcached://a:1,b:2`) are not a URL authority; take them apart first.
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let mut servers = None;
        let parse_target = if rest[..authority_end].contains(',') {
            servers = Some(
                rest[..authority_end]
                    .split(',')
                    .map(|s| ConfigValue::String(s.trim().to_string()))
                    .collect::<Vec<_>>(),
            );
            format!("{scheme}://placeholder{}", &rest[authority_end..])
        } else {
            url.to_string()
        };
        let parsed = url::Url::parse(&parse_target).map_err(|e| bad(e.to_string()))?;
        let mut fields = BTreeMap::new();
        fields.insert("cache".to_string(), ConfigValue::String(scheme.clone()));
        if let Some(servers) = servers {
            fields.insert("servers".into(), ConfigValue::List(servers));
        } else if let Some(host) = parsed.host_str().filter(|h| !h.is_empty()) {
            fields.insert("endpoint".into(), host.trim_matches(['[', ']']).into());
        }
        if let Some(port) = parsed.port() {
            fields.insert("port".into(), port.into());
        }
        if !parsed.username().is_empty() {
            fields.insert("username".into(), decode_url_part(parsed.username()).into());
        }
        if let Some(password) = parsed.password() {
            fields.insert("password".into(), decode_url_part(password).into());
        }
        let path = parsed.path();
        if !path.is_empty() && path != "/" {
            match scheme.as_str() {
                "redis" | "rediss" => {
                    let db = path.trim_start_matches('/');
                    let db: i64 = db
                        .parse()
                        .map_err(|_| bad(format!("database `{db}` is not a number")))?;
                    fields.insert("db".into(), db.into());
                }
                _ => {
                    fields.insert("path".into(), decode_url_part(path).into());
                }
            }
        }
        if scheme == "rediss" {
            fields.insert("cache".into(), "redis".into());
            fields.insert("tls".into(), true.into());
        }
        for (k, v) in parsed.query_pairs() {
            let value = match k.as_ref() {
                "namespace" => ConfigValue::String(v.to_string()),
                "serializer" => {
                    ConfigValue::Map(BTreeMap::from([("class".to_string(), v.as_ref().into())]))
                }
                _ => ConfigValue::from_query(&v),
            };
            fields.insert(k.to_string(), value);
        }
        AliasConfig::from_fields("<url>", fields)
    }

    fn to_fields(&self) -> BTreeMap<String, ConfigValue> {
        let mut out = self.options.clone();
        out.insert("cache".into(), self.cache.clone().into());
        if let Some(ns) = &self.namespace {
            out.insert("namespace".into(), ns.clone().into());
        }
        if let Some(t) = self.ttl {
            out.insert("ttl".into(), t.as_secs_f64().into());
        }
        if let Some(t) = self.timeout {
            out.insert("timeout".into(), t.as_secs_f64().into());
        }
        if let Some(s) = &self.serializer {
            let mut map = BTreeMap::from([("class".to_string(), s.class.clone().into())]);
            if let Some(c) = &s.compression {
                map.insert("compression".into(), c.clone().into());
            }
            out.insert("serializer".into(), ConfigValue::Map(map));
        }
        if !self.plugins.is_empty() {
            let plugins = self
                .plugins
                .iter()
                .map(|p| {
                    ConfigValue::Map(BTreeMap::from([(
                        "class".to_string(),
                        p.class.clone().into(),
                    )]))
                })
                .collect();
            out.insert("plugins".into(), ConfigValue::List(plugins));
        }
        out
    }
}

fn decode_url_part(part: &str) -> String {
    url::form_urlencoded::parse(format!("x={part}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| part.to_string())
}

/// The URL, node or label without its password: the userinfo before the last `@` (with or without a
/// `scheme://`; a user name before a `:` is kept) and the values of `pass=`/`password=` query parameters
/// become `<redacted>`. When in doubt (an `@` inside a query value) it hides more, never less.
pub(crate) fn redact(text: &str) -> String {
    // Query parameters whose values are secrets (`redis+unix:///sock?pass=..` carries the password there).
    const SECRET_PARAMS: [&str; 4] = ["pass", "password", "passwd", "pwd"];
    // Byte ranges to hide; every bound sits next to an ASCII delimiter, so on a char boundary.
    let mut hidden: Vec<(usize, usize)> = vec![];
    let start = text.find("://").map_or(0, |i| i + 3);
    if let Some(at) = text.rfind('@').filter(|&at| at >= start) {
        let userinfo = &text[start..at];
        let keep = match userinfo.split_once(':') {
            Some((user, _)) if !user.contains(['/', '?', '&', ';', '#']) => user.len() + 1,
            _ => 0,
        };
        hidden.push((start + keep, at));
    }
    for (i, _) in text.match_indices(['?', '&', ';']) {
        let param = &text[i + 1..];
        let param_end = param.find(['&', ';', '#']).unwrap_or(param.len());
        if let Some((name, _)) = param[..param_end].split_once('=') {
            if SECRET_PARAMS.iter().any(|p| name.eq_ignore_ascii_case(p)) {
                let value = i + 1 + name.len() + 1;
                hidden.push((value, i + 1 + param_end));
            }
        }
    }
    hidden.sort_unstable();
    let mut out = String::with_capacity(text.len());
    let mut shown_from = 0;
    for (from, to) in hidden {
        if to <= shown_from {
            continue;
        }
        if from >= shown_from {
            out.push_str(&text[shown_from..from]);
            out.push_str("<redacted>");
        }
        shown_from = to;
    }
    out.push_str(&text[shown_from..]);
    out
}

/// The alias table: alias name to [`AliasConfig`]. The `default` alias is required.
///
/// Deserializes from the shape of aiocache's config dict:
///
/// ```
/// use cache_runtime::Config;
///
/// let config = Config::from_json(r#"{
///     "default": {"cache": "memory"},
///     "redis_alt": {"cache": "redis", "endpoint": "127.0.0.1", "port": 6379, "timeout": 1,
///                   "namespace": "main", "serializer": {"class": "binary"},
///                   "plugins": [{"class": "hit_miss_ratio"}, {"class": "timing"}]}
/// }"#).unwrap();
/// assert_eq!(config.get("redis_alt").unwrap().namespace.as_deref(), Some("main"));
///
/// let toml = Config::from_toml("[default]\ncache = \"memory\"\nmax_entries = 100\n").unwrap();
/// assert!(toml.get("default").is_some());
///
/// let err = Config::from_json(r#"{"default": {"cache": "memory", "ttl": "soon"}}"#).unwrap_err();
/// assert!(err.to_string().contains("alias `default`: field `ttl`"));
/// ```
#[derive(Clone, Debug, Default)]
pub struct Config {
    aliases: BTreeMap<String, AliasConfig>,
}

impl Config {
    /// An empty table (add at least `default` before using it).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces an alias.
    pub fn alias(mut self, name: impl Into<String>, config: AliasConfig) -> Self {
        self.aliases.insert(name.into(), config);
        self
    }

    /// Sets `default`.
    pub fn default_alias(self, config: AliasConfig) -> Self {
        self.alias("default", config)
    }

    /// Looks one alias up.
    pub fn get(&self, name: &str) -> Option<&AliasConfig> {
        self.aliases.get(name)
    }

    /// The alias names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.aliases.keys().map(String::as_str)
    }

    /// Every alias.
    pub fn aliases(&self) -> &BTreeMap<String, AliasConfig> {
        &self.aliases
    }

    pub(crate) fn insert(&mut self, name: String, config: AliasConfig) {
        self.aliases.insert(name, config);
    }

    /// Parses JSON.
    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| Error::config(strip_position(e.to_string())))
    }

    /// Parses TOML (one table per alias).
    pub fn from_toml(text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| Error::config(e.message().to_string()))
    }

    /// Checks the whole table: `default` present and every alias valid.
    pub fn validate(&self) -> Result<()> {
        if !self.aliases.contains_key("default") {
            return Err(Error::config(
                "the `default` alias is required (e.g. {\"default\": {\"cache\": \"memory\"}})",
            ));
        }
        self.aliases
            .iter()
            .try_for_each(|(name, c)| c.validate(name))
    }
}

fn strip_position(message: String) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message,
    }
}

impl<'de> Deserialize<'de> for Config {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let raw = BTreeMap::<String, ConfigValue>::deserialize(deserializer)?;
        let mut aliases = BTreeMap::new();
        for (alias, value) in raw {
            let fields = match value {
                ConfigValue::Map(m) => m,
                other => {
                    return Err(de::Error::custom(format!(
                        "alias `{alias}`: expected a map of fields, found {}",
                        other.kind()
                    )))
                }
            };
            let config = AliasConfig::from_fields(&alias, fields).map_err(|e| match e {
                Error::Config(m) => de::Error::custom(m),
                other => de::Error::custom(other),
            })?;
            aliases.insert(alias, config);
        }
        Ok(Config { aliases })
    }
}

impl Serialize for Config {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.aliases.len()))?;
        for (name, alias) in &self.aliases {
            map.serialize_entry(name, &alias.to_fields())?;
        }
        map.end()
    }
}

impl Serialize for AliasConfig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.to_fields().serialize(s)
    }
}
