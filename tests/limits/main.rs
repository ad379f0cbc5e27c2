//! Limits suite: every limit with a positive control beside it.

#[path = "../common/mod.rs"]
mod common;
use common::*;

#[test]
fn memory_at_half_the_limit_succeeds() {
    let s = shared();
    let r = s.run(
        json!({"code": "b = bytearray(64 * 1024 * 1024)\nprint(len(b))", "language": "python"}),
    );
    assert_eq!(r["status"], "ok", "{r}");
}
