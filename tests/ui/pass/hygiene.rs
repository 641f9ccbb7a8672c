//! A user crate with its own `mod cache_runtime`, `struct Cache` and `type Result`, denying
//! `clippy::pedantic` and `unused_qualifications`, compiles cleanly around every shape.
#![deny(clippy::pedantic, unused_qualifications)]

include!("../../hygiene/shapes.rs");

fn main() {
    run_every_shape();
}
