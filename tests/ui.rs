//! Compile-time behaviour of the caching macros (trybuild): one failing case per rule, each error spanned at the
//! offending token with the function still emitted (no "cannot find function" cascade), and a passing case of
//! every shape in a crate whose names shadow the runtime's.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/fail/*.rs");
    cases.pass("tests/ui/pass/*.rs");
}
