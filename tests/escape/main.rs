//! Escape suite: the attacks a hostile program would try, each against the real server and the
//! real sandbox, with real Python, TypeScript and Rust programs.
//!
//! Rules every test here follows:
//! - before anything hostile runs, [`assert_confined`] proves the box is confined (own pid
//!   namespace, uid 1000, host root and host files invisible) and panics otherwise, so a
//!   broken sandbox never runs an attack on the host;
//! - every refusal has a POSITIVE CONTROL beside it (the same program doing the permitted
//!   twin of the attack, which must succeed), so a sandbox that fails everything, or a probe
//!   that cannot see anything, cannot pass;
//! - where possible the verdict comes from the host (a victim file's bytes and metadata, the
//!   secret's absence from the whole response, the host's process table), not only from what
//!   the program claims.
//!
//! A product bug found here stays as a regression test naming what it found.

#[path = "../common/mod.rs"]
mod common;

mod environment;
mod failure;
mod fds;
mod host_files;
mod isolation;
mod kernel;
mod network;
mod processes;
mod symlinks;
mod writes;

use common::*;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// Host uids the sandbox gives boxes with the default configuration.
pub const BOX_UID_RANGE: std::ops::Range<u32> = 1_500_000..1_500_000 + 2 * 4096;

pub fn py(code: &str) -> Value {
    json!({"language": "python", "code": code})
}

pub fn ts(code: &str) -> Value {
    json!({"language": "typescript", "code": code})
}

pub fn rs(code: &str) -> Value {
    json!({"language": "rust", "code": code})
}

pub fn assert_ok(r: &Value) {
    assert_eq!(status(r), "ok", "expected ok: {}", brief(r));
    assert_eq!(r["success"], true, "{}", brief(r));
    assert_eq!(r["exit_code"], 0, "{}", brief(r));
}

/// Asserts the run succeeded and parses the last line of its stdout as JSON (the probes
/// print one JSON document as their last line).
pub fn probe(r: &Value) -> Value {
    assert_ok(r);
    let line = stdout(r).trim_end().lines().last().unwrap_or("");
    serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("probe printed {line:?} ({e}): {}", brief(r)))
}

/// Host uid (real, effective) of a live process, if it still exists.
pub fn host_uids(pid: u32) -> Option<(u32, u32)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    let mut it = line
        .split_whitespace()
        .skip(1)
        .map(|u| u.parse::<u32>().ok());
    Some((it.next()??, it.next()??))
}

/// The NUL-separated command line of a host process, as one lossy string.
pub fn host_cmdline(pid: u32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&raw).replace('\0', " ")
}

static SECRET: OnceLock<String> = OnceLock::new();
static SECRET_SERVER: OnceLock<Server> = OnceLock::new();
static SECRET_SERVER_PID: AtomicU32 = AtomicU32::new(0);

extern "C" fn stop_secret_server() {
    let pid = SECRET_SERVER_PID.load(Ordering::SeqCst);
    if pid != 0 {
        // SAFETY: signalling the server process this suite started; then reaping it.
        unsafe {
            libc::kill(pid as i32, libc::SIGTERM);
            let mut status = 0;
            libc::waitpid(pid as i32, &mut status, 0);
        }
    }
}

/// The secret the dedicated server carries in its environment.
pub fn secret() -> &'static str {
    SECRET.get_or_init(|| format!("s3cr3t-{}", nonce()))
}

/// A second server shared by the tests that need it: `CODERUN_TEST_SECRET` in its environment
/// (the secret a leak would expose) and 4 run slots, so concurrent runs of the isolation test
/// never queue behind each other or behind other tests (the shared server has one per CPU).
pub fn secret_server() -> &'static Server {
    SECRET_SERVER.get_or_init(|| {
        let s = Server::start_with(
            "[engine]\nconcurrency = 4\n",
            &[("CODERUN_TEST_SECRET", secret())],
        );
        SECRET_SERVER_PID.store(s.pid, Ordering::SeqCst);
        // SAFETY: registering a plain extern "C" function with no captured state.
        unsafe { libc::atexit(stop_secret_server) };
        s
    })
}

#[test]
fn confinement_probe_sees_a_confined_box() {
    assert_confined(shared());
}
