//! Generated code is hygienic: it compiles cleanly around every shape in a crate that has its own
//! `mod cache_runtime`, `struct Cache` and `type Result`, under `clippy::pedantic` and `unused_qualifications`
//! (checked by `cargo clippy --all-targets -- -D warnings`).
#![deny(clippy::pedantic, unused_qualifications)]

include!("hygiene/shapes.rs");

#[test]
fn every_shape_compiles_and_runs_around_shadowing_names() {
    run_every_shape();
}
