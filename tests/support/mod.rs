//! Test harness: real servers (redis-server, memcached) on 127.0.0.1 and free ports, started per test and
//! stopped when the handle drops.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running server process, killed on drop.
pub struct Server {
    child: Child,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    /// Its working directory, removed on drop.
    pub dir: tempfile::TempDir,
    program: String,
    args: Vec<String>,
}

impl Server {
    /// `127.0.0.1:{port}`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kills the process (the port stays reserved for [`Server::restart`]).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the same program again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.child = launch(&self.program, &self.args, &self.dir);
        wait_listening(&mut self.child, self.port, &self.program);
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding an ephemeral port on 127.0.0.1")
}

/// Panics with the install command when `program` is missing.
pub fn require(program: &str, package: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|candidate| candidate.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("`{program}` is not installed: run `apt-get install -y {package}` (or `scripts/test`, which installs it)")
    })
}

fn launch(program: &str, args: &[String], dir: &tempfile::TempDir) -> Child {
    Command::new(program)
        .args(args)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting `{program}`: {e}"))
}

/// Polls until the port accepts connections (a readiness check, not a timed wait).
fn wait_listening(child: &mut Child, port: u16, program: &str) -> bool {
    let addr: SocketAddr = format!("127.0.0.1:{port}")
        .parse()
        .expect("loopback address");
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return true;
        }
        std::thread::yield_now();
    }
    panic!("`{program}` did not listen on {addr} within 20 s");
}

/// Starts `program` with `args(port)` on a free port, retrying if another process took the port first.
pub fn spawn(program: &str, package: &str, args: impl Fn(u16) -> Vec<String>) -> Server {
    require(program, package);
    for _ in 0..5 {
        let port = free_port();
        let dir = tempfile::tempdir().expect("temporary directory");
        let argv = args(port);
        let mut child = launch(program, &argv, &dir);
        if wait_listening(&mut child, port, program) {
            return Server {
                child,
                port,
                dir,
                program: program.to_string(),
                args: argv,
            };
        }
    }
    panic!("`{program}` failed to start on a free port five times");
}

/// A redis-server without persistence on a free port.
pub fn redis_server() -> Server {
    spawn("redis-server", "redis-server", |port| {
        vec![
            "--port".into(),
            port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--save".into(),
            String::new(),
            "--appendonly".into(),
            "no".into(),
        ]
    })
}

/// A memcached on a free port.
pub fn memcached_server() -> Server {
    spawn("memcached", "memcached", |port| {
        vec![
            "-l".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
            "-U".into(),
            "0".into(),
            "-u".into(),
            "root".into(),
        ]
    })
}

/// A redis-server without persistence on a free port, with extra arguments (e.g. `--requirepass`).
pub fn redis_server_with(extra: &[&str]) -> Server {
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    spawn("redis-server", "redis-server", move |port| {
        let mut args = vec![
            "--port".into(),
            port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--save".into(),
            String::new(),
            "--appendonly".into(),
            "no".into(),
        ];
        args.extend(extra.iter().cloned());
        args
    })
}

/// Runs a command line to completion, panicking with its output when it fails.
pub fn run_checked(program: &str, package: &str, args: &[&str], dir: &std::path::Path) -> String {
    require(program, package);
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running `{program}`: {e}"));
    if !out.status.success() {
        panic!(
            "`{program} {}` failed: {}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A three-master Redis Cluster on 127.0.0.1 (no replicas, no persistence), stopped on drop.
pub struct RedisCluster {
    /// The masters.
    pub nodes: Vec<Server>,
}

impl RedisCluster {
    /// `127.0.0.1:{port}` of every master.
    pub fn addrs(&self) -> Vec<String> {
        self.nodes.iter().map(Server::addr).collect()
    }
}

/// Starts three `redis-server --cluster-enabled yes` on free ports and joins them with
/// `redis-cli --cluster create`, then polls until every node reports `cluster_state:ok`.
pub fn redis_cluster() -> RedisCluster {
    require("redis-cli", "redis-tools");
    let nodes: Vec<Server> = (0..3)
        .map(|_| {
            // The cluster bus defaults to port + 10000, past 65535 for most ephemeral ports: pick it too.
            let bus = free_port().to_string();
            redis_server_with(&[
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "5000",
                "--cluster-port",
                &bus,
            ])
        })
        .collect();
    let addrs: Vec<String> = nodes.iter().map(Server::addr).collect();
    let mut args = vec!["--cluster", "create"];
    args.extend(addrs.iter().map(String::as_str));
    args.extend(["--cluster-replicas", "0", "--cluster-yes"]);
    run_checked("redis-cli", "redis-tools", &args, nodes[0].dir.path());
    let deadline = Instant::now() + Duration::from_secs(30);
    for node in &nodes {
        let port = node.port.to_string();
        loop {
            let info = run_checked(
                "redis-cli",
                "redis-tools",
                &["-h", "127.0.0.1", "-p", &port, "cluster", "info"],
                node.dir.path(),
            );
            // Every node must also know every slot's owner before clients can rely on it.
            let slots = run_checked(
                "redis-cli",
                "redis-tools",
                &["-h", "127.0.0.1", "-p", &port, "cluster", "slots"],
                node.dir.path(),
            );
            let owners = slots.lines().filter(|l| l.trim() == "127.0.0.1").count();
            if info.contains("cluster_state:ok") && owners >= 3 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster did not become ready within 30 s:\n{info}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    RedisCluster { nodes }
}

/// A redis-server speaking only TLS, with a throwaway certificate authority.
pub struct TlsRedis {
    /// The server (its port is the TLS port).
    pub server: Server,
    /// Holds `ca.crt` (the authority to trust), `server.crt`, `server.key`.
    pub certs: tempfile::TempDir,
}

impl TlsRedis {
    /// The PEM file of the authority that signed the server's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.certs.path().join("ca.crt")
    }
}

/// Makes a CA and a server certificate for 127.0.0.1 with the `openssl` command line, then starts a TLS-only
/// redis-server with it.
pub fn redis_tls_server() -> TlsRedis {
    let certs = tempfile::tempdir().expect("temporary directory");
    let dir = certs.path();
    let openssl = |args: &[&str]| run_checked("openssl", "openssl", args, dir);
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=cache-suite test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .expect("writing the certificate extensions");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
    let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let (cert, key, ca) = (path("server.crt"), path("server.key"), path("ca.crt"));
    let server = spawn("redis-server", "redis-server", move |port| {
        vec![
            "--port".into(),
            "0".into(),
            "--tls-port".into(),
            port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--tls-cert-file".into(),
            cert.clone(),
            "--tls-key-file".into(),
            key.clone(),
            "--tls-ca-cert-file".into(),
            ca.clone(),
            "--tls-auth-clients".into(),
            "no".into(),
            "--save".into(),
            String::new(),
            "--appendonly".into(),
            "no".into(),
        ]
    });
    TlsRedis { server, certs }
}

/// A plain connection to a test redis-server, to look at it independently of the code under test.
pub fn admin(port: u16) -> redis::Connection {
    redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .unwrap()
        .get_connection()
        .unwrap()
}

/// Per-command call counts and how many reads the server made from client sockets.
pub struct ServerStats {
    pub calls: std::collections::BTreeMap<String, u64>,
    pub reads: u64,
}

pub fn server_stats(admin: &mut redis::Connection) -> ServerStats {
    let info: String = redis::cmd("INFO").arg("everything").query(admin).unwrap();
    let mut calls = std::collections::BTreeMap::new();
    let mut reads = 0;
    for line in info.lines() {
        if let Some(rest) = line.strip_prefix("cmdstat_") {
            let (name, fields) = rest.split_once(':').unwrap();
            let n = fields
                .split(',')
                .find_map(|f| f.strip_prefix("calls="))
                .unwrap()
                .parse()
                .unwrap();
            calls.insert(name.to_string(), n);
        } else if let Some(n) = line.strip_prefix("total_reads_processed:") {
            reads = n.trim().parse().unwrap();
        }
    }
    ServerStats { calls, reads }
}

/// What the server did while `op` ran: the commands it executed (INFO excluded) and how many separate
/// requests (socket reads) reached it, the INFO that takes the second snapshot excluded.
pub fn observed(
    admin: &mut redis::Connection,
    op: impl FnOnce(),
) -> (std::collections::BTreeMap<String, u64>, u64) {
    let before = server_stats(admin);
    op();
    let after = server_stats(admin);
    let delta = after
        .calls
        .iter()
        .filter(|(name, _)| name.as_str() != "info")
        .filter_map(|(name, n)| {
            let d = n - before.calls.get(name).copied().unwrap_or(0);
            (d > 0).then(|| (name.clone(), d))
        })
        .collect();
    (delta, after.reads - before.reads - 1)
}

pub fn calls(pairs: &[(&str, u64)]) -> std::collections::BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// A backend that is always down: every command fails with a backend error, for fail-open tests.
pub struct DownBackend;

impl cache_runtime::Backend for DownBackend {
    fn name(&self) -> &str {
        "down"
    }
    fn get(
        &self,
        _: &str,
        _: &cache_runtime::CallOptions,
    ) -> Result<Option<cache_runtime::Value>, cache_runtime::Error> {
        Err(cache_runtime::Error::backend("down", "connection refused"))
    }
    fn set(
        &self,
        _: &str,
        _: cache_runtime::Value,
        _: Option<Duration>,
        _: &cache_runtime::CallOptions,
    ) -> Result<(), cache_runtime::Error> {
        Err(cache_runtime::Error::backend("down", "connection refused"))
    }
    fn add(
        &self,
        _: &str,
        _: cache_runtime::Value,
        _: Option<Duration>,
        _: &cache_runtime::CallOptions,
    ) -> Result<bool, cache_runtime::Error> {
        Err(cache_runtime::Error::backend("down", "connection refused"))
    }
    fn delete(&self, _: &str, _: &cache_runtime::CallOptions) -> Result<u64, cache_runtime::Error> {
        Err(cache_runtime::Error::backend("down", "connection refused"))
    }
}
