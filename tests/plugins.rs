//! Plugin hooks, the shipped plugins' stats under their exact names, and panicking plugins.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use cache_runtime::{
    Cache, Call, Command, Done, HitMissRatioPlugin, Outcome, Plugin, TimingPlugin, Ttl,
};

#[test]
fn hit_miss_ratio_counts_each_key() {
    let ratio = Arc::new(HitMissRatioPlugin::new());
    let cache = Cache::builder()
        .plugin_shared(ratio.clone())
        .build()
        .unwrap();
    cache.set("a", &1, Ttl::Default).unwrap();
    cache.set("b", &2, Ttl::Default).unwrap();
    assert_eq!(cache.get::<i32>("a").unwrap(), Some(1));
    assert_eq!(cache.get::<i32>("zz").unwrap(), None);
    cache.multi_get::<i32, _>(&["a", "b", "c", "d"]).unwrap();
    let stats = ratio.stats();
    assert_eq!(
        stats.keys().copied().collect::<Vec<_>>(),
        vec!["hit_ratio", "hits", "total"]
    );
    assert_eq!(stats["hits"], 3.0);
    assert_eq!(stats["total"], 6.0);
    assert_eq!(stats["hit_ratio"], 0.5);
    // Failed reads count as misses.
    assert!(cache.get::<String>("a").is_err());
    assert_eq!(ratio.total(), 7);
    assert_eq!(ratio.hits(), 3);
    ratio.reset();
    assert_eq!(ratio.hit_ratio(), 0.0);
}

#[test]
fn timing_has_min_max_avg_total_per_command() {
    let timing = Arc::new(TimingPlugin::new());
    let cache = Cache::builder()
        .plugin_shared(timing.clone())
        .build()
        .unwrap();
    for i in 0..5 {
        cache.set(&format!("k{i}"), &i, Ttl::Default).unwrap();
    }
    for _ in 0..3 {
        let _ = cache.get::<i32>("k1").unwrap();
    }
    cache.increment("n", 1).unwrap();
    let stats = timing.stats();
    for cmd in ["set", "get", "increment"] {
        for suffix in ["min", "max", "avg", "total"] {
            assert!(
                stats.contains_key(&format!("{cmd}_{suffix}")),
                "{cmd}_{suffix} in {stats:?}"
            );
        }
        assert!(stats[&format!("{cmd}_min")] <= stats[&format!("{cmd}_avg")]);
        assert!(stats[&format!("{cmd}_avg")] <= stats[&format!("{cmd}_max")]);
    }
    assert_eq!(stats["set_total"], 5.0);
    assert_eq!(stats["get_total"], 3.0);
    assert_eq!(stats["increment_total"], 1.0);
    assert!(!stats.contains_key("delete_total"));
    assert_eq!(timing.timing(Command::Get).unwrap().count, 3);
    assert!(timing.timing(Command::Delete).is_none());
}

/// Records every hook call.
#[derive(Default)]
struct Recorder {
    log: Mutex<Vec<String>>,
}

impl Plugin for Recorder {
    fn pre(&self, call: &Call<'_>) {
        self.log.lock().unwrap().push(format!(
            "pre {} {:?} {:?}",
            call.command.name(),
            call.keys,
            call.namespace
        ));
    }
    fn post(&self, call: &Call<'_>, done: &Done<'_>) {
        let outcome = match &done.outcome {
            Outcome::Get { hit } => format!("hit={hit}"),
            Outcome::MultiGet { hits } => format!("hits={hits:?}"),
            Outcome::Increment(n) => format!("n={n}"),
            Outcome::Deleted(n) => format!("deleted={n}"),
            Outcome::Failed(e) => format!(
                "failed={}",
                matches!(e, cache_runtime::Error::KeyExists { .. })
            ),
            Outcome::Done => "done".into(),
            other => format!("{other:?}"),
        };
        self.log
            .lock()
            .unwrap()
            .push(format!("post {} {outcome}", call.command.name()));
    }
}

#[test]
fn hooks_see_every_command_with_keys_and_results() {
    let rec = Arc::new(Recorder::default());
    let cache = Cache::builder()
        .namespace("ns")
        .plugin_shared(rec.clone())
        .build()
        .unwrap();
    cache.set("a", &1, Ttl::Default).unwrap();
    cache.get::<i32>("a").unwrap();
    cache.multi_get::<i32, _>(&["a", "b"]).unwrap();
    let _ = cache.add("a", &2, Ttl::Default);
    cache.increment("n", 4).unwrap();
    cache.delete("a").unwrap();
    let log = rec.log.lock().unwrap().clone();
    assert_eq!(
        log,
        vec![
            r#"pre set ["a"] Some("ns")"#,
            "post set done",
            r#"pre get ["a"] Some("ns")"#,
            "post get hit=true",
            r#"pre multi_get ["a", "b"] Some("ns")"#,
            "post multi_get hits=[true, false]",
            r#"pre add ["a"] Some("ns")"#,
            "post add failed=true",
            r#"pre increment ["n"] Some("ns")"#,
            "post increment n=4",
            r#"pre delete ["a"] Some("ns")"#,
            "post delete deleted=1",
        ]
    );
}

/// Panics in every hook.
struct Boom(AtomicUsize);

impl Plugin for Boom {
    fn pre(&self, _call: &Call<'_>) {
        self.0.fetch_add(1, Ordering::SeqCst);
        panic!("plugin bug");
    }
    fn post_get(&self, _call: &Call<'_>, _done: &Done<'_>) {
        panic!("plugin bug in post_get");
    }
}

#[test]
fn a_panicking_plugin_never_breaks_or_poisons_the_cache() {
    let boom = Arc::new(Boom(AtomicUsize::new(0)));
    let ratio = Arc::new(HitMissRatioPlugin::new());
    let cache = Cache::builder()
        .plugin_shared(boom.clone())
        .plugin_shared(ratio.clone())
        .build()
        .unwrap();
    for round in 0..3 {
        cache.set("k", &round, Ttl::Default).unwrap();
        assert_eq!(cache.get::<i32>("k").unwrap(), Some(round));
        assert_eq!(cache.increment("n", 1).unwrap(), round as i64 + 1);
    }
    // Later plugins still ran, and from other threads the cache is healthy too.
    assert_eq!(ratio.hits(), 3);
    assert_eq!(boom.0.load(Ordering::SeqCst), 9);
    let c = cache.clone();
    std::thread::spawn(move || c.set("t", &1, Ttl::Default).unwrap())
        .join()
        .unwrap();
    assert_eq!(cache.get::<i32>("t").unwrap(), Some(1));
}

#[test]
fn plugin_lookup_by_type() {
    let cache = Cache::builder()
        .plugin(TimingPlugin::new())
        .plugin(HitMissRatioPlugin::new())
        .build()
        .unwrap();
    let _ = cache.get::<u8>("x");
    assert_eq!(cache.plugin::<HitMissRatioPlugin>().unwrap().total(), 1);
    assert!(cache
        .plugin::<TimingPlugin>()
        .unwrap()
        .timing(Command::Get)
        .is_some());
    assert!(cache.plugin::<Recorder>().is_none());
}
