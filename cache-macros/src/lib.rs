//! Attribute macros of `cache-runtime`: `#[cached]`, `#[multi_cached]`, `#[cached_stampede]`.
//!
//! Use them through `cache_runtime`, which re-exports them. Generated code reaches the runtime only through
//! `::cache_runtime::__private` (or the path given with `crate = ..`).
//!
//! Pipeline: `attr` parses the arguments, `ast` models the function, `valid` checks every rule and collects all
//! errors, `key` and `expand` generate code. On any error the function is emitted unchanged next to the errors,
//! so call sites keep compiling.

mod ast;
mod attr;
mod expand;
mod key;
mod valid;

use proc_macro::TokenStream;

use attr::Kind;

/// Memoizes a function in a cache: on a call, build the key, `get` it, return a hit; on a miss run the body,
/// store its result, return it.
///
/// ```
/// use cache_runtime::cached;
///
/// #[cached]
/// fn fib(n: u64) -> u64 {
///     if n < 2 { n } else { fib(n - 1) + fib(n - 2) } // the recursion hits the cache
/// }
///
/// # fn main() {
/// assert_eq!(fib(90), 2_880_067_194_370_816_120);
/// assert_eq!(fib_cache_key(90).unwrap(), "rust_out::fib(90)");
/// # }
/// ```
///
/// # Where it runs
/// Free functions, associated functions and methods (`&self`, `self`, `self: Box<Self>`), methods and associated
/// functions of trait impls (with `companions = false`: a trait impl takes no extra items), generic functions,
/// recursive functions (no lock is held while the body runs). `async fn` is not supported yet (a compile
/// error says so).
///
/// # Arguments
/// | argument | meaning |
/// |---|---|
/// | `alias = "name"` | the shared instance of an alias of `cache_runtime::caches` (default `"default"`); a later `caches::set_config` or `caches::add` takes effect on the next call |
/// | `cache = "url"` | an instance owned by this function, built from a URL (`memory://?max_entries=1000`, `redis://host:6379/0`, ..) on first use |
/// | `ttl = 60` / `ttl = 1.5` / `ttl = expr` | seconds, or a `Duration` / `Ttl` expression; default: the cache's default TTL. `ttl = 0` is a compile error |
/// | `namespace = "ns"` | store under `ns:{key}` instead of the cache's namespace |
/// | `key = expr` | the whole key: a fixed string or any `Display` expression over the arguments |
/// | `key_builder = path` | a function of references to the key arguments returning the key (`Display`) |
/// | `skip(a, b)` | leave arguments out of the default key (and out of `key_builder`'s arguments) |
/// | `noself` | leave `self` out of the key of a method |
/// | `serializer = expr` | a `Serializer` for this function's values instead of the cache's |
/// | `plugins = [expr, ..]` | plugins of this function's cache instead of the cache's |
/// | `skip_cache_func = path` | `fn(&T) -> bool` on the value to store: true = don't store it |
/// | `companions = false` | emit only the function, without the companions below (required in a trait impl) |
/// | `crate = path` | where `cache_runtime` is, for crates that re-export it |
///
/// # The default key
/// `{path}({arg},{arg},..)`: the function's path then every argument as compact JSON (serde_json), in order.
/// The path is the function's path as Rust names it: `module_path!()::fn` for a free function and `{type}::fn`
/// inside an `impl` (for a method, the type as `std::any::type_name::<Self>()` prints it, generic arguments
/// included), then `::<T,..>` with the type arguments of a generic function. The macro sees only the function;
/// for an associated function without `self` or `Self` the path is read from the `type_name` of a struct the
/// macro declares in the function, so `A::f(1)` and `B::f(1)` in one module have different keys (`m::A::f(1)`,
/// `m::B::f(1)`; a generic `impl`'s type arguments do not show,
/// mention `Self` for those). JSON quotes and escapes strings, so `f("a,b", "c")` is `f("a,b","c")` and
/// `f("a", "b,c")` is `f("a","b,c")`: never the same key. The same arguments give the same key in every process,
/// run and machine (no hashing, no addresses). Arguments in the key must implement `serde::Serialize`; others
/// need `skip(..)`, `noself`, `key` or `key_builder` (a compile error says so at the argument).
///
/// | call | key |
/// |---|---|
/// | `app::users::load(7)` | `app::users::load(7)` |
/// | `app::join("a,b".into(), "c".into())` | `app::join("a,b","c")` |
/// | `app::find(&[1, 2], None)` | `app::find([1,2],null)` |
/// | `rect.area()` with `struct Rect { w: u32, h: u32 }` | `app::Rect::area({"w":2,"h":3})` |
/// | `app::parse::<u8>("7")` | `app::parse::<u8>("7")` |
///
/// The stored key is `{namespace}:{key}` when the cache or the function has a namespace.
///
/// # Results and options
/// A return type whose last path segment is `Result` (`Result<T, E>`, `io::Result<T>`, `anyhow::Result<T>`, your
/// own alias) stores only `Ok` values: errors always propagate and are never cached. `Option<T>` is a value like
/// any other: `None` is cached too (opt out with `skip_cache_func`).
///
/// ```
/// use cache_runtime::cached;
/// use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
///
/// static RUNS: AtomicUsize = AtomicUsize::new(0);
///
/// #[cached(ttl = 60)]
/// fn parse(text: String) -> Result<u32, std::num::ParseIntError> {
///     RUNS.fetch_add(1, SeqCst);
///     text.parse()
/// }
///
/// assert_eq!(parse("12".into()), Ok(12));
/// assert_eq!(parse("12".into()), Ok(12)); // hit
/// assert!(parse("x".into()).is_err());
/// assert!(parse("x".into()).is_err()); // errors are not cached
/// assert_eq!(RUNS.load(SeqCst), 3);
/// ```
///
/// # Failing open
/// Any cache error (backend down, timeout, an unknown alias, a value that does not decode) is logged through
/// `tracing` and the function runs and returns its value as if uncached. A value that does not decode is a miss
/// and gets rewritten by the store that follows.
///
/// # Companion API
/// Each function `fib` gets companions to reach its cache entries: sibling functions with the same names
/// wherever it is (next to it in a module, or in the same `impl` block with the same receiver), unless
/// `companions = false`.
///
/// | companion | does |
/// |---|---|
/// | `fib_cache_key(args)` | the key, `Result<String>` |
/// | `fib_cache_get(args)` | the cached value without running the body, `Result<Option<T>>` |
/// | `fib_cache_set(args, &value)` | store a value for these arguments |
/// | `fib_cache_invalidate(args)` | delete the entry; true if there was one |
/// | `fib_cache_refresh(args)` | run the body, store, return (fails open) |
/// | `fib_cache()` | the `Cache` the function uses |
/// | `fib_uncached(args)` | the original body, no cache |
///
/// For `Result` functions `T` is the `Ok` type. The companions report cache errors instead of failing open.
/// They share the function's cache state (its derived instance and plugins, its instance built from a URL):
/// the function names none of them, and each keeps its own handle on that shared state.
///
/// ```
/// use cache_runtime::{cached, caches, AliasConfig};
///
/// #[cached(alias = "prices", ttl = 30)]
/// fn price(item: String, qty: u32) -> u64 {
///     u64::from(qty) * item.len() as u64
/// }
///
/// # fn main() {
/// caches::add("prices", AliasConfig::memory()).unwrap();
/// assert_eq!(price_cache_key("tea".into(), 2).unwrap(), r#"rust_out::price("tea",2)"#);
/// assert_eq!(price_cache_get("tea".into(), 2).unwrap(), None);
/// assert_eq!(price("tea".into(), 2), 6);
/// assert_eq!(price_cache_get("tea".into(), 2).unwrap(), Some(6));
/// price_cache_set("tea".into(), 2, &100).unwrap();
/// assert_eq!(price("tea".into(), 2), 100);
/// assert_eq!(price_cache_refresh("tea".into(), 2), 6);
/// assert!(price_cache_invalidate("tea".into(), 2).unwrap());
/// assert_eq!(price_uncached("tea".into(), 3), 9);
/// assert!(price_cache().unwrap().namespace().is_none());
/// # }
/// ```
///
/// Methods: `self` is part of the key (unless `noself`), with the type's name, so two impls never share entries.
///
/// ```
/// use cache_runtime::cached;
///
/// #[derive(serde::Serialize)]
/// struct Account { id: u32 }
///
/// impl Account {
///     #[cached]
///     fn balance(&self, currency: &str) -> i64 {
///         i64::from(self.id) * if currency == "EUR" { 1 } else { 2 }
///     }
/// }
///
/// # fn main() {
/// let acct = Account { id: 7 };
/// assert_eq!(acct.balance("EUR"), 7);
/// assert_eq!(acct.balance_cache_key("EUR").unwrap(), r#"rust_out::Account::balance({"id":7},"EUR")"#);
/// assert_eq!(acct.balance_cache_get("EUR").unwrap(), Some(7));
/// acct.balance_cache_set("EUR", &70).unwrap();
/// assert_eq!(acct.balance("EUR"), 70);
/// assert_eq!(acct.balance_cache_refresh("EUR"), 7);
/// assert!(acct.balance_cache_invalidate("EUR").unwrap());
/// assert_eq!(acct.balance_uncached("USD"), 14);
/// assert!(Account::balance_cache().is_ok());
/// # }
/// ```
///
/// Associated functions need not mention `Self` (their key still names the type); in a trait impl, turn the
/// companions off.
///
/// ```
/// use cache_runtime::cached;
///
/// trait Area {
///     fn area(&self) -> u64;
/// }
///
/// #[derive(serde::Serialize)]
/// struct Rect { w: u32, h: u32 }
///
/// impl Rect {
///     #[cached]
///     fn square(side: u32) -> u64 {
///         u64::from(side) * u64::from(side)
///     }
/// }
///
/// impl Area for Rect {
///     #[cached(companions = false)]
///     fn area(&self) -> u64 {
///         u64::from(self.w) * u64::from(self.h)
///     }
/// }
///
/// # fn main() {
/// assert_eq!(Rect::square(3), 9);
/// assert_eq!(Rect::square_cache_key(3).unwrap(), "rust_out::Rect::square(3)");
/// assert_eq!(Rect { w: 2, h: 3 }.area(), 6);
/// # }
/// ```
///
/// # Other arguments
/// ```
/// use cache_runtime::{cached, HitMissRatioPlugin, JsonSerializer};
///
/// struct Db;
///
/// fn lower(name: &str) -> String {
///     format!("user:{}", name.to_lowercase())
/// }
///
/// // `db` is not part of the key.
/// #[cached(skip(db), namespace = "users", serializer = JsonSerializer, plugins = [HitMissRatioPlugin::new()])]
/// fn load(db: &Db, id: u32) -> String {
///     let _ = db;
///     format!("user {id}")
/// }
///
/// // One key whatever the arguments.
/// #[cached(key = "config")]
/// fn config(path: &str) -> String {
///     path.to_uppercase()
/// }
///
/// // A key built from the arguments.
/// #[cached(key_builder = lower, cache = "memory://?max_entries=1000")]
/// fn greet(name: &str) -> String {
///     format!("hello {name}")
/// }
///
/// load(&Db, 1);
/// load(&Db, 1);
/// let stats = load_cache().unwrap().plugin::<HitMissRatioPlugin>().unwrap();
/// assert_eq!((stats.hits(), stats.total()), (1, 2));
/// assert_eq!(config("a"), "A");
/// assert_eq!(config("b"), "A");
/// assert_eq!(greet_cache_key("Ann").unwrap(), "user:ann");
/// ```
#[proc_macro_attribute]
pub fn cached(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::run(Kind::Cached, args.into(), item.into()).into()
}

/// Memoizes a batch function per key: `keys_from_attr = "param"` names the parameter holding the keys (a
/// `Vec<K>`, `HashSet<K>`, `BTreeSet<K>` or `&[K]`, also by reference), and the function returns a `HashMap` or
/// `BTreeMap` from keys to values.
///
/// A call looks every key up in one `multi_get`. If all hit, the function is not called. Otherwise it is called
/// with only the missing keys (same parameter, same collection type), what it returned is stored in one
/// `multi_set`, and the merged map is returned. Keys it does not return are not cached. An empty collection
/// returns an empty map without calling the cache or the function.
///
/// Each key is `{path}({arg},..)` like `#[cached]` with the one key in place of the collection, so two
/// functions never share entries and other arguments are part of the key; `key_builder = f` replaces it with
/// `f(&key)`, called exactly once per key per call. Every other argument of `#[cached]` except `key` applies.
/// The companions `names_cache_key`, `names_cache_get`, `names_cache_set` and `names_cache_invalidate` take
/// one key; `names_cache_refresh` and `names_uncached` the collection.
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::Mutex;
/// use cache_runtime::multi_cached;
///
/// static ASKED: Mutex<Vec<Vec<u32>>> = Mutex::new(Vec::new());
///
/// #[multi_cached(keys_from_attr = "ids", ttl = 60)]
/// fn names(ids: Vec<u32>) -> HashMap<u32, String> {
///     ASKED.lock().unwrap().push(ids.clone());
///     ids.into_iter().map(|id| (id, format!("user{id}"))).collect()
/// }
///
/// # fn main() {
/// assert_eq!(names(vec![1, 2]).len(), 2);
/// assert_eq!(names(vec![2, 3])[&3], "user3");
/// assert_eq!(names(vec![1, 3]).len(), 2); // all hit: no call
/// assert_eq!(*ASKED.lock().unwrap(), vec![vec![1, 2], vec![3]]);
/// assert_eq!(names_cache_key(3).unwrap(), "rust_out::names(3)");
/// assert_eq!(names_cache_get(3).unwrap().as_deref(), Some("user3"));
/// # }
/// ```
#[proc_macro_attribute]
pub fn multi_cached(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::run(Kind::MultiCached, args.into(), item.into()).into()
}

/// Memoizes a function like `#[cached]`, and runs its body once for concurrent misses of one key.
///
/// In one process, callers missing the same key wait for the first one and share its value (a single flight;
/// no lock is held while the body runs). Across processes, the caller that runs the body holds a `RedLock` on the
/// key in the cache for at most `lease` seconds (default 2; `lease = 1.5` or a `Duration` expression); callers in
/// other processes wait for it to be released and then re-read the value. A run that stores nothing (an `Err`,
/// `skip_cache_func`, a panic) lets the waiters try again themselves. Every argument of `#[cached]` applies.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
/// use std::sync::Barrier;
/// use cache_runtime::cached_stampede;
///
/// static RUNS: AtomicUsize = AtomicUsize::new(0);
///
/// #[cached_stampede(lease = 10, ttl = 60)]
/// fn report(day: u32) -> String {
///     RUNS.fetch_add(1, SeqCst);
///     format!("report of day {day}")
/// }
///
/// let start = Barrier::new(4);
/// std::thread::scope(|s| {
///     for _ in 0..4 {
///         s.spawn(|| {
///             start.wait();
///             assert_eq!(report(7), "report of day 7");
///         });
///     }
/// });
/// assert_eq!(RUNS.load(SeqCst), 1);
/// ```
#[proc_macro_attribute]
pub fn cached_stampede(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::run(Kind::Stampede, args.into(), item.into()).into()
}
