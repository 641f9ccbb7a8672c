//! The macros inside `impl` blocks whatever the function looks like: associated functions that neither take
//! `self` nor mention `Self`, two impls with the same function name, trait impls (`companions = false`), and the
//! function and its companions sharing one cache state (one plugin instance, one instance built from a URL).
//!
//! The alias table is global to this test binary and tests run in parallel: each test uses its own aliases.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use cache_runtime::{
    cached, cached_stampede, caches, multi_cached, AliasConfig, HitMissRatioPlugin,
};
use serde::{Deserialize, Serialize};

fn count(counter: &AtomicUsize) -> usize {
    counter.load(Ordering::SeqCst)
}

fn bump(counter: &AtomicUsize) {
    counter.fetch_add(1, Ordering::SeqCst);
}

struct Math;

// ----- associated functions without `self` or `Self` ---------------------------------------------------------

static SQUARE_CALLS: AtomicUsize = AtomicUsize::new(0);
static FIB_CALLS: AtomicUsize = AtomicUsize::new(0);

impl Math {
    #[cached(alias = "assoc_square")]
    fn square(n: u64) -> u64 {
        bump(&SQUARE_CALLS);
        n * n
    }

    #[cached(alias = "assoc_fib")]
    fn fib(n: u64) -> u64 {
        bump(&FIB_CALLS);
        if n < 2 {
            n
        } else {
            Math::fib(n - 1) + Math::fib(n - 2)
        }
    }
}

#[test]
fn an_associated_function_without_self_is_memoized_with_its_companions() {
    caches::add("assoc_square", AliasConfig::memory()).unwrap();
    assert_eq!(Math::square(3), 9);
    assert_eq!(Math::square(3), 9);
    assert_eq!(count(&SQUARE_CALLS), 1, "the second call hits");
    assert_eq!(Math::square(4), 16);
    assert_eq!(count(&SQUARE_CALLS), 2);

    // The macro cannot see the impl, but the key still names the type (from the path Rust gives the function).
    assert_eq!(
        Math::square_cache_key(3).unwrap(),
        "macros_assoc::Math::square(3)"
    );
    assert_eq!(Math::square_cache_get(3).unwrap(), Some(9));
    assert_eq!(Math::square_cache_get(5).unwrap(), None);
    assert!(Math::square_cache_invalidate(3).unwrap());
    assert!(!Math::square_cache_invalidate(3).unwrap());
    assert_eq!(Math::square_cache_get(3).unwrap(), None);
    assert_eq!(Math::square(3), 9);
    assert_eq!(count(&SQUARE_CALLS), 3, "invalidated: the body ran again");

    Math::square_cache_set(6, &1000).unwrap();
    assert_eq!(
        Math::square(6),
        1000,
        "a set value is what the function returns"
    );
    assert_eq!(Math::square_cache_refresh(6), 36);
    assert_eq!(Math::square(6), 36);
    assert_eq!(Math::square_uncached(7), 49);
    assert_eq!(
        count(&SQUARE_CALLS),
        5,
        "refresh and uncached each ran the body once"
    );
    assert_eq!(
        Math::square_cache_get(7).unwrap(),
        None,
        "uncached stores nothing"
    );
}

#[test]
fn a_recursive_associated_function_runs_each_argument_once() {
    caches::add("assoc_fib", AliasConfig::memory()).unwrap();
    assert_eq!(Math::fib(60), 1_548_008_755_920);
    assert_eq!(count(&FIB_CALLS), 61);
    assert_eq!(Math::fib(60), 1_548_008_755_920);
    assert_eq!(count(&FIB_CALLS), 61);
}

// ----- two impls, one function name --------------------------------------------------------------------------

struct Left;
struct Right;

static LEFT_CALLS: AtomicUsize = AtomicUsize::new(0);
static RIGHT_CALLS: AtomicUsize = AtomicUsize::new(0);

impl Left {
    /// Mentions `Self`, so the key names the type.
    #[cached(alias = "assoc_twins", plugins = [HitMissRatioPlugin::new()])]
    fn scale(x: u32) -> u32
    where
        Self: Sized,
    {
        bump(&LEFT_CALLS);
        x * 2
    }

    /// Does not mention `Self`: the key still names the type (read from the path Rust gives the function).
    #[cached(alias = "assoc_twins_plain")]
    fn plain(x: u32) -> u32 {
        bump(&LEFT_CALLS);
        x + 1
    }
}

impl Right {
    #[cached(alias = "assoc_twins", plugins = [HitMissRatioPlugin::new()])]
    fn scale(x: u32) -> u32
    where
        Self: Sized,
    {
        bump(&RIGHT_CALLS);
        x * 3
    }

    #[cached(alias = "assoc_twins_plain")]
    fn plain(x: u32) -> u32 {
        bump(&RIGHT_CALLS);
        x + 2
    }
}

#[test]
fn two_impls_with_one_function_name_keep_their_own_cells_and_entries() {
    caches::add("assoc_twins", AliasConfig::memory()).unwrap();
    caches::add("assoc_twins_plain", AliasConfig::memory()).unwrap();

    assert_eq!(Left::scale(5), 10);
    assert_eq!(Right::scale(5), 15);
    assert_eq!(Left::scale(5), 10);
    assert_eq!(Right::scale(5), 15);
    assert_eq!(Right::scale(5), 15);
    assert_eq!((count(&LEFT_CALLS), count(&RIGHT_CALLS)), (1, 1));
    assert_eq!(
        Left::scale_cache_key(5).unwrap(),
        "macros_assoc::Left::scale(5)"
    );
    assert_eq!(
        Right::scale_cache_key(5).unwrap(),
        "macros_assoc::Right::scale(5)"
    );
    // One cell (and one plugin instance) per function, even with the same name in the same module.
    let left = Left::scale_cache().unwrap();
    let right = Right::scale_cache().unwrap();
    let left = left.plugin::<HitMissRatioPlugin>().unwrap();
    let right = right.plugin::<HitMissRatioPlugin>().unwrap();
    assert_eq!((left.hits(), left.total()), (1, 2));
    assert_eq!((right.hits(), right.total()), (2, 3));

    // Without `Self` too, each key names its type (read from the path Rust gives the function): in one cache
    // the two do not share entries.
    assert_eq!(
        Left::plain_cache_key(1).unwrap(),
        "macros_assoc::Left::plain(1)"
    );
    assert_eq!(
        Right::plain_cache_key(1).unwrap(),
        "macros_assoc::Right::plain(1)"
    );
    assert_eq!(Left::plain(1), 2);
    assert_eq!(Right::plain(1), 3);
    assert_eq!(Left::plain(1), 2);
    assert_eq!(Right::plain(1), 3);
    assert_eq!((count(&LEFT_CALLS), count(&RIGHT_CALLS)), (2, 2));
}

// ----- trait impls -------------------------------------------------------------------------------------------

trait Shape {
    fn area(&self) -> u64;
    fn named(id: u32) -> String;
}

#[derive(Serialize, Deserialize, Clone)]
struct Tile {
    w: u32,
    h: u32,
}

static TRAIT_CALLS: AtomicUsize = AtomicUsize::new(0);

impl Shape for Tile {
    #[cached(alias = "assoc_trait", companions = false)]
    fn area(&self) -> u64 {
        bump(&TRAIT_CALLS);
        u64::from(self.w) * u64::from(self.h)
    }

    #[cached(alias = "assoc_trait", companions = false)]
    fn named(id: u32) -> String {
        bump(&TRAIT_CALLS);
        format!("tile {id}")
    }
}

fn area_of(shape: &impl Shape) -> u64 {
    shape.area()
}

#[test]
fn trait_impl_methods_are_memoized_without_companions() {
    caches::add("assoc_trait", AliasConfig::memory()).unwrap();
    let tile = Tile { w: 2, h: 3 };
    assert_eq!(tile.area(), 6);
    assert_eq!(area_of(&tile.clone()), 6);
    assert_eq!(
        count(&TRAIT_CALLS),
        1,
        "an equal `self` hits, also through the trait"
    );
    assert_eq!(Tile { w: 3, h: 3 }.area(), 9);
    assert_eq!(count(&TRAIT_CALLS), 2);
    assert_eq!(Tile::named(1), "tile 1");
    assert_eq!(<Tile as Shape>::named(1), "tile 1");
    assert_eq!(count(&TRAIT_CALLS), 3);
    let alias = caches::get("assoc_trait").unwrap();
    assert!(alias
        .exists(r#"macros_assoc::Tile::area({"w":2,"h":3})"#)
        .unwrap());
}

// ----- one state per function: plugins, URL instances -------------------------------------------------------

static CUBE_CALLS: AtomicUsize = AtomicUsize::new(0);
static TRIPLE_CALLS: AtomicUsize = AtomicUsize::new(0);

impl Math {
    #[cached(alias = "assoc_plugins", plugins = [HitMissRatioPlugin::new()])]
    fn cube(n: u64) -> u64 {
        bump(&CUBE_CALLS);
        n * n * n
    }

    #[cached(cache = "memory://")]
    fn triple(n: u64) -> u64 {
        bump(&TRIPLE_CALLS);
        n * 3
    }
}

#[test]
fn companions_see_the_plugin_instance_that_counted_the_function() {
    caches::add("assoc_plugins", AliasConfig::memory()).unwrap();
    assert_eq!(Math::cube(2), 8);
    assert_eq!(Math::cube(2), 8);
    assert_eq!(Math::cube(2), 8);
    assert_eq!(count(&CUBE_CALLS), 1);
    let stats = Math::cube_cache()
        .unwrap()
        .plugin::<HitMissRatioPlugin>()
        .unwrap();
    assert_eq!(
        (stats.hits(), stats.total()),
        (2, 3),
        "the function's lookups"
    );
    assert_eq!(Math::cube_cache_get(2).unwrap(), Some(8));
    assert_eq!(
        (stats.hits(), stats.total()),
        (3, 4),
        "the companion's lookup went through the same plugin"
    );
}

#[test]
fn a_url_instance_is_shared_by_the_function_and_its_companions() {
    Math::triple_cache_set(2, &100).unwrap();
    assert_eq!(Math::triple(2), 100, "the value set through the companion");
    assert_eq!(count(&TRIPLE_CALLS), 0);
    assert!(Math::triple_cache()
        .unwrap()
        .exists(&Math::triple_cache_key(2).unwrap())
        .unwrap());
    assert!(Math::triple_cache_invalidate(2).unwrap());
    assert_eq!(Math::triple(2), 6);
    assert_eq!(count(&TRIPLE_CALLS), 1);
    assert_eq!(Math::triple_cache_get(2).unwrap(), Some(6));
}

// ----- other macros and body shapes inside an impl ----------------------------------------------------------

static BATCH_CALLS: AtomicUsize = AtomicUsize::new(0);
static STAMPEDE_CALLS: AtomicUsize = AtomicUsize::new(0);
static SHAPE_CALLS: AtomicUsize = AtomicUsize::new(0);
static UNIT_CALLS: AtomicUsize = AtomicUsize::new(0);

impl Math {
    #[multi_cached(alias = "assoc_multi", keys_from_attr = "ids")]
    fn labels<'a>(prefix: &'a str, ids: &'a [u32]) -> HashMap<u32, String> {
        bump(&BATCH_CALLS);
        ids.iter()
            .map(|id| (*id, format!("{prefix}{id}")))
            .collect()
    }

    #[cached_stampede(alias = "assoc_stampede", lease = 5)]
    fn shared(n: u32) -> u32 {
        bump(&STAMPEDE_CALLS);
        n + 1
    }

    /// Patterns, `mut`, `return` and `?` in the body of an associated function.
    #[cached(alias = "assoc_shapes")]
    fn parse_sum((a, b): (u32, u32), mut text: String) -> Result<u32, std::num::ParseIntError> {
        bump(&SHAPE_CALLS);
        if text.is_empty() {
            return Ok(a + b);
        }
        text.push('0');
        let n: u32 = text.parse()?;
        Ok(a + b + n)
    }

    /// No return value, an early `return`.
    #[cached(alias = "assoc_shapes")]
    fn touch(n: u32) {
        bump(&UNIT_CALLS);
        if n == 0 {
            return;
        }
        bump(&UNIT_CALLS);
    }
}

#[test]
fn multi_cached_and_stampede_work_in_an_impl_without_self() {
    caches::add("assoc_multi", AliasConfig::memory()).unwrap();
    caches::add("assoc_stampede", AliasConfig::memory()).unwrap();
    assert_eq!(Math::labels("u", &[1, 2]).len(), 2);
    assert_eq!(Math::labels("u", &[2, 3])[&3], "u3");
    assert_eq!(Math::labels("u", &[1, 3]).len(), 2);
    assert_eq!(count(&BATCH_CALLS), 2, "the last call hit every key");
    assert_eq!(
        Math::labels_cache_key("u", 3).unwrap(),
        r#"macros_assoc::Math::labels("u",3)"#
    );
    assert_eq!(
        Math::labels_cache_get("u", 3).unwrap().as_deref(),
        Some("u3")
    );

    assert_eq!(Math::shared(1), 2);
    assert_eq!(Math::shared(1), 2);
    assert_eq!(count(&STAMPEDE_CALLS), 1);
    assert_eq!(Math::shared_cache_refresh(1), 2);
    assert_eq!(count(&STAMPEDE_CALLS), 2);
}

#[test]
fn patterns_mut_return_and_question_mark_keep_their_meaning() {
    caches::add("assoc_shapes", AliasConfig::memory()).unwrap();
    assert_eq!(Math::parse_sum((1, 2), String::new()), Ok(3));
    assert_eq!(Math::parse_sum((1, 2), "4".into()), Ok(43));
    assert!(Math::parse_sum((1, 2), "x".into()).is_err());
    assert!(Math::parse_sum((1, 2), "x".into()).is_err());
    assert_eq!(count(&SHAPE_CALLS), 4, "errors are not cached");
    assert_eq!(Math::parse_sum((1, 2), "4".into()), Ok(43));
    assert_eq!(count(&SHAPE_CALLS), 4);

    Math::touch(0);
    Math::touch(0);
    Math::touch(1);
    Math::touch(1);
    assert_eq!(
        count(&UNIT_CALLS),
        3,
        "`()` is cached; the early return ran one bump"
    );
}

#[derive(Serialize, Clone)]
struct Counter {
    n: u32,
}

static RECEIVER_CALLS: AtomicUsize = AtomicUsize::new(0);

impl Counter {
    /// A `mut self` receiver the body changes.
    #[cached(alias = "assoc_receivers")]
    fn bumped(mut self, by: u32) -> u32 {
        bump(&RECEIVER_CALLS);
        self.n += by;
        self.n
    }

    /// An `impl Trait` argument left out of the key, in a function that does not mention `Self`.
    #[cached(alias = "assoc_receivers", skip(label))]
    fn shown(label: impl std::fmt::Display, n: u32) -> String {
        bump(&RECEIVER_CALLS);
        format!("{label}{n}")
    }
}

#[test]
fn mut_self_and_impl_trait_arguments() {
    caches::add("assoc_receivers", AliasConfig::memory()).unwrap();
    assert_eq!(Counter { n: 1 }.bumped(2), 3);
    assert_eq!(Counter { n: 1 }.bumped(2), 3);
    assert_eq!(count(&RECEIVER_CALLS), 1);
    assert_eq!(Counter { n: 1 }.bumped_cache_refresh(2), 3);
    assert_eq!(Counter { n: 5 }.bumped_uncached(1), 6);
    assert_eq!(count(&RECEIVER_CALLS), 3);
    assert_eq!(Counter::shown("n=", 1), "n=1");
    assert_eq!(
        Counter::shown('#', 1),
        "n=1",
        "the label is not part of the key"
    );
    assert_eq!(count(&RECEIVER_CALLS), 4);
}

static RACED_CALLS: AtomicUsize = AtomicUsize::new(0);

impl Math {
    #[cached(alias = "assoc_race", plugins = [HitMissRatioPlugin::new()])]
    fn raced(n: u32) -> u32 {
        bump(&RACED_CALLS);
        n + 1
    }
}

#[test]
fn the_function_and_a_companion_resolving_together_build_one_plugin_instance() {
    caches::add("assoc_race", AliasConfig::memory()).unwrap();
    let start = std::sync::Barrier::new(8);
    std::thread::scope(|s| {
        for i in 0..8 {
            let start = &start;
            s.spawn(move || {
                start.wait();
                if i % 2 == 0 {
                    assert_eq!(Math::raced(1), 2);
                } else {
                    let cached = Math::raced_cache_get(1).unwrap();
                    assert!(cached.is_none() || cached == Some(2));
                }
            });
        }
    });
    let stats = Math::raced_cache()
        .unwrap()
        .plugin::<HitMissRatioPlugin>()
        .unwrap();
    assert_eq!(
        stats.total(),
        8,
        "every thread's first lookup went through the one instance"
    );
    assert!(count(&RACED_CALLS) >= 1);
}
