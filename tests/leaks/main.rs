//! Leaks suite: what a crash leaves behind is really there, and the next start removes it —
//! without touching a live instance's boxes. (Piston #206: processes outliving cleanup.)

#[path = "../common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

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

/// SIGKILL the server in the middle of 8 concurrent runs: the boxes' processes, cgroups and
/// state dirs are left behind. Restarting on the same state dir sweeps every one of them and
/// the service is healthy, while a second live server's run in flight finishes untouched.
#[test]
fn sigkill_mid_run_leaves_boxes_that_the_next_start_sweeps() {
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
        victim.kill9();

        // The leftovers are really there.
        assert!(
            processes_containing(&nonce).len() >= 8,
            "the boxes' processes should outlive a SIGKILLed server"
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
