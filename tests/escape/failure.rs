//! 10. A sandbox that cannot be set up is a 5xx, never a silent run on the host (the
//!     "fallback to unsandboxed execution" failure of many code runners).

use std::io::Write;

use crate::common::*;
use crate::*;

/// A valid policy that denies every exec: the box's set-up succeeds up to the program's
/// execve, which then fails, as a broken sandbox would.
const DENY_EXEC_POLICY: &str = "version = 1\n\
[[rule]]\n\
syscalls = [\"execve\", \"execveat\"]\n\
action = { errno = \"EPERM\" }\n";

const HOST_PATHS: [&str; 6] = [
    "/run/coderun",
    "/root",
    "/var/lib/coderun",
    ".pyenv",
    ".rustup",
    "/work/main",
];

/// Fail-open execution: with a seccomp policy that makes every box's exec fail, /health
/// answers 503 "unhealthy" (saying why, without host paths) and POST /execute answers 500
/// `sandbox_error` for every language, with a detail naming no host path; the program never
/// ran (no stdout in the answer). Positive control: the shared server answers 200 and runs the
/// same request.
#[test]
fn sandbox_failure_is_a_5xx_never_a_host_run() {
    let mut policy = tempfile::NamedTempFile::new().expect("policy file");
    policy
        .write_all(DENY_EXEC_POLICY.as_bytes())
        .expect("write policy");
    let config = format!(
        "[sandbox]\nseccomp_policy = \"{}\"\n",
        policy.path().display()
    );
    let hello = py("print('hello from the box')");
    let bad = Server::start_with(&config, &[]);

    let (code, health) = bad.get("/health");
    assert_eq!(code, 503, "{health}");
    assert_eq!(health["status"], "unhealthy", "{health}");
    assert_eq!(health["sandbox"]["ok"], false, "{health}");
    let why = health["sandbox"]["error"].as_str().unwrap_or("");
    assert!(!why.is_empty(), "/health does not say why: {health}");
    for p in HOST_PATHS {
        assert!(!why.contains(p), "/health names host path {p}: {health}");
    }

    let bodies = [
        hello.clone(),
        ts("console.log('hello from the box')"),
        rs("fn main() { println!(\"hello from the box\"); }"),
    ];
    for body in &bodies {
        let (code, resp) = bad.execute(body);
        assert_eq!(code, 500, "{body} on a broken sandbox: {resp}");
        assert_eq!(resp["code"], "sandbox_error", "{resp}");
        let text = resp.to_string();
        for p in HOST_PATHS {
            assert!(!text.contains(p), "the error names host path {p}: {resp}");
        }
        assert!(
            !text.contains("hello from the box"),
            "the program ran: {resp}"
        );
        assert!(resp.get("stdout").is_none(), "{resp}");
    }
    drop(bad);

    // Positive control: a working sandbox answers the same request.
    let s = shared();
    let (code, resp) = s.execute(&hello);
    assert_eq!(code, 200, "{resp}");
    assert_ok(&resp);
    assert_eq!(stdout(&resp), "hello from the box\n");
    assert_eq!(s.get("/health").0, 200);
}
