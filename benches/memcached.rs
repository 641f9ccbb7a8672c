//! Memcached: the backend's `get`, `multi_get` of 100 keys and `set` against a minimal raw ASCII-protocol
//! client over one `TcpStream` (the floor: one write, one read, no pool), and against the `memcache` crate
//! tuned as the issue measured it (ASCII protocol, no `version` probe on pool checkout) and with its defaults.
//!
//! Every contender talks to the same local memcached (started on a free port, stopped at the end), one
//! request at a time. Run: `cargo bench --features memcached --bench memcached`.

mod common;
use common::interleaved;

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::hint::black_box;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

use cache_runtime::{Backend, Cache, CallOptions, MemcachedBackend, Ttl, Value};
use criterion::{criterion_group, criterion_main, Criterion};

/// The floor: a text-protocol client with nothing but a buffered socket.
struct Raw {
    reader: BufReader<TcpStream>,
    line: Vec<u8>,
    out: Vec<u8>,
}

impl Raw {
    fn connect(addr: &str) -> Raw {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        Raw {
            reader: BufReader::new(stream),
            line: Vec::new(),
            out: Vec::new(),
        }
    }

    fn read_line(&mut self) -> &[u8] {
        self.line.clear();
        self.reader.read_until(b'\n', &mut self.line).unwrap();
        &self.line[..self.line.len() - 2]
    }

    /// Reads `VALUE` blocks up to `END`.
    fn read_values(&mut self, found: &mut HashMap<Vec<u8>, Vec<u8>>) {
        loop {
            let line = self.read_line();
            if line == b"END" {
                return;
            }
            let mut parts = line.split(|&b| b == b' ').skip(1);
            let key = parts.next().unwrap().to_vec();
            let len: usize = std::str::from_utf8(parts.nth(1).unwrap())
                .unwrap()
                .parse()
                .unwrap();
            let mut data = vec![0; len + 2];
            self.reader.read_exact(&mut data).unwrap();
            data.truncate(len);
            found.insert(key, data);
        }
    }

    fn get(&mut self, key: &str) -> Option<Vec<u8>> {
        self.out.clear();
        self.out.extend_from_slice(b"get ");
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\r\n");
        self.reader.get_mut().write_all(&self.out).unwrap();
        let mut found = HashMap::new();
        self.read_values(&mut found);
        found.into_values().next()
    }

    fn multi_get(&mut self, keys: &[String]) -> Vec<Option<Vec<u8>>> {
        self.out.clear();
        self.out.extend_from_slice(b"get");
        for k in keys {
            self.out.push(b' ');
            self.out.extend_from_slice(k.as_bytes());
        }
        self.out.extend_from_slice(b"\r\n");
        self.reader.get_mut().write_all(&self.out).unwrap();
        let mut found = HashMap::with_capacity(keys.len());
        self.read_values(&mut found);
        keys.iter()
            .map(|k| found.get(k.as_bytes()).cloned())
            .collect()
    }

    fn set(&mut self, key: &str, data: &[u8]) {
        self.out.clear();
        write!(self.out, "set {key} 0 0 {}\r\n", data.len()).unwrap();
        self.out.extend_from_slice(data);
        self.out.extend_from_slice(b"\r\n");
        self.reader.get_mut().write_all(&self.out).unwrap();
        assert_eq!(self.read_line(), b"STORED");
    }
}

fn memcache_tuned(addr: &str) -> memcache::Client {
    let url = memcache::Url::parse(&format!("memcache://{addr}?protocol=ascii")).unwrap();
    let pool = r2d2::Pool::builder()
        .max_size(1)
        .test_on_check_out(false)
        .build(memcache::ConnectionManager::new(url))
        .unwrap();
    memcache::Client::with_pool(pool).unwrap()
}

fn memcache_defaults(addr: &str) -> memcache::Client {
    memcache::Client::connect(format!("memcache://{addr}")).unwrap()
}

fn benches(c: &mut Criterion) {
    // One worker thread: every client's connection is served by the same thread, so on a busy machine no
    // contender gets a luckier (less contended) server thread than another.
    let server = support::spawn("memcached", "memcached", |port| {
        [
            "-l",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "0",
            "-t",
            "1",
            "-u",
            "root",
        ]
        .map(String::from)
        .to_vec()
    });
    let addr = server.addr();
    let backend = MemcachedBackend::new(addr.clone()).unwrap();
    let cache = Cache::builder()
        .backend(MemcachedBackend::new(addr.clone()).unwrap())
        .build()
        .unwrap();
    let opts = CallOptions {
        timeout: Some(std::time::Duration::from_secs(5)),
    };
    let value = "v".repeat(98); // 100 bytes as JSON
    let json = serde_json::to_vec(&value).unwrap();
    let keys: Vec<String> = (0..100).map(|i| format!("bench:key:{i}")).collect();
    let mut raw = Raw::connect(&addr);
    for k in &keys {
        raw.set(k, &json);
    }
    let tuned = memcache_tuned(&addr);
    let defaults = memcache_defaults(&addr);
    let key = keys[0].as_str();

    let mut g = c.benchmark_group("memcached_get");
    g.bench_function("raw_ascii", |b| {
        b.iter(|| black_box(raw.get(black_box(key)).unwrap()))
    });
    g.bench_function("backend", |b| {
        b.iter(|| black_box(backend.get(black_box(key), &opts).unwrap().unwrap()))
    });
    g.bench_function("cache_typed", |b| {
        b.iter(|| black_box(cache.get::<String>(black_box(key)).unwrap().unwrap()))
    });
    g.bench_function("memcache_crate_tuned", |b| {
        b.iter(|| black_box(tuned.get::<Vec<u8>>(black_box(key)).unwrap().unwrap()))
    });
    g.bench_function("memcache_crate_defaults", |b| {
        b.iter(|| black_box(defaults.get::<Vec<u8>>(black_box(key)).unwrap().unwrap()))
    });
    g.finish();

    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let mut g = c.benchmark_group("memcached_multi_get_100");
    g.bench_function("raw_ascii", |b| {
        b.iter(|| black_box(raw.multi_get(black_box(&keys))))
    });
    g.bench_function("backend", |b| {
        b.iter(|| black_box(backend.multi_get(black_box(&key_refs), &opts).unwrap()))
    });
    g.bench_function("cache_typed", |b| {
        b.iter(|| black_box(cache.multi_get::<String, _>(black_box(&keys)).unwrap()))
    });
    g.bench_function("memcache_crate_tuned", |b| {
        b.iter(|| black_box(tuned.gets::<Vec<u8>>(black_box(&key_refs)).unwrap()))
    });
    g.finish();

    let mut g = c.benchmark_group("memcached_set");
    g.bench_function("raw_ascii", |b| b.iter(|| raw.set(black_box(key), &json)));
    g.bench_function("backend", |b| {
        b.iter(|| {
            backend
                .set(black_box(key), Value::Bytes(json.clone()), None, &opts)
                .unwrap()
        })
    });
    g.bench_function("memcache_crate_tuned", |b| {
        b.iter(|| tuned.set(black_box(key), json.as_slice(), 0).unwrap())
    });
    g.finish();

    let pairs: Vec<(String, String)> = keys.iter().map(|k| (k.clone(), value.clone())).collect();
    let mut g = c.benchmark_group("memcached_multi_set_100");
    g.bench_function("backend_pipelined", |b| {
        b.iter(|| cache.multi_set(black_box(&pairs), Ttl::Default).unwrap())
    });
    g.bench_function("raw_ascii_one_by_one", |b| {
        b.iter(|| {
            for k in &keys {
                raw.set(k, &json);
            }
        })
    });
    g.finish();
    {
        let raw = std::cell::RefCell::new(&mut raw);
        interleaved(
            "memcached get (raw ASCII vs backend)",
            20_000,
            || drop(black_box(raw.borrow_mut().get(key))),
            || drop(black_box(backend.get(key, &opts).unwrap())),
        );
        interleaved(
            "memcached multi_get 100 (raw ASCII vs backend)",
            3_000,
            || drop(black_box(raw.borrow_mut().multi_get(&keys))),
            || drop(black_box(backend.multi_get(&key_refs, &opts).unwrap())),
        );
    }
    drop(server);
}

criterion_group!(memcached, benches);
criterion_main!(memcached);
