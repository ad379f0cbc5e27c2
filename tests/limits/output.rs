//! Output: each stream is cut at its cap (default 1 MiB, or `max_output_bytes`), the run is
//! stopped with `output_limit`, and output under the cap comes back whole.

use crate::common::*;
use crate::*;

/// Writes argv[1] bytes of ASCII to argv[2] ("out" or "err") in 64 KiB pieces.
const PY_WRITE: &str = r#"
import sys
n, stream = int(sys.argv[1]), sys.argv[2]
f = sys.stdout if stream == "out" else sys.stderr
chunk = "x" * 65536
while n > 0:
    f.write(chunk[:min(n, len(chunk))])
    n -= min(n, len(chunk))
f.flush()
"#;

fn write(n: usize, stream: &str) -> Value {
    json!({"language": "python", "code": PY_WRITE, "args": [n.to_string(), stream]})
}

fn assert_all_x(s: &str, len: usize, r: &Value) {
    assert_eq!(s.len(), len, "{}", brief(r));
    assert!(s.bytes().all(|b| b == b'x'), "{}", brief(r));
}

#[test]
fn two_mib_of_stdout_is_cut_at_exactly_one_mib() {
    let s = shared();
    let r = run_all(s, vec![write(2 * MIB, "out"), write(900 * 1024, "out")]);
    assert_killed_by(
        &r[0],
        "output_limit",
        &["Output limit exceeded (1048576 bytes per stream)"],
    );
    assert_eq!(r[0]["truncated"], true, "{}", brief(&r[0]));
    assert_all_x(stdout(&r[0]), 1_048_576, &r[0]);
    assert_eq!(stderr(&r[0]), "");

    assert_ok(&r[1]);
    assert_all_x(stdout(&r[1]), 900 * 1024, &r[1]);
}

#[test]
fn output_cap_boundary_exactly_one_mib_is_whole_one_more_byte_is_not() {
    let s = shared();
    let r = run_all(s, vec![write(MIB, "out"), write(MIB + 1, "out")]);
    assert_ok(&r[0]);
    assert_all_x(stdout(&r[0]), MIB, &r[0]);
    assert_killed_by(&r[1], "output_limit", &["Output limit exceeded"]);
    assert_eq!(r[1]["truncated"], true, "{}", brief(&r[1]));
    assert_all_x(stdout(&r[1]), MIB, &r[1]);
}

#[test]
fn stderr_flood_is_capped_too() {
    let s = shared();
    let r = run_all(s, vec![write(2 * MIB, "err"), write(512 * 1024, "err")]);
    assert_killed_by(&r[0], "output_limit", &["Output limit exceeded"]);
    assert_eq!(r[0]["truncated"], true);
    assert_all_x(stderr(&r[0]), MIB, &r[0]);
    assert_eq!(stdout(&r[0]), "");
    // The stderr twin is not an error by itself (exit 0).
    assert_ok(&r[1]);
    assert_all_x(stderr(&r[1]), 512 * 1024, &r[1]);
}

#[test]
fn flood_on_both_streams_at_once_caps_both() {
    let code = r#"
import sys, threading
def flood(f):
    chunk = "y" * 65536
    while True:
        f.write(chunk)
        f.flush()
# Both streams have output before either floods: which one reaches the cap first is up to
# the scheduler, and the cap may end the run before the other thread ever wrote.
sys.stdout.write("y"); sys.stdout.flush()
sys.stderr.write("y"); sys.stderr.flush()
threading.Thread(target=flood, args=(sys.stderr,), daemon=True).start()
flood(sys.stdout)
"#;
    let r = shared().run(json!({"language": "python", "code": code, "timeout": 10}));
    assert_killed_by(&r, "output_limit", &["Output limit exceeded"]);
    assert_eq!(r["truncated"], true, "{}", brief(&r));
    let (out, err) = (stdout(&r), stderr(&r));
    assert!(out.len() <= MIB && err.len() <= MIB, "{}", brief(&r));
    assert!(out.len() == MIB || err.len() == MIB, "{}", brief(&r));
    assert!(!out.is_empty() && !err.is_empty(), "{}", brief(&r));
    assert!(out.bytes().chain(err.bytes()).all(|b| b == b'y'));
    // The error field carries the sentence and the (capped) stderr, no more.
    let error = r["error"].as_str().unwrap_or("");
    assert!(error.len() <= MIB + 100, "error is {} bytes", error.len());
}

#[test]
fn max_output_bytes_4096_caps_each_stream_at_4096() {
    let s = shared();
    let small = |n: usize, stream: &str| with(write(n, stream), json!({"max_output_bytes": 4096}));
    let r = run_all(
        s,
        vec![
            small(100_000, "out"),
            small(100_000, "err"),
            small(4096, "out"),
        ],
    );
    for (r, stream) in [(&r[0], "stdout"), (&r[1], "stderr")] {
        assert_killed_by(
            r,
            "output_limit",
            &["Output limit exceeded (4096 bytes per stream)"],
        );
        assert_eq!(r["truncated"], true, "{}", brief(r));
        assert_all_x(r[stream].as_str().unwrap_or(""), 4096, r);
    }
    assert_ok(&r[2]);
    assert_all_x(stdout(&r[2]), 4096, &r[2]);
}
