//! Disk: /work and /tmp share one tmpfs of 64 MiB and 4096 inodes; filling it gives ENOSPC,
//! costs the host's disk nothing, and the next run starts empty.

use crate::common::*;
use crate::*;

/// Writes argv[i+1] MiB to each path argv[i] in turn (1 MiB at a time); reports
/// "OK <MiB>" or "ERR <errno> <MiB written before>".
const PY_FILL: &str = r#"
import sys
chunk = b"\0" * (1 << 20)
written = 0
try:
    args = sys.argv[1:]
    for path, mib in zip(args[::2], args[1::2]):
        with open(path, "wb") as f:
            for _ in range(int(mib)):
                f.write(chunk)
                f.flush()
                written += 1
    print("OK", written)
except OSError as e:
    print("ERR", e.errno, written)
"#;

/// Creates argv[2] empty files in the directory argv[1].
const PY_FILES: &str = r#"
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
os.makedirs(d, exist_ok=True)
made = 0
try:
    for i in range(n):
        open(os.path.join(d, "f%d" % i), "w").close()
        made += 1
    print("OK", made)
except OSError as e:
    print("ERR", e.errno, made)
"#;

fn fill(args: &[&str]) -> Value {
    json!({"language": "python", "code": PY_FILL, "args": args})
}

fn files(dir: &str, n: u32) -> Value {
    json!({"language": "python", "code": PY_FILES, "args": [dir, n.to_string()]})
}

/// "ERR 28 <n>" with n in `range`.
fn assert_enospc_after(r: &Value, range: std::ops::Range<u32>) {
    assert_ok(r);
    let out = stdout(r);
    let words: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(words.get(..2), Some(&["ERR", "28"][..]), "{}", brief(r));
    let n: u32 = words[2].parse().expect("count");
    assert!(range.contains(&n), "{n} before ENOSPC, expected {range:?}");
}

#[test]
fn writing_100_mib_fails_with_enospc_10_mib_succeeds() {
    let s = shared();
    assert_confined(s);
    let free_before = host_free_bytes("/");
    let r = run_all(
        s,
        vec![
            fill(&["/work/big", "100"]),
            fill(&["/work/big", "10"]),
            fill(&["/tmp/big", "100"]),
            fill(&["/tmp/big", "10"]),
            fill(&["/dev/shm/big", "100"]),
            fill(&["/dev/shm/big", "8"]),
        ],
    );
    let free_after = host_free_bytes("/");
    assert_enospc_after(&r[0], 48..64);
    assert_eq!(stdout(&r[1]), "OK 10\n", "{}", brief(&r[1]));
    assert_enospc_after(&r[2], 48..64);
    assert_eq!(stdout(&r[3]), "OK 10\n", "{}", brief(&r[3]));
    // /dev/shm is a separate, smaller tmpfs (16 MiB).
    assert_enospc_after(&r[4], 8..17);
    assert_eq!(stdout(&r[5]), "OK 8\n", "{}", brief(&r[5]));
    // The files live in memory, charged to the box.
    let kb = r[0]["memory_kb"].as_u64().unwrap_or(0);
    assert!(kb > 48 * 1024, "tmpfs pages not charged: {}", brief(&r[0]));
    // Two fills of ~63 MiB went to tmpfs: the host's disk must not have paid for them.
    let lost = free_before.saturating_sub(free_after);
    assert!(
        lost < 40 << 20,
        "the host's / lost {} MiB during the fill",
        lost >> 20
    );
}

#[test]
fn work_and_tmp_share_one_limit() {
    let s = shared();
    assert_confined(s);
    let r = run_all(
        s,
        vec![
            fill(&["/work/a", "40", "/tmp/b", "40"]),
            fill(&["/work/a", "20", "/tmp/b", "20"]),
        ],
    );
    assert_enospc_after(&r[0], 48..64);
    assert_eq!(stdout(&r[1]), "OK 40\n", "{}", brief(&r[1]));
}

#[test]
fn ten_thousand_files_run_out_of_inodes_a_hundred_do_not() {
    let s = shared();
    assert_confined(s);
    let r = run_all(
        s,
        vec![
            files("/work/d", 10_000),
            files("/work/d", 100),
            files("/tmp/d", 10_000),
        ],
    );
    assert_enospc_after(&r[0], 3500..4096);
    assert_eq!(stdout(&r[1]), "OK 100\n", "{}", brief(&r[1]));
    assert_enospc_after(&r[2], 3500..4096);
}

#[test]
fn a_full_work_dir_does_not_carry_over_to_the_next_run() {
    let s = shared();
    assert_confined(s);
    let r = s.run(fill(&["/work/big", "100"]));
    assert_enospc_after(&r, 48..64);
    let code = "import os\nprint(sorted(os.listdir('/work')), sorted(os.listdir('/tmp')))";
    let r = s.run(py(code));
    assert_ok(&r);
    assert_eq!(stdout(&r), "['main.py'] []\n");
    // And the fresh work dir has its whole 64 MiB.
    let r = s.run(fill(&["/work/big", "40"]));
    assert_eq!(stdout(&r), "OK 40\n", "{}", brief(&r));
}
