//! Memory: the box's cgroup limit (default 128 MiB, or `memory_mb`), with twins under it.

use crate::common::*;
use crate::*;

/// Allocates argv[1] MiB and touches every page.
const PY_ALLOC: &str = r#"
import sys
n = int(sys.argv[1]) << 20
b = bytearray(n)
for i in range(0, n, 4096):
    b[i] = 1
print("allocated", len(b) >> 20, flush=True)
"#;

const TS_ALLOC: &str = r#"
const mib: number = parseInt(process.argv[2], 10);
const chunks: Buffer[] = [];
for (let i = 0; i < mib; i++) {
  chunks.push(Buffer.alloc(1 << 20, 1));
}
console.log("allocated", chunks.length);
"#;

const RS_ALLOC: &str = r#"
fn main() {
    let mib: usize = std::env::args().nth(1).unwrap().parse().unwrap();
    let mut v: Vec<u8> = vec![0u8; mib << 20];
    for i in (0..v.len()).step_by(4096) {
        v[i] = 1;
    }
    let pages: usize = v.iter().step_by(4096).map(|&b| b as usize).sum();
    println!("allocated {} pages", pages);
}
"#;

fn alloc(lang: &str, code: &str, mib: u64) -> Value {
    json!({"language": lang, "code": code, "args": [mib.to_string()]})
}

/// The success twin: prints what it allocated, and its peak lies between that and the limit.
fn assert_alloc_ok(r: &Value, mib: u64, limit_mib: u64) {
    assert_ok(r);
    assert!(stdout(r).starts_with("allocated"), "{}", brief(r));
    let kb = r["memory_kb"].as_u64().expect("memory_kb");
    assert!(
        kb > mib * 1024 && kb < limit_mib * 1024,
        "memory_kb {kb} should lie between {} and {}: {}",
        mib * 1024,
        limit_mib * 1024,
        brief(r)
    );
}

fn assert_memory_limit(r: &Value, limit_mib: u64) {
    assert_killed_by(
        r,
        "memory_limit",
        &[&format!("Memory limit exceeded ({limit_mib} MiB)")],
    );
    assert!(
        !stdout(r).contains("allocated"),
        "the allocation completed: {}",
        brief(r)
    );
}

#[test]
fn python_memory_default_limit_half_ok_one_and_a_half_killed() {
    let s = shared();
    let r = run_all(
        s,
        vec![
            alloc("python", PY_ALLOC, 64),
            alloc("python", PY_ALLOC, 192),
        ],
    );
    assert_alloc_ok(&r[0], 64, 128);
    assert_memory_limit(&r[1], 128);
}

#[test]
fn python_memory_mb_256_allows_128_and_kills_384() {
    let s = shared();
    let r = run_all(
        s,
        vec![
            with(alloc("python", PY_ALLOC, 128), json!({"memory_mb": 256})),
            with(alloc("python", PY_ALLOC, 384), json!({"memory_mb": 256})),
        ],
    );
    // 128 MiB is over the default limit: only the request's memory_mb lets it through.
    assert_alloc_ok(&r[0], 128, 256);
    assert_memory_limit(&r[1], 256);
}

#[test]
fn typescript_buffer_alloc_loop_hits_memory_limit() {
    let s = shared();
    let r = run_all(
        s,
        vec![
            alloc("typescript", TS_ALLOC, 64),
            alloc("typescript", TS_ALLOC, 192),
        ],
    );
    assert_alloc_ok(&r[0], 64, 128);
    assert_eq!(stdout(&r[0]), "allocated 64\n");
    assert_memory_limit(&r[1], 128);
}

#[test]
fn rust_vec_of_touched_pages_hits_memory_limit() {
    let s = shared();
    let r = run_all(
        s,
        vec![alloc("rust", RS_ALLOC, 64), alloc("rust", RS_ALLOC, 192)],
    );
    assert_alloc_ok(&r[0], 64, 128);
    assert_eq!(stdout(&r[0]), "allocated 16384 pages\n");
    assert_memory_limit(&r[1], 128);
}

/// The limit is on memory used, not on address space: a 1 GiB mapping never touched is fine,
/// the same mapping touched is not.
#[test]
fn untouched_reservation_is_not_charged_touched_is() {
    let s = shared();
    let code = r#"
import mmap, sys
m = mmap.mmap(-1, 1 << 30)
if sys.argv[1] == "touch":
    for i in range(0, len(m), 4096):
        m[i] = 1
print("mapped", len(m) >> 20)
"#;
    let r = run_all(
        s,
        vec![
            json!({"language": "python", "code": code, "args": ["keep"]}),
            json!({"language": "python", "code": code, "args": ["touch"]}),
        ],
    );
    assert_ok(&r[0]);
    assert_eq!(stdout(&r[0]), "mapped 1024\n");
    assert!(
        r[0]["memory_kb"].as_u64().unwrap_or(u64::MAX) < 128 * 1024,
        "{}",
        brief(&r[0])
    );
    assert_memory_limit(&r[1], 128);
}
