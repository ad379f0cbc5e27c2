//! 7. Processes: nothing a program starts outlives its run, its signals reach only its own
//!    box, and host processes (the server) are not even visible.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::common::*;
use crate::*;

/// Double fork + setsid, then exec of `sleep 1000` whose argv[0] is the nonce; the program
/// waits until the exec happened (the close-on-exec pipe closes) and exits 0.
const PY_DAEMON: &str = r#"
import os, sys
nonce = sys.argv[1]
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.setsid()
    if os.fork() == 0:
        os.close(r)
        os.set_inheritable(w, False)
        os.execv("/usr/bin/sleep", [nonce, "1000"])
    os._exit(0)
os.close(w)
os.waitpid(pid, 0)
assert os.read(r, 1) == b""
print("daemon started", flush=True)
"#;

/// Stray background processes (crypto-miners, reverse shells left behind by a submission):
/// a double-forked, setsid'd `sleep 1000` carrying a nonce is gone when the response arrives.
/// Positive control: a watcher on the host saw that process while the run was in flight.
#[test]
fn double_forked_setsid_daemon_dies_with_the_run() {
    let s = shared();
    assert_confined(s);
    let tag = format!("daemon-{}", nonce());
    let done = AtomicBool::new(false);
    let max_seen = AtomicUsize::new(0);
    let (r, after) = std::thread::scope(|sc| {
        sc.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                max_seen.fetch_max(processes_containing(&tag).len(), Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        // The daemon is alive from its exec until init's kill(-1); hold the run open a moment
        // so the watcher has time to see it (the control), then return normally.
        let code = PY_DAEMON.replace(
            "print(\"daemon started\", flush=True)",
            "print(\"daemon started\", flush=True)\nimport time; time.sleep(0.5)",
        );
        let r = s.run(with(py(&code), json!({"args": [tag]})));
        let after = processes_containing(&tag);
        done.store(true, Ordering::SeqCst);
        (r, after)
    });
    assert_ok(&r);
    assert_eq!(stdout(&r), "daemon started\n", "{}", brief(&r));
    assert!(
        max_seen.load(Ordering::SeqCst) >= 1,
        "the daemon was never seen on the host: the test proves nothing"
    );
    assert!(
        after.is_empty(),
        "processes of the run survived it: {:?}",
        after.iter().map(|p| host_cmdline(*p)).collect::<Vec<_>>()
    );
}

/// Same, without any delay after the daemon starts: the main process exits at once.
#[test]
fn daemon_of_a_program_that_exits_at_once_is_gone_with_the_response() {
    let s = shared();
    assert_confined(s);
    let tag = format!("daemon-{}", nonce());
    let r = s.run(with(py(PY_DAEMON), json!({"args": [tag]})));
    let after = processes_containing(&tag);
    assert_ok(&r);
    assert_eq!(stdout(&r), "daemon started\n", "{}", brief(&r));
    assert!(
        after.is_empty(),
        "processes of the run survived it: {:?}",
        after.iter().map(|p| host_cmdline(*p)).collect::<Vec<_>>()
    );
}

/// kill(-1, SIGKILL), after forking a child of its own; reports how the child died and that it
/// itself lives on (kill(-1) spares the caller).
const PY_KILL_ALL: &str = r#"
import os, signal, time, json
child = os.fork()
if child == 0:
    time.sleep(30)
    os._exit(0)
time.sleep(0.2)
os.kill(-1, signal.SIGKILL)
_, st = os.waitpid(child, 0)
print(json.dumps({"child_signal": os.WTERMSIG(st) if os.WIFSIGNALED(st) else None, "alive": True}))
"#;

/// `kill(-1, SIGKILL)` (the fork-bomb cleanup or a deliberate attack on everything the uid
/// can signal): it reaches only the box. Host side: a `sleep` started by the test survives, a
/// concurrent run in another box finishes normally, the server keeps answering. Positive
/// control: the program's own child in the box was killed by SIGKILL.
#[test]
fn kill_minus_one_kills_only_the_box() {
    let s = shared();
    assert_confined(s);
    let mut host_sleep = Command::new("sleep")
        .arg("1000")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("host sleep");
    let neighbour = py("import time\ntime.sleep(1.5)\nprint('neighbour ok')");
    let r = std::thread::scope(|sc| {
        let n = sc.spawn(|| s.run(neighbour));
        std::thread::sleep(Duration::from_millis(300));
        let r = s.run(py(PY_KILL_ALL));
        let n = n.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        assert_ok(&n);
        assert_eq!(stdout(&n), "neighbour ok\n", "{}", brief(&n));
        r
    });
    let res = probe(&r);
    assert_eq!(res["child_signal"], libc::SIGKILL, "{res}");
    assert_eq!(res["alive"], true, "{res}");
    let survived = host_sleep.try_wait().expect("try_wait").is_none();
    let _ = host_sleep.kill();
    let _ = host_sleep.wait();
    assert!(
        survived,
        "the host's sleep process was killed from inside a box"
    );
    assert_eq!(s.get("/health").0, 200, "server stopped answering");
    let again = s.run(py("print('still here')"));
    assert_ok(&again);
    assert_eq!(stdout(&again), "still here\n");
}

/// Signalling or inspecting host processes: the server's pid does not exist in the box's pid
/// namespace (ProcessLookupError, no /proc/<pid>). Positive control: the program can signal
/// itself with signal 0 and sees its own /proc entry.
#[test]
fn the_servers_pid_is_not_visible_in_the_box() {
    let s = shared();
    assert_confined(s);
    assert!(s.pid > 100, "server pid {} too small to tell apart", s.pid);
    let code = r#"
import json, os, sys
pid = int(sys.argv[1])
res = {}
try:
    os.kill(pid, 0)
    res["server"] = "signalled"
except ProcessLookupError:
    res["server"] = "ProcessLookupError"
except OSError as e:
    res["server"] = "errno %d" % e.errno
res["server_proc"] = os.path.exists("/proc/%d" % pid)
os.kill(os.getpid(), 0)
res["self"] = "signalled"
res["self_proc"] = os.path.exists("/proc/%d" % os.getpid())
res["pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
print(json.dumps(res))
"#;
    let r = s.run(with(py(code), json!({"args": [s.pid.to_string()]})));
    let res = probe(&r);
    assert_eq!(res["server"], "ProcessLookupError", "{res}");
    assert_eq!(res["server_proc"], false, "{res}");
    assert_eq!(res["self"], "signalled", "{res}");
    assert_eq!(res["self_proc"], true, "{res}");
    // Only the box's init and the program itself.
    assert_eq!(res["pids"], json!([1, 2]), "{res}");
}
