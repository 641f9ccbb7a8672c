//! Serializers: the same value through each built-in, a compressed one, and a user-defined one.
//!
//! Run: `cargo run --example serializers`.

use cache_runtime::{
    BinarySerializer, Cache, Compressed, Error, JsonSerializer, MsgPackSerializer, NullSerializer,
    Serializer, Sink, StringSerializer, Ttl,
};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Report {
    title: String,
    rows: Vec<(String, f64)>,
}

/// A user-defined serializer: JSON prefixed by a schema version.
struct VersionedJson;

impl Serializer for VersionedJson {
    fn name(&self) -> &str {
        "versioned_json"
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
        let json = bytes
            .strip_prefix(b"v1:")
            .ok_or_else(|| Error::deserialize(self.name(), "unknown schema version"))?;
        sink.feed(&mut serde_json::Deserializer::from_slice(json))
    }
}

fn show(cache: &Cache, report: &Report) -> cache_runtime::Result<()> {
    cache.set("report", report, Ttl::Default)?;
    let back: Report = cache.get("report")?.expect("just stored");
    assert_eq!(&back, report);
    let stored = match cache.get_stored("report")? {
        Some(v) => v
            .as_bytes()
            .map_or("(the typed object itself)".to_string(), |b| {
                format!("{} bytes", b.len())
            }),
        None => "nothing".into(),
    };
    println!("{:>16}: {stored}", cache.serializer().name());
    Ok(())
}

fn main() -> cache_runtime::Result<()> {
    let report = Report {
        title: "daily".into(),
        rows: (0..50)
            .map(|i| (format!("metric-{}", i % 5), i as f64 * 0.5))
            .collect(),
    };
    let serializers: Vec<std::sync::Arc<dyn Serializer>> = vec![
        std::sync::Arc::new(NullSerializer),
        std::sync::Arc::new(JsonSerializer),
        std::sync::Arc::new(MsgPackSerializer),
        std::sync::Arc::new(BinarySerializer),
        std::sync::Arc::new(Compressed::lz4(JsonSerializer)),
        std::sync::Arc::new(VersionedJson),
    ];
    for serializer in serializers {
        show(
            &Cache::builder().serializer_shared(serializer).build()?,
            &report,
        )?;
    }

    // The compression example: stored bytes are shorter, the value reads back whole.
    let plain = Cache::builder().serializer(JsonSerializer).build()?;
    let packed = Cache::builder()
        .serializer(Compressed::lz4(JsonSerializer))
        .build()?;
    let text = "the quick brown fox jumps over the lazy dog. ".repeat(200);
    plain.set("text", &text, Ttl::Default)?;
    packed.set("text", &text, Ttl::Default)?;
    let len = |c: &Cache| {
        c.get_stored("text")
            .ok()
            .flatten()
            .and_then(|v| v.as_bytes().map(<[u8]>::len))
    };
    println!(
        "compression: {:?} bytes plain, {:?} bytes lz4",
        len(&plain),
        len(&packed)
    );
    assert_eq!(packed.get::<String>("text")?, Some(text));

    // Scalars as plain text, readable by anything.
    let strings = Cache::builder().serializer(StringSerializer).build()?;
    strings.set("answer", &42u32, Ttl::Default)?;
    println!(
        "string serializer stored: {:?}",
        strings.get_stored("answer")?
    );
    Ok(())
}
