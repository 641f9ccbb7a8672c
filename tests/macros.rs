//! `#[cached]` on every function shape, counting body executions to prove hits and misses; TTL through the
//! cache's clock; alias changes between calls; fail-open; the companion API.
//!
//! The alias table is global to this test binary and tests run in parallel: each test uses its own aliases.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cache_runtime::{
    cached, caches, AliasConfig, BackendSpec, HitMissRatioPlugin, JsonSerializer, ManualClock, Ttl,
    Value,
};
use serde::{Deserialize, Serialize};

fn count(counter: &AtomicUsize) -> usize {
    counter.load(Ordering::SeqCst)
}

fn bump(counter: &AtomicUsize) {
    counter.fetch_add(1, Ordering::SeqCst);
}

// ----- free functions, recursion ------------------------------------------------------------------------------

static FIB_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached(alias = "macros_fib")]
fn fib(n: u64) -> u64 {
    bump(&FIB_CALLS);
    if n < 2 {
        n
    } else {
        fib(n - 1) + fib(n - 2)
    }
}

#[test]
fn recursive_fibonacci_runs_each_argument_once() {
    caches::add("macros_fib", AliasConfig::memory()).unwrap();
    assert_eq!(fib(60), 1_548_008_755_920);
    assert_eq!(count(&FIB_CALLS), 61);
    assert_eq!(fib(60), 1_548_008_755_920);
    assert_eq!(count(&FIB_CALLS), 61);
}

static FACT_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached(alias = "macros_factorial")]
fn factorial(n: u128) -> u128 {
    bump(&FACT_CALLS);
    if n <= 1 {
        1
    } else {
        n * factorial(n - 1)
    }
}

#[test]
fn recursive_factorial_reuses_smaller_results() {
    caches::add("macros_factorial", AliasConfig::memory()).unwrap();
    assert_eq!(factorial(20), 2_432_902_008_176_640_000);
    assert_eq!(count(&FACT_CALLS), 20);
    assert_eq!(factorial(25), 15_511_210_043_330_985_984_000_000);
    assert_eq!(count(&FACT_CALLS), 25, "only 21..=25 were new");
}

// ----- keys ---------------------------------------------------------------------------------------------------

static JOIN_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached(alias = "macros_join")]
fn join(a: String, b: String) -> String {
    bump(&JOIN_CALLS);
    format!("{a}{b}")
}

#[test]
fn default_keys_are_readable_and_unambiguous() {
    caches::add("macros_join", AliasConfig::memory()).unwrap();
    assert_eq!(join("a,b".into(), "c".into()), "a,bc");
    assert_eq!(join("a".into(), "b,c".into()), "ab,c");
    assert_eq!(
        count(&JOIN_CALLS),
        2,
        "different argument splits never share an entry"
    );
    assert_eq!(
        join_cache_key("a,b".into(), "c".into()).unwrap(),
        r#"macros::join("a,b","c")"#
    );
    assert_eq!(
        join_cache_key("a".into(), "b,c".into()).unwrap(),
        r#"macros::join("a","b,c")"#
    );
    assert_eq!(
        join_cache_key("quote\"".into(), "back\\slash".into()).unwrap(),
        r#"macros::join("quote\"","back\\slash")"#
    );
}

#[test]
fn functions_of_one_name_nested_in_two_functions_have_their_own_keys() {
    fn first() -> String {
        #[cached(alias = "macros_nested")]
        fn inner(n: u32) -> u32 {
            n + 1
        }
        assert_eq!(inner(1), 2);
        inner_cache_key(1).unwrap()
    }
    fn second() -> String {
        #[cached(alias = "macros_nested")]
        fn inner(n: u32) -> u32 {
            n + 2
        }
        assert_eq!(inner(1), 3, "not the other `inner`'s entry");
        inner_cache_key(1).unwrap()
    }
    caches::add("macros_nested", AliasConfig::memory()).unwrap();
    let prefix = "macros::functions_of_one_name_nested_in_two_functions_have_their_own_keys";
    assert_eq!(first(), format!("{prefix}::first::inner(1)"));
    assert_eq!(second(), format!("{prefix}::second::inner(1)"));
}

static INNER_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached(alias = "macros_nested")]
fn outer_of_cached(n: u32) -> u32 {
    #[cached(alias = "macros_nested")]
    fn inner(n: u32) -> u32 {
        bump(&INNER_CALLS);
        n * 10
    }
    inner(n) + 1
}

#[test]
fn a_cached_function_inside_a_cached_body_is_keyed_per_copy_of_that_body() {
    caches::add("macros_nested", AliasConfig::memory()).unwrap();
    assert_eq!(outer_of_cached(1), 11);
    assert_eq!(outer_of_cached(1), 11);
    assert_eq!(count(&INNER_CALLS), 1);
    // The body is emitted in the function, its refresh and its uncached companion; each copy declares its own
    // `inner`, under its own path, so each computes once for itself.
    assert_eq!(outer_of_cached_cache_refresh(1), 11);
    assert_eq!(outer_of_cached_uncached(1), 11);
    assert_eq!(count(&INNER_CALLS), 3);
    assert_eq!(outer_of_cached_cache_refresh(1), 11);
    assert_eq!(outer_of_cached_uncached(1), 11);
    assert_eq!(count(&INNER_CALLS), 3, "each copy hits its own entry");
}

#[derive(Serialize)]
struct Query {
    table: &'static str,
    limit: u32,
}

static QUERY_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached(alias = "macros_query")]
fn run_query(q: &Query, tags: &[&str], owner: Option<u8>) -> usize {
    bump(&QUERY_CALLS);
    q.table.len() + tags.len() + usize::from(owner.unwrap_or(0))
}

#[test]
fn reference_arguments_key_by_value() {
    caches::add("macros_query", AliasConfig::memory()).unwrap();
    let q = Query {
        table: "users",
        limit: 10,
    };
    assert_eq!(run_query(&q, &["a", "b"], None), 7);
    let same = Query {
        table: "users",
        limit: 10,
    };
    assert_eq!(run_query(&same, &["a", "b"], None), 7);
    assert_eq!(
        count(&QUERY_CALLS),
        1,
        "equal values behind different references share the entry"
    );
    assert_eq!(run_query(&q, &["a"], Some(1)), 7);
    assert_eq!(count(&QUERY_CALLS), 2);
    assert_eq!(
        run_query_cache_key(&q, &["a"], Some(1)).unwrap(),
        r#"macros::run_query({"table":"users","limit":10},["a"],1)"#
    );
}

static STR_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached(alias = "macros_str")]
fn shout(word: &str) -> String {
    bump(&STR_CALLS);
    word.to_uppercase()
}

#[test]
fn str_arguments() {
    caches::add("macros_str", AliasConfig::memory()).unwrap();
    assert_eq!(shout("hi"), "HI");
    assert_eq!(shout(&String::from("hi")), "HI");
    assert_eq!(count(&STR_CALLS), 1);
}

// ----- generics -----------------------------------------------------------------------------------------------

static GENERIC_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached(alias = "macros_generic")]
fn describe<T: Serialize + std::fmt::Debug>(value: T) -> String {
    bump(&GENERIC_CALLS);
    format!("{value:?}")
}

static DEFAULT_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached(alias = "macros_generic")]
fn default_of<
    T: Default + Serialize + serde::de::DeserializeOwned + Clone + Send + Sync + 'static,
>() -> T {
    bump(&DEFAULT_CALLS);
    T::default()
}

#[test]
fn generic_functions_key_by_type_arguments() {
    caches::add("macros_generic", AliasConfig::memory()).unwrap();
    assert_eq!(describe(1u8), "1");
    assert_eq!(describe(1u64), "1");
    assert_eq!(describe(1u8), "1");
    assert_eq!(
        count(&GENERIC_CALLS),
        2,
        "u8 and u64 have their own entries"
    );
    assert_eq!(
        describe_cache_key(1u8).unwrap(),
        "macros::describe::<u8>(1)"
    );

    assert_eq!(default_of::<u32>(), 0);
    assert_eq!(default_of::<String>(), "");
    assert_eq!(default_of::<u32>(), 0);
    assert_eq!(
        count(&DEFAULT_CALLS),
        2,
        "a type parameter only in the return still separates entries"
    );
    assert_eq!(
        default_of_cache_key::<String>().unwrap(),
        "macros::default_of::<alloc::string::String>()"
    );
}

// ----- methods and associated functions -----------------------------------------------------------------------

#[derive(Serialize, Clone)]
struct Rect {
    w: u32,
    h: u32,
}

#[derive(Serialize, Clone)]
struct Square {
    side: u32,
}

static AREA_CALLS: AtomicUsize = AtomicUsize::new(0);

impl Rect {
    #[cached(alias = "macros_methods")]
    fn area(&self) -> u64 {
        bump(&AREA_CALLS);
        u64::from(self.w) * u64::from(self.h)
    }

    #[cached(alias = "macros_methods")]
    fn unit() -> Self {
        bump(&AREA_CALLS);
        Rect { w: 1, h: 1 }
    }

    #[cached(alias = "macros_methods")]
    fn scaled(width: u32, factor: u32) -> u64
    where
        Self: Sized,
    {
        bump(&AREA_CALLS);
        u64::from(width * factor)
    }
}

impl Square {
    #[cached(alias = "macros_methods", noself)]
    fn area(&self) -> u64 {
        bump(&AREA_CALLS);
        99
    }
}

impl<'de> Deserialize<'de> for Rect {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (w, h) = <(u32, u32)>::deserialize(d)?;
        Ok(Rect { w, h })
    }
}

#[test]
fn methods_key_by_type_and_self() {
    caches::add("macros_methods", AliasConfig::memory()).unwrap();
    let before = count(&AREA_CALLS);
    let r = Rect { w: 2, h: 3 };
    assert_eq!(r.area(), 6);
    assert_eq!(r.clone().area(), 6);
    assert_eq!(Rect { w: 3, h: 3 }.area(), 9);
    assert_eq!(count(&AREA_CALLS) - before, 2);
    assert_eq!(
        r.area_cache_key().unwrap(),
        r#"macros::Rect::area({"w":2,"h":3})"#
    );

    let s = Square { side: 5 };
    assert_eq!(s.area(), 99);
    assert_eq!(Square { side: 6 }.area(), 99);
    assert_eq!(
        count(&AREA_CALLS) - before,
        3,
        "noself: every Square shares one entry, apart from Rect's"
    );
    assert_eq!(s.area_cache_key().unwrap(), "macros::Square::area()");

    assert_eq!(Rect::unit().w, 1);
    assert_eq!(Rect::unit().h, 1);
    assert_eq!(count(&AREA_CALLS) - before, 4);
    assert_eq!(Rect::scaled(2, 3), 6);
    assert_eq!(Rect::scaled(2, 3), 6);
    assert_eq!(count(&AREA_CALLS) - before, 5);
    assert_eq!(
        Rect::scaled_cache_key(2, 3).unwrap(),
        "macros::Rect::scaled(2,3)"
    );
}

// ----- Result and Option --------------------------------------------------------------------------------------

static PARSE_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached(alias = "macros_result")]
fn parse(text: String) -> Result<u32, String> {
    bump(&PARSE_CALLS);
    text.parse().map_err(|e| format!("{e}"))
}

static IO_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached(alias = "macros_result")]
fn read_len(path: String) -> std::io::Result<usize> {
    bump(&IO_CALLS);
    if path.is_empty() {
        Err(std::io::Error::other("empty path"))
    } else {
        Ok(path.len())
    }
}

/// An `anyhow`-style alias: `Result<T>` with a fixed error type.
mod app {
    pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;
}

static APP_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached(alias = "macros_result")]
fn checked_half(n: u32) -> app::Result<u32> {
    bump(&APP_CALLS);
    if n.is_multiple_of(2) {
        Ok(n / 2)
    } else {
        Err(format!("{n} is odd").into())
    }
}

static FIND_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached(alias = "macros_result")]
fn find(id: u32) -> Option<String> {
    bump(&FIND_CALLS);
    (id == 1).then(|| "one".to_string())
}

#[test]
fn results_store_only_ok() {
    caches::add("macros_result", AliasConfig::memory()).unwrap();
    assert_eq!(parse("12".into()), Ok(12));
    assert_eq!(parse("12".into()), Ok(12));
    assert_eq!(count(&PARSE_CALLS), 1);
    assert!(parse("x".into()).is_err());
    assert!(parse("x".into()).is_err());
    assert_eq!(count(&PARSE_CALLS), 3, "errors are never cached");
    assert_eq!(parse_cache_get("x".into()).unwrap(), None);
    assert_eq!(parse_cache_get("12".into()).unwrap(), Some(12));

    assert_eq!(read_len("abc".into()).unwrap(), 3);
    assert_eq!(read_len("abc".into()).unwrap(), 3);
    assert!(read_len(String::new()).is_err());
    assert!(read_len(String::new()).is_err());
    assert_eq!(count(&IO_CALLS), 3, "io::Result: Ok cached, Err not");

    assert_eq!(checked_half(4).unwrap(), 2);
    assert_eq!(checked_half(4).unwrap(), 2);
    assert!(checked_half(3).is_err());
    assert!(checked_half(3).is_err());
    assert_eq!(
        count(&APP_CALLS),
        3,
        "a Result alias with one argument works the same"
    );
}

#[test]
fn options_cache_none_too() {
    caches::add("macros_result", AliasConfig::memory()).ok();
    let before = count(&FIND_CALLS);
    assert_eq!(find(2), None);
    assert_eq!(find(2), None);
    assert_eq!(find(1).as_deref(), Some("one"));
    assert_eq!(find(1).as_deref(), Some("one"));
    assert_eq!(
        count(&FIND_CALLS) - before,
        2,
        "None is a value like any other"
    );
}

// ----- arguments: skip, key, key_builder, namespace, serializer, plugins, skip_cache_func, cache ---------------

struct Connection;

static SKIP_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached(alias = "macros_args", skip(conn, log))]
#[allow(clippy::ptr_arg)] // the output log grows
fn user_name(conn: &Connection, log: &mut Vec<String>, id: u32) -> String {
    let _ = conn;
    bump(&SKIP_CALLS);
    log.push(format!("loaded {id}"));
    format!("user{id}")
}

static FIXED_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached(alias = "macros_args", key = "config:main")]
fn load_config(path: &mut [u8]) -> u32 {
    let _ = path;
    bump(&FIXED_CALLS);
    7
}

static EXPR_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached(alias = "macros_args", key = format!("profile:{}", id % 10))]
fn profile(id: u32) -> u32 {
    bump(&EXPR_CALLS);
    id % 10
}

static BUILDER_CALLS: AtomicUsize = AtomicUsize::new(0);
static BUILDER_KEYS: AtomicUsize = AtomicUsize::new(0);

fn lowercase_key(name: &str, region: &u8) -> String {
    bump(&BUILDER_KEYS);
    format!("greet:{}:{region}", name.to_lowercase())
}

#[cached(alias = "macros_args", key_builder = lowercase_key)]
fn greet(name: &str, region: u8) -> String {
    bump(&BUILDER_CALLS);
    format!("hello {name}{}", if region == 1 { "" } else { "!" })
}

#[test]
fn skip_key_and_key_builder() {
    caches::add("macros_args", AliasConfig::memory()).unwrap();
    let mut log = Vec::new();
    assert_eq!(user_name(&Connection, &mut log, 1), "user1");
    assert_eq!(user_name(&Connection, &mut log, 1), "user1");
    assert_eq!(count(&SKIP_CALLS), 1);
    assert_eq!(log, vec!["loaded 1"]);
    assert_eq!(
        user_name_cache_key(&Connection, &mut log, 1).unwrap(),
        "macros::user_name(1)"
    );

    assert_eq!(load_config(&mut [1]), 7);
    assert_eq!(load_config(&mut [2]), 7);
    assert_eq!(count(&FIXED_CALLS), 1, "a fixed key ignores the arguments");
    assert_eq!(load_config_cache_key(&mut []).unwrap(), "config:main");

    assert_eq!(profile(13), 3);
    assert_eq!(profile(23), 3);
    assert_eq!(count(&EXPR_CALLS), 1, "a key expression over the arguments");

    assert_eq!(greet("Ann", 1), "hello Ann");
    assert_eq!(greet("ANN", 1), "hello Ann", "the key builder folds case");
    assert_eq!(count(&BUILDER_CALLS), 1);
    assert_eq!(count(&BUILDER_KEYS), 2, "one key built per call");
    assert_eq!(greet_cache_key("X", 2).unwrap(), "greet:x:2");
}

static NS_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached(
    alias = "macros_ns",
    namespace = "reports",
    serializer = JsonSerializer,
    plugins = [HitMissRatioPlugin::new()],
    ttl = 60
)]
fn report(day: u32) -> Vec<u32> {
    bump(&NS_CALLS);
    vec![day; 3]
}

#[test]
fn namespace_serializer_and_plugins_override_the_alias() {
    caches::add("macros_ns", AliasConfig::memory()).unwrap();
    assert_eq!(report(1), vec![1, 1, 1]);
    assert_eq!(report(1), vec![1, 1, 1]);
    assert_eq!(count(&NS_CALLS), 1);
    let cache = report_cache().unwrap();
    assert_eq!(cache.namespace(), Some("reports"));
    assert_eq!(cache.serializer().name(), "json");
    let ratio = cache.plugin::<HitMissRatioPlugin>().unwrap();
    assert_eq!((ratio.hits(), ratio.total()), (1, 2));
    // Stored as JSON under `reports:{key}` in the alias's backend.
    let alias = caches::get("macros_ns").unwrap();
    let stored = alias
        .without_namespace()
        .get_stored(&format!("reports:{}", report_cache_key(1).unwrap()))
        .unwrap()
        .unwrap();
    assert_eq!(stored.as_bytes(), Some(&b"[1,1,1]"[..]));
}

fn is_empty(v: &[u8]) -> bool {
    v.is_empty()
}

static SKIPFN_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached(alias = "macros_skipfn", skip_cache_func = is_empty)]
fn bytes_of(n: usize) -> Vec<u8> {
    bump(&SKIPFN_CALLS);
    vec![0; n]
}

#[test]
fn skip_cache_func_keeps_values_out() {
    caches::add("macros_skipfn", AliasConfig::memory()).unwrap();
    assert!(bytes_of(0).is_empty());
    assert!(bytes_of(0).is_empty());
    assert_eq!(count(&SKIPFN_CALLS), 2, "empty results are not stored");
    assert_eq!(bytes_of(2).len(), 2);
    assert_eq!(bytes_of(2).len(), 2);
    assert_eq!(count(&SKIPFN_CALLS), 3);
}

static OWNED_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached(cache = "memory://?namespace=owned&max_entries=100")]
fn owned(n: u32) -> u32 {
    bump(&OWNED_CALLS);
    n + 1
}

#[test]
fn cache_url_gives_the_function_its_own_instance() {
    assert_eq!(owned(1), 2);
    assert_eq!(owned(1), 2);
    assert_eq!(count(&OWNED_CALLS), 1);
    let cache = owned_cache().unwrap();
    assert_eq!(cache.namespace(), Some("owned"));
    assert!(cache.exists(&owned_cache_key(1).unwrap()).unwrap());
    assert!(!caches::get("default")
        .unwrap()
        .exists(&owned_cache_key(1).unwrap())
        .unwrap());
}

// ----- TTL, alias changes -------------------------------------------------------------------------------------

static TTL_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached(alias = "macros_ttl", ttl = 10)]
fn ttl_secs(n: u32) -> u32 {
    bump(&TTL_CALLS);
    n
}

static TTL_DUR_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached(alias = "macros_ttl", ttl = Duration::from_millis(1500))]
fn ttl_duration(n: u32) -> u32 {
    bump(&TTL_DUR_CALLS);
    n
}

#[test]
fn ttl_expires_on_the_cache_clock() {
    let clock = ManualClock::new();
    caches::add("macros_ttl", AliasConfig::memory().clock(clock.clone())).unwrap();
    ttl_secs(1);
    ttl_duration(1);
    clock.advance(Duration::from_millis(1400));
    ttl_secs(1);
    ttl_duration(1);
    assert_eq!((count(&TTL_CALLS), count(&TTL_DUR_CALLS)), (1, 1));
    clock.advance(Duration::from_millis(100));
    ttl_duration(1);
    assert_eq!(count(&TTL_DUR_CALLS), 2, "1.5 s passed");
    clock.advance(Duration::from_millis(8400));
    ttl_secs(1);
    assert_eq!(count(&TTL_CALLS), 1, "9.9 s passed");
    clock.advance(Duration::from_millis(100));
    ttl_secs(1);
    assert_eq!(count(&TTL_CALLS), 2, "10 s passed");
}

static SWITCH_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached(alias = "macros_switch")]
fn switched(n: u32) -> u32 {
    bump(&SWITCH_CALLS);
    n
}

#[test]
fn alias_changes_take_effect_between_calls() {
    caches::add("macros_switch", AliasConfig::memory().namespace("one")).unwrap();
    switched(1);
    switched(1);
    assert_eq!(count(&SWITCH_CALLS), 1);
    assert_eq!(switched_cache().unwrap().namespace(), Some("one"));

    caches::add("macros_switch", AliasConfig::memory().namespace("two")).unwrap();
    switched(1);
    assert_eq!(count(&SWITCH_CALLS), 2, "a new instance starts empty");
    assert_eq!(switched_cache().unwrap().namespace(), Some("two"));
    switched(1);
    assert_eq!(count(&SWITCH_CALLS), 2);
}

// ----- fail-open ----------------------------------------------------------------------------------------------

static DOWN_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached(alias = "macros_down")]
fn resilient(n: u32) -> u32 {
    bump(&DOWN_CALLS);
    n * 2
}

static MISSING_ALIAS_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached(alias = "macros_never_configured")]
fn unconfigured(n: u32) -> u32 {
    bump(&MISSING_ALIAS_CALLS);
    n
}

#[test]
fn cache_errors_fail_open() {
    caches::register_backend(
        "macros_down",
        BackendSpec::new(&[], |_| Ok(Arc::new(support::DownBackend))),
    );
    caches::add("macros_down", AliasConfig::new("macros_down")).unwrap();
    assert_eq!(resilient(2), 4);
    assert_eq!(resilient(2), 4);
    assert_eq!(
        count(&DOWN_CALLS),
        2,
        "the body runs on every call while the cache is down"
    );
    assert!(
        resilient_cache_get(2).is_err(),
        "the companion API reports the error"
    );

    assert_eq!(unconfigured(5), 5);
    assert_eq!(unconfigured(5), 5);
    assert_eq!(
        count(&MISSING_ALIAS_CALLS),
        2,
        "an unknown alias is an error, logged, not a panic"
    );
}

static DECODE_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached(alias = "macros_decode")]
fn decoded(n: u32) -> BTreeMap<String, u32> {
    bump(&DECODE_CALLS);
    BTreeMap::from([("n".to_string(), n)])
}

#[test]
fn decode_failures_are_misses_and_get_rewritten() {
    caches::add(
        "macros_decode",
        AliasConfig::memory().serializer(cache_runtime::SerializerConfig::new("json")),
    )
    .unwrap();
    let cache = decoded_cache().unwrap();
    let key = decoded_cache_key(1).unwrap();
    cache
        .set_stored(&key, Value::Bytes(b"not json".to_vec()), Ttl::Default)
        .unwrap();
    assert_eq!(decoded(1)["n"], 1);
    assert_eq!(count(&DECODE_CALLS), 1);
    assert_eq!(
        cache.get_stored(&key).unwrap().unwrap().as_bytes(),
        Some(&br#"{"n":1}"#[..])
    );
    assert_eq!(decoded(1)["n"], 1);
    assert_eq!(count(&DECODE_CALLS), 1, "the rewritten entry is a hit");
}

// ----- companion API ------------------------------------------------------------------------------------------

static PRICE_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached(alias = "macros_companion", ttl = 30)]
fn price(item: String, qty: u32) -> u64 {
    bump(&PRICE_CALLS);
    u64::from(qty) * item.len() as u64
}

#[test]
fn companion_api_of_a_free_function() {
    caches::add("macros_companion", AliasConfig::memory()).unwrap();
    let key = price_cache_key("tea".into(), 2).unwrap();
    assert_eq!(key, r#"macros::price("tea",2)"#);
    assert_eq!(price_cache_get("tea".into(), 2).unwrap(), None);
    assert_eq!(price("tea".into(), 2), 6);
    assert_eq!(price_cache_get("tea".into(), 2).unwrap(), Some(6));
    assert_eq!(count(&PRICE_CALLS), 1);

    price_cache_set("tea".into(), 2, &100).unwrap();
    assert_eq!(
        price("tea".into(), 2),
        100,
        "a set value is what the next call returns"
    );
    assert_eq!(count(&PRICE_CALLS), 1);

    assert_eq!(price_cache_refresh("tea".into(), 2), 6);
    assert_eq!(count(&PRICE_CALLS), 2);
    assert_eq!(price("tea".into(), 2), 6);

    assert!(price_cache_invalidate("tea".into(), 2).unwrap());
    assert!(!price_cache_invalidate("tea".into(), 2).unwrap());
    assert_eq!(price("tea".into(), 2), 6);
    assert_eq!(count(&PRICE_CALLS), 3);

    assert_eq!(price_uncached("tea".into(), 2), 6);
    assert_eq!(count(&PRICE_CALLS), 4, "the uncached body always runs");
    let cache = price_cache().unwrap();
    assert!(cache.exists(&key).unwrap());
}

#[derive(Serialize)]
struct Account {
    id: u32,
}

static BALANCE_CALLS: AtomicUsize = AtomicUsize::new(0);

impl Account {
    #[cached(alias = "macros_companion_m")]
    fn balance(&self, currency: &str) -> i64 {
        bump(&BALANCE_CALLS);
        i64::from(self.id) * if currency == "EUR" { 1 } else { 2 }
    }
}

#[test]
fn companion_api_of_a_method() {
    caches::add("macros_companion_m", AliasConfig::memory()).unwrap();
    let acct = Account { id: 7 };
    assert_eq!(
        acct.balance_cache_key("EUR").unwrap(),
        r#"macros::Account::balance({"id":7},"EUR")"#
    );
    assert_eq!(acct.balance_cache_get("EUR").unwrap(), None);
    assert_eq!(acct.balance("EUR"), 7);
    assert_eq!(acct.balance_cache_get("EUR").unwrap(), Some(7));
    acct.balance_cache_set("EUR", &70).unwrap();
    assert_eq!(acct.balance("EUR"), 70);
    assert_eq!(acct.balance_cache_refresh("EUR"), 7);
    assert!(acct.balance_cache_invalidate("EUR").unwrap());
    assert_eq!(acct.balance_uncached("USD"), 14);
    assert!(Account::balance_cache().is_ok());
    assert_eq!(count(&BALANCE_CALLS), 3);
}

// ----- crate = path -------------------------------------------------------------------------------------------

mod reexport {
    pub use cache_runtime as runtime;
}

static CRATE_CALLS: AtomicUsize = AtomicUsize::new(0);

#[reexport::runtime::cached(crate = crate::reexport::runtime, alias = "macros_crate")]
fn through_reexport(n: u8) -> u8 {
    bump(&CRATE_CALLS);
    n
}

#[test]
fn crate_argument_for_reexporters() {
    caches::add("macros_crate", AliasConfig::memory()).unwrap();
    through_reexport(1);
    through_reexport(1);
    assert_eq!(count(&CRATE_CALLS), 1);
}

// ----- patterns and mut parameters ----------------------------------------------------------------------------

static PATTERN_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached(alias = "macros_pattern")]
fn sum_pair((a, b): (u32, u32), mut extra: u32) -> u32 {
    bump(&PATTERN_CALLS);
    extra += 1;
    a + b + extra
}

#[test]
fn destructuring_and_mut_parameters() {
    caches::add("macros_pattern", AliasConfig::memory()).unwrap();
    assert_eq!(sum_pair((1, 2), 0), 4);
    assert_eq!(sum_pair((1, 2), 0), 4);
    assert_eq!(count(&PATTERN_CALLS), 1);
    assert_eq!(
        sum_pair_cache_key((1, 2), 0).unwrap(),
        "macros::sum_pair([1,2],0)"
    );
}

// ----- methods of generic impls -------------------------------------------------------------------------------

#[derive(Serialize)]
struct Wrapper<T> {
    inner: T,
}

static WRAPPER_CALLS: AtomicUsize = AtomicUsize::new(0);

impl<T: Serialize + std::fmt::Debug> Wrapper<T> {
    #[cached(alias = "macros_generic_impl")]
    fn show(&self) -> String {
        bump(&WRAPPER_CALLS);
        format!("{:?}", self.inner)
    }
}

#[test]
fn methods_of_generic_impls_key_by_the_concrete_type() {
    caches::add("macros_generic_impl", AliasConfig::memory()).unwrap();
    assert_eq!(Wrapper { inner: 1u8 }.show(), "1");
    assert_eq!(Wrapper { inner: 1u16 }.show(), "1");
    assert_eq!(Wrapper { inner: 1u8 }.show(), "1");
    assert_eq!(count(&WRAPPER_CALLS), 2);
    assert_eq!(
        Wrapper { inner: 1u8 }.show_cache_key().unwrap(),
        r#"macros::Wrapper<u8>::show({"inner":1})"#
    );
}

// ----- review fixes: argument values with commas, nested items, forbid lints ------------------------------

static SKIP_EMPTY_CALLS: AtomicUsize = AtomicUsize::new(0);

/// A closure value whose type has a comma outside any group: it must stay one argument.
#[cached(
    alias = "macros_comma_values",
    skip_cache_func = |v: &std::collections::HashMap<u32, u32>| v.is_empty()
)]
fn maybe_empty(n: u32) -> std::collections::HashMap<u32, u32> {
    bump(&SKIP_EMPTY_CALLS);
    (0..n).map(|i| (i, i * i)).collect()
}

#[test]
fn commas_inside_closure_types_do_not_split_arguments() {
    caches::add("macros_comma_values", AliasConfig::memory()).unwrap();
    let before = count(&SKIP_EMPTY_CALLS);
    assert!(maybe_empty(0).is_empty());
    assert!(maybe_empty(0).is_empty());
    assert_eq!(
        count(&SKIP_EMPTY_CALLS),
        before + 2,
        "empty maps are not stored"
    );
    assert_eq!(maybe_empty(3).len(), 3);
    assert_eq!(maybe_empty(3).len(), 3);
    assert_eq!(count(&SKIP_EMPTY_CALLS), before + 3, "non-empty maps are");
}

/// A free function whose body holds an `impl` naming its own `Self`: still a free function.
#[cached(alias = "macros_nested_impl")]
fn with_nested_impl(n: u32) -> u32 {
    struct Local(u32);
    impl Local {
        fn new(v: u32) -> Self {
            Self(v)
        }
    }
    Local::new(n).0 + 1
}

#[test]
fn nested_items_naming_self_keep_a_function_free() {
    caches::add("macros_nested_impl", AliasConfig::memory()).unwrap();
    assert_eq!(with_nested_impl(1), 2);
    assert_eq!(with_nested_impl_cache_get(1).unwrap(), Some(2));
}

#[forbid(unused_variables)]
#[cached(alias = "macros_forbid")]
fn under_forbid(n: u32) -> u32 {
    n * 2
}

#[test]
fn a_forbid_lint_on_the_function_still_compiles() {
    caches::add("macros_forbid", AliasConfig::memory()).unwrap();
    assert_eq!(under_forbid(4), 8);
}

static KEPT_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached(alias = "macros_kept", plugins = [HitMissRatioPlugin::new()])]
fn kept_stats(n: u32) -> u32 {
    bump(&KEPT_CALLS);
    n + 1
}

#[test]
fn function_plugins_survive_changes_to_other_aliases() {
    caches::add("macros_kept", AliasConfig::memory()).unwrap();
    assert_eq!(kept_stats(1), 2);
    // Another alias changes the table's generation; this function's alias, and so its plugins, did not change.
    caches::add("macros_kept_unrelated", AliasConfig::memory()).unwrap();
    assert_eq!(kept_stats(1), 2);
    assert_eq!(count(&KEPT_CALLS), 1);
    let ratio = kept_stats_cache()
        .unwrap()
        .plugin::<HitMissRatioPlugin>()
        .unwrap();
    assert_eq!((ratio.hits(), ratio.total()), (1, 2));
    // A change of its own alias does rebuild it (new backend, fresh plugins).
    caches::add("macros_kept", AliasConfig::memory()).unwrap();
    assert_eq!(kept_stats(1), 2);
    assert_eq!(count(&KEPT_CALLS), 2);
}
