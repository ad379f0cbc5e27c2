//! Cancel suite: a request that goes away takes its run with it, and clients never see host
//! details.
//!
//! A run is cancelled when its client disconnects, when the server's request deadline fires
//! (504) or when the server itself dies. Whatever stage the run was in (queued, in a pooled
//! box, compiling, running), within a second or two nothing of it runs on the host any more,
//! `/health` and the Prometheus gauges count it no more, the next request runs at once and a
//! SIGTERM does not wait for it. (Found from outside: six clients that left at concurrency 2
//! left `/health` at `running 3, queued 1` for good, their boxes ran on, and the drain waited
//! its whole grace period for runs nobody waited for.)
//!
//! Runs are found on the host by a marker in their arguments: a Python box, pooled or fresh,
//! shows `python3 ... main.py ARGS` in its `/proc/<pid>/cmdline` (the first test checks both).
//! A compile is found through the server's process tree: its box helpers (`coderun __box`,
//! children of the server) and their descendants, recorded by pid and start time.
//!
//! The tests run one at a time (they time how fast processes die on a shared machine).

#[path = "../common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::*;

/// How long a cancelled run's processes, counters and gauges may take to go.
const CANCEL_WINDOW: Duration = Duration::from_secs(2);
/// How long the next request may take after a cancellation (the sleepers run 8 s).
const NEXT_REQUEST_WITHIN: Duration = Duration::from_secs(5);
/// How long a SIGTERM may take once every client has gone.
const SIGTERM_EXIT_WITHIN: Duration = Duration::from_secs(2);
/// Grace period of the servers here: bounds how long a failing drain takes.
const GRACE_S: u64 = 5;

static SERIAL: Mutex<()> = Mutex::new(());

/// One test at a time: they measure how fast processes die.
fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

// ---------------------------------------------------------------------------------------------
// Findings: a test checks everything it can, then fails listing every problem.
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct Findings(Vec<String>);

impl Findings {
    fn check(&mut self, result: Result<(), String>) {
        if let Err(e) = result {
            self.0.push(e);
        }
    }

    fn finish(self) {
        if !self.0.is_empty() {
            panic!("{} problem(s):\n - {}", self.0.len(), self.0.join("\n - "));
        }
    }
}

/// Polls `probe` every 50 ms until it holds or `deadline` passes (it is tried at least once);
/// the last error otherwise.
fn by(deadline: Instant, mut probe: impl FnMut() -> Result<(), String>) -> Result<(), String> {
    loop {
        let r = probe();
        if r.is_ok() || Instant::now() >= deadline {
            return r;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------------------------
// Host processes.
// ---------------------------------------------------------------------------------------------

/// A process, identified by pid and start time (so a reused pid is not mistaken for it).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Proc {
    pid: u32,
    start: u64,
    comm: String,
}

/// (ppid, start time, state, comm) from `/proc/<pid>/stat`.
fn stat(pid: u32) -> Option<(u32, u64, char, String)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text[open + 1..close].to_string();
    // Fields after the comm: state (3), ppid (4), ..., starttime (22).
    let rest: Vec<&str> = text[close + 1..].split_whitespace().collect();
    let state = rest.first()?.chars().next()?;
    let ppid = rest.get(1)?.parse().ok()?;
    let start = rest.get(19)?.parse().ok()?;
    Some((ppid, start, state, comm))
}

/// Every live process as (pid, ppid, start time, comm). Zombies count as dead.
fn process_table() -> Vec<(u32, u32, u64, String)> {
    let mut table = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Some((ppid, start, state, comm)) = stat(pid) {
            if state != 'Z' && state != 'X' {
                table.push((pid, ppid, start, comm));
            }
        }
    }
    table
}

fn alive(p: &Proc) -> bool {
    stat(p.pid).is_some_and(|(_, start, state, _)| start == p.start && state != 'Z')
}

fn cmdline(pid: u32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&raw)
        .trim_end_matches('\0')
        .replace('\0', " ")
}

/// `root` and all its descendants, as they are now.
fn tree(root: u32) -> Vec<Proc> {
    let table = process_table();
    let proc_of = |(pid, _, start, comm): &(u32, u32, u64, String)| Proc {
        pid: *pid,
        start: *start,
        comm: comm.clone(),
    };
    let mut found: Vec<Proc> = table.iter().filter(|e| e.0 == root).map(proc_of).collect();
    let mut next = 0;
    while next < found.len() {
        let parent = found[next].pid;
        found.extend(table.iter().filter(|e| e.1 == parent).map(proc_of));
        next += 1;
    }
    found
}

/// The box helpers of the server with `server_pid`: its children whose command line is
/// `coderun __box`.
fn helpers_of(server_pid: u32) -> Vec<u32> {
    process_table()
        .into_iter()
        .filter(|(pid, ppid, _, _)| *ppid == server_pid && cmdline(*pid) == "coderun __box")
        .map(|(pid, ..)| pid)
        .collect()
}

/// Every helper of the server and all their descendants (boxes' init and programs).
fn box_processes_of(server_pid: u32) -> Vec<Proc> {
    helpers_of(server_pid).into_iter().flat_map(tree).collect()
}

/// Processes for a message: the first few, then how many more.
fn describe(procs: &[Proc]) -> String {
    let mut text = procs
        .iter()
        .take(6)
        .map(|p| format!("{} {} [{}]", p.pid, p.comm, cmdline(p.pid)))
        .collect::<Vec<_>>()
        .join("; ");
    if procs.len() > 6 {
        text.push_str(&format!("; and {} more", procs.len() - 6));
    }
    text
}

/// Live processes whose command line holds `marker`, described.
fn marked(marker: &str) -> Vec<String> {
    processes_containing(marker)
        .into_iter()
        .map(|pid| format!("{pid} [{}]", cmdline(pid)))
        .collect()
}

/// Waits (up to 30 s: the programs' own limits end them) until no process holds `marker`,
/// so a failing test leaves nothing running.
struct MarkerReaper(String);

impl Drop for MarkerReaper {
    fn drop(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !processes_containing(&self.0).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Servers and clients.
// ---------------------------------------------------------------------------------------------

/// A fresh state dir under /run (like the default one) for one server.
fn state_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("coderun-cancel-")
        .tempdir_in("/run")
        .expect("state dir")
}

fn sleeper(marker: &str, seconds: u32) -> Value {
    json!({
        "language": "python",
        "code": format!("import time\ntime.sleep({seconds})"),
        "args": [marker],
        // Ends the run on a server that never cancels it, so a failing test leaves nothing.
        "timeout": 20,
    })
}

/// A client that posts `body` over a raw connection and hangs up when `leave` is set (or
/// when the server closes). Returns the status line the server sent before, if any.
fn post_then_leave(
    s: &Server,
    body: &Value,
    leave: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Option<String>> {
    let addr = s.base.trim_start_matches("http://").to_string();
    let body = serde_json::to_vec(body).expect("json");
    std::thread::spawn(move || {
        let mut stream = TcpStream::connect(&addr).expect("connect");
        let head = format!(
            "POST /execute HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).expect("write head");
        stream.write_all(&body).expect("write body");
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("read timeout");
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        while !leave.load(Ordering::SeqCst) {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => break,
            }
        }
        let _ = stream.shutdown(Shutdown::Both);
        let text = String::from_utf8_lossy(&answer);
        text.lines().next().map(str::to_string)
    })
}

/// `/health`'s running and queued counts.
fn counts(s: &Server) -> Result<(u64, u64), String> {
    let (_, h) = s.get("/health");
    match (h["running"].as_u64(), h["queued"].as_u64()) {
        (Some(r), Some(q)) => Ok((r, q)),
        _ => Err(format!("/health has no running/queued counts: {h}")),
    }
}

/// The value of a metric without labels in `/metrics`.
fn gauge(s: &Server, name: &str) -> Result<f64, String> {
    let text = s
        .client()
        .get(s.url("/metrics"))
        .send()
        .and_then(|r| r.text())
        .map_err(|e| format!("GET /metrics: {e}"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .ok_or_else(|| format!("/metrics has no {name}"))
}

/// What must hold once every client of the cancelled runs has gone (at `left`): within
/// [`CANCEL_WINDOW`] none of the runs' processes lives (`leftovers` lists the live ones),
/// `/health` counts none and the gauges read 0; then a `print(1)` answers within
/// [`NEXT_REQUEST_WITHIN`].
fn check_cancelled(
    f: &mut Findings,
    s: &Server,
    left: Instant,
    what: &str,
    mut leftovers: impl FnMut() -> Vec<String>,
) {
    let deadline = left + CANCEL_WINDOW;
    f.check(by(deadline, || {
        let live = leftovers();
        if live.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} process(es) of the {what} still alive {:.1} s after: {}",
                live.len(),
                left.elapsed().as_secs_f64(),
                live.join("; ")
            ))
        }
    }));
    f.check(by(deadline, || match counts(s)? {
        (0, 0) => Ok(()),
        (r, q) => Err(format!(
            "/health says running {r}, queued {q} {:.1} s after the {what} (want 0, 0)",
            left.elapsed().as_secs_f64()
        )),
    }));
    f.check(by(deadline, || {
        let active = gauge(s, "coderun_active_runs")?;
        let queued = gauge(s, "coderun_queue_depth")?;
        if active == 0.0 && queued == 0.0 {
            Ok(())
        } else {
            Err(format!(
                "/metrics says coderun_active_runs {active}, coderun_queue_depth {queued} {:.1} s \
                 after the {what} (want 0, 0)",
                left.elapsed().as_secs_f64()
            ))
        }
    }));
    let t = Instant::now();
    let next = s
        .client()
        .post(s.url("/execute"))
        .json(&json!({"language": "python", "code": "print(1)"}))
        .timeout(Duration::from_secs(30))
        .send()
        .map_err(|e| e.to_string())
        .and_then(|r| Ok((r.status().as_u16(), r.text().map_err(|e| e.to_string())?)));
    let took = t.elapsed();
    f.check(match next {
        Ok((200, body)) if body.contains(r#""output":"1\n""#) && took < NEXT_REQUEST_WITHIN => {
            Ok(())
        }
        Ok((code, body)) => Err(format!(
            "the next request after the {what} answered {code} in {:.1} s (want 200 with \
             output 1 within {} s): {body}",
            took.as_secs_f64(),
            NEXT_REQUEST_WITHIN.as_secs()
        )),
        Err(e) => Err(format!("the next request after the {what} failed: {e}")),
    });
}

/// SIGTERM once every client has gone: the server exits 0 within [`SIGTERM_EXIT_WITHIN`]
/// and leaves no instance cgroup.
fn check_sigterm_exits_at_once(f: &mut Findings, s: &Server, what: &str) {
    let id = instance_id(s).expect("the server logs its instance id");
    let t = Instant::now();
    sigterm(s);
    let status = s.wait_exit(Duration::from_secs(GRACE_S + 20));
    let took = t.elapsed();
    f.check(match status {
        Some(st) if st.code() == Some(0) && took < SIGTERM_EXIT_WITHIN => Ok(()),
        Some(st) => Err(format!(
            "SIGTERM after the {what}: the server exited ({st}) after {:.1} s (want 0 within \
             {} s); its last log lines: {}",
            took.as_secs_f64(),
            SIGTERM_EXIT_WITHIN.as_secs(),
            last_log_lines(s, 3)
        )),
        None => Err(format!(
            "SIGTERM after the {what}: the server still runs after {:.1} s",
            took.as_secs_f64()
        )),
    });
    if status.is_some() {
        check_no_instance_cgroups(f, &id, what);
    }
}

/// The server's instance id, from its "listening" log line.
fn instance_id(s: &Server) -> Option<String> {
    let logs = s.logs.lock().unwrap_or_else(|p| p.into_inner());
    logs.iter().find_map(|l| {
        let rest = &l[l.find("instance=\"")? + 10..];
        Some(rest[..rest.find('"')?].to_string())
    })
}

/// Once the server has exited, its instance cgroups are gone. (Empty ones it left behind are
/// removed here, so a failing test leaves nothing.)
fn check_no_instance_cgroups(f: &mut Findings, id: &str, what: &str) {
    let left = || -> Vec<PathBuf> {
        instance_cgroup_dirs(id)
            .into_iter()
            .filter(|d| d.exists())
            .collect()
    };
    f.check(by(Instant::now() + Duration::from_secs(1), || {
        let dirs = left();
        if dirs.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "after the {what}, the stopped server left its instance cgroups: {dirs:?}"
            ))
        }
    }));
    for dir in left() {
        for sub in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if sub.file_type().is_ok_and(|t| t.is_dir()) {
                let _ = std::fs::remove_dir(sub.path());
            }
        }
        let _ = std::fs::remove_dir(&dir);
    }
}

fn last_log_lines(s: &Server, n: usize) -> String {
    let logs = s.logs.lock().unwrap_or_else(|p| p.into_inner());
    logs[logs.len().saturating_sub(n)..].join(" | ")
}

// ---------------------------------------------------------------------------------------------
// Cancellation.
// ---------------------------------------------------------------------------------------------

/// Control for the tests below: the marker in a run's args shows in the host's /proc, for a
/// pooled box (the runner rewrites its command line to `python3 ... main.py ARGS`) and for a
/// fresh one.
#[test]
fn markers_show_on_the_host_for_pooled_and_fresh_boxes() {
    let _serial = serial();
    for (pool_size, pooled) in [(2, true), (0, false)] {
        let state = state_dir();
        let s = Server::start_with(
            &format!(
                "[sandbox]\nstate_dir = \"{}\"\n[engine]\npool_size = {pool_size}\n",
                state.path().display()
            ),
            &[],
        );
        if pooled {
            wait_until("the Python pool is ready", Duration::from_secs(60), || {
                s.get("/health").1["pools"]["python/run"].as_u64() >= Some(1)
            });
        }
        let marker = format!("cancel-marker-{}", nonce());
        let _reaper = MarkerReaper(marker.clone());
        let (resp, seen) = std::thread::scope(|sc| {
            let run = sc.spawn(|| s.run(sleeper(&marker, 2)));
            let deadline = Instant::now() + Duration::from_secs(20);
            let mut seen = Vec::new();
            while seen.is_empty() && Instant::now() < deadline && !run.is_finished() {
                seen = marked(&marker);
                std::thread::sleep(Duration::from_millis(20));
            }
            (run.join().expect("run"), seen)
        });
        assert_eq!(resp["status"], "ok", "{resp}");
        assert_eq!(resp["pooled"], pooled, "pool_size {pool_size}: {resp}");
        assert!(
            seen.iter()
                .any(|p| p.contains("main.py") && p.contains(&marker)),
            "pooled={pooled}: no host process shows `main.py {marker}`: {seen:?}"
        );
    }
}

/// Six clients post an 8-second sleep at concurrency 2 (queue 2) and hang up after a
/// second: within 2 s none of their processes runs, `/health` and the gauges count 0, the
/// next request runs at once, and SIGTERM exits at once.
#[test]
fn clients_that_disconnect_mid_run_leave_nothing_running() {
    let _serial = serial();
    let state = state_dir();
    let s = Server::start_with(
        &format!(
            "[sandbox]\nstate_dir = \"{}\"\n[engine]\nconcurrency = 2\nqueue = 2\n\
             [server]\nshutdown_grace_s = {GRACE_S}\n",
            state.path().display()
        ),
        &[],
    );
    let marker = format!("cancel-marker-{}-", nonce());
    let _reaper = MarkerReaper(marker.clone());
    let leave = Arc::new(AtomicBool::new(false));
    let posted = Instant::now();
    let clients: Vec<_> = (0..6)
        .map(|i| post_then_leave(&s, &sleeper(&format!("{marker}{i}"), 8), leave.clone()))
        .collect();
    // Both admitted runs are running before the clients leave.
    wait_until("2 sleepers run", Duration::from_secs(20), || {
        marked(&marker).len() >= 2
    });
    std::thread::sleep(Duration::from_secs(1).saturating_sub(posted.elapsed()));
    leave.store(true, Ordering::SeqCst);
    let answered: Vec<Option<String>> = clients
        .into_iter()
        .map(|c| c.join().expect("client"))
        .collect();
    let left = Instant::now();
    eprintln!("answered before leaving: {answered:?}");

    let mut f = Findings::default();
    check_cancelled(&mut f, &s, left, "disconnected runs", || marked(&marker));
    check_sigterm_exits_at_once(&mut f, &s, "disconnected runs");
    f.finish();
}

/// The same through the request deadline: three 8-second sleeps at concurrency 2 against a
/// 2-second deadline get 504 `deadline_exceeded`; within 2 s none of their processes runs,
/// `/health` and the gauges count 0, the next request runs at once, SIGTERM exits at once.
#[test]
fn runs_past_the_request_deadline_die_with_their_504() {
    let _serial = serial();
    let state = state_dir();
    let s = Server::start_with(
        &format!(
            "[sandbox]\nstate_dir = \"{}\"\n[engine]\nconcurrency = 2\nqueue = 2\n\
             [server]\nshutdown_grace_s = {GRACE_S}\nrequest_deadline_s = 2\n",
            state.path().display()
        ),
        &[],
    );
    let marker = format!("cancel-marker-{}-", nonce());
    let _reaper = MarkerReaper(marker.clone());
    let answers = std::thread::scope(|sc| {
        let runs: Vec<_> = (0..3)
            .map(|i| {
                let body = sleeper(&format!("{marker}{i}"), 8);
                let s = &s;
                sc.spawn(move || s.execute(&body))
            })
            .collect();
        runs.into_iter()
            .map(|r| r.join().expect("run"))
            .collect::<Vec<_>>()
    });
    let left = Instant::now();
    for (code, body) in &answers {
        assert_eq!(*code, 504, "{body}");
        assert_eq!(body["code"], "deadline_exceeded", "{body}");
    }

    let mut f = Findings::default();
    check_cancelled(&mut f, &s, left, "runs past the deadline", || {
        marked(&marker)
    });
    check_sigterm_exits_at_once(&mut f, &s, "runs past the deadline");
    f.finish();
}

/// A Rust program whose compile takes several seconds (a const evaluated by the compiler:
/// about 5 s of rustc CPU time at opt-level 1 on the reference machine).
fn slow_compile(marker: &str) -> Value {
    json!({
        "language": "rust",
        "code": format!(r#"// {marker}
#![allow(long_running_const_eval)]
const fn spin(n: u64) -> u64 {{
    let mut i = 0;
    let mut s = 0u64;
    while i < n {{
        s = s.wrapping_mul(6364136223846793005).wrapping_add(i);
        i += 1;
    }}
    s
}}
const X: u64 = spin(2_000_000);
fn main() {{
    println!("{{X}}");
}}
"#),
        "timeout": 20,
    })
}

fn dir_names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// The same during a Rust compile: the client hangs up while rustc runs; within 2 s the
/// compile box (its helper, init and rustc) is gone, `/health` and the gauges count 0, the
/// next request runs at once, SIGTERM exits at once, and the compile cache (which a finished
/// compile does fill) gained no entry.
#[test]
fn a_compile_whose_client_disconnects_dies_and_is_not_cached() {
    let _serial = serial();
    let state = state_dir();
    // A compile cache of its own. (A data dir of its own would hold one too, but the runtime
    // store in it, ~50k hard links, takes half a minute to delete on a busy disk.)
    let cache_parent = tempfile::tempdir().expect("compile cache dir");
    let cache = cache_parent.path().join("compile-cache");
    let s = Server::start_with(
        &format!(
            "[sandbox]\nstate_dir = \"{}\"\n\
             [engine]\nconcurrency = 2\nqueue = 2\ncompile_wall_time_ms = 60000\n\
             compile_cache_dir = \"{}\"\n[server]\nshutdown_grace_s = {GRACE_S}\n",
            state.path().display(),
            cache.display()
        ),
        &[],
    );
    // Positive control: a compile that finishes fills this cache.
    let before = dir_names(&cache);
    let warm = s.run(json!({"language": "rust", "code": "fn main() { println!(\"warm\"); }"}));
    assert_eq!(warm["output"], "warm\n", "{}", brief(&warm));
    let cached = dir_names(&cache);
    assert!(
        cached.len() > before.len(),
        "a finished compile left no entry in {}: {cached:?}",
        cache.display()
    );

    let marker = format!("cancel-marker-{}", nonce());
    let leave = Arc::new(AtomicBool::new(false));
    let posted = Instant::now();
    let client = post_then_leave(&s, &slow_compile(&marker), leave.clone());
    // The compile box: the helper whose tree holds rustc, recorded while rustc runs.
    let mut compile_box: Vec<Proc> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while compile_box.is_empty() {
        compile_box = helpers_of(s.pid)
            .into_iter()
            .map(tree)
            .find(|t| t.iter().any(|p| p.comm == "rustc"))
            .unwrap_or_default();
        assert!(
            Instant::now() < deadline,
            "rustc never ran; server log: {}",
            last_log_lines(&s, 5)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_secs(1).saturating_sub(posted.elapsed()));
    // Whatever the compile box started since (rustc's own children).
    if let Some(helper) = compile_box.first().map(|p| p.pid) {
        for p in tree(helper) {
            if !compile_box.contains(&p) {
                compile_box.push(p);
            }
        }
    }
    assert!(
        compile_box.iter().any(|p| p.comm == "rustc" && alive(p)),
        "the compile ended before its client left (too fast to test cancelling it): {}",
        describe(&compile_box)
    );
    leave.store(true, Ordering::SeqCst);
    let answered = client.join().expect("client");
    let left = Instant::now();
    assert_eq!(
        answered, None,
        "the compile was answered before its client left"
    );
    eprintln!("compile box: {}", describe(&compile_box));

    let mut f = Findings::default();
    let recorded = compile_box.clone();
    check_cancelled(&mut f, &s, left, "disconnected compile", || {
        let live: Vec<Proc> = recorded.iter().filter(|p| alive(p)).cloned().collect();
        live.iter()
            .map(|p| describe(std::slice::from_ref(p)))
            .collect()
    });
    check_sigterm_exits_at_once(&mut f, &s, "disconnected compile");
    drop(s);
    // Once the compile is over, killed or not, nothing of it is in the cache.
    f.check(by(Instant::now() + Duration::from_secs(30), || {
        if compile_box.iter().any(alive) {
            Err("the cancelled compile still runs 30 s after its server stopped".to_string())
        } else {
            Ok(())
        }
    }));
    let after = dir_names(&cache);
    f.check(if after == cached {
        Ok(())
    } else {
        Err(format!(
            "the cancelled compile changed the compile cache: {:?}",
            after.difference(&cached).collect::<Vec<_>>()
        ))
    });
    f.finish();
}

/// The server dies (SIGKILL) with ten runs in flight: within 3 s every box helper it had,
/// and everything they started, is gone, and no run's process is left. (Before, helpers and
/// programs ran on until their own limits ended them; the next start swept them.)
#[test]
fn a_killed_server_takes_its_boxes_with_it() {
    let _serial = serial();
    let state = state_dir();
    let config = format!(
        "[sandbox]\nstate_dir = \"{}\"\n[engine]\nconcurrency = 12\nqueue = 4\n",
        state.path().display()
    );
    let s = Server::start_with(&config, &[]);
    let marker = format!("cancel-marker-{}-", nonce());
    let _reaper = MarkerReaper(marker.clone());
    let leave = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..10)
        .map(|i| post_then_leave(&s, &sleeper(&format!("{marker}{i}"), 10), leave.clone()))
        .collect();
    wait_until("10 sleepers run", Duration::from_secs(30), || {
        marked(&marker).len() >= 10
    });
    let victim = instance_id(&s).expect("the server logs its instance id");
    let boxes = box_processes_of(s.pid);
    let helpers = helpers_of(s.pid).len();
    assert!(helpers >= 10, "{helpers} box helpers for 10 runs");

    s.kill9();
    let killed = Instant::now();
    leave.store(true, Ordering::SeqCst);
    let mut f = Findings::default();
    let window = killed + Duration::from_secs(3);
    f.check(by(window, || {
        let live: Vec<Proc> = boxes.iter().filter(|p| alive(p)).cloned().collect();
        if live.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} of the {} box processes (of {helpers} helpers) still alive {:.1} s after \
                 the server was killed: {}",
                live.len(),
                boxes.len(),
                killed.elapsed().as_secs_f64(),
                describe(&live)
            ))
        }
    }));
    f.check(by(window, || {
        let live = marked(&marker);
        if live.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} run process(es) still alive {:.1} s after the server was killed, e.g. {}",
                live.len(),
                killed.elapsed().as_secs_f64(),
                live[0]
            ))
        }
    }));
    for c in clients {
        let _ = c.join();
    }
    // Whatever the dead server left (helpers, cgroups, state) is swept by the next start.
    let sweeper = Server::start_with(
        &format!(
            "[sandbox]\nstate_dir = \"{}\"\n[engine]\npool_size = 0\n",
            state.path().display()
        ),
        &[],
    );
    let sweeper_id = instance_id(&sweeper).expect("the server logs its instance id");
    drop(sweeper);
    check_no_instance_cgroups(&mut f, &victim, "sweep of the killed server");
    check_no_instance_cgroups(&mut f, &sweeper_id, "sweep of the killed server");
    f.finish();
}

// ---------------------------------------------------------------------------------------------
// No host details to clients.
// ---------------------------------------------------------------------------------------------

/// Host directories no body may name (matched where a path starts, so a box path ending in
/// `/root` is not `/root`).
const HOST_DIRS: [&str; 10] = [
    "/root",
    "/home",
    "/usr",
    "/var",
    "/etc",
    "/tmp",
    "/run",
    "/proc",
    "/sys",
    "/work/main",
];

/// Text no body may contain: errno text, helper stderr, runtime install dirs.
const HOST_TEXT: [&str; 12] = [
    "os error",
    "errno",
    "Permission denied",
    "Invalid argument",
    "No such file or directory",
    "Operation not permitted",
    "Not a directory",
    "panicked",
    "it printed",
    "coderun box:",
    ".pyenv",
    ".rustup",
];

fn is_path_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"._-+@".contains(&c)
}

/// Every absolute path in `text`: a `/` not inside a word or path, then path characters.
fn absolute_paths(text: &str) -> Vec<&str> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let starts = bytes[i] == b'/'
            && (i == 0 || !(is_path_char(bytes[i - 1]) || bytes[i - 1] == b'/'))
            && bytes.get(i + 1).is_some_and(|c| is_path_char(*c));
        if !starts {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < bytes.len() && (is_path_char(bytes[j]) || bytes[j] == b'/') {
            j += 1;
        }
        found.push(&text[i..j]);
        i = j;
    }
    found
}

/// What `body` leaks: any of `forbidden` (this server's own host paths), [`HOST_TEXT`], a
/// path in one of [`HOST_DIRS`], or any other absolute path of two or more components that
/// is not a path inside a box (`/opt/coderun/...`, `/work/...`).
fn leaks(body: &str, forbidden: &[String]) -> Vec<String> {
    let mut found: Vec<String> = forbidden
        .iter()
        .map(String::as_str)
        .chain(HOST_TEXT)
        .filter(|f| !f.is_empty() && body.contains(*f))
        .map(|f| format!("{f:?}"))
        .collect();
    for path in absolute_paths(body) {
        let in_dir = |d: &&str| path == *d || path.starts_with(&format!("{d}/"));
        let components = path.split('/').filter(|c| !c.is_empty()).count();
        let in_box = path.starts_with("/opt/coderun/") || path.starts_with("/work/");
        if HOST_DIRS.iter().any(in_dir) || (components >= 2 && !in_box) {
            found.push(format!("path {path}"));
        }
    }
    found.sort();
    found.dedup();
    found
}

/// The leak finder itself: it flags host paths, errno text and helper stderr, and spares
/// box paths, routes and words with slashes.
#[test]
fn the_leak_finder_flags_host_details_and_spares_box_paths() {
    let clean = [
        r#"{"detail":"language 'python' is not available on this server","code":"language_unavailable"}"#,
        r#"{"GET /openapi.json":"OpenAPI 3 description","pools":{"python/run":2}}"#,
        "coderun_http_requests_total{route=\"/docs/{*file}\",status=\"200\"} 1",
        "run /opt/coderun/python/bin/python3 main.py in /work, and/or stdin",
        "box root at /opt/coderun/x/root",
    ];
    for body in clean {
        assert_eq!(leaks(body, &[]), Vec::<String>::new(), "{body}");
    }
    let leaky = [
        (
            "failed to mount tmpfs on /run/x/boxes/b/root: Permission denied (os error 13)",
            3,
        ),
        (
            "runtime python: /tmp/.tmpAbc/no-such-python does not exist",
            1,
        ),
        ("/root/.pyenv/versions/3.11/bin/python3", 2),
        (
            "no report (exit status: 101): it printed: thread 'main' panicked at src/x.rs",
            2,
        ),
        ("cgroup /sys/fs/cgroup/pids/coderun-1/box-2: errno 16", 2),
        ("see /srv/data/file", 1),
    ];
    for (body, n) in leaky {
        let found = leaks(body, &[]);
        assert_eq!(found.len(), n, "{body}: {found:?}");
    }
    assert_eq!(
        leaks("state in /srv/x", &["/srv/x".to_string()]),
        vec!["\"/srv/x\"".to_string(), "path /srv/x".to_string()]
    );
}

/// Fails listing, per body, what it leaked.
fn assert_no_leaks(bodies: &[(String, u16, String)], forbidden: &[String]) {
    let mut problems = Vec::new();
    for (what, code, body) in bodies {
        let found = leaks(body, forbidden);
        if !found.is_empty() {
            problems.push(format!(
                "{what} ({code}) leaks {}: {body}",
                found.join(", ")
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{} of {} bodies leak host details:\n - {}",
        problems.len(),
        bodies.len(),
        problems.join("\n - ")
    );
}

/// One request's (what, status, body text).
fn fetch(s: &Server, method: &str, path: &str, body: Option<&str>) -> (String, u16, String) {
    let mut req = match method {
        "GET" => s.client().get(s.url(path)),
        "DELETE" => s.client().delete(s.url(path)),
        _ => s.client().post(s.url(path)),
    };
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let resp = req.send().expect("request");
    let code = resp.status().as_u16();
    let text = resp.text().expect("body");
    let what = match body {
        Some(b) if b.len() < 80 => format!("{method} {path} {b}"),
        _ => format!("{method} {path}"),
    };
    (what, code, text)
}

/// Every body the API answers with, for `languages`: the service routes, and for each
/// language a run, plus the error bodies every server produces.
fn every_body(s: &Server, languages: &[&str]) -> Vec<(String, u16, String)> {
    let mut bodies = vec![
        fetch(s, "GET", "/", None),
        fetch(s, "GET", "/health", None),
        fetch(s, "GET", "/livez", None),
        fetch(s, "GET", "/languages", None),
        fetch(s, "GET", "/metrics", None),
        fetch(s, "GET", "/no-such-route", None),
        fetch(s, "DELETE", "/execute", None),
        fetch(s, "POST", "/execute", Some("{not json")),
        fetch(
            s,
            "POST",
            "/execute",
            Some(r#"{"language": "cobol", "code": "x"}"#),
        ),
    ];
    for lang in languages {
        let code = match *lang {
            "python" => "print(1)",
            "typescript" => "console.log(1)",
            _ => "fn main() { println!(\"1\"); }",
        };
        let body = json!({"language": lang, "code": code}).to_string();
        bodies.push(fetch(s, "POST", "/execute", Some(&body)));
    }
    bodies
}

/// An error body carries a stable code and a sentence.
fn assert_code_and_sentence(what: &str, body: &Value, code: &str) {
    assert_eq!(body["code"], code, "{what}: {body}");
    let detail = body["detail"].as_str().unwrap_or("");
    assert!(
        detail.split_whitespace().count() >= 4,
        "{what}: no sentence in `detail`: {body}"
    );
}

fn repo_root() -> PathBuf {
    std::fs::canonicalize(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).expect("repo root")
}

/// Copies the repository's language files into `dir`.
fn copy_languages(dir: &Path) {
    for entry in std::fs::read_dir(repo_root().join("languages"))
        .expect("languages")
        .flatten()
    {
        std::fs::copy(entry.path(), dir.join(entry.file_name())).expect("copy language file");
    }
}

/// The host paths of a server's set-up, which no body may contain.
fn setup_paths(extra: &[&Path]) -> Vec<String> {
    extra
        .iter()
        .map(|p| p.display().to_string())
        .chain([
            repo_root().display().to_string(),
            env!("CARGO_BIN_EXE_coderun").to_string(),
            "/var/lib/coderun".to_string(),
        ])
        .collect()
}

/// A language whose runtime the server cannot find (python's `locate` replaced by a `path`
/// that does not exist): `/languages`, `/health` and its 503 `language_unavailable` say so
/// without naming the path, the languages dir, or any other host path.
#[test]
fn no_host_details_when_a_language_runtime_is_missing() {
    let _serial = serial();
    let state = state_dir();
    let langs = tempfile::tempdir().expect("languages dir");
    copy_languages(langs.path());
    let missing = langs.path().join("no-such-python");
    let file = langs.path().join("python.toml");
    let text = std::fs::read_to_string(&file).expect("python.toml");
    let locate = text
        .lines()
        .find(|l| l.starts_with("locate = "))
        .expect("python.toml locates its runtime")
        .to_string();
    std::fs::write(
        &file,
        text.replace(&locate, &format!("path = \"{}\"", missing.display())),
    )
    .expect("write python.toml");
    let s = Server::start_with_languages(
        &format!(
            "[sandbox]\nstate_dir = \"{}\"\n[engine]\npool_size = 0\n",
            state.path().display()
        ),
        &[],
        langs.path(),
    );
    let bodies = every_body(&s, &["python", "rust"]);
    // The setup is what it should be: python is unavailable, rust runs.
    let (_, code, body) = &bodies[bodies.len() - 2];
    assert_eq!(*code, 503, "{body}");
    let python: Value = serde_json::from_str(body).expect("json");
    assert_code_and_sentence("python", &python, "language_unavailable");
    let (_, code, body) = &bodies[bodies.len() - 1];
    assert_eq!(*code, 200, "rust should run: {body}");
    let (_, _, languages) = &bodies[3];
    let languages: Value = serde_json::from_str(languages).expect("json");
    assert_eq!(languages["languages"][0]["name"], "python");
    assert_eq!(languages["languages"][0]["available"], false, "{languages}");
    assert!(
        languages["languages"][0]["error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "/languages does not say why python is unavailable: {languages}"
    );
    // The operator still learns where: the log names the path.
    let logs = s.logs.lock().unwrap_or_else(|p| p.into_inner()).join("\n");
    assert!(
        logs.contains(&missing.display().to_string()),
        "the log does not name the missing runtime path"
    );
    drop(logs);

    assert_no_leaks(
        &bodies,
        &setup_paths(&[langs.path(), &missing, state.path()]),
    );
}

/// Boxes that cannot be set up while the server itself starts: every body (`/health` open
/// by default, `/languages`, `/`, every `POST /execute`) keeps a stable code and a sentence,
/// and holds no host path, helper stderr or errno text; the log has the details.
fn no_host_details_when_boxes_fail(config: &str, dirs: &[&Path], logged: &str) {
    let s = Server::start_with(config, &[]);
    let bodies = every_body(&s, &["python", "typescript", "rust"]);
    let (_, code, health) = &bodies[1];
    assert_eq!(*code, 503, "/health of a broken sandbox: {health}");
    let health: Value = serde_json::from_str(health).expect("json");
    assert_eq!(health["status"], "unhealthy", "{health}");
    assert_eq!(health["sandbox"]["ok"], false, "{health}");
    assert!(
        health["sandbox"]["error"]
            .as_str()
            .is_some_and(|e| e.split_whitespace().count() >= 3),
        "/health does not say in a sentence what is wrong: {health}"
    );
    for (what, code, body) in &bodies[bodies.len() - 3..] {
        assert_eq!(*code, 500, "{what}: {body}");
        let body: Value = serde_json::from_str(body).expect("json");
        assert_code_and_sentence(what, &body, "sandbox_error");
    }
    let logs = s.logs.lock().unwrap_or_else(|p| p.into_inner()).join("\n");
    assert!(
        logs.contains(logged),
        "the log does not have the failure's details ({logged:?})"
    );
    drop(logs);
    assert_no_leaks(&bodies, &setup_paths(dirs));
}

/// A state dir the boxes cannot enter (mode 0700: a box's root mount point lies beneath it,
/// out of reach of the box's own user namespace).
#[test]
fn no_host_details_when_the_state_dir_is_closed_to_boxes() {
    use std::os::unix::fs::PermissionsExt;
    let _serial = serial();
    let state = state_dir();
    std::fs::set_permissions(state.path(), std::fs::Permissions::from_mode(0o700))
        .expect("chmod state dir");
    let config = format!(
        "[sandbox]\nstate_dir = \"{}\"\n[engine]\npool_size = 0\n",
        state.path().display()
    );
    no_host_details_when_boxes_fail(
        &config,
        &[state.path()],
        &state.path().display().to_string(),
    );
}

/// Host uids the kernel refuses in a uid map (`uid_base` 4294967294: the program's id would
/// be 4294967295, `(uid_t) -1`; a larger range would wrap to root) are refused when the
/// config is read, with a sentence that names the setting, before any box is made.
#[test]
fn a_uid_range_past_the_last_host_id_is_refused_at_start() {
    let _serial = serial();
    let state = state_dir();
    let locks = tempfile::tempdir().expect("uid lock dir");
    for (base, slots) in [
        ("4294967294", "1"),
        ("4294967295", "4294967295"),
        ("0", "4"),
    ] {
        let mut file = tempfile::NamedTempFile::new().expect("config");
        std::io::Write::write_all(
            &mut file,
            format!(
                "[sandbox]\nstate_dir = \"{}\"\nuid_lock_dir = \"{}\"\nuid_base = {base}\n\
                 uid_slots = {slots}\n",
                state.path().display(),
                locks.path().display()
            )
            .as_bytes(),
        )
        .expect("write config");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_coderun"))
            .arg("--config")
            .arg(file.path())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run coderun serve");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "uid_base {base} accepted: {stderr}");
        assert!(stderr.contains("uid_base"), "uid_base {base}: {stderr}");
    }
}
