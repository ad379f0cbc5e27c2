//! 6. File descriptors: a program starts with fds 0, 1 and 2 only, and they are pipes — no fd
//!    the server, the helper or init held (a host directory, file, socket or the report pipe)
//!    survives into the program (the runc CVE-2024-21626 class: a leaked host directory fd
//!    lets the program walk the host through /proc/self/fd/N).

use std::collections::HashMap;

use crate::common::*;
use crate::*;

/// First thing at start: the fds still open after listing /proc/self/fd (the listing's own
/// fd is closed by then, so it drops out), and where each points.
const PY_FDS: &str = r#"
import os
names = os.listdir("/proc/self/fd")
fds = {}
for n in names:
    try:
        os.fstat(int(n))
    except OSError:
        continue  # the fd listdir used, closed again
    fds[n] = os.readlink("/proc/self/fd/" + n)
import json
print(json.dumps(fds))
"#;

const TS_FDS: &str = r#"
import * as fs from "fs";
const out: Record<string, string> = {};
for (const n of fs.readdirSync("/proc/self/fd")) {
  try { out[n] = fs.readlinkSync("/proc/self/fd/" + n); } catch (e: any) { /* the listing's fd */ }
}
console.log(JSON.stringify(out));
"#;

const RS_FDS: &str = r#"
fn main() {
    let names: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let mut out = Vec::new();
    for n in names {
        // The read_dir's own fd is closed once the iterator is dropped.
        if let Ok(target) = std::fs::read_link(format!("/proc/self/fd/{n}")) {
            out.push(format!("\"{n}\":\"{}\"", target.display()));
        }
    }
    println!("{{{}}}", out.join(","));
}
"#;

fn fd_map(res: &Value) -> HashMap<u32, String> {
    res.as_object()
        .unwrap_or_else(|| panic!("not an object: {res}"))
        .iter()
        .map(|(k, v)| {
            (
                k.parse().unwrap_or_else(|_| panic!("fd {k}")),
                v.as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn is_pipe(target: &str) -> bool {
    target.starts_with("pipe:[") && target.ends_with(']')
}

/// 0, 1 and 2 are three distinct pipes.
fn assert_stdio_pipes(fds: &HashMap<u32, String>, what: &str) {
    for fd in 0..3 {
        let t = fds
            .get(&fd)
            .unwrap_or_else(|| panic!("{what}: fd {fd} not open: {fds:?}"));
        assert!(is_pipe(t), "{what}: fd {fd} is {t}, not a pipe: {fds:?}");
    }
    assert!(
        fds[&0] != fds[&1] && fds[&1] != fds[&2] && fds[&0] != fds[&2],
        "{what}: stdio pipes are not distinct: {fds:?}"
    );
}

/// Leaked descriptors, Python: at start only 0, 1, 2 are open, all pipes.
#[test]
fn python_starts_with_only_stdio_pipes() {
    let s = shared();
    assert_confined(s);
    let r = s.run(py(PY_FDS));
    let fds = fd_map(&probe(&r));
    assert_stdio_pipes(&fds, "python");
    let mut open: Vec<u32> = fds.keys().copied().collect();
    open.sort_unstable();
    assert_eq!(open, vec![0, 1, 2], "python: extra fds at start: {fds:?}");
}

/// Leaked descriptors, Rust: at start only 0, 1, 2 are open, all pipes.
#[test]
fn rust_starts_with_only_stdio_pipes() {
    let s = shared();
    assert_confined(s);
    let r = s.run(rs(RS_FDS));
    let fds = fd_map(&probe(&r));
    assert_stdio_pipes(&fds, "rust");
    let mut open: Vec<u32> = fds.keys().copied().collect();
    open.sort_unstable();
    assert_eq!(open, vec![0, 1, 2], "rust: extra fds at start: {fds:?}");
}

/// Leaked descriptors, node: node opens its own epoll/eventfd fds and self-pipes before any
/// user code runs, so "only 0-2 at exec" is checked as: 0-2 are distinct pipes, and every
/// other fd is an anonymous inode or one end of a pipe whose other end node also holds (its
/// own internal pipe) — no path, no socket, no lone pipe end that could lead out.
#[test]
fn typescript_holds_no_inherited_fd() {
    let s = shared();
    assert_confined(s);
    let r = s.run(ts(TS_FDS));
    let fds = fd_map(&probe(&r));
    assert_stdio_pipes(&fds, "node");
    let mut pipe_count: HashMap<&str, usize> = HashMap::new();
    for t in fds.values() {
        if is_pipe(t) {
            *pipe_count.entry(t.as_str()).or_default() += 1;
        }
    }
    for (fd, t) in &fds {
        if *fd < 3 {
            continue;
        }
        let own_pipe = is_pipe(t) && pipe_count[t.as_str()] == 2;
        assert!(
            t.starts_with("anon_inode:") || own_pipe,
            "node: fd {fd} -> {t} was not made by node itself: {fds:?}"
        );
    }
}
