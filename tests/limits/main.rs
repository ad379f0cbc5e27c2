//! Limits suite: every limit with a positive control beside it (a twin that must succeed, so
//! a sandbox that fails everything cannot pass), against the real server and sandbox.
//!
//! Hostile programs (fork bombs, kill(-1), disk fills) only run after [`assert_confined`] has
//! shown that the box really is confined.

#[path = "../common/mod.rs"]
mod common;

mod disk;
mod memory;
mod misc;
mod output;
mod processes;
mod time;

use common::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

pub const MIB: usize = 1 << 20;

/// A Python request.
pub fn py(code: &str) -> Value {
    json!({"language": "python", "code": code})
}

pub fn stderr(r: &Value) -> &str {
    r["stderr"]
        .as_str()
        .unwrap_or_else(|| panic!("no stderr: {r}"))
}

pub fn f64_of(r: &Value, key: &str) -> f64 {
    r[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number: {r}"))
}

pub fn assert_ok(r: &Value) {
    assert_eq!(status(r), "ok", "expected ok: {}", brief(r));
    assert_eq!(r["success"], true, "{}", brief(r));
    assert_eq!(r["exit_code"], 0, "{}", brief(r));
    assert_eq!(r["truncated"], false, "{}", brief(r));
}

/// Asserts a run was ended by a limit: the status, not a success, killed by SIGKILL (no exit
/// code), and `error` starting with one of the given sentences.
pub fn assert_killed_by(r: &Value, want_status: &str, sentences: &[&str]) {
    assert_eq!(status(r), want_status, "{}", brief(r));
    assert_eq!(r["success"], false, "{}", brief(r));
    assert_eq!(r["exit_code"], Value::Null, "{}", brief(r));
    assert_eq!(r["signal"], "SIGKILL", "{}", brief(r));
    let error = r["error"].as_str().unwrap_or("");
    assert!(
        sentences.iter().any(|s| error.starts_with(s)),
        "error should start with one of {sentences:?}: {}",
        brief(r)
    );
}

/// What [`run_watching`] saw.
pub struct Watched {
    pub resp: Value,
    /// Most processes carrying the nonce seen at once while the request was in flight.
    pub max_during: usize,
    /// Processes carrying the nonce right after the response arrived.
    pub after: Vec<u32>,
}

/// Runs `body` while a watcher thread counts the host's processes whose command line holds
/// `nonce`; checks again as soon as the response is in.
pub fn run_watching(s: &Server, body: Value, nonce: &str) -> Watched {
    let done = AtomicBool::new(false);
    let max = AtomicUsize::new(0);
    std::thread::scope(|sc| {
        sc.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                let n = processes_containing(nonce).len();
                max.fetch_max(n, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let resp = s.run(body);
        let after = processes_containing(nonce);
        done.store(true, Ordering::SeqCst);
        Watched {
            resp,
            max_during: max.load(Ordering::SeqCst),
            after,
        }
    })
}

/// Free bytes (for unprivileged users) of the filesystem holding `path`, on the host.
pub fn host_free_bytes(path: &str) -> u64 {
    let c = std::ffi::CString::new(path).expect("path");
    // SAFETY: an all-zero statvfs is a valid out-value.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is NUL-terminated and st a valid out-pointer.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    assert_eq!(rc, 0, "statvfs {path}: {}", std::io::Error::last_os_error());
    st.f_bavail as u64 * st.f_frsize as u64
}

#[test]
fn confinement_probe_sees_a_confined_box() {
    assert_confined(shared());
}
