//! Compile-fail and compile-pass cases of the ziggy macros, one file per case, each `.stderr`
//! beside its case. Regenerate with `TRYBUILD=overwrite cargo test -p ziggy-ui-tests`, then review.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/fail/*.rs");
    t.pass("tests/pass/*.rs");
}
