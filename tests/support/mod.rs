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
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("loopback address");
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
