//! Attribute macros of `cache-runtime`: `#[cached]`, `#[multi_cached]`, `#[cached_stampede]`.
//!
//! Use them through `cache_runtime`, which re-exports them and documents them with examples. Generated code
//! reaches the runtime only through `::cache_runtime::__private` (or `crate = path`).
//!
//! Pipeline: [`attr`] parses the arguments, [`ast`] models the function, [`valid`] checks every rule and
//! collects all errors, [`key`] and [`expand`] generate code. On any error the function is emitted unchanged
//! next to the errors.

mod ast;
mod attr;
mod expand;
mod key;
mod valid;

use proc_macro::TokenStream;

use attr::Kind;

/// Memoizes a function in a cache. See `cache_runtime::cached`.
#[proc_macro_attribute]
pub fn cached(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::run(Kind::Cached, args.into(), item.into()).into()
}

/// Memoizes a batch function per key. See `cache_runtime::multi_cached`.
#[proc_macro_attribute]
pub fn multi_cached(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::run(Kind::MultiCached, args.into(), item.into()).into()
}

/// Memoizes a function, running its body once for concurrent misses of one key. See
/// `cache_runtime::cached_stampede`.
#[proc_macro_attribute]
pub fn cached_stampede(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::run(Kind::Stampede, args.into(), item.into()).into()
}
