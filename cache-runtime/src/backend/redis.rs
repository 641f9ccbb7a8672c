//! The Redis backend (cargo feature `redis`): one server or a Redis Cluster, over the `redis` crate's
//! synchronous connections.
//!
//! # Commands
//!
//! | cache command | Redis |
//! |---|---|
//! | `add` | `SET key value NX PX ms` |
//! | `get` | `GET` |
//! | `multi_get` | one `MGET` (on a cluster: one `MGET` per slot, sent by the `redis` crate) |
//! | `set` | `SET key value PX ms` (plain `SET` for "never expires") |
//! | `multi_set` | one server: `MSET` + `PEXPIRE` per key in one `MULTI`/`EXEC` (just `MSET` without TTL), atomic. A cluster: one `SET .. PX` per key in one pipeline per node (without TTL one `MSET` per slot, split by the `redis` crate), **not** atomic: each key is written on its own, and a failure can leave some keys written |
//! | `exists` | `EXISTS` |
//! | `increment` | `INCRBY` ([`Error::NotAnInteger`] on a non-integer, the value untouched) |
//! | `delete` | `DEL` |
//! | `expire` | `PEXPIRE`, or `PERSIST` + `EXISTS` in one script for "never expires" |
//! | `clear` | `SCAN MATCH {namespace}:*` + `UNLINK` in batches (on every master of a cluster); `FLUSHDB` only for a cache without namespace |
//! | `keys` | `SCAN MATCH` (every master of a cluster) |
//! | `raw` | any command, e.g. `cache.raw("CONFIG", &["GET", "maxmemory"])` |
//! | `RedLock` | `SET NX PX` with a random token, Lua compare-and-delete release |
//! | `OptimisticLock` | `GET`, then a Lua compare-and-set on the stored bytes |
//!
//! # Connections
//!
//! Connections are pooled (at most `pool_max_size`, default 16) and reused without a `PING` on checkout, so a
//! `get` is exactly one round trip. The cache's timeout bounds connecting, waiting for a free connection and
//! every read and write; a command that times out is [`Error::Timeout`] and its connection is closed (a late
//! reply can never be read as the answer to the next command). A pooled connection found closed by the server
//! (a restart, an idle `timeout`) is replaced and, for the idempotent commands (`get`, `multi_get`, `set`,
//! `multi_set`, `exists`, `delete`, `expire`, `clear`, `keys`, `get_versioned`), the command is sent once
//! more on a new connection, so the same [`Cache`](crate::Cache) keeps working across server restarts. `add`,
//! `increment`, the lock scripts and `raw` are never sent twice: the server may have run them before the
//! connection closed, so such a drop is an error (the other idle connections are dropped with it, so the
//! next command gets a fresh one). A command that timed out is never re-sent.
//!
//! `raw` runs on a connection that is closed afterwards, never returned to the pool: a command such as
//! `SELECT`, `MULTI`, `WATCH`, `CLIENT REPLY`, `HELLO`, `AUTH`, `READONLY` or `SUBSCRIBE` changes the
//! connection's state, and no later command may inherit it (on a cluster the whole set of node connections
//! is closed).
//! `clear` and `keys` take one round trip per `SCAN` step; the timeout bounds each of them.
//!
//! The password is never shown: not in `Debug`, not in errors, not in logs.
//!
//! # Configuration
//!
//! Alias options: `endpoint` (default `127.0.0.1`), `port` (6379), `db` (0), `username` (ACL user),
//! `password`, `tls` (bool; `ssl` as in aiocache), `tls_ca_file` (PEM roots instead of the system's),
//! `tls_cert_file` + `tls_key_file` (client certificate), `url` (a `redis://`, `rediss://` or
//! `redis+unix://` URL instead of the fields above), `cluster` (bool), `nodes` (cluster seed nodes as
//! `host:port`; implies `cluster`), `pool_max_size`, `create_connection_timeout` (seconds). A cache URL
//! `redis://user:password@host:port/db?namespace=..&timeout=..` sets the same fields; `rediss://` sets `tls`.
//!
//! ```no_run
//! use cache_runtime::{caches, AliasConfig, Config, Ttl};
//!
//! caches::set_config(Config::from_json(r#"{
//!     "default": {"cache": "memory"},
//!     "redis": {"cache": "redis", "endpoint": "127.0.0.1", "port": 6379, "db": 0,
//!               "timeout": 1, "namespace": "main", "pool_max_size": 32}
//! }"#).unwrap()).unwrap();
//! let cache = caches::get("redis").unwrap();
//! cache.set("greeting", &"hello".to_string(), Ttl::secs(60)).unwrap();
//! ```
//!
//! # Redis Cluster
//!
//! The same alias shape with `nodes` (or `cluster: true` next to `endpoint`/`port`) talks to a cluster
//! through the `redis` crate's cluster client: commands go to the master owning the key's slot, redirections
//! (`MOVED`/`ASK`) are followed (at most two retries per command, pausing at most 0.1 s), `MGET` and
//! `UNLINK` over keys in different slots are split per slot, and `clear`/`keys` scan every master. Only
//! database 0 exists there. `multi_set` is not atomic on a cluster (no transaction spans slots).
//!
//! Retries on a cluster: the `redis` crate's cluster client retries a command up to two times, not only
//! after `MOVED`/`ASK`, `TRYAGAIN`, `CLUSTERDOWN`, `MASTERDOWN` or `LOADING` (answers of a node that did not
//! run the command) but also after a read or write timeout (sent again at once to the same node) and after
//! a node's connection was reset or closed (reconnect, send again), when the node may have run it already.
//! That is harmless for the idempotent commands, which use it (though one of them may so take up to three
//! times the cache's timeout before failing with [`Error::Timeout`]). `add`, `increment`, the lock scripts and
//! `raw` instead run on connections of a second cluster client whose retries are off (a second pool, of
//! the same `pool_max_size`): this backend follows their `MOVED` (on a new connection, which reads the new
//! slot map) and `ASK` (`ASKING`, then the command on the target) and retries after `TRYAGAIN`-like
//! answers, at most two times, but never sends them again after a timeout or a lost connection; that is an
//! error instead, and the command ran at most once.

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use once_cell::sync::Lazy;
use parking_lot::{Condvar, Mutex};
use redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConfig, ClusterConnection};
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{
    ConnectionAddr, ConnectionInfo, ConnectionLike, ErrorKind, IntoConnectionInfo,
    RedisConnectionInfo, RedisError, RedisResult, Script,
};

use crate::backend::{increment_overflow, not_an_integer, Backend, BackendConfig, CallOptions};
use crate::error::{Error, Result};
use crate::key::escape_glob;
use crate::registry::BackendSpec;
use crate::ttl::ttl_millis;
use crate::value::{CasToken, RawReply, Value};

/// How many keys one `SCAN` step asks for, and so how many one `UNLINK` of `clear` deletes at most.
const SCAN_BATCH: usize = 1000;

/// The default bound on open connections (per cache, or per cluster connection set).
const DEFAULT_POOL_MAX_SIZE: usize = 16;

/// The option names an alias config may give a `redis` cache.
const FIELDS: &[&str] = &[
    "endpoint",
    "port",
    "db",
    "username",
    "password",
    "tls",
    "ssl",
    "tls_ca_file",
    "tls_cert_file",
    "tls_key_file",
    "url",
    "cluster",
    "nodes",
    "pool_max_size",
    "create_connection_timeout",
];

struct Scripts {
    compare_and_set: Script,
    compare_and_delete: Script,
    persist: Script,
}

static SCRIPTS: Lazy<Scripts> = Lazy::new(|| Scripts {
    // KEYS[1] key; ARGV[1] '1' when a value is expected, '0' when the key must be absent; ARGV[2] the
    // expected bytes; ARGV[3] the new value; ARGV[4] the TTL in milliseconds, '' for none.
    compare_and_set: Script::new(
        r"local current = redis.call('GET', KEYS[1])
if ARGV[1] == '1' then
  if current ~= ARGV[2] then return 0 end
elseif current then
  return 0
end
if ARGV[4] == '' then
  redis.call('SET', KEYS[1], ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
end
return 1",
    ),
    // Deletes the lock only while it still holds our token: a holder whose lease ran out cannot release
    // the next holder's lock.
    compare_and_delete: Script::new(
        r"if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0",
    ),
    // PERSIST alone answers 0 both for a missing key and for a key without TTL; `expire` must say which.
    persist: Script::new(
        r"redis.call('PERSIST', KEYS[1])
return redis.call('EXISTS', KEYS[1])",
    ),
});

/// Where the backend connects, as given (before any connection is made).
#[derive(Clone)]
enum Address {
    /// One server.
    Server(ConnectionAddr),
    /// Seed nodes of a Redis Cluster.
    Cluster(Vec<ConnectionAddr>),
}

/// Configures a [`RedisBackend`]. Nothing connects until the first command.
///
/// ```
/// use std::time::Duration;
/// use cache_runtime::{Cache, RedisBackend};
///
/// let backend = RedisBackend::builder()
///     .endpoint("127.0.0.1")
///     .port(6379)
///     .db(2)
///     .password("s3cret")
///     .pool_max_size(8)
///     .create_connection_timeout(Duration::from_secs(1))
///     .build()
///     .unwrap();
/// assert!(!format!("{backend:?}").contains("s3cret"));
/// let cache = Cache::builder().backend(backend).namespace("app").build().unwrap();
/// # let _ = cache;
/// ```
#[derive(Clone, Default)]
pub struct RedisBackendBuilder {
    endpoint: Option<String>,
    port: Option<u16>,
    db: Option<i64>,
    username: Option<String>,
    password: Option<String>,
    tls: Option<bool>,
    tls_ca_file: Option<PathBuf>,
    tls_root_cert: Option<Vec<u8>>,
    tls_cert_file: Option<PathBuf>,
    tls_key_file: Option<PathBuf>,
    tls_client_cert: Option<(Vec<u8>, Vec<u8>)>,
    url: Option<String>,
    cluster: Option<bool>,
    nodes: Vec<String>,
    pool_max_size: Option<usize>,
    create_connection_timeout: Option<Duration>,
}

impl fmt::Debug for RedisBackendBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackendBuilder")
            .field("endpoint", &self.endpoint)
            .field("port", &self.port)
            .field("db", &self.db)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("tls", &self.tls)
            .field("url", &self.url.as_deref().map(crate::config::redact))
            .field("cluster", &self.cluster)
            .field(
                "nodes",
                &self
                    .nodes
                    .iter()
                    .map(|n| crate::config::redact(n))
                    .collect::<Vec<_>>(),
            )
            .field("pool_max_size", &self.pool_max_size)
            .finish_non_exhaustive()
    }
}

/// A configuration mistake: the option it is about and what is wrong.
type Invalid = (&'static str, String);

impl RedisBackendBuilder {
    /// The server's host name or IP address (default `127.0.0.1`).
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// The server's port (default 6379).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// The database number (default 0; a cluster has only 0).
    pub fn db(mut self, db: i64) -> Self {
        self.db = Some(db);
        self
    }

    /// The ACL user name (Redis 6+); leave it out for the `default` user.
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }

    /// The password (`AUTH`). Never shown in `Debug`, errors or logs.
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// Connect over TLS (what a `rediss://` URL means). Server certificates are checked against the system's
    /// roots unless [`tls_ca_file`](Self::tls_ca_file) names others.
    pub fn tls(mut self, tls: bool) -> Self {
        self.tls = Some(tls);
        self
    }

    /// A PEM file of the certificate authorities to trust instead of the system's (read by `build`).
    pub fn tls_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.tls_ca_file = Some(path.into());
        self
    }

    /// PEM certificate authorities to trust instead of the system's.
    pub fn tls_root_cert(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_root_cert = Some(pem.into());
        self
    }

    /// A client certificate and its key, PEM files (read by `build`), for servers that require them.
    pub fn tls_client_cert_files(
        mut self,
        cert: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> Self {
        self.tls_cert_file = Some(cert.into());
        self.tls_key_file = Some(key.into());
        self
    }

    /// A client certificate and its key, PEM.
    pub fn tls_client_cert(
        mut self,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.tls_client_cert = Some((cert_pem.into(), key_pem.into()));
        self
    }

    /// Everything about the connection as one URL instead of the separate settings:
    /// `redis://[user[:password]@]host[:port][/db]`, `rediss://...` for TLS, `redis+unix:///path/to/socket`.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// Treat the endpoint (or URL) as a seed node of a Redis Cluster.
    pub fn cluster(mut self, cluster: bool) -> Self {
        self.cluster = Some(cluster);
        self
    }

    /// Seed nodes of a Redis Cluster, as `host:port` (or `redis://host:port`); implies
    /// [`cluster`](Self::cluster). Credentials and TLS come from the other settings.
    pub fn cluster_nodes<I, S>(mut self, nodes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.nodes = nodes.into_iter().map(Into::into).collect();
        self
    }

    /// At most this many connections open at once (default 16); a command finding them all busy waits for
    /// one, within its timeout. On a cluster each is a set of connections, one per node, and the commands
    /// never sent twice (`add`, `increment`, locks, `raw`) have a second pool of this size.
    pub fn pool_max_size(mut self, size: usize) -> Self {
        self.pool_max_size = Some(size);
        self
    }

    /// A bound on establishing a connection (TCP, TLS, `AUTH`, `SELECT`), on top of the command's timeout.
    pub fn create_connection_timeout(mut self, timeout: Duration) -> Self {
        self.create_connection_timeout = Some(timeout);
        self
    }

    fn validate(&self) -> std::result::Result<(), Invalid> {
        if self.url.is_some() {
            let fields = [
                ("endpoint", self.endpoint.is_some()),
                ("port", self.port.is_some()),
                ("db", self.db.is_some()),
                ("tls", self.tls.is_some()),
                ("nodes", !self.nodes.is_empty()),
            ];
            if let Some((field, _)) = fields.iter().find(|(_, set)| *set) {
                return Err((
                    field,
                    "give either `url` or the separate connection fields, not both".to_string(),
                ));
            }
        }
        if let Some(db) = self.db {
            if db < 0 {
                return Err((
                    "db",
                    format!("expected a database number of 0 or more, found {db}"),
                ));
            }
        }
        let cluster = self.is_cluster()?;
        if cluster && self.db.is_some_and(|db| db != 0) {
            return Err(("db", "a Redis Cluster has only database 0".to_string()));
        }
        if self.pool_max_size == Some(0) {
            return Err(("pool_max_size", "must be at least 1".to_string()));
        }
        if self.create_connection_timeout.is_some_and(|t| t.is_zero()) {
            return Err(("create_connection_timeout", "must be positive".to_string()));
        }
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            let field = if self.tls_cert_file.is_some() {
                "tls_key_file"
            } else {
                "tls_cert_file"
            };
            return Err((
                field,
                "`tls_cert_file` and `tls_key_file` go together".to_string(),
            ));
        }
        if self.url.is_none() && self.tls != Some(true) {
            let tls_only = [
                (
                    "tls_ca_file",
                    self.tls_ca_file.is_some() || self.tls_root_cert.is_some(),
                ),
                (
                    "tls_cert_file",
                    self.tls_cert_file.is_some() || self.tls_client_cert.is_some(),
                ),
            ];
            if let Some((field, _)) = tls_only.iter().find(|(_, set)| *set) {
                return Err((
                    field,
                    "needs `tls` set to true (or a `rediss://` url)".to_string(),
                ));
            }
        }
        for node in &self.nodes {
            parse_node(node).map_err(|m| ("nodes", m))?;
        }
        Ok(())
    }

    fn is_cluster(&self) -> std::result::Result<bool, Invalid> {
        match (self.cluster, self.nodes.is_empty()) {
            (Some(false), false) => Err((
                "nodes",
                "seed `nodes` are for a Redis Cluster, but `cluster` is false".to_string(),
            )),
            (Some(cluster), _) => Ok(cluster),
            (None, nodes_empty) => Ok(!nodes_empty),
        }
    }

    /// The server or cluster address and the handshake settings.
    fn target(&self) -> std::result::Result<(Address, RedisConnectionInfo), Invalid> {
        let (addr, mut redis) = match &self.url {
            Some(url) => {
                let info = url.as_str().into_connection_info().map_err(|e| {
                    (
                        "url",
                        format!("`{}` is not a Redis URL: {}", crate::config::redact(url), e),
                    )
                })?;
                (info.addr, info.redis)
            }
            None => {
                let host = self
                    .endpoint
                    .clone()
                    .unwrap_or_else(|| "127.0.0.1".to_string());
                let port = self.port.unwrap_or(6379);
                (
                    server_addr(host, port, self.tls == Some(true)),
                    RedisConnectionInfo::default(),
                )
            }
        };
        if let Some(db) = self.db {
            redis.db = db;
        }
        if self.username.is_some() {
            redis.username = self.username.clone();
        }
        if self.password.is_some() {
            redis.password = self.password.clone();
        }
        let address = if self.is_cluster()? {
            let tls = matches!(addr, ConnectionAddr::TcpTls { .. });
            let mut seeds = vec![];
            if self.nodes.is_empty() {
                seeds.push(addr);
            }
            for node in &self.nodes {
                let (host, port) = parse_node(node).map_err(|m| ("nodes", m))?;
                seeds.push(server_addr(host, port, tls));
            }
            if seeds.iter().any(|a| matches!(a, ConnectionAddr::Unix(_))) {
                return Err((
                    "url",
                    "a Redis Cluster is reached over TCP, not a unix socket".to_string(),
                ));
            }
            Address::Cluster(seeds)
        } else {
            Address::Server(addr)
        };
        Ok((address, redis))
    }

    fn certificates(&self) -> std::result::Result<Option<redis::TlsCertificates>, Invalid> {
        let read = |field: &'static str, path: &PathBuf| {
            std::fs::read(path)
                .map_err(|e| (field, format!("cannot read `{}`: {e}", path.display())))
        };
        let root_cert = match (&self.tls_root_cert, &self.tls_ca_file) {
            (Some(pem), _) => Some(pem.clone()),
            (None, Some(path)) => Some(read("tls_ca_file", path)?),
            (None, None) => None,
        };
        let client_tls = match (
            &self.tls_client_cert,
            &self.tls_cert_file,
            &self.tls_key_file,
        ) {
            (Some((cert, key)), _, _) => Some((cert.clone(), key.clone())),
            (None, Some(cert), Some(key)) => {
                Some((read("tls_cert_file", cert)?, read("tls_key_file", key)?))
            }
            _ => None,
        }
        .map(|(client_cert, client_key)| redis::ClientTlsConfig {
            client_cert,
            client_key,
        });
        if root_cert.is_none() && client_tls.is_none() {
            return Ok(None);
        }
        Ok(Some(redis::TlsCertificates {
            client_tls,
            root_cert,
        }))
    }

    fn build_checked(self) -> std::result::Result<RedisBackend, Invalid> {
        self.validate()?;
        let (address, redis_info) = self.target()?;
        let certificates = self.certificates()?;
        let uses_tls = match &address {
            Address::Server(a) => matches!(a, ConnectionAddr::TcpTls { .. }),
            Address::Cluster(seeds) => seeds
                .iter()
                .any(|a| matches!(a, ConnectionAddr::TcpTls { .. })),
        };
        if uses_tls {
            // rustls needs a process-wide crypto provider; install ring unless the program chose one already.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let location = describe(&address, &redis_info);
        let connector = match &address {
            Address::Server(addr) => {
                let info = ConnectionInfo {
                    addr: addr.clone(),
                    redis: redis_info.clone(),
                };
                let client = match certificates {
                    Some(certs) => redis::Client::build_with_tls(info, certs)
                        .map_err(|e| ("tls_ca_file", format!("invalid TLS certificates: {e}")))?,
                    None => redis::Client::open(info).map_err(|e| ("endpoint", e.to_string()))?,
                };
                Connector::Server(client)
            }
            Address::Cluster(seeds) => {
                let nodes: Vec<ConnectionInfo> = seeds
                    .iter()
                    .map(|addr| ConnectionInfo {
                        addr: addr.clone(),
                        redis: redis_info.clone(),
                    })
                    .collect();
                let client = |retries: u32| {
                    let mut builder = ClusterClientBuilder::new(nodes.clone())
                        .retries(retries)
                        .min_retry_wait(CLUSTER_RETRY_WAIT_MS.0)
                        .max_retry_wait(CLUSTER_RETRY_WAIT_MS.1);
                    if let Some(user) = &redis_info.username {
                        builder = builder.username(user.clone());
                    }
                    if let Some(password) = &redis_info.password {
                        builder = builder.password(password.clone());
                    }
                    if uses_tls {
                        builder = builder.tls(redis::TlsMode::Secure);
                    }
                    if let Some(certs) = &certificates {
                        builder = builder.certs(certs.clone());
                    }
                    builder
                        .build()
                        .map_err(|e| ("nodes", format!("invalid cluster settings: {e}")))
                };
                // The crate retries every command after a timeout or a reset connection, when the node
                // may have run it already: the commands never sent twice use a client without retries,
                // and this backend follows their redirections itself.
                Connector::Cluster {
                    retrying: Box::new(client(CLUSTER_RETRIES)?),
                    once: Box::new(client(0)?),
                }
            }
        };
        Ok(RedisBackend {
            connector,
            location,
            username: redis_info.username.clone(),
            password: redis_info.password.clone().filter(|p| !p.is_empty()),
            tls: uses_tls,
            pool: Pool::new(self.pool_max_size.unwrap_or(DEFAULT_POOL_MAX_SIZE)),
            once_pool: Pool::new(self.pool_max_size.unwrap_or(DEFAULT_POOL_MAX_SIZE)),
            create_connection_timeout: self.create_connection_timeout,
        })
    }

    /// Builds the backend (no connection is made yet). Invalid or conflicting settings are
    /// [`Error::Config`] naming the setting.
    pub fn build(self) -> Result<RedisBackend> {
        self.build_checked().map_err(|(field, message)| {
            Error::config(format!("redis backend: field `{field}`: {message}"))
        })
    }
}

/// How many times the cluster client follows a redirection or retries a node it lost, per command.
const CLUSTER_RETRIES: u32 = 2;

/// Bounds (ms) of the pause before retrying on `TRYAGAIN`/`CLUSTERDOWN`. The crate's defaults (1.28 s and
/// up) would hold a cache command for seconds past its timeout; a cache would rather miss.
const CLUSTER_RETRY_WAIT_MS: (u64, u64) = (10, 100);

fn server_addr(host: String, port: u16, tls: bool) -> ConnectionAddr {
    if tls {
        ConnectionAddr::TcpTls {
            host,
            port,
            insecure: false,
            tls_params: None,
        }
    } else {
        ConnectionAddr::Tcp(host, port)
    }
}

/// `host:port`, `[v6]:port` or `redis://host:port` of a cluster seed. Errors show the node only redacted:
/// it may hold credentials.
fn parse_node(node: &str) -> std::result::Result<(String, u16), String> {
    let shown = || crate::config::redact(node);
    if node.contains('@') {
        return Err(format!(
            "expected `host:port` (credentials go in `username`/`password`), found `{}`",
            shown()
        ));
    }
    let bare = node
        .strip_prefix("redis://")
        .or_else(|| node.strip_prefix("rediss://"))
        .unwrap_or(node)
        .trim_end_matches('/');
    let (host, port) = bare
        .rsplit_once(':')
        .ok_or_else(|| format!("expected `host:port`, found `{}`", shown()))?;
    let port = port.parse::<u16>().map_err(|_| {
        format!(
            "expected `host:port` with a port number, found `{}`",
            shown()
        )
    })?;
    let host = host.trim_matches(['[', ']']);
    if host.is_empty() {
        return Err(format!("expected `host:port`, found `{}`", shown()));
    }
    Ok((host.to_string(), port))
}

/// Where a backend connects, for errors and `Debug`: never with credentials.
fn describe(address: &Address, info: &RedisConnectionInfo) -> String {
    let one = |addr: &ConnectionAddr| match addr {
        ConnectionAddr::Tcp(host, port) => format!("redis://{}:{port}/{}", bracket(host), info.db),
        ConnectionAddr::TcpTls { host, port, .. } => {
            format!("rediss://{}:{port}/{}", bracket(host), info.db)
        }
        ConnectionAddr::Unix(path) => format!("redis+unix://{}?db={}", path.display(), info.db),
    };
    match address {
        Address::Server(addr) => one(addr),
        Address::Cluster(seeds) => {
            let seeds: Vec<String> = seeds.iter().map(one).collect();
            format!("cluster [{}]", seeds.join(", "))
        }
    }
}

fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

enum Connector {
    Server(redis::Client),
    Cluster {
        /// For idempotent commands: the crate retries them (redirections, lost nodes, timeouts).
        retrying: Box<ClusterClient>,
        /// For commands never sent twice: no retries by the crate.
        once: Box<ClusterClient>,
    },
}

/// One pooled connection: to the server, or to every node of the cluster.
enum Link {
    Server(redis::Connection),
    Cluster(Box<ClusterConnection>),
}

impl Link {
    fn con(&mut self) -> &mut dyn ConnectionLike {
        match self {
            Link::Server(c) => c,
            Link::Cluster(c) => &mut **c,
        }
    }

    fn set_timeout(&self, timeout: Option<Duration>) -> RedisResult<()> {
        match self {
            Link::Server(c) => {
                c.set_read_timeout(timeout)?;
                c.set_write_timeout(timeout)
            }
            Link::Cluster(c) => {
                c.set_read_timeout(timeout)?;
                c.set_write_timeout(timeout)
            }
        }
    }

    fn is_open(&self) -> bool {
        match self {
            Link::Server(c) => c.is_open(),
            Link::Cluster(c) => c.is_open(),
        }
    }
}

struct Pooled {
    link: Link,
    /// The read/write timeout currently set on the sockets (set again only when a call needs another).
    timeout: Option<Duration>,
    /// The pool generation it belongs to; `close` starts a new one.
    epoch: u64,
}

#[derive(Default)]
struct PoolState {
    idle: Vec<Pooled>,
    /// Connections open, idle or in use.
    open: usize,
    epoch: u64,
}

/// A bounded set of reusable connections. Checkout takes the most recently returned one (warm socket,
/// warm caches) and never pings it: a dead one shows up as an error of its first command, handled by
/// [`RedisBackend::run`].
struct Pool {
    state: Mutex<PoolState>,
    freed: Condvar,
    max: usize,
}

enum Slot {
    Idle(Pooled),
    /// A connection may be opened in this generation.
    Open(u64),
}

impl Pool {
    fn new(max: usize) -> Pool {
        Pool {
            state: Mutex::new(PoolState::default()),
            freed: Condvar::new(),
            max,
        }
    }

    /// An idle connection or the right to open one; `None` when none freed up before the deadline.
    fn take(&self, deadline: Option<Instant>) -> Option<Slot> {
        let mut state = self.state.lock();
        loop {
            if let Some(pooled) = state.idle.pop() {
                return Some(Slot::Idle(pooled));
            }
            if state.open < self.max {
                state.open += 1;
                return Some(Slot::Open(state.epoch));
            }
            match deadline {
                None => self.freed.wait(&mut state),
                Some(deadline) => {
                    if self.freed.wait_until(&mut state, deadline).timed_out() {
                        return None;
                    }
                }
            }
        }
    }

    fn put(&self, pooled: Pooled) {
        let mut state = self.state.lock();
        if pooled.epoch == state.epoch {
            state.idle.push(pooled);
        } else {
            state.open -= 1;
        }
        drop(state);
        self.freed.notify_one();
    }

    /// Forgets a connection (broken, or its opening failed).
    fn discard(&self) {
        self.state.lock().open -= 1;
        self.freed.notify_one();
    }

    /// Drops every idle connection (after one was found dead) without starting a new generation.
    fn close_idle(&self) {
        let idle = {
            let mut state = self.state.lock();
            state.open -= state.idle.len();
            std::mem::take(&mut state.idle)
        };
        drop(idle);
        self.freed.notify_all();
    }

    fn close(&self) {
        let idle = {
            let mut state = self.state.lock();
            state.epoch += 1;
            state.open -= state.idle.len();
            std::mem::take(&mut state.idle)
        };
        drop(idle);
        self.freed.notify_all();
    }
}

/// A cluster connection sending each command to one node after `ASKING`: how a command answered with
/// `ASK` (its slot is being migrated, the key is on the target already) is sent again.
struct Asking<'a> {
    con: &'a mut ClusterConnection,
    host: String,
    port: u16,
}

impl ConnectionLike for Asking<'_> {
    fn req_packed_command(&mut self, _: &[u8]) -> RedisResult<redis::Value> {
        Err((
            ErrorKind::ClientError,
            "only whole commands follow an ASK redirection",
        )
            .into())
    }

    fn req_packed_commands(
        &mut self,
        _: &[u8],
        _: usize,
        _: usize,
    ) -> RedisResult<Vec<redis::Value>> {
        Err((
            ErrorKind::ClientError,
            "only whole commands follow an ASK redirection",
        )
            .into())
    }

    fn req_command(&mut self, cmd: &redis::Cmd) -> RedisResult<redis::Value> {
        let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
            host: self.host.clone(),
            port: self.port,
        });
        self.con
            .route_command(&redis::cmd("ASKING"), route.clone())?;
        self.con.route_command(cmd, route)
    }

    fn get_db(&self) -> i64 {
        0
    }

    fn check_connection(&mut self) -> bool {
        self.con.check_connection()
    }

    fn is_open(&self) -> bool {
        self.con.is_open()
    }
}

/// How [`RedisBackend::run_with`] treats a command.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Delivery {
    /// Sent once more on a new connection when its pooled connection turns out closed.
    Idempotent,
    /// Never sent twice: the server may have run it before the connection closed.
    Once,
    /// Never sent twice, and its connection is closed afterwards (`raw`: it may change the connection's
    /// state).
    Detached,
}

/// A connection checked out for one command.
struct Lease {
    pooled: Pooled,
    /// It came from the pool (it may have been closed by the server while idle).
    reused: bool,
}

/// The Redis backend: a single server or a Redis Cluster. See the [module docs](self) for the command
/// mapping, connection handling and options.
///
/// ```no_run
/// use cache_runtime::{Cache, RedisBackend, Ttl};
///
/// // A local server: `redis-server --port 6379` (Debian/Ubuntu: `apt-get install redis-server`).
/// let cache = Cache::builder()
///     .backend(RedisBackend::builder().endpoint("127.0.0.1").port(6379).build().unwrap())
///     .namespace("app")
///     .build()
///     .unwrap();
/// cache.set("user:1", &"ann".to_string(), Ttl::secs(60)).unwrap();
/// assert_eq!(cache.get::<String>("user:1").unwrap().as_deref(), Some("ann"));
///
/// // The same from a URL; `rediss://` for TLS.
/// let cache = Cache::from_url("redis://127.0.0.1:6379/0?namespace=app&timeout=0.5").unwrap();
/// # let _ = cache;
/// ```
pub struct RedisBackend {
    connector: Connector,
    location: String,
    username: Option<String>,
    password: Option<String>,
    tls: bool,
    pool: Pool,
    /// On a cluster, the connections of the commands never sent twice (from the client without retries).
    once_pool: Pool,
    create_connection_timeout: Option<Duration>,
}

impl fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackend")
            .field("location", &self.location)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("tls", &self.tls)
            .field("pool_max_size", &self.pool.max)
            .finish()
    }
}

impl fmt::Display for RedisBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.location)
    }
}

/// Smallest socket timeout used: the OS rejects zero, which would mean "none".
const MIN_IO_TIMEOUT: Duration = Duration::from_millis(1);

impl RedisBackend {
    /// Configures a backend.
    ///
    /// ```
    /// let builder = cache_runtime::RedisBackend::builder().endpoint("127.0.0.1").port(6379);
    /// # let _ = builder;
    /// ```
    pub fn builder() -> RedisBackendBuilder {
        RedisBackendBuilder::default()
    }

    /// Where it connects (`redis://host:port/db`, `rediss://...`, or the cluster's seed nodes), without
    /// credentials.
    ///
    /// ```
    /// let backend = cache_runtime::RedisBackend::builder().url("redis://:pw@127.0.0.1:6390/3").build().unwrap();
    /// assert_eq!(backend.location(), "redis://127.0.0.1:6390/3");
    /// ```
    pub fn location(&self) -> &str {
        &self.location
    }

    /// True when connected to a Redis Cluster.
    ///
    /// ```
    /// let backend = cache_runtime::RedisBackend::builder().cluster_nodes(["127.0.0.1:7000"]).build().unwrap();
    /// assert!(backend.is_cluster());
    /// ```
    pub fn is_cluster(&self) -> bool {
        matches!(self.connector, Connector::Cluster { .. })
    }

    /// Removes the password from a message, in case any layer below ever echoes it.
    fn scrub(&self, message: String) -> String {
        match &self.password {
            Some(password) if message.contains(password.as_str()) => {
                message.replace(password.as_str(), "<redacted>")
            }
            _ => message,
        }
    }

    fn failure(&self, command: &'static str, e: &RedisError, timeout: Option<Duration>) -> Error {
        if let (true, Some(timeout)) = (e.is_timeout(), timeout) {
            return Error::Timeout { command, timeout };
        }
        Error::backend(
            "redis",
            self.scrub(format!("`{command}` on {}: {e}", self.location)),
        )
    }

    /// Connects within `connect_timeout`; a cluster connection also gets `io_timeout` for the node
    /// connections it opens later by itself.
    fn connect(
        &self,
        connect_timeout: Option<Duration>,
        io_timeout: Option<Duration>,
        once: bool,
    ) -> RedisResult<Link> {
        match &self.connector {
            Connector::Server(client) => match connect_timeout {
                Some(t) => client.get_connection_with_timeout(t).map(Link::Server),
                None => client.get_connection().map(Link::Server),
            },
            Connector::Cluster {
                retrying,
                once: no_retries,
            } => {
                let client = if once { no_retries } else { retrying };
                let mut config = ClusterConfig::new();
                if let Some(t) = connect_timeout {
                    config = config.set_connection_timeout(t);
                }
                if let Some(t) = io_timeout {
                    config = config.set_response_timeout(t);
                }
                client
                    .get_connection_with_config(config)
                    .map(|c| Link::Cluster(Box::new(c)))
            }
        }
    }

    /// Opens a connection of pool generation `epoch` (the pool has counted it already).
    fn open(
        &self,
        command: &'static str,
        epoch: u64,
        opts: &CallOptions,
        deadline: Option<Instant>,
        once: bool,
    ) -> Result<Lease> {
        let pool = self.pool_of(once);
        let remaining = match deadline {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    pool.discard();
                    return Err(self.timed_out(command, opts));
                }
                Some(left)
            }
            None => None,
        };
        let connect_timeout = match (remaining, self.create_connection_timeout) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // The first command gets what is left of the deadline, not a whole timeout more.
        let io_timeout = remaining.map(|r| r.max(MIN_IO_TIMEOUT));
        let link = match self.connect(connect_timeout, io_timeout, once) {
            Ok(link) => link,
            Err(e) => {
                pool.discard();
                return Err(self.failure(command, &e, opts.timeout));
            }
        };
        if let Err(e) = link.set_timeout(io_timeout) {
            pool.discard();
            return Err(self.failure(command, &e, opts.timeout));
        }
        Ok(Lease {
            pooled: Pooled {
                link,
                timeout: io_timeout,
                epoch,
            },
            reused: false,
        })
    }

    fn timed_out(&self, command: &'static str, opts: &CallOptions) -> Error {
        Error::Timeout {
            command,
            timeout: opts.timeout.unwrap_or_default(),
        }
    }

    /// The pool of the connections for commands never sent twice (`once`) or the others.
    fn pool_of(&self, once: bool) -> &Pool {
        if once {
            &self.once_pool
        } else {
            &self.pool
        }
    }

    fn checkout(
        &self,
        command: &'static str,
        opts: &CallOptions,
        deadline: Option<Instant>,
        once: bool,
    ) -> Result<Lease> {
        let pool = self.pool_of(once);
        match pool.take(deadline) {
            None => Err(self.timed_out(command, opts)),
            Some(Slot::Open(epoch)) => self.open(command, epoch, opts, deadline, once),
            Some(Slot::Idle(mut pooled)) => {
                let wanted = opts.timeout.map(|t| t.max(MIN_IO_TIMEOUT));
                if pooled.timeout != wanted {
                    if let Err(e) = pooled.link.set_timeout(wanted) {
                        pool.discard();
                        return Err(self.failure(command, &e, opts.timeout));
                    }
                    pooled.timeout = wanted;
                }
                Ok(Lease {
                    pooled,
                    reused: true,
                })
            }
        }
    }

    /// Runs the idempotent `op` on a pooled connection. A connection that failed below the Redis protocol
    /// (I/O, timeout, garbled reply) is closed, never returned to the pool; one that was found closed by the
    /// server while idle is replaced and `op` runs once more.
    fn run<T>(
        &self,
        command: &'static str,
        opts: &CallOptions,
        op: impl FnMut(&mut Link) -> RedisResult<T>,
    ) -> Result<T> {
        self.run_with(command, opts, Delivery::Idempotent, op)
    }

    /// Runs `op` (not idempotent) on a pooled connection, never sending it twice: a connection found closed
    /// is an error, since the server may have run the command before closing it. On a cluster it runs on a
    /// connection without the crate's retries; redirections, which a node answers without running the
    /// command, are followed here.
    fn run_once<T>(
        &self,
        command: &'static str,
        opts: &CallOptions,
        op: impl FnMut(&mut dyn ConnectionLike) -> RedisResult<T>,
    ) -> Result<T> {
        self.run_redirected(command, opts, Delivery::Once, op)
    }

    /// [`run_with`](Self::run_with) for a command never sent twice: an `ASK` answer is followed here (the
    /// node did not run the command); `MOVED` and `TRYAGAIN`-like answers by `run_with`.
    fn run_redirected<T>(
        &self,
        command: &'static str,
        opts: &CallOptions,
        delivery: Delivery,
        mut op: impl FnMut(&mut dyn ConnectionLike) -> RedisResult<T>,
    ) -> Result<T> {
        self.run_with(command, opts, delivery, |link| {
            let mut result = op(link.con());
            let Link::Cluster(con) = link else {
                return result;
            };
            for _ in 0..CLUSTER_RETRIES {
                let target = match &result {
                    Err(e) if e.kind() == ErrorKind::Ask => {
                        e.redirect_node().and_then(|(addr, _)| {
                            let (host, port) = addr.rsplit_once(':')?;
                            Some((
                                host.trim_matches(['[', ']']).to_string(),
                                port.parse().ok()?,
                            ))
                        })
                    }
                    _ => None,
                };
                let Some((host, port)) = target else {
                    break;
                };
                result = op(&mut Asking { con, host, port });
            }
            result
        })
    }

    fn run_with<T>(
        &self,
        command: &'static str,
        opts: &CallOptions,
        delivery: Delivery,
        mut op: impl FnMut(&mut Link) -> RedisResult<T>,
    ) -> Result<T> {
        let deadline = opts.timeout.map(|t| Instant::now() + t);
        let once = delivery != Delivery::Idempotent && self.is_cluster();
        let pool = self.pool_of(once);
        let mut lease = self.checkout(command, opts, deadline, once)?;
        let mut resent = false;
        let mut redirects = 0;
        loop {
            let result = op(&mut lease.pooled.link);
            if let (true, Err(e)) = (once, &result) {
                // Answers of a node that did not run the command; the crate's retries are off here.
                if redirects < CLUSTER_RETRIES {
                    if e.kind() == ErrorKind::Moved {
                        // The slot moved: the connection's (and every idle one's) slot map is stale.
                        // A new connection reads the current one.
                        redirects += 1;
                        drop(lease.pooled);
                        pool.discard();
                        pool.close_idle();
                        lease = self.checkout(command, opts, deadline, once)?;
                        continue;
                    }
                    if matches!(e.retry_method(), redis::RetryMethod::WaitAndRetry) {
                        redirects += 1;
                        let pause = CLUSTER_RETRY_WAIT_MS.0 << redirects;
                        std::thread::sleep(Duration::from_millis(
                            pause.min(CLUSTER_RETRY_WAIT_MS.1),
                        ));
                        continue;
                    }
                }
            }
            if delivery == Delivery::Detached {
                // The command may have changed the connection's state (SELECT, MULTI, CLIENT REPLY, ...):
                // it is closed, never handed to another command.
                drop(lease.pooled);
                pool.discard();
                return result.map_err(|e| {
                    if lease.reused && e.is_connection_dropped() {
                        pool.close_idle();
                    }
                    self.failure(command, &e, opts.timeout)
                });
            }
            match result {
                Ok(value) => {
                    pool.put(lease.pooled);
                    return Ok(value);
                }
                Err(e) => {
                    // A cluster connection without retries that was still answered `MOVED` has a stale
                    // slot map: not kept.
                    let healthy = !e.is_io_error()
                        && e.kind() != ErrorKind::ParseError
                        && !(once && e.kind() == ErrorKind::Moved)
                        && lease.pooled.link.is_open();
                    if healthy {
                        pool.put(lease.pooled);
                        return Err(self.failure(command, &e, opts.timeout));
                    }
                    drop(lease.pooled);
                    pool.discard();
                    let retry = delivery == Delivery::Idempotent
                        && !resent
                        && lease.reused
                        && e.is_connection_dropped();
                    if !retry {
                        if lease.reused && e.is_connection_dropped() {
                            // Likely a restart: the other idle connections are as stale.
                            pool.close_idle();
                        }
                        return Err(self.failure(command, &e, opts.timeout));
                    }
                    // The server closed this connection while it sat in the pool (or closed it after
                    // running the command: sending an idempotent command again does no harm). The other
                    // idle connections are likely as stale (a restart closes them all): drop them and send
                    // the command again on a new connection.
                    tracing::debug!(
                        backend = %self.location,
                        command,
                        "a pooled redis connection was closed by the server; reconnecting"
                    );
                    resent = true;
                    pool.close_idle();
                    lease = self.checkout(command, opts, deadline, once)?;
                }
            }
        }
    }

    /// The masters of the cluster, as `(host, port)`, for commands that must visit each.
    fn masters(con: &mut ClusterConnection) -> RedisResult<Vec<(String, u16)>> {
        let slots: redis::Value = con.route_command(
            &redis::cmd("CLUSTER").arg("SLOTS").to_owned(),
            RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
        )?;
        let mut masters = BTreeSet::new();
        if let redis::Value::Array(ranges) = slots {
            for range in ranges {
                if let redis::Value::Array(fields) = range {
                    if let Some(redis::Value::Array(master)) = fields.get(2) {
                        if let (Some(host), Some(redis::Value::Int(port))) =
                            (master.first(), master.get(1))
                        {
                            let host: String = redis::from_redis_value(host)?;
                            if let Ok(port) = u16::try_from(*port) {
                                masters.insert((host, port));
                            }
                        }
                    }
                }
            }
        }
        Ok(masters.into_iter().collect())
    }

    /// Runs `visit` on each batch of keys matching `pattern`, on the server or on every master.
    fn scan(
        link: &mut Link,
        pattern: &str,
        mut visit: impl FnMut(&mut Link, Vec<Vec<u8>>) -> RedisResult<()>,
    ) -> RedisResult<()> {
        let nodes: Vec<Option<(String, u16)>> = match link {
            Link::Server(_) => vec![None],
            Link::Cluster(con) => Self::masters(con)?.into_iter().map(Some).collect(),
        };
        for node in nodes {
            let mut cursor = 0u64;
            loop {
                let mut step = redis::cmd("SCAN");
                step.arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(SCAN_BATCH);
                let reply = match (&node, &mut *link) {
                    (Some((host, port)), Link::Cluster(con)) => con.route_command(
                        &step,
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                            host: host.clone(),
                            port: *port,
                        }),
                    )?,
                    (_, link) => step.query::<redis::Value>(link.con())?,
                };
                let (next, keys): (u64, Vec<Vec<u8>>) = redis::from_owned_redis_value(reply)?;
                if !keys.is_empty() {
                    visit(link, keys)?;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(())
    }
}

fn raw_reply(value: redis::Value) -> RawReply {
    use redis::Value as V;
    let list = |items: Vec<V>| RawReply::Array(items.into_iter().map(raw_reply).collect());
    match value {
        V::Nil => RawReply::Nil,
        V::Int(i) => RawReply::Int(i),
        V::BulkString(b) => RawReply::Bytes(b),
        V::Array(items) | V::Set(items) => list(items),
        V::SimpleString(s) => RawReply::Status(s),
        V::Okay => RawReply::Status("OK".into()),
        V::Map(pairs) => RawReply::Array(
            pairs
                .into_iter()
                .flat_map(|(k, v)| [raw_reply(k), raw_reply(v)])
                .collect(),
        ),
        V::Attribute { data, .. } => raw_reply(*data),
        V::Double(d) => RawReply::Bytes(d.to_string().into_bytes()),
        V::Boolean(b) => RawReply::Int(i64::from(b)),
        V::VerbatimString { text, .. } => RawReply::Bytes(text.into_bytes()),
        V::Push { data, .. } => list(data),
        other => RawReply::Bytes(format!("{other:?}").into_bytes()),
    }
}

/// Why the server refused an `INCRBY`.
#[derive(Debug, PartialEq, Eq)]
enum IncrementRefusal {
    Overflow,
    NotAnInteger,
}

/// The refusal an `INCRBY` error reply means, from the reply's code (`ERR`, `WRONGTYPE`) and the server's
/// own detail text; `None` for every other error (I/O, timeouts, other replies).
fn increment_refusal(e: &RedisError) -> Option<IncrementRefusal> {
    match (e.kind(), e.code(), e.detail()) {
        (ErrorKind::ResponseError, Some("ERR"), Some(detail)) if detail.contains("overflow") => {
            Some(IncrementRefusal::Overflow)
        }
        (ErrorKind::ResponseError, Some("ERR"), Some(detail))
            if detail.contains("not an integer") =>
        {
            Some(IncrementRefusal::NotAnInteger)
        }
        (ErrorKind::ExtensionError, Some("WRONGTYPE"), _) => Some(IncrementRefusal::NotAnInteger),
        _ => None,
    }
}

impl Backend for RedisBackend {
    fn name(&self) -> &str {
        "redis"
    }

    #[inline]
    fn get(&self, key: &str, opts: &CallOptions) -> Result<Option<Value>> {
        self.run("get", opts, |link| {
            redis::cmd("GET")
                .arg(key)
                .query::<Option<Vec<u8>>>(link.con())
        })
        .map(|found| found.map(Value::Bytes))
    }

    fn multi_get(&self, keys: &[&str], opts: &CallOptions) -> Result<Vec<Option<Value>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let found = self.run("multi_get", opts, |link| {
            redis::cmd("MGET")
                .arg(keys)
                .query::<Vec<Option<Vec<u8>>>>(link.con())
        })?;
        Ok(found.into_iter().map(|v| v.map(Value::Bytes)).collect())
    }

    fn set(
        &self,
        key: &str,
        value: Value,
        ttl: Option<Duration>,
        opts: &CallOptions,
    ) -> Result<()> {
        let value = value.require_bytes("redis")?;
        self.run("set", opts, |link| {
            let mut cmd = redis::cmd("SET");
            cmd.arg(key).arg(value);
            if let Some(ttl) = ttl {
                cmd.arg("PX").arg(ttl_millis(ttl));
            }
            cmd.query::<()>(link.con())
        })
    }

    fn multi_set(
        &self,
        entries: Vec<(&str, Value)>,
        ttl: Option<Duration>,
        opts: &CallOptions,
    ) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let pairs = entries
            .iter()
            .map(|(k, v)| Ok((*k, v.require_bytes("redis")?)))
            .collect::<Result<Vec<(&str, &[u8])>>>()?;
        self.run("multi_set", opts, |link| match (ttl, link) {
            (None, link) => redis::cmd("MSET").arg(&pairs).query::<()>(link.con()),
            (Some(ttl), Link::Server(con)) => {
                let ms = ttl_millis(ttl);
                let mut pipe = redis::pipe();
                pipe.atomic().cmd("MSET").arg(&pairs).ignore();
                for (key, _) in &pairs {
                    pipe.cmd("PEXPIRE").arg(*key).arg(ms).ignore();
                }
                pipe.query::<()>(con)
            }
            (Some(ttl), Link::Cluster(con)) => {
                // No transaction spans slots: one SET .. PX per key, pipelined per node.
                let ms = ttl_millis(ttl);
                let mut pipe = redis::cluster::cluster_pipe();
                for (key, value) in &pairs {
                    pipe.cmd("SET")
                        .arg(*key)
                        .arg(*value)
                        .arg("PX")
                        .arg(ms)
                        .ignore();
                }
                pipe.query::<()>(con)
            }
        })
    }

    fn add(
        &self,
        key: &str,
        value: Value,
        ttl: Option<Duration>,
        opts: &CallOptions,
    ) -> Result<bool> {
        let value = value.require_bytes("redis")?;
        self.run_once("add", opts, |con| {
            let mut cmd = redis::cmd("SET");
            cmd.arg(key).arg(value).arg("NX");
            if let Some(ttl) = ttl {
                cmd.arg("PX").arg(ttl_millis(ttl));
            }
            // OK when written, nil when the key exists.
            cmd.query::<Option<String>>(con)
                .map(|reply| reply.is_some())
        })
    }

    fn exists(&self, key: &str, opts: &CallOptions) -> Result<bool> {
        self.run("exists", opts, |link| {
            redis::cmd("EXISTS")
                .arg(key)
                .query::<i64>(link.con())
                .map(|n| n > 0)
        })
    }

    fn increment(&self, key: &str, delta: i64, opts: &CallOptions) -> Result<i64> {
        let outcome = self.run_once("increment", opts, |con| {
            match redis::cmd("INCRBY").arg(key).arg(delta).query::<i64>(con) {
                Ok(n) => Ok(Ok(n)),
                // Classified by the server's error reply, never by the text of other errors (which name
                // the host).
                Err(e) => match increment_refusal(&e) {
                    Some(refusal) => Ok(Err(refusal)),
                    None => Err(e),
                },
            }
        })?;
        outcome.map_err(|refusal| match refusal {
            IncrementRefusal::Overflow => increment_overflow(key, delta),
            IncrementRefusal::NotAnInteger => not_an_integer(key),
        })
    }

    fn delete(&self, key: &str, opts: &CallOptions) -> Result<u64> {
        self.run("delete", opts, |link| {
            redis::cmd("DEL").arg(key).query::<u64>(link.con())
        })
    }

    fn expire(&self, key: &str, ttl: Option<Duration>, opts: &CallOptions) -> Result<bool> {
        self.run("expire", opts, |link| match ttl {
            Some(ttl) => redis::cmd("PEXPIRE")
                .arg(key)
                .arg(ttl_millis(ttl))
                .query::<i64>(link.con())
                .map(|n| n == 1),
            None => SCRIPTS
                .persist
                .key(key)
                .invoke::<i64>(link.con())
                .map(|n| n == 1),
        })
    }

    fn clear(&self, prefix: Option<&str>, opts: &CallOptions) -> Result<u64> {
        match prefix {
            None => self.run("clear", opts, |link| match link {
                Link::Server(con) => {
                    let (count,): (u64,) = redis::pipe()
                        .atomic()
                        .cmd("DBSIZE")
                        .cmd("FLUSHDB")
                        .ignore()
                        .query(con)?;
                    Ok(count)
                }
                Link::Cluster(con) => {
                    let count: u64 = redis::cmd("DBSIZE").query(&mut **con)?;
                    redis::cmd("FLUSHDB").query::<()>(&mut **con)?;
                    Ok(count)
                }
            }),
            Some(prefix) => {
                let pattern = format!("{}*", escape_glob(prefix));
                self.run("clear", opts, |link| {
                    let mut deleted = 0u64;
                    Self::scan(link, &pattern, |link, keys| {
                        deleted += redis::cmd("UNLINK").arg(keys).query::<u64>(link.con())?;
                        Ok(())
                    })?;
                    Ok(deleted)
                })
            }
        }
    }

    fn keys(&self, pattern: &str, opts: &CallOptions) -> Result<Vec<String>> {
        self.run("keys", opts, |link| {
            // SCAN may return a key more than once.
            let mut found = BTreeSet::new();
            Self::scan(link, pattern, |_, keys| {
                found.extend(
                    keys.into_iter()
                        .map(|k| String::from_utf8_lossy(&k).into_owned()),
                );
                Ok(())
            })?;
            Ok(found.into_iter().collect())
        })
    }

    fn raw(&self, command: &str, args: &[Vec<u8>], opts: &CallOptions) -> Result<RawReply> {
        let mut words = command.split_whitespace();
        let Some(name) = words.next() else {
            return Err(Error::InvalidInput("`raw` needs a command name".into()));
        };
        let mut cmd = redis::cmd(name);
        for word in words {
            cmd.arg(word);
        }
        for arg in args {
            cmd.arg(arg.as_slice());
        }
        self.run_redirected("raw", opts, Delivery::Detached, |con| {
            cmd.query::<redis::Value>(con)
        })
        .map(raw_reply)
    }

    fn close(&self) -> Result<()> {
        self.pool.close();
        self.once_pool.close();
        Ok(())
    }

    fn get_versioned(&self, key: &str, opts: &CallOptions) -> Result<(Option<Value>, CasToken)> {
        let found = self.run("get_versioned", opts, |link| {
            redis::cmd("GET")
                .arg(key)
                .query::<Option<Vec<u8>>>(link.con())
        })?;
        Ok(match found {
            Some(bytes) => (Some(Value::Bytes(bytes.clone())), CasToken::Bytes(bytes)),
            None => (None, CasToken::Absent),
        })
    }

    fn compare_and_set(
        &self,
        key: &str,
        expected: &CasToken,
        value: Value,
        ttl: Option<Duration>,
        opts: &CallOptions,
    ) -> Result<bool> {
        let value = value.require_bytes("redis")?;
        let (present, expected): (&str, &[u8]) = match expected {
            CasToken::Absent => ("0", b""),
            CasToken::Bytes(b) => ("1", b),
            CasToken::Version(_) => {
                return Err(Error::InvalidInput(
                    "a version token from another backend cannot lock a redis key".into(),
                ))
            }
        };
        let ttl = ttl.map(|t| ttl_millis(t).to_string()).unwrap_or_default();
        self.run_once("compare_and_set", opts, |con| {
            SCRIPTS
                .compare_and_set
                .key(key)
                .arg(present)
                .arg(expected)
                .arg(value)
                .arg(ttl.as_str())
                .invoke::<i64>(con)
                .map(|n| n == 1)
        })
    }

    fn compare_and_delete(&self, key: &str, expected: &[u8], opts: &CallOptions) -> Result<bool> {
        self.run_once("compare_and_delete", opts, |con| {
            SCRIPTS
                .compare_and_delete
                .key(key)
                .arg(expected)
                .invoke::<i64>(con)
                .map(|n| n == 1)
        })
    }
}

/// Reads the alias options into a builder, naming the alias and field in every error.
fn builder_from(cfg: &BackendConfig<'_>) -> Result<RedisBackendBuilder> {
    let mut b = RedisBackend::builder();
    if let Some(v) = cfg.str("endpoint")? {
        b = b.endpoint(v);
    }
    if let Some(v) = cfg.u64("port")? {
        let port = u16::try_from(v)
            .map_err(|_| cfg.error("port", format!("expected a port number, found {v}")))?;
        b = b.port(port);
    }
    if let Some(v) = cfg.u64("db")? {
        let db = i64::try_from(v)
            .map_err(|_| cfg.error("db", format!("database {v} is out of range")))?;
        b = b.db(db);
    }
    if let Some(v) = cfg.str("username")? {
        b = b.username(v);
    }
    if let Some(v) = cfg.str("password")? {
        b = b.password(v);
    }
    // `ssl` is aiocache's name for it.
    for field in ["ssl", "tls"] {
        if let Some(v) = cfg.bool(field)? {
            b = b.tls(v);
        }
    }
    if let Some(v) = cfg.str("tls_ca_file")? {
        b = b.tls_ca_file(v);
    }
    b.tls_cert_file = cfg.str("tls_cert_file")?.map(PathBuf::from);
    b.tls_key_file = cfg.str("tls_key_file")?.map(PathBuf::from);
    if let Some(v) = cfg.str("url")? {
        b = b.url(v);
    }
    if let Some(v) = cfg.bool("cluster")? {
        b = b.cluster(v);
    }
    if let Some(v) = cfg.strings("nodes")? {
        b = b.cluster_nodes(v);
    }
    if let Some(v) = cfg.u64("pool_max_size")? {
        b = b.pool_max_size(usize::try_from(v).unwrap_or(usize::MAX));
    }
    if let Some(v) = cfg.secs("create_connection_timeout")? {
        b = b.create_connection_timeout(v);
    }
    b.validate()
        .map_err(|(field, message)| cfg.error(field, message))?;
    Ok(b)
}

/// The `redis` entry of the backend registry.
pub(crate) fn spec() -> BackendSpec {
    BackendSpec::new(FIELDS, |cfg| {
        let backend = builder_from(cfg)?
            .build_checked()
            .map_err(|(field, message)| cfg.error(field, message))?;
        Ok(Arc::new(backend))
    })
    .with_check(|cfg| {
        let b = builder_from(cfg)?;
        b.target()
            .map(drop)
            .map_err(|(field, message)| cfg.error(field, message))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_parse_with_or_without_scheme() {
        assert_eq!(
            parse_node("127.0.0.1:7000").unwrap(),
            ("127.0.0.1".into(), 7000)
        );
        assert_eq!(
            parse_node("redis://10.0.0.1:7001/").unwrap(),
            ("10.0.0.1".into(), 7001)
        );
        assert_eq!(parse_node("[::1]:7002").unwrap(), ("::1".into(), 7002));
        assert!(parse_node("localhost").is_err());
        assert!(parse_node("host:port").is_err());
        let err = parse_node("redis://user:hunter2@h:1").unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn redact_hides_userinfo_and_secret_query_values() {
        use crate::config::redact;
        let cases = [
            (
                "redis://user:hunter2@h:1/0",
                "redis://user:<redacted>@h:1/0",
            ),
            ("redis://user:hunter2@h", "redis://user:<redacted>@h"),
            ("redis://:hunter2@h:1", "redis://:<redacted>@h:1"),
            ("redis://hunter2@h:1", "redis://<redacted>@h:1"),
            ("user:hunter2@h:1", "user:<redacted>@h:1"),
            ("user:hunter2@h", "user:<redacted>@h"),
            ("hunter2@h", "<redacted>@h"),
            ("redis://u:hun@ter2@h:1", "redis://u:<redacted>@h:1"),
            ("redis://u:hu/nt?er2@h:1", "redis://u:<redacted>@h:1"),
            (
                "redis+unix:///s?pass=hunter2",
                "redis+unix:///s?pass=<redacted>",
            ),
            (
                "redis+unix:///s?db=1&password=hunter2&user=u",
                "redis+unix:///s?db=1&password=<redacted>&user=u",
            ),
            (
                "redis+unix:///s?PASS=hunter2#x",
                "redis+unix:///s?PASS=<redacted>#x",
            ),
            (
                "redis://h:1/0?namespace=a&timeout=1",
                "redis://h:1/0?namespace=a&timeout=1",
            ),
            ("plain label", "plain label"),
        ];
        for (text, want) in cases {
            assert_eq!(redact(text), want, "{text}");
        }
        // An `@` inside a secret value: more is hidden, never part of the secret.
        for text in [
            "redis+unix:///s?pass=hun@ter2",
            "redis://u:x;pwd=hunter2@h",
            "redis://u:hunter2@h/0?password=hun@ter2",
        ] {
            let shown = redact(text);
            for part in ["hunter2", "hun", "ter2"] {
                assert!(!shown.contains(part), "{text} -> {shown}");
            }
        }
    }

    #[test]
    fn node_errors_and_builder_debug_never_show_credentials() {
        for node in [
            "redis://user:hunter2@h",
            "redis://user:hunter2@h:1",
            "user:hunter2@h",
            "user:hunter2@h:1",
            ":hunter2@h",
            "redis://:hunter2@[::1]:7000/",
        ] {
            let err = parse_node(node).unwrap_err();
            assert!(!err.contains("hunter2"), "{err}");
            let builder = format!("{:?}", RedisBackend::builder().cluster_nodes([node]));
            assert!(!builder.contains("hunter2"), "{builder}");
            let err = RedisBackend::builder()
                .cluster_nodes([node])
                .build()
                .unwrap_err()
                .to_string();
            assert!(!err.contains("hunter2"), "{err}");
            assert!(err.contains("field `nodes`"), "{err}");
        }
        let builder = format!(
            "{:?}",
            RedisBackend::builder().url("redis+unix:///s?pass=hunter2")
        );
        assert!(!builder.contains("hunter2"), "{builder}");
    }

    #[test]
    fn increment_refusals_are_read_from_the_server_reply() {
        let reply = |code: &str, detail: &str| -> RedisError {
            let bytes = format!("-{code} {detail}\r\n");
            match redis::parse_redis_value(bytes.as_bytes()) {
                Ok(redis::Value::ServerError(e)) => e.into(),
                Err(e) => e,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(
            increment_refusal(&reply("ERR", "increment or decrement would overflow")),
            Some(IncrementRefusal::Overflow)
        );
        assert_eq!(
            increment_refusal(&reply("ERR", "value is not an integer or out of range")),
            Some(IncrementRefusal::NotAnInteger)
        );
        assert_eq!(
            increment_refusal(&reply(
                "WRONGTYPE",
                "Operation against a key holding the wrong kind of value"
            )),
            Some(IncrementRefusal::NotAnInteger)
        );
        let refused = RedisError::from(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "connecting to overflow-not an integer-WRONGTYPE.example:6379",
        ));
        assert_eq!(increment_refusal(&refused), None);
        assert_eq!(
            increment_refusal(&reply("NOPERM", "overflow not an integer")),
            None
        );
    }

    #[test]
    fn location_never_shows_credentials() {
        let b = RedisBackend::builder()
            .url("redis://app:hunter2@127.0.0.1:6400/4")
            .build()
            .unwrap();
        assert_eq!(b.location(), "redis://127.0.0.1:6400/4");
        let debug = format!("{b:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
        let builder = format!(
            "{:?}",
            RedisBackend::builder()
                .url("redis://:hunter2@h:1/0")
                .password("hunter2")
        );
        assert!(!builder.contains("hunter2"), "{builder}");
    }

    #[test]
    fn conflicting_settings_are_config_errors() {
        let err = RedisBackend::builder()
            .url("redis://h:1")
            .port(2)
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("field `port`"), "{err}");
        let err = RedisBackend::builder()
            .cluster_nodes(["h:1"])
            .db(3)
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("only database 0"), "{err}");
        let err = RedisBackend::builder()
            .pool_max_size(0)
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("pool_max_size"), "{err}");
        let err = RedisBackend::builder()
            .tls_ca_file("/ca.pem")
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("needs `tls`"), "{err}");
        let err = RedisBackend::builder().url("nope://x").build().unwrap_err();
        assert!(err.to_string().contains("field `url`"), "{err}");
        let err = RedisBackend::builder()
            .cluster(false)
            .cluster_nodes(["h:1"])
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("field `nodes`"), "{err}");
    }

    #[test]
    fn replies_map_to_raw_replies() {
        use redis::Value as V;
        assert_eq!(raw_reply(V::Okay), RawReply::Status("OK".into()));
        assert_eq!(
            raw_reply(V::Array(vec![
                V::Nil,
                V::Int(3),
                V::BulkString(b"x".to_vec())
            ])),
            RawReply::Array(vec![
                RawReply::Nil,
                RawReply::Int(3),
                RawReply::Bytes(b"x".to_vec())
            ])
        );
    }
}
