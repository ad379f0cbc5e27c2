//! Time: the wall-clock limit (`timeout`), the CPU-time limit from cgroup accounting, the CPU
//! quota, and that nothing of a box outlives its response.

use crate::common::*;
use crate::*;

/// Spins for argv[2] seconds of wall time ("inf": forever). argv[1] is a nonce.
const PY_SPIN: &str = r#"
import sys, time
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    pass
print("spun")
"#;

/// Sleeps argv[2] seconds. argv[1] is a nonce.
const PY_SLEEP: &str = r#"
import sys, time
time.sleep(float(sys.argv[2]))
print("slept")
"#;

/// Double-forks a `sleep 100` daemon in its own session, named after the nonce (argv[1]),
/// checks it is alive, then stays argv[2] seconds and exits 0.
const PY_DAEMON: &str = r#"
import os, sys, time
nonce, hold = sys.argv[1], float(sys.argv[2])
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.setsid()
    if os.fork() == 0:
        os.close(r)
        os.write(w, str(os.getpid()).encode())
        os.close(w)
        os.execv("/bin/sleep", ["sleep-" + nonce, "100"])
    os._exit(0)
os.close(w)
os.waitpid(pid, 0)
daemon = int(os.read(r, 32))
time.sleep(0.3)
name = open("/proc/%d/cmdline" % daemon, "rb").read().split(b"\0")[0].decode()
print("daemon alive as", name, "own session", os.getsid(daemon) != os.getsid(0), flush=True)
time.sleep(hold)
print("main exits")
"#;

fn req(code: &str, nonce: &str, secs: &str, timeout: f64) -> Value {
    json!({"language": "python", "code": code, "args": [nonce, secs], "timeout": timeout})
}

/// Every process of the run was seen while it ran, and none is left once it answered.
fn assert_seen_then_gone(w: &Watched, nonce: &str) {
    assert!(
        w.max_during >= 1,
        "never saw a process holding {nonce} during the run (is the watcher blind?): {}",
        brief(&w.resp)
    );
    assert!(
        w.after.is_empty(),
        "processes of the box still alive after the response: {:?} ({})",
        w.after,
        brief(&w.resp)
    );
}

fn assert_timed_out_at(r: &Value, limit_s: f64) {
    let wall = f64_of(r, "wall_time");
    assert!(
        wall >= limit_s * 0.95 && wall <= limit_s + 0.5,
        "wall_time {wall} for a {limit_s} s limit: {}",
        brief(r)
    );
}

#[test]
fn busy_loop_times_out_at_1s_and_leaves_nothing() {
    let s = shared();
    let nonce = crate::common::nonce();
    let twin_nonce = crate::common::nonce();
    let (w, twin) = std::thread::scope(|sc| {
        let twin = sc.spawn(|| s.run(req(PY_SPIN, &twin_nonce, "0.3", 1.0)));
        let w = run_watching(s, req(PY_SPIN, &nonce, "inf", 1.0), &nonce);
        (w, twin.join().unwrap())
    });
    // With a 1-CPU quota the CPU time (= the wall timeout) and the wall clock run out
    // together, so either sentence may come first.
    assert_killed_by(
        &w.resp,
        "timeout",
        &["Time limit exceeded (1 s)", "CPU time limit exceeded (1 s)"],
    );
    assert_timed_out_at(&w.resp, 1.0);
    assert_seen_then_gone(&w, &nonce);
    assert_ok(&twin);
    assert_eq!(stdout(&twin), "spun\n");
}

#[test]
fn sleeper_times_out_at_1s_and_leaves_nothing() {
    let s = shared();
    let nonce = crate::common::nonce();
    let w = run_watching(s, req(PY_SLEEP, &nonce, "100", 1.0), &nonce);
    assert_killed_by(&w.resp, "timeout", &["Time limit exceeded (1 s)"]);
    assert_timed_out_at(&w.resp, 1.0);
    assert!(f64_of(&w.resp, "cpu_time") < 0.3, "{}", brief(&w.resp));
    assert_seen_then_gone(&w, &nonce);
}

#[test]
fn self_stopped_program_is_still_killed_at_the_wall_limit() {
    let code = "import os, signal\nos.kill(os.getpid(), signal.SIGSTOP)\nprint('resumed')";
    let r = shared().run(json!({"language": "python", "code": code, "timeout": 1}));
    assert_killed_by(&r, "timeout", &["Time limit exceeded (1 s)"]);
    assert_eq!(stdout(&r), "");
    assert_timed_out_at(&r, 1.0);
}

#[test]
fn half_second_sleep_within_a_3s_timeout_succeeds() {
    let r = shared().run(req(PY_SLEEP, &nonce(), "0.5", 3.0));
    assert_ok(&r);
    assert_eq!(stdout(&r), "slept\n");
    let wall = f64_of(&r, "wall_time");
    assert!((0.5..3.0).contains(&wall), "{}", brief(&r));
}

#[test]
fn output_before_a_timeout_is_kept() {
    let code = "import time\nprint('before', flush=True)\ntime.sleep(100)";
    let r = shared().run(json!({"language": "python", "code": code, "timeout": 0.5}));
    assert_killed_by(&r, "timeout", &["Time limit exceeded (0.5 s)"]);
    assert_eq!(stdout(&r), "before\n");
    assert_timed_out_at(&r, 0.5);
}

#[test]
fn setsid_daemon_is_killed_when_main_exits() {
    let s = shared();
    let nonce = crate::common::nonce();
    let w = run_watching(s, req(PY_DAEMON, &nonce, "0.3", 10.0), &nonce);
    assert_ok(&w.resp);
    assert_eq!(
        stdout(&w.resp),
        format!("daemon alive as sleep-{nonce} own session True\nmain exits\n"),
        "{}",
        brief(&w.resp)
    );
    // The main program and the daemon were both seen on the host.
    assert!(w.max_during >= 2, "saw {} processes", w.max_during);
    assert_seen_then_gone(&w, &nonce);
}

#[test]
fn setsid_daemon_is_killed_on_timeout() {
    let s = shared();
    let nonce = crate::common::nonce();
    let w = run_watching(s, req(PY_DAEMON, &nonce, "100", 1.5), &nonce);
    assert_killed_by(&w.resp, "timeout", &["Time limit exceeded (1.5 s)"]);
    assert!(
        stdout(&w.resp).starts_with(&format!("daemon alive as sleep-{nonce}")),
        "{}",
        brief(&w.resp)
    );
    assert_seen_then_gone(&w, &nonce);
}

/// Four threads spinning forever (argv[1] = seconds each, "inf" for ever).
const RS_THREADS: &str = r#"
use std::time::Instant;
fn main() {
    let secs: f64 = std::env::args().nth(1).unwrap().parse().unwrap();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                let start = Instant::now();
                let mut x = 0u64;
                while start.elapsed().as_secs_f64() < secs {
                    for _ in 0..10_000 {
                        x = std::hint::black_box(x.wrapping_add(1));
                    }
                }
                x
            })
        })
        .collect();
    let total = handles.into_iter().map(|h| h.join().unwrap()).fold(0u64, u64::wrapping_add);
    println!("spun {}", total > 0);
}
"#;

const PY_PROCS: &str = r#"
import multiprocessing as mp, sys, time
def spin(secs):
    end = time.monotonic() + secs
    while time.monotonic() < end:
        pass
if __name__ == "__main__":
    secs = float(sys.argv[1])
    ps = [mp.Process(target=spin, args=(secs,)) for _ in range(4)]
    for p in ps:
        p.start()
    for p in ps:
        p.join()
    print("spun", [p.exitcode for p in ps])
"#;

/// Four children that each burn 0.3 s of their own CPU time.
const PY_BURN_PROCS: &str = r#"
import os, time
kids = []
for _ in range(4):
    pid = os.fork()
    if pid == 0:
        while time.process_time() < 0.3:
            pass
        os._exit(0)
    kids.append(pid)
print("burned", [os.waitpid(k, 0)[1] for k in kids])
"#;

/// The box's CPU time never runs ahead of the 1-CPU quota (4 spinners on 2 cores would
/// otherwise accumulate about twice the wall time).
fn assert_within_quota(r: &Value) {
    let cpu = f64_of(r, "cpu_time");
    let wall = f64_of(r, "wall_time");
    assert!(
        cpu <= wall * 1.25 + 0.15,
        "cpu_time {cpu} over the 1-CPU quota for wall_time {wall}: {}",
        brief(r)
    );
}

/// Four spinners (threads or processes) forever time out at 2 s within the 1-CPU quota; for
/// 0.3 s they finish and print `short`.
fn four_spinners_time_out(language: &str, code: &str, short: &str) {
    let r = run_all(
        shared(),
        vec![
            json!({"language": language, "code": code, "args": ["inf"], "timeout": 2}),
            json!({"language": language, "code": code, "args": ["0.3"], "timeout": 2}),
        ],
    );
    assert_killed_by(
        &r[0],
        "timeout",
        &["Time limit exceeded (2 s)", "CPU time limit exceeded (2 s)"],
    );
    assert_timed_out_at(&r[0], 2.0);
    assert_within_quota(&r[0]);
    assert_ok(&r[1]);
    assert_eq!(stdout(&r[1]), short);
}

#[test]
fn rust_four_spinning_threads_time_out() {
    four_spinners_time_out("rust", RS_THREADS, "spun true\n");
}

#[test]
fn python_four_spinning_processes_time_out() {
    four_spinners_time_out("python", PY_PROCS, "spun [0, 0, 0, 0]\n");
}

#[test]
fn cpu_time_is_reported_from_cgroup_accounting() {
    let s = shared();
    // Burns 1 s of its own CPU time (however long that takes on a busy host).
    let burn = "import time\nwhile time.process_time() < 1.0:\n    pass\nprint('burned')";
    let r = run_all(
        s,
        vec![
            json!({"language": "python", "code": burn, "timeout": 10}),
            req(PY_SLEEP, "x", "1", 5.0),
            json!({"language": "python", "code": PY_BURN_PROCS, "timeout": 10}),
        ],
    );
    assert_ok(&r[0]);
    let cpu = f64_of(&r[0], "cpu_time");
    assert!(
        (0.9..5.0).contains(&cpu),
        "burner cpu_time {cpu}: {}",
        brief(&r[0])
    );

    assert_ok(&r[1]);
    let cpu = f64_of(&r[1], "cpu_time");
    assert!(
        cpu > 0.0 && cpu < 0.3,
        "sleeper cpu_time {cpu}: {}",
        brief(&r[1])
    );
    assert!(f64_of(&r[1], "wall_time") >= 1.0, "{}", brief(&r[1]));

    // Four children burning 0.3 s of CPU each: their CPU adds up in the cgroup (the parent
    // only waits), and it cannot run ahead of the 1-CPU quota.
    assert_ok(&r[2]);
    assert_eq!(stdout(&r[2]), "burned [0, 0, 0, 0]\n");
    assert!(
        f64_of(&r[2], "cpu_time") >= 1.15,
        "children's CPU not accounted: {}",
        brief(&r[2])
    );
    assert_within_quota(&r[2]);
}

/// With a CPU-time limit (1 s) shorter than the wall limit (10 s) and a 2-CPU quota, two
/// spinning processes are stopped when their *summed* CPU time reaches 1 s, long before the
/// wall limit and before either process alone could reach its RLIMIT_CPU backstop (2 s).
#[test]
fn cpu_time_limit_sums_every_process_of_the_box() {
    let server = Server::start_with("[engine]\ncpu_time_ms = 1000\ncpu_millicores = 2000\n", &[]);
    let spin2 = "import os\nos.fork()\nwhile True:\n    pass";
    let burn_half = "import time\nwhile time.process_time() < 0.4:\n    pass\nprint('burned')";
    let r = run_all(
        &server,
        vec![
            json!({"language": "python", "code": spin2}),
            json!({"language": "python", "code": burn_half}),
            json!({"language": "python", "code": PY_SLEEP, "args": ["x", "1.5"]}),
        ],
    );
    assert_killed_by(&r[0], "timeout", &["CPU time limit exceeded (1 s)"]);
    let cpu = f64_of(&r[0], "cpu_time");
    assert!(
        (0.95..1.6).contains(&cpu),
        "cpu_time {cpu}: {}",
        brief(&r[0])
    );
    assert!(f64_of(&r[0], "wall_time") < 9.0, "{}", brief(&r[0]));

    assert_ok(&r[1]);
    // Sleeping past the CPU limit is fine: only CPU counts.
    assert_ok(&r[2]);
    assert_eq!(stdout(&r[2]), "slept\n");
}
