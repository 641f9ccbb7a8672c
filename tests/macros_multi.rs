//! `#[multi_cached]`: one `multi_get`, the function called with only the missing keys in the same collection type,
//! one `multi_set` of what it returned, the merged map returned.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};

use cache_runtime::{caches, multi_cached, AliasConfig, Command, HitMissRatioPlugin, PluginConfig};
use parking_lot::Mutex;

fn count(counter: &AtomicUsize) -> usize {
    counter.load(Ordering::SeqCst)
}

/// What the function was called with, per call.
static VEC_SEEN: Mutex<Vec<Vec<u32>>> = Mutex::new(Vec::new());

#[multi_cached(alias = "multi_vec", keys_from_attr = "ids")]
fn users(ids: Vec<u32>) -> HashMap<u32, String> {
    VEC_SEEN.lock().push(ids.clone());
    ids.into_iter()
        .filter(|id| *id != 404)
        .map(|id| (id, format!("user{id}")))
        .collect()
}

fn stats(alias: &str) -> (u64, u64) {
    let plugin = caches::get(alias)
        .unwrap()
        .plugin::<HitMissRatioPlugin>()
        .unwrap();
    (plugin.hits(), plugin.total())
}

#[test]
fn vec_keys_call_with_only_the_missing_ones() {
    caches::add(
        "multi_vec",
        AliasConfig::memory().plugin(PluginConfig::new("hit_miss_ratio")),
    )
    .unwrap();
    let first = users(vec![1, 2]);
    assert_eq!(first.len(), 2);
    assert_eq!(first[&1], "user1");

    let second = users(vec![2, 3, 1]);
    assert_eq!(second.len(), 3);
    assert_eq!(second[&3], "user3");
    assert_eq!(
        *VEC_SEEN.lock(),
        vec![vec![1, 2], vec![3]],
        "only the missing key, in a Vec"
    );

    let third = users(vec![3, 1, 2]);
    assert_eq!(third.len(), 3);
    assert_eq!(VEC_SEEN.lock().len(), 2, "all hit: no call");
    assert_eq!(
        stats("multi_vec"),
        (5, 8),
        "each key of each multi_get counted once"
    );

    // A key the function does not return is not cached: asked again next time.
    assert!(!users(vec![404]).contains_key(&404));
    assert!(!users(vec![404]).contains_key(&404));
    assert_eq!(VEC_SEEN.lock().len(), 4);
}

#[test]
fn empty_input_makes_no_cache_call() {
    caches::add(
        "multi_empty",
        AliasConfig::memory().plugin(PluginConfig::new("hit_miss_ratio")),
    )
    .unwrap();
    assert!(nothing(Vec::new()).is_empty());
    assert_eq!(stats("multi_empty").1, 0);
    assert_eq!(
        count(&EMPTY_CALLS),
        0,
        "nothing to look up, nothing to compute"
    );
}

static EMPTY_CALLS: AtomicUsize = AtomicUsize::new(0);

#[multi_cached(alias = "multi_empty", keys_from_attr = "ns")]
fn nothing(ns: Vec<u64>) -> HashMap<u64, u64> {
    EMPTY_CALLS.fetch_add(1, Ordering::SeqCst);
    ns.into_iter().map(|n| (n, n)).collect()
}

static SET_SEEN: Mutex<Vec<HashSet<u64>>> = Mutex::new(Vec::new());

#[multi_cached(alias = "multi_set", keys_from_attr = "ns")]
fn squares_set(ns: HashSet<u64>) -> HashMap<u64, u64> {
    SET_SEEN.lock().push(ns.clone());
    ns.into_iter().map(|n| (n, n * n)).collect()
}

#[test]
fn hash_sets_in_hash_maps_out() {
    caches::add("multi_set", AliasConfig::memory()).unwrap();
    let before = SET_SEEN.lock().len();
    let out = squares_set(HashSet::from([10, 11]));
    assert_eq!(out, HashMap::from([(10, 100), (11, 121)]));
    let out = squares_set(HashSet::from([11, 12]));
    assert_eq!(out, HashMap::from([(11, 121), (12, 144)]));
    let seen = SET_SEEN.lock();
    assert_eq!(seen.len() - before, 2);
    assert_eq!(
        seen.last().unwrap(),
        &HashSet::from([12]),
        "a HashSet of the missing keys"
    );
}

static BTREE_SEEN: Mutex<Vec<BTreeSet<String>>> = Mutex::new(Vec::new());

#[multi_cached(alias = "multi_btree", keys_from_attr = "names", ttl = 60)]
fn lengths(names: &BTreeSet<String>, bonus: usize) -> BTreeMap<String, usize> {
    BTREE_SEEN.lock().push(names.clone());
    names.iter().map(|n| (n.clone(), n.len() + bonus)).collect()
}

#[test]
fn btree_sets_by_reference_and_other_arguments_in_the_key() {
    caches::add("multi_btree", AliasConfig::memory()).unwrap();
    let names: BTreeSet<String> = ["ab".to_string(), "abc".to_string()].into();
    assert_eq!(
        lengths(&names, 0),
        BTreeMap::from([("ab".into(), 2), ("abc".into(), 3)])
    );
    assert_eq!(lengths(&names, 0).len(), 2);
    assert_eq!(BTREE_SEEN.lock().len(), 1);
    assert_eq!(
        lengths(&names, 10)["ab"],
        12,
        "another bonus is another key"
    );
    assert_eq!(BTREE_SEEN.lock().len(), 2);
    assert_eq!(
        lengths_cache_key("ab".into(), 10).unwrap(),
        r#"macros_multi::lengths("ab",10)"#
    );
}

static SLICE_SEEN: Mutex<Vec<Vec<u16>>> = Mutex::new(Vec::new());
static SLICE_KEYS: AtomicUsize = AtomicUsize::new(0);

fn slice_key(id: &u16) -> String {
    SLICE_KEYS.fetch_add(1, Ordering::SeqCst);
    format!("item:{id}")
}

#[multi_cached(alias = "multi_slice", keys_from_attr = "ids", key_builder = slice_key)]
fn items(ids: &[u16]) -> HashMap<u16, u32> {
    SLICE_SEEN.lock().push(ids.to_vec());
    ids.iter().map(|&id| (id, u32::from(id) * 10)).collect()
}

#[test]
fn slices_by_reference_and_key_builder_once_per_element() {
    caches::add("multi_slice", AliasConfig::memory()).unwrap();
    assert_eq!(items(&[1, 2, 3]).len(), 3);
    assert_eq!(
        count(&SLICE_KEYS),
        3,
        "read and write share one key per element"
    );
    assert_eq!(items(&[3, 4]), HashMap::from([(3, 30), (4, 40)]));
    assert_eq!(count(&SLICE_KEYS), 5);
    assert_eq!(*SLICE_SEEN.lock(), vec![vec![1, 2, 3], vec![4]]);
    let cache = items_cache().unwrap();
    assert_eq!(cache.get::<u32>("item:4").unwrap(), Some(40));
}

#[multi_cached(alias = "multi_paths", keys_from_attr = "ids")]
fn doubled(ids: Vec<u32>) -> HashMap<u32, u32> {
    ids.into_iter().map(|id| (id, id * 2)).collect()
}

#[multi_cached(alias = "multi_paths", keys_from_attr = "ids")]
fn tripled(ids: Vec<u32>) -> HashMap<u32, u32> {
    ids.into_iter().map(|id| (id, id * 3)).collect()
}

#[test]
fn two_functions_never_share_entries() {
    caches::add("multi_paths", AliasConfig::memory()).unwrap();
    assert_eq!(doubled(vec![5])[&5], 10);
    assert_eq!(tripled(vec![5])[&5], 15);
    assert_eq!(doubled(vec![5])[&5], 10);
    assert_eq!(doubled_cache_key(5).unwrap(), "macros_multi::doubled(5)");
}

#[test]
fn one_multi_get_and_one_multi_set_per_call() {
    let recorder = std::sync::Arc::new(Recorder::default());
    caches::register_plugin("multi_recorder", {
        let recorder = recorder.clone();
        move || recorder.clone() as std::sync::Arc<dyn cache_runtime::Plugin>
    });
    caches::add(
        "multi_calls",
        AliasConfig::memory().plugin(PluginConfig::new("multi_recorder")),
    )
    .unwrap();
    cubes(vec![1, 2, 3]);
    cubes(vec![2, 3, 4, 5]);
    cubes(vec![5, 4]);
    assert_eq!(
        *recorder.0.lock(),
        vec![
            (Command::MultiGet, 3),
            (Command::MultiSet, 3),
            (Command::MultiGet, 4),
            (Command::MultiSet, 2),
            (Command::MultiGet, 2),
        ]
    );
}

#[multi_cached(alias = "multi_calls", keys_from_attr = "ids")]
fn cubes(ids: Vec<u64>) -> HashMap<u64, u64> {
    ids.into_iter().map(|id| (id, id.pow(3))).collect()
}

/// Records each command and how many keys it carried.
#[derive(Default)]
struct Recorder(Mutex<Vec<(Command, usize)>>);

impl cache_runtime::Plugin for Recorder {
    fn pre(&self, call: &cache_runtime::Call<'_>) {
        self.0.lock().push((call.command, call.keys.len()));
    }
}

static COMPANION_SEEN: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

#[multi_cached(alias = "multi_companion", keys_from_attr = "ids")]
fn flags(ids: Vec<u8>) -> BTreeMap<u8, bool> {
    COMPANION_SEEN.lock().push(ids.clone());
    ids.into_iter().map(|id| (id, id % 2 == 0)).collect()
}

#[test]
fn companion_api_works_per_key() {
    caches::add("multi_companion", AliasConfig::memory()).unwrap();
    assert_eq!(flags_cache_get(2).unwrap(), None);
    flags_cache_set(2, &false).unwrap();
    assert_eq!(flags(vec![2, 3]), BTreeMap::from([(2, false), (3, false)]));
    assert_eq!(*COMPANION_SEEN.lock(), vec![vec![3]]);
    assert!(flags_cache_invalidate(2).unwrap());
    assert_eq!(
        flags_cache_refresh(vec![2, 3]),
        BTreeMap::from([(2, true), (3, false)])
    );
    assert_eq!(flags_cache_get(2).unwrap(), Some(true));
    assert_eq!(flags_uncached(vec![4]), BTreeMap::from([(4, true)]));
    assert_eq!(flags_cache_get(4).unwrap(), None, "uncached stores nothing");
}

static DOWN_SEEN: Mutex<Vec<Vec<u32>>> = Mutex::new(Vec::new());

#[multi_cached(alias = "multi_down", keys_from_attr = "ids")]
fn resilient(ids: Vec<u32>) -> HashMap<u32, u32> {
    DOWN_SEEN.lock().push(ids.clone());
    ids.into_iter().map(|id| (id, id + 1)).collect()
}

#[test]
fn a_cache_that_is_down_fails_open() {
    caches::register_backend(
        "multi_down",
        cache_runtime::BackendSpec::new(&[], |_| Ok(std::sync::Arc::new(support::DownBackend))),
    );
    caches::add("multi_down", AliasConfig::new("multi_down")).unwrap();
    assert_eq!(resilient(vec![1, 2]), HashMap::from([(1, 2), (2, 3)]));
    assert_eq!(resilient(vec![1, 2]), HashMap::from([(1, 2), (2, 3)]));
    assert_eq!(
        *DOWN_SEEN.lock(),
        vec![vec![1, 2], vec![1, 2]],
        "every key is a miss while the cache is down"
    );
}

/// Clones of a value, counted.
static CLONES: AtomicUsize = AtomicUsize::new(0);

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Counted(u32);

impl Clone for Counted {
    fn clone(&self) -> Self {
        CLONES.fetch_add(1, Ordering::SeqCst);
        Counted(self.0)
    }
}

#[multi_cached(cache = "memory://", keys_from_attr = "ids")]
fn counted(ids: Vec<u32>) -> HashMap<u32, Counted> {
    ids.into_iter().map(|id| (id, Counted(id))).collect()
}

#[test]
fn fresh_values_are_cloned_once_into_the_store() {
    let fresh = counted(vec![1, 2, 3]);
    assert_eq!(fresh.len(), 3);
    assert_eq!(
        count(&CLONES),
        3,
        "one clone per value, into the object store"
    );
    let hit = counted(vec![1, 2, 3]);
    assert_eq!(hit, fresh);
    assert_eq!(
        count(&CLONES),
        6,
        "a hit clones each value out of the store"
    );
}
