// Every function shape around names that shadow the runtime's, shared by two wrappers: `tests/ui/pass/hygiene.rs`
// (trybuild: the crate compiles under the deny lints) and `tests/macros_hygiene.rs` (an integration test, so
// `cargo clippy --all-targets` checks it under `clippy::pedantic` too). Not a test target itself: it sits in a
// subdirectory.

use std::collections::{BTreeMap, HashMap};

/// A local module named like the runtime crate: generated paths start with `::cache_runtime`.
mod cache_runtime {}

/// A local type named like the runtime's.
#[derive(Debug)]
struct Cache;

/// A local `Result` alias, also used as a return type.
type Result<T> = core::result::Result<T, String>;

mod shapes {
    use ::cache_runtime::{cached, cached_stampede, multi_cached};
    use serde::Serialize;
    use std::collections::{BTreeMap, HashMap};

    /// A free function.
    #[cached(alias = "hygiene")]
    pub fn square(n: u64) -> u64 {
        n * n
    }

    /// Recursion.
    #[cached(alias = "hygiene", ttl = 60)]
    pub fn fib(n: u64) -> u64 {
        if n < 2 {
            n
        } else {
            fib(n - 1) + fib(n - 2)
        }
    }

    /// The crate's own `Result` alias.
    ///
    /// # Errors
    /// When `n` is zero.
    #[cached(alias = "hygiene")]
    pub fn inverse(n: u32) -> super::Result<f64> {
        if n == 0 {
            Err("zero".into())
        } else {
            Ok(1.0 / f64::from(n))
        }
    }

    /// Options, references and generics.
    #[cached(alias = "hygiene")]
    pub fn first<T: Serialize + Clone + serde::de::DeserializeOwned + Send + Sync + 'static>(
        items: &[T],
    ) -> Option<T> {
        items.first().cloned()
    }

    /// Skipped arguments and a key builder.
    #[cached(alias = "hygiene", skip(_verbose))]
    pub fn label(name: &str, _verbose: bool) -> String {
        name.to_uppercase()
    }

    /// A type with methods.
    #[derive(Serialize)]
    pub struct Grid {
        pub cells: u32,
    }

    impl Grid {
        /// A method.
        #[cached(alias = "hygiene")]
        pub fn total(&self, factor: u32) -> u32 {
            self.cells * factor
        }

        /// An associated function.
        #[cached(alias = "hygiene")]
        pub fn empty() -> Self {
            Grid { cells: 0 }
        }

        /// An associated function naming neither `self` nor `Self`.
        #[cached(alias = "hygiene")]
        pub fn double(n: u32) -> u32 {
            n * 2
        }
    }

    /// A trait whose impl memoizes a method and an associated function.
    pub trait Measure {
        /// The measure of a value.
        fn measure(&self) -> u32;
        /// A measure from a number.
        fn of(n: u32) -> u32;
    }

    impl Measure for Grid {
        #[cached(alias = "hygiene", companions = false)]
        fn measure(&self) -> u32 {
            self.cells + 1
        }

        #[cached(alias = "hygiene", companions = false)]
        fn of(n: u32) -> u32 {
            n + 1
        }
    }

    impl<'de> serde::Deserialize<'de> for Grid {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            u32::deserialize(d).map(|cells| Grid { cells })
        }
    }

    impl Clone for Grid {
        fn clone(&self) -> Self {
            Grid { cells: self.cells }
        }
    }

    /// A batch lookup.
    #[multi_cached(alias = "hygiene", keys_from_attr = "ids")]
    pub fn names(ids: &[u32]) -> HashMap<u32, String> {
        ids.iter().map(|id| (*id, id.to_string())).collect()
    }

    /// A batch lookup into a `BTreeMap`.
    #[multi_cached(alias = "hygiene", keys_from_attr = "ids")]
    pub fn sorted(ids: Vec<u32>) -> BTreeMap<u32, u32> {
        ids.into_iter().map(|id| (id, id)).collect()
    }

    /// Stampede protection.
    #[cached_stampede(alias = "hygiene", lease = 2)]
    pub fn shared(n: u32) -> u32 {
        n + 1
    }
}

/// Calls every shape once; both wrappers run it.
fn run_every_shape() {
    ::cache_runtime::caches::add("hygiene", ::cache_runtime::AliasConfig::memory()).unwrap();
    let _ = Cache;
    assert_eq!(shapes::square(3), 9);
    assert_eq!(shapes::fib(30), 832_040);
    assert!(shapes::inverse(0).is_err());
    assert_eq!(shapes::first(&[1u8, 2]), Some(1));
    assert_eq!(shapes::label("a", true), "A");
    assert_eq!(shapes::Grid { cells: 2 }.total(3), 6);
    assert_eq!(shapes::Grid::empty().cells, 0);
    assert_eq!(shapes::Grid::double(2), 4);
    assert_eq!(shapes::Grid::double_cache_get(2).ok(), Some(Some(4)));
    assert_eq!(shapes::Measure::measure(&shapes::Grid { cells: 2 }), 3);
    assert_eq!(<shapes::Grid as shapes::Measure>::of(2), 3);
    assert_eq!(
        shapes::names(&[1, 2]),
        HashMap::from([(1, "1".to_string()), (2, "2".to_string())])
    );
    assert_eq!(shapes::sorted(vec![2, 1]), BTreeMap::from([(1, 1), (2, 2)]));
    assert_eq!(shapes::shared(1), 2);
    let ok: Result<u8> = Ok(1);
    assert_eq!(ok, Ok(1));
}
