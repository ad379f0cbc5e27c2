//! Leaks suite: what a crash leaves behind is really there, and the next start removes it —
//! without touching a live instance's boxes. (Piston #206: processes outliving cleanup.)

#[path = "../common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

/// The instance dir of the server with `pid` under a state root.
fn instance_of(state: &Path, pid: u32) -> (String, PathBuf) {
    let prefix = format!("{pid}-");
    let entry = std::fs::read_dir(state.join("instances"))
        .expect("instances dir")
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .unwrap_or_else(|| panic!("no instance dir for server {pid}"));
    (
        entry.file_name().to_string_lossy().into_owned(),
        entry.path(),
    )
}

fn box_cgroups(id: &str) -> Vec<PathBuf> {
    instance_cgroup_dirs(id)
        .into_iter()
        .flat_map(|d| std::fs::read_dir(d).into_iter().flatten().flatten())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect()
}

/// The box helpers of a server: its children whose command line is `coderun __box`.
fn helpers_of(server_pid: u32) -> Vec<u32> {
    children_of(server_pid)
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default() == b"coderun\0__box\0"
        })
        .collect()
}

/// SIGKILL the server *and its box helpers* in the middle of 8 concurrent runs (what an OOM
/// kill or a kill of the service's whole cgroup does): the boxes' processes die with their
/// helpers (init's parent-death signal), but nobody removed their cgroups and state dirs.
/// Restarting on the same state dir sweeps every one of them and the service is healthy,
/// while a second live server's run in flight finishes untouched. (A server killed alone
/// leaves nothing at all: its helpers clean up; tests/cancel covers that.)
#[test]
fn sigkill_of_server_and_helpers_leaves_boxes_that_the_next_start_sweeps() {
    let state = tempfile::Builder::new()
        .prefix("coderun-leaks-")
        .tempdir_in("/run")
        .expect("state dir");
    let config = format!(
        "[sandbox]\nstate_dir = \"{}\"\n[engine]\nconcurrency = 8\n",
        state.path().display()
    );
    let live = Server::start_with(&config, &[]);
    let victim = Server::start_with(&config, &[]);
    let (victim_id, victim_dir) = instance_of(state.path(), victim.pid);
    let (_, live_dir) = instance_of(state.path(), live.pid);

    // A run on the live server that spans the kill and the restart.
    let live_nonce = nonce();
    let live_run = std::thread::scope(|scope| {
        let live_run = scope.spawn(|| {
            live.run(json!({
                "language": "python",
                "code": "import sys, time\ntime.sleep(6)\nprint(sys.argv[1])",
                "args": [live_nonce],
                "timeout": 20,
            }))
        });
        let nonce = nonce();
        let base = victim.base.clone();
        for _ in 0..8 {
            let (base, nonce) = (base.clone(), nonce.clone());
            // These requests die with the server; their answers do not matter.
            scope.spawn(move || {
                let _ = reqwest::blocking::Client::new()
                    .post(format!("{base}/execute"))
                    .json(&json!({
                        "language": "python",
                        "code": "import time\ntime.sleep(30)",
                        "args": [nonce],
                        "timeout": 30,
                    }))
                    .timeout(Duration::from_secs(40))
                    .send();
            });
        }
        wait_until("8 boxes run", Duration::from_secs(30), || {
            processes_containing(&nonce).len() >= 8
        });
        let helpers = helpers_of(victim.pid);
        assert!(helpers.len() >= 8, "8 helpers at least: {helpers:?}");
        for pid in helpers {
            // SAFETY: kill(2) on a helper of the server this test started.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        victim.kill9();

        // The programs died with their helpers; their cgroups and state dirs are left.
        wait_until(
            "the boxes' programs die with their helpers",
            Duration::from_secs(5),
            || processes_containing(&nonce).is_empty(),
        );
        // 8 running boxes, plus whatever warm pooled boxes the victim held.
        let boxes = std::fs::read_dir(victim_dir.join("boxes"))
            .expect("boxes")
            .count();
        assert!(boxes >= 8, "8 box state dirs left behind, found {boxes}");
        assert!(
            box_cgroups(&victim_id).len() >= 8,
            "box cgroups left behind"
        );

        // Restart on the same state dir: the sweep removes all of it.
        let again = Server::start_with(&config, &[]);
        wait_until("the swept boxes are gone", Duration::from_secs(10), || {
            processes_containing(&nonce).is_empty()
        });
        assert!(!victim_dir.exists(), "dead instance state dir removed");
        for d in instance_cgroup_dirs(&victim_id) {
            assert!(!d.exists(), "dead instance cgroup {} removed", d.display());
        }
        let (status, health) = again.get("/health");
        assert_eq!(status, 200, "{health}");
        assert_eq!(health["status"], "healthy");
        let hello = again.run(json!({"language": "python", "code": "print('after')"}));
        assert_eq!(hello["output"], "after\n");
        live_run.join().expect("live run")
    });

    // The live server's box was never touched.
    assert_eq!(live_run["status"], "ok", "{live_run}");
    assert_eq!(live_run["output"], format!("{live_nonce}\n"));
    assert!(live_dir.exists(), "live instance state dir kept");
}

/// A server on its own state dir with a shutdown grace period: (the state dir, which must
/// outlive the server, the server, its instance id, its instance dir).
fn server_with_grace(grace_s: u64) -> (tempfile::TempDir, Server, String, PathBuf) {
    let state = tempfile::Builder::new()
        .prefix("coderun-drain-")
        .tempdir_in("/run")
        .expect("state");
    let s = Server::start_with(
        &format!(
            "[sandbox]\nstate_dir = \"{}\"\n[server]\nshutdown_grace_s = {grace_s}\n",
            state.path().display()
        ),
        &[],
    );
    let (id, dir) = instance_of(state.path(), s.pid);
    (state, s, id, dir)
}

/// Waits for the server process to exit and returns its exit code.
fn wait_exit(s: &Server, timeout: Duration) -> i32 {
    let deadline = Instant::now() + timeout;
    loop {
        let mut status = 0;
        // SAFETY: reaping the server process this test started.
        let r = unsafe { libc::waitpid(s.pid as i32, &mut status, libc::WNOHANG) };
        if r == s.pid as i32 {
            assert!(
                libc::WIFEXITED(status),
                "server died by a signal: {status:#x}"
            );
            return libc::WEXITSTATUS(status);
        }
        assert!(
            Instant::now() < deadline,
            "server did not exit within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SIGTERM drains: /health answers 503 "draining", a new run gets 503 + Retry-After, the run
/// in flight finishes normally, then the server exits 0 and leaves no state dir, cgroup or
/// process behind (its warm pools included).
#[test]
fn sigterm_drains_in_flight_runs_then_exits_clean() {
    let (_state, s, id, dir) = server_with_grace(30);
    let (done, tag) = sigterm_during_a_run(&s, || {
        let (status, health) = s.get("/health");
        assert_eq!(status, 503, "{health}");
        assert_eq!(health["status"], "draining", "{health}");
        let resp = s
            .client()
            .post(s.url("/execute"))
            .json(&json!({"language": "python", "code": "print(1)"}))
            .send()
            .expect("POST during drain");
        assert_eq!(resp.status().as_u16(), 503);
        assert!(resp.headers().contains_key("retry-after"));
        let body: Value = resp.json().expect("json");
        assert_eq!(body["code"], "draining", "{body}");
    });
    assert_eq!(done["status"], "ok", "{done}");
    assert_eq!(done["output"], format!("{tag}\n"));
    assert_eq!(wait_exit(&s, Duration::from_secs(30)), 0);
    assert!(!dir.exists(), "instance state dir left: {}", dir.display());
    for d in instance_cgroup_dirs(&id) {
        assert!(!d.exists(), "instance cgroup left: {}", d.display());
    }
    assert!(processes_containing(&tag).is_empty());
}

/// A run longer than the grace period is killed: the server still exits 0 and cleans every
/// sandbox.
#[test]
fn sigterm_after_the_grace_period_kills_runs_and_exits_clean() {
    let (_state, s, id, dir) = server_with_grace(1);
    let tag = nonce();
    std::thread::scope(|scope| {
        let base = s.base.clone();
        let tag2 = tag.clone();
        scope.spawn(move || {
            let _ = reqwest::blocking::Client::new()
                .post(format!("{base}/execute"))
                .json(&json!({"language": "python", "code": "import time\ntime.sleep(60)", "args": [tag2], "timeout": 30}))
                .timeout(Duration::from_secs(60))
                .send();
        });
        wait_until("the run started", Duration::from_secs(10), || {
            !processes_containing(&tag).is_empty()
        });
        let t = Instant::now();
        sigterm(&s);
        assert_eq!(wait_exit(&s, Duration::from_secs(20)), 0);
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "shutdown took {:?}",
            t.elapsed()
        );
    });
    wait_until(
        "the killed run's processes are gone",
        Duration::from_secs(5),
        || processes_containing(&tag).is_empty(),
    );
    assert!(!dir.exists(), "instance state dir left: {}", dir.display());
    for d in instance_cgroup_dirs(&id) {
        assert!(!d.exists(), "instance cgroup left: {}", d.display());
    }
}

/// JSON logs: every line the server prints is one JSON object; a request's line carries its
/// request id; neither the program's source nor its output is ever logged.
#[test]
fn json_logs_carry_request_ids_and_never_program_source_or_output() {
    let s = Server::start_with("[server]\nlog_format = \"json\"\n", &[]);
    let secret_in_code = nonce();
    let secret_in_output = nonce();
    let resp = s
        .client()
        .post(s.url("/execute"))
        .header("x-request-id", "log-test-1")
        .json(&json!({"language": "python",
            "code": format!("# {secret_in_code}\nprint('{secret_in_output}')")}))
        .send()
        .expect("POST");
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = resp.json().expect("json");
    assert_eq!(body["output"], format!("{secret_in_output}\n"));
    std::thread::sleep(Duration::from_millis(300));
    let logs = s.logs.lock().unwrap().clone();
    assert!(!logs.is_empty());
    for line in &logs {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
        assert!(
            !line.contains(&secret_in_code),
            "program source logged: {line}"
        );
        assert!(
            !line.contains(&secret_in_output),
            "program output logged: {line}"
        );
    }
    assert!(
        logs.iter()
            .any(|l| l.contains("log-test-1") && l.contains("request done")),
        "no request line with its id: {logs:?}"
    );
}
