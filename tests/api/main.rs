//! API suite: the real server, real programs in the real sandbox, asserting on the JSON.

#[path = "../common/mod.rs"]
mod common;
use common::*;

#[test]
fn python_hello_world_has_the_original_shape() {
    let s = shared();
    let r = s.run(json!({"code": "print(\"Hello, World!\")", "language": "python"}));
    assert_eq!(r["output"], "Hello, World!\n");
    assert_eq!(r["error"], Value::Null);
    assert_eq!(r["success"], true);
    assert!(r["execution_time"].as_f64().unwrap() > 0.0);
    assert_eq!(r["status"], "ok");
    assert_eq!(r["exit_code"], 0);
}
