//! Every serializer round-trips serde types; compression; reading with the wrong serializer or type is a
//! Deserialize error that leaves the stored bytes alone; user-defined serializers.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use cache_runtime::{
    BinarySerializer, Cache, Compressed, Error, JsonSerializer, MemoryBackend, MsgPackSerializer,
    NullSerializer, Serializer, Sink, StringSerializer, Ttl, Value,
};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Role {
    Admin,
    Guest { since: u32 },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Profile {
    id: u64,
    name: String,
    score: f64,
    active: bool,
    nickname: Option<String>,
    roles: Vec<Role>,
    attrs: BTreeMap<String, i32>,
    bytes: Vec<u8>,
    pair: (i8, char),
}

fn profile() -> Profile {
    Profile {
        id: u64::MAX,
        name: "Zoë \"quoted\" \n line".into(),
        score: -1.5,
        active: true,
        nickname: None,
        roles: vec![Role::Admin, Role::Guest { since: 2020 }],
        attrs: BTreeMap::from([("a".into(), 1), ("b".into(), -2)]),
        bytes: vec![0, 255, 10],
        pair: (-8, '✓'),
    }
}

fn byte_serializers() -> Vec<Arc<dyn Serializer>> {
    vec![
        Arc::new(JsonSerializer),
        Arc::new(MsgPackSerializer),
        Arc::new(BinarySerializer),
        Arc::new(Compressed::lz4(JsonSerializer)),
        Arc::new(Compressed::lz4(BinarySerializer)),
    ]
}

fn cache_with(serializer: Arc<dyn Serializer>, backend: Arc<MemoryBackend>) -> Cache {
    Cache::builder()
        .backend_shared(backend)
        .serializer_shared(serializer)
        .build()
        .unwrap()
}

#[test]
fn structured_values_roundtrip_with_every_serializer() {
    let mut all = byte_serializers();
    all.push(Arc::new(NullSerializer));
    for serializer in all {
        let name = serializer.name().to_string();
        let cache = cache_with(serializer, Arc::new(MemoryBackend::new()));
        cache.set("p", &profile(), Ttl::Default).unwrap();
        assert_eq!(
            cache.get::<Profile>("p").unwrap(),
            Some(profile()),
            "{name}"
        );
        let map = HashMap::from([(1u32, vec![Some(1.25f32), None])]);
        cache.set("m", &map, Ttl::Default).unwrap();
        assert_eq!(
            cache.get::<HashMap<u32, Vec<Option<f32>>>>("m").unwrap(),
            Some(map),
            "{name}"
        );
        cache.set("unit", &(), Ttl::Default).unwrap();
        assert_eq!(cache.get::<()>("unit").unwrap(), Some(()), "{name}");
        cache.set("none", &None::<String>, Ttl::Default).unwrap();
        assert_eq!(
            cache.get::<Option<String>>("none").unwrap(),
            Some(None),
            "{name}"
        );
    }
}

#[test]
fn string_serializer_stores_plain_text_scalars() {
    let cache = Cache::builder()
        .serializer(StringSerializer)
        .build()
        .unwrap();
    cache
        .set("s", &"hello world".to_string(), Ttl::Default)
        .unwrap();
    cache.set("n", &-42i64, Ttl::Default).unwrap();
    cache.set("f", &2.5f64, Ttl::Default).unwrap();
    cache.set("b", &true, Ttl::Default).unwrap();
    let raw = |k: &str| {
        cache
            .get_stored(k)
            .unwrap()
            .unwrap()
            .as_bytes()
            .unwrap()
            .to_vec()
    };
    assert_eq!(raw("s"), b"hello world");
    assert_eq!(raw("n"), b"-42");
    assert_eq!(raw("f"), b"2.5");
    assert_eq!(
        cache.get::<String>("s").unwrap().as_deref(),
        Some("hello world")
    );
    assert_eq!(cache.get::<i64>("n").unwrap(), Some(-42));
    assert_eq!(cache.get::<f64>("f").unwrap(), Some(2.5));
    assert_eq!(cache.get::<bool>("b").unwrap(), Some(true));
    assert!(matches!(
        cache.get::<u8>("s"),
        Err(Error::Deserialize { .. })
    ));
    assert!(matches!(
        cache.set("v", &vec![1, 2], Ttl::Default),
        Err(Error::Serialize { .. })
    ));
    assert!(
        !cache.exists("v").unwrap(),
        "a failed encode stores nothing"
    );
}

#[test]
fn json_bytes_are_plain_json() {
    let cache = Cache::builder().serializer(JsonSerializer).build().unwrap();
    cache
        .set("k", &serde_json::json!({"a": [1, "x"]}), Ttl::Default)
        .unwrap();
    assert_eq!(
        cache.get_stored("k").unwrap().unwrap().as_bytes().unwrap(),
        br#"{"a":[1,"x"]}"#
    );
}

#[test]
fn compression_stores_fewer_bytes_and_reads_back_the_original() {
    let plain = Cache::builder().serializer(JsonSerializer).build().unwrap();
    let packed = Cache::builder()
        .serializer(Compressed::lz4(JsonSerializer))
        .build()
        .unwrap();
    let report: Vec<String> = (0..200)
        .map(|i| format!("line {} of a long report", i % 7))
        .collect();
    plain.set("r", &report, Ttl::Default).unwrap();
    packed.set("r", &report, Ttl::Default).unwrap();
    let plain_len = plain
        .get_stored("r")
        .unwrap()
        .unwrap()
        .as_bytes()
        .unwrap()
        .len();
    let packed_len = packed
        .get_stored("r")
        .unwrap()
        .unwrap()
        .as_bytes()
        .unwrap()
        .len();
    assert!(packed_len * 4 < plain_len, "{packed_len} vs {plain_len}");
    assert_eq!(packed.get::<Vec<String>>("r").unwrap(), Some(report));
}

#[test]
fn reading_with_another_serializer_fails_and_leaves_bytes_untouched() {
    let backend = Arc::new(MemoryBackend::new());
    for writer in byte_serializers() {
        for reader in byte_serializers() {
            if writer.name() == reader.name() {
                continue;
            }
            let w = cache_with(writer.clone(), backend.clone());
            let r = cache_with(reader.clone(), backend.clone());
            w.set("p", &profile(), Ttl::Default).unwrap();
            let before = w
                .get_stored("p")
                .unwrap()
                .unwrap()
                .as_bytes()
                .unwrap()
                .to_vec();
            let read = r.get::<Profile>("p");
            assert!(
                matches!(read, Err(Error::Deserialize { .. })),
                "{} read {}'s bytes: {read:?}",
                reader.name(),
                writer.name()
            );
            assert_eq!(
                w.get_stored("p").unwrap().unwrap().as_bytes().unwrap(),
                &before[..]
            );
            assert_eq!(w.get::<Profile>("p").unwrap(), Some(profile()));
        }
    }
}

#[test]
fn hostile_bytes_are_errors_not_panics_or_huge_allocations() {
    let backend = Arc::new(MemoryBackend::new());
    let raw = cache_with(Arc::new(JsonSerializer), backend.clone());
    let inputs: Vec<Vec<u8>> = vec![
        vec![],
        vec![0xff; 3],
        vec![0xff, 0xff, 0xff, 0x7f, 1, 2, 3], // LZ4 size prefix claiming ~2 GiB
        b"{\"id\":".to_vec(),
        vec![0x9f; 64],
        (0..=255u8).collect(),
    ];
    for serializer in byte_serializers() {
        let cache = cache_with(serializer.clone(), backend.clone());
        for input in &inputs {
            raw.set_stored("x", Value::Bytes(input.clone()), Ttl::Default)
                .unwrap();
            assert!(
                matches!(cache.get::<Profile>("x"), Err(Error::Deserialize { .. })),
                "{} on {input:?}",
                serializer.name()
            );
        }
    }
}

/// A user-defined serializer: JSON with a version prefix.
struct Versioned;

impl Serializer for Versioned {
    fn name(&self) -> &str {
        "versioned"
    }
    fn serialize(
        &self,
        value: &dyn cache_runtime::erased_serde::Serialize,
    ) -> Result<Vec<u8>, Error> {
        let mut out = b"v1:".to_vec();
        serde_json::to_writer(&mut out, value).map_err(|e| Error::serialize(self.name(), e))?;
        Ok(out)
    }
    fn deserialize(&self, bytes: &[u8], sink: Sink<'_>) -> Result<(), Error> {
        let body = bytes
            .strip_prefix(b"v1:")
            .ok_or_else(|| Error::deserialize(self.name(), "missing version prefix"))?;
        sink.feed(&mut serde_json::Deserializer::from_slice(body))
    }
}

#[test]
fn user_defined_serializer() {
    let cache = Cache::builder().serializer(Versioned).build().unwrap();
    cache.set("p", &profile(), Ttl::Default).unwrap();
    assert!(cache
        .get_stored("p")
        .unwrap()
        .unwrap()
        .as_bytes()
        .unwrap()
        .starts_with(b"v1:{"));
    assert_eq!(cache.get::<Profile>("p").unwrap(), Some(profile()));
    // Compression wraps user serializers too.
    let packed = Cache::builder()
        .serializer(Compressed::lz4(Versioned))
        .build()
        .unwrap();
    packed.set("p", &profile(), Ttl::Default).unwrap();
    assert_eq!(packed.get::<Profile>("p").unwrap(), Some(profile()));
}

#[test]
fn object_serializer_needs_an_object_backend() {
    struct BytesOnly;
    impl cache_runtime::Backend for BytesOnly {
        fn name(&self) -> &str {
            "bytes_only"
        }
        fn get(&self, _: &str, _: &cache_runtime::CallOptions) -> Result<Option<Value>, Error> {
            Ok(None)
        }
        fn set(
            &self,
            _: &str,
            _: Value,
            _: Option<std::time::Duration>,
            _: &cache_runtime::CallOptions,
        ) -> Result<(), Error> {
            Ok(())
        }
        fn add(
            &self,
            _: &str,
            _: Value,
            _: Option<std::time::Duration>,
            _: &cache_runtime::CallOptions,
        ) -> Result<bool, Error> {
            Ok(true)
        }
        fn delete(&self, _: &str, _: &cache_runtime::CallOptions) -> Result<u64, Error> {
            Ok(0)
        }
    }
    let err = Cache::builder()
        .backend(BytesOnly)
        .serializer(NullSerializer)
        .build()
        .unwrap_err();
    assert!(
        matches!(err, Error::Config(ref m) if m.contains("bytes_only")),
        "{err}"
    );
    let default = Cache::builder().backend(BytesOnly).build().unwrap();
    assert_eq!(
        default.serializer().name(),
        "json",
        "byte backends default to JSON"
    );
}
