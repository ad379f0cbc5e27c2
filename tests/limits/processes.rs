//! Processes: the box's pids limit (default 64, or `max_processes`) stops fork loops and fork
//! bombs, the service stays responsive meanwhile, and nothing survives the run.

use std::time::{Duration, Instant};

use crate::common::*;
use crate::*;

/// Forks up to argv[3] children that sleep; prints how many forks worked and the errno of
/// the one that failed, then holds them argv[2] seconds. argv[1] is a nonce.
const PY_FORKS: &str = r#"
import os, sys, time
hold, most = float(sys.argv[2]), int(sys.argv[3])
n, err, kind = 0, None, None
for _ in range(most):
    try:
        pid = os.fork()
    except OSError as e:
        err, kind = e.errno, type(e).__name__
        break
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    n += 1
print("forked", n, "errno", err, kind, flush=True)
time.sleep(hold)
"#;

fn forks(nonce: &str, hold: &str, most: u32) -> Value {
    json!({
        "language": "python",
        "code": PY_FORKS,
        "args": [nonce, hold, most.to_string()],
        "max_processes": 16,
        "timeout": 20,
    })
}

fn hello() -> Value {
    py("print('hello')")
}

fn assert_hello(r: &Value) {
    assert_ok(r);
    assert_eq!(stdout(r), "hello\n");
}

fn forked_count(r: &Value) -> u32 {
    stdout(r)
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no fork count: {}", brief(r)))
}

/// `max_processes: 16`: a fork loop gets EAGAIN (BlockingIOError) before its 16th process,
/// while another request is served normally.
#[test]
fn max_processes_16_fork_loop_gets_eagain_and_service_stays_responsive() {
    // Its own server with room for both requests, so the hello cannot queue behind a
    // neighbour's run.
    let server = Server::start_with("[engine]\nconcurrency = 4\n", &[]);
    assert_confined(&server);
    let nonce = crate::common::nonce();
    let twin_nonce = crate::common::nonce();
    let (limited, twin, hello_r, hello_elapsed) = std::thread::scope(|sc| {
        let limited = sc.spawn(|| server.run(forks(&nonce, "4", 100)));
        let twin = sc.spawn(|| server.run(forks(&twin_nonce, "0", 5)));
        // Once the box holds its children, the service must still answer.
        wait_until(
            "the fork loop held 10 processes",
            Duration::from_secs(30),
            || processes_containing(&nonce).len() >= 10,
        );
        let t = Instant::now();
        let h = server.run(hello());
        let elapsed = t.elapsed();
        (limited.join().unwrap(), twin.join().unwrap(), h, elapsed)
    });
    assert_hello(&hello_r);
    assert!(
        hello_elapsed < Duration::from_secs(3),
        "hello took {hello_elapsed:?} while a box sat at its process limit"
    );

    assert_ok(&limited);
    let n = forked_count(&limited);
    assert!(
        stdout(&limited).ends_with("errno 11 BlockingIOError\n"),
        "{}",
        brief(&limited)
    );
    assert!(
        (8..16).contains(&n),
        "forked {n} children under max_processes 16"
    );
    assert!(processes_containing(&nonce).is_empty());

    assert_ok(&twin);
    assert_eq!(stdout(&twin), "forked 5 errno None None\n");
    assert!(processes_containing(&twin_nonce).is_empty());
}

#[test]
fn python_fork_bomb_is_contained_then_service_works() {
    let s = shared();
    assert_confined(s);
    let nonce = crate::common::nonce();
    let bomb =
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n";
    let t = Instant::now();
    let w = run_watching(
        s,
        json!({"language": "python", "code": bomb, "args": [nonce], "timeout": 3}),
        &nonce,
    );
    let elapsed = t.elapsed();
    let r = &w.resp;
    assert!(
        matches!(status(r), "timeout" | "runtime_error"),
        "{}",
        brief(r)
    );
    assert_eq!(r["success"], false);
    let wall = f64_of(r, "wall_time");
    assert!(wall <= 4.0, "fork bomb ran {wall} s: {}", brief(r));
    assert!(elapsed < Duration::from_secs(30), "answer took {elapsed:?}");
    assert!(w.max_during >= 2, "the bomb never forked? {}", brief(r));
    assert!(w.after.is_empty(), "bomb processes survive: {:?}", w.after);
    assert_hello(&s.run(hello()));
}

/// The TypeScript variant: `child_process.spawn` of node itself in a loop, every child doing the
/// same (an exponential bomb through the runtime's own process API).
#[test]
fn typescript_child_process_bomb_is_contained_then_service_works() {
    let s = shared();
    assert_confined(s);
    let nonce = crate::common::nonce();
    let bomb = r#"
const { spawn } = require('child_process');
const me = process.argv[1];
for (;;) {
  try {
    spawn(process.execPath, [me, process.argv[2]], { stdio: 'ignore', detached: true }).on('error', () => {});
  } catch (e) {}
}
"#;
    let t = Instant::now();
    let w = run_watching(
        s,
        json!({"language": "typescript", "code": bomb, "args": [nonce], "timeout": 3}),
        &nonce,
    );
    let r = &w.resp;
    assert!(
        matches!(status(r), "timeout" | "runtime_error" | "memory_limit"),
        "{}",
        brief(r)
    );
    assert_eq!(r["success"], false);
    assert!(
        f64_of(r, "wall_time") <= 4.0,
        "bomb ran too long: {}",
        brief(r)
    );
    assert!(t.elapsed() < Duration::from_secs(30));
    assert!(w.after.is_empty(), "bomb processes survive: {:?}", w.after);
    assert_hello(&s.run(hello()));
}

/// Spawns `/bin/sleep 10` (named after the nonce) until spawning fails or argv[2] are up.
const RS_SPAWN: &str = r#"
use std::os::unix::process::CommandExt;
use std::process::Command;
fn main() {
    let nonce = std::env::args().nth(1).unwrap();
    let most: usize = std::env::args().nth(2).unwrap().parse().unwrap();
    let mut kids = Vec::new();
    let mut error = String::from("none");
    while kids.len() < most {
        match Command::new("/bin/sleep").arg0(format!("sleep-{nonce}")).arg("10").spawn() {
            Ok(c) => kids.push(c),
            Err(e) => {
                error = format!("{:?}", e.raw_os_error());
                break;
            }
        }
    }
    println!("spawned {} error {}", kids.len(), error);
}
"#;

#[test]
fn rust_spawn_loop_is_bounded_by_the_process_limit() {
    let s = shared();
    assert_confined(s);
    let nonce = crate::common::nonce();
    let twin_nonce = crate::common::nonce();
    let r = run_all(
        s,
        vec![
            json!({"language": "rust", "code": RS_SPAWN, "args": [nonce, "1000"], "timeout": 20}),
            json!({"language": "rust", "code": RS_SPAWN, "args": [twin_nonce, "5"], "timeout": 20}),
        ],
    );
    assert_ok(&r[0]);
    let out = stdout(&r[0]);
    let n: usize = out
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{}", brief(&r[0])));
    assert!(
        (32..64).contains(&n),
        "spawned {n} under the default limit of 64: {out}"
    );
    assert!(out.ends_with("error Some(11)\n"), "{out}");
    // The sleeping children die with the box.
    assert!(processes_containing(&nonce).is_empty());

    assert_ok(&r[1]);
    assert_eq!(stdout(&r[1]), "spawned 5 error none\n");
    assert!(processes_containing(&twin_nonce).is_empty());
}

/// kill(-1, SIGKILL) from the box reaches the box's own processes and nothing of the host.
#[test]
fn kill_minus_one_only_reaches_the_box() {
    let s = shared();
    assert_confined(s);
    let code = r#"
import os, signal, time
kids = []
for _ in range(3):
    pid = os.fork()
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    kids.append(pid)
try:
    os.kill(-1, signal.SIGKILL)
    print("kill(-1) sent")
except OSError as e:
    print("kill(-1) failed", e.errno)
print("children", [os.waitpid(k, 0)[1] for k in kids])
"#;
    // A host process of our own that must survive.
    let mut bystander = std::process::Command::new("/bin/sleep")
        .arg("60")
        .spawn()
        .expect("spawn bystander");
    let r = s.run(py(code));
    let bystander_alive = bystander.try_wait().expect("try_wait").is_none();
    let _ = bystander.kill();
    let _ = bystander.wait();
    assert_ok(&r);
    // Each child died of SIGKILL (wait status 9); the caller itself survived.
    assert_eq!(
        stdout(&r),
        "kill(-1) sent\nchildren [9, 9, 9]\n",
        "{}",
        brief(&r)
    );
    assert!(bystander_alive, "kill(-1) in the box killed a host process");
    assert!(
        std::path::Path::new(&format!("/proc/{}", s.pid)).exists(),
        "the server died"
    );
    assert_hello(&s.run(hello()));
}

/// Threads count against the process limit too.
#[test]
fn threads_count_against_max_processes() {
    let code = r#"
import sys, threading, time
ev = threading.Event()
n, err = 0, None
for _ in range(int(sys.argv[1])):
    try:
        threading.Thread(target=ev.wait, daemon=True).start()
    except RuntimeError as e:
        err = str(e)
        break
    n += 1
ev.set()
print("threads", n, "error", err)
"#;
    let s = shared();
    let r = run_all(
        s,
        vec![
            json!({"language": "python", "code": code, "args": ["100"], "max_processes": 16}),
            json!({"language": "python", "code": code, "args": ["5"], "max_processes": 16}),
        ],
    );
    assert_ok(&r[0]);
    let n: usize = stdout(&r[0])
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{}", brief(&r[0])));
    assert!((8..16).contains(&n), "{}", brief(&r[0]));
    assert!(
        stdout(&r[0]).contains("can't start new thread"),
        "{}",
        brief(&r[0])
    );
    assert_ok(&r[1]);
    assert_eq!(stdout(&r[1]), "threads 5 error None\n");
}

/// `max_processes` counts the program's processes and threads, not the box's init:
/// `max_processes: 1` runs a single-process program, and its first fork fails with EAGAIN.
/// (It used to answer 500: init took the only pid, so the program could not be forked.)
#[test]
fn max_processes_1_runs_one_process_and_refuses_a_fork() {
    let s = shared();
    let one = s.run(json!({"language": "python", "code": "print('one')", "max_processes": 1}));
    assert_ok(&one);
    assert_eq!(stdout(&one), "one\n");
    let fork = s.run(json!({
        "language": "python",
        "max_processes": 1,
        "code": "import os\ntry:\n    os.fork()\n    print('forked')\nexcept BlockingIOError as e:\n    print('refused', e.errno)",
    }));
    assert_ok(&fork);
    assert_eq!(stdout(&fork), "refused 11\n");
}
