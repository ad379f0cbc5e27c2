//! Test harness shared by the integration suites: starts the real `coderun serve` on a free
//! loopback port and talks HTTP to it, as a user would.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub use serde_json::{json, Value};

/// A running server. Dropping it stops it (SIGTERM, then SIGKILL) and waits for it.
pub struct Server {
    child: Mutex<Child>,
    /// Every line the server printed on stderr (its log).
    pub logs: std::sync::Arc<Mutex<Vec<String>>>,
    pub base: String,
    pub pid: u32,
    _config: Option<tempfile::NamedTempFile>,
    client: reqwest::blocking::Client,
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_coderun")
}

fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

impl Server {
    /// Starts a server with the given TOML config (may be empty) and extra environment.
    pub fn start_with(config: &str, env: &[(&str, &str)]) -> Server {
        Server::start_with_languages(config, env, &repo_root().join("languages"))
    }

    /// Like [`Server::start_with`], with the language files of `languages_dir`.
    pub fn start_with_languages(
        config: &str,
        env: &[(&str, &str)],
        languages_dir: &std::path::Path,
    ) -> Server {
        let mut file = tempfile::NamedTempFile::new().expect("temp config");
        file.write_all(config.as_bytes()).expect("write config");
        let mut cmd = Command::new(bin());
        cmd.arg("--config")
            .arg(file.path())
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--languages-dir")
            .arg(languages_dir)
            .env("CODERUN_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start coderun serve");
        let pid = child.id();
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        let logs = std::sync::Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(line.clone());
                if std::env::var_os("CODERUN_TEST_VERBOSE").is_some() {
                    eprintln!("[server {pid}] {line}");
                }
                // Text logs say `addr=IP:PORT`, JSON logs `"addr":"IP:PORT"`.
                let found = line
                    .find("addr=")
                    .map(|p| &line[p + 5..])
                    .or_else(|| line.find("\"addr\":\"").map(|p| &line[p + 8..]));
                if let Some(rest) = found {
                    let addr: String = rest
                        .chars()
                        .take_while(|c| !c.is_whitespace() && *c != '"')
                        .collect();
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(addr);
                    }
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().ok();
                std::thread::sleep(Duration::from_millis(200));
                let log = logs.lock().unwrap_or_else(|p| p.into_inner()).join("\n");
                panic!("coderun serve did not start listening (exit: {status:?}); its log:\n{log}");
            }
        };
        Server {
            child: Mutex::new(child),
            logs,
            base: format!("http://{addr}"),
            pid,
            _config: Some(file),
            client: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .expect("client"),
        }
    }

    pub fn start() -> Server {
        Server::start_with("", &[])
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POST /execute with a JSON body; returns (status, body).
    pub fn execute(&self, body: &Value) -> (u16, Value) {
        self.post_raw("/execute", &serde_json::to_vec(body).expect("json"))
    }

    /// POST /execute expecting 200; returns the body.
    pub fn run(&self, body: Value) -> Value {
        let (status, resp) = self.execute(&body);
        assert_eq!(status, 200, "request {body} answered {status}: {resp}");
        resp
    }

    pub fn post_raw(&self, path: &str, body: &[u8]) -> (u16, Value) {
        let resp = self
            .client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .expect("POST");
        let status = resp.status().as_u16();
        let text = resp.text().expect("body");
        if status >= 500 {
            self.print_error_logs(path, status);
        }
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// A 5xx body names no host details (by design): the server's log says why. Prints its
    /// warnings and errors, so a failure in CI shows its cause.
    pub fn print_error_logs(&self, path: &str, status: u16) {
        let logs = self.logs.lock().unwrap_or_else(|p| p.into_inner());
        let lines: Vec<&String> = logs
            .iter()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .collect();
        let tail = &lines[lines.len().saturating_sub(20)..];
        eprintln!(
            "[server {}] {path} answered {status}; its last warnings and errors:",
            self.pid
        );
        for line in tail {
            eprintln!("[server {}] {line}", self.pid);
        }
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        let resp = self.client.get(self.url(path)).send().expect("GET");
        let status = resp.status().as_u16();
        let text = resp.text().expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub fn client(&self) -> &reqwest::blocking::Client {
        &self.client
    }

    /// Stops the server with SIGTERM and waits (up to 30 s) for it to exit. A server already
    /// reaped (killed, waited for by [`Server::wait_exit`] or by a test's own `waitpid`) is not
    /// signalled again: its pid may belong to another process by now.
    pub fn stop(&self) {
        let mut child = self.child.lock().unwrap_or_else(|p| p.into_inner());
        // Err: reaped behind the harness's back (a test's own waitpid).
        if !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        // SAFETY: signalling the server process this harness started, not yet reaped.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Server {
    /// Kills the server with SIGKILL (no cleanup of its own) and reaps it.
    pub fn kill9(&self) {
        let mut child = self.child.lock().unwrap_or_else(|p| p.into_inner());
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Waits up to `timeout` for the server to exit (and reaps it); None if it still runs.
    pub fn wait_exit(&self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self
                .child
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .try_wait()
                .ok()
                .flatten();
            if status.is_some() || Instant::now() >= deadline {
                return status;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The v1 cgroup dirs (memory, pids, cpu, cpuacct) an instance `id` of a server started by
/// this test process creates, or the v2 dir: `<own cgroup>/coderun-<id>`.
pub fn instance_cgroup_dirs(id: &str) -> Vec<std::path::PathBuf> {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mut dirs = Vec::new();
    for line in own.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrls, path) = (
            parts.next(),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
        );
        for ctrl in ctrls.split(',') {
            if ["memory", "pids", "cpu", "cpuacct"].contains(&ctrl) {
                let base = std::path::Path::new("/sys/fs/cgroup").join(ctrl);
                dirs.push(
                    base.join(path.trim_start_matches('/'))
                        .join(format!("coderun-{id}")),
                );
            }
        }
    }
    dirs
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

static SHARED: OnceLock<Server> = OnceLock::new();
static SHARED_PID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

extern "C" fn stop_shared() {
    let pid = SHARED_PID.load(std::sync::atomic::Ordering::SeqCst);
    if pid != 0 {
        // SAFETY: signalling the server process this harness started; then reaping it.
        unsafe {
            libc::kill(pid as i32, libc::SIGTERM);
            let mut status = 0;
            libc::waitpid(pid as i32, &mut status, 0);
        }
    }
}

/// One server shared by every test of a suite (started on first use, stopped at exit).
pub fn shared() -> &'static Server {
    SHARED.get_or_init(|| {
        let mut s = Server::start();
        // The server has read its config file; a static is never dropped, so remove it now.
        s._config = None;
        SHARED_PID.store(s.pid, std::sync::atomic::Ordering::SeqCst);
        // SAFETY: registering a plain extern "C" function with no captured state.
        unsafe { libc::atexit(stop_shared) };
        s
    })
}

/// Pids of live processes whose environment or command line contains `needle` (used to
/// prove no process of a run survives it).
pub fn processes_containing(needle: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(needle) {
            found.push(pid);
        }
    }
    found
}

/// Pids of the live children of `parent` (by the ppid in /proc/<pid>/stat).
pub fn children_of(parent: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // The ppid is the second field after the command name's closing parenthesis.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        if ppid == Some(parent) {
            found.push(pid);
        }
    }
    found
}

/// Pids of every live descendant of `root`.
pub fn descendants_of(root: u32) -> Vec<u32> {
    let mut found = children_of(root);
    let mut next = 0;
    while next < found.len() {
        let more = children_of(found[next]);
        found.extend(more);
        next += 1;
    }
    found
}

/// Processes whose executable lies inside a coderun box: their /proc/<pid>/root is not the
/// host's root. Lists (pid, comm) of every such process that belongs to a user in the box
/// uid range.
pub fn box_processes() -> Vec<(u32, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        let uid: u32 = status
            .lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|u| u.parse().ok())
            .unwrap_or(0);
        if (1_500_000..1_500_000 + 2 * 4096).contains(&uid) {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            found.push((pid, comm.trim().to_string()));
        }
    }
    found
}

/// The code of a program that prints a marker, so tests can look for it.
pub fn nonce() -> String {
    let mut buf = [0u8; 8];
    // SAFETY: buf is a valid 8-byte buffer.
    unsafe { libc::getrandom(buf.as_mut_ptr().cast(), 8, 0) };
    format!("n{:016x}", u64::from_le_bytes(buf))
}

/// `body` with the fields of `extra` added (or replaced).
pub fn with(mut body: Value, extra: Value) -> Value {
    let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) else {
        panic!("with() takes two JSON objects");
    };
    for (k, v) in e {
        b.insert(k, v);
    }
    body
}

pub fn status(r: &Value) -> &str {
    r["status"]
        .as_str()
        .unwrap_or_else(|| panic!("no status: {r}"))
}

pub fn stdout(r: &Value) -> &str {
    r["stdout"]
        .as_str()
        .unwrap_or_else(|| panic!("no stdout: {r}"))
}

/// A response shortened for assertion messages (outputs may be megabytes).
pub fn brief(r: &Value) -> String {
    let mut r = r.clone();
    if let Some(o) = r.as_object_mut() {
        for key in ["output", "stdout", "stderr", "error", "compile_output"] {
            if let Some(Value::String(s)) = o.get(key) {
                if s.len() > 1500 {
                    let head: String = s.chars().take(1500).collect();
                    let short = format!("{head}...({} bytes)", s.len());
                    o.insert(key.to_string(), Value::String(short));
                }
            }
        }
    }
    r.to_string()
}

/// `coderun config hash-key KEY`: what an `[auth] key_sha256` entry holds.
pub fn hash_key(key: &str) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_coderun"))
        .args(["config", "hash-key", key])
        .output()
        .expect("coderun config hash-key");
    String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_string()
}

const CONFINED_PROBE: &str = r#"
import json, os, sys
try:
    init = open("/proc/1/cmdline", "rb").read().hex()
except OSError as e:
    init = "unreadable errno %d" % e.errno
print(json.dumps({
    "pid": os.getpid(),
    "uid": os.getuid(),
    "euid": os.geteuid(),
    "init": init,
    "root": sorted(os.listdir("/")),
    "visible": [p for p in sys.argv[1:] if os.path.exists(p)],
}))
"#;

/// Refuses (panics) unless a program in the box runs in its own pid namespace (small pid), as
/// uid 1000 (not root), and sees neither the host's init, the host's root directory nor host
/// files. Called first by every hostile test (escape and limits suites).
pub fn assert_confined(server: &Server) {
    let repo_file = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let host_bin = env!("CARGO_BIN_EXE_coderun");
    let r = server.run(json!({
        "language": "python",
        "code": CONFINED_PROBE,
        "args": [repo_file, host_bin, "/root", "/work/main/Cargo.toml", "/home", "/run/coderun",
                 "/etc/shadow", "/var"],
    }));
    assert_eq!(
        status(&r),
        "ok",
        "confinement probe did not run, refusing to run hostile tests: {}",
        brief(&r)
    );
    let line = stdout(&r).trim();
    let probe: Value = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("confinement probe printed {line:?}: {e}"));
    let host_init: String = std::fs::read("/proc/1/cmdline")
        .expect("host /proc/1/cmdline")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut host_root: Vec<String> = std::fs::read_dir("/")
        .expect("host /")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    host_root.sort();
    let pid = probe["pid"].as_u64().unwrap_or(u64::MAX);
    let mut problems = Vec::new();
    if pid >= 10 {
        problems.push(format!("pid {pid} is not small: no own pid namespace?"));
    }
    if probe["uid"] != 1000 || probe["euid"] != 1000 {
        problems.push(format!(
            "uid {} euid {} instead of 1000",
            probe["uid"], probe["euid"]
        ));
    }
    if probe["init"].as_str() == Some(host_init.as_str()) {
        problems.push("/proc/1 is the host's init".to_string());
    }
    if probe["root"] == json!(host_root) {
        problems.push(format!("/ lists like the host's root: {}", probe["root"]));
    }
    if probe["visible"].as_array().is_none_or(|v| !v.is_empty()) {
        problems.push(format!("host paths visible: {}", probe["visible"]));
    }
    if !problems.is_empty() {
        panic!("NOT CONFINED, refusing to run a hostile test: {problems:?} (probe: {line})");
    }
}

/// Waits (polling every 50 ms) until `ok` holds, failing after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends SIGTERM to a server (without waiting for it).
pub fn sigterm(s: &Server) {
    // SAFETY: signalling the server process this test started.
    unsafe { libc::kill(s.pid as i32, libc::SIGTERM) };
}

/// Starts a 2-second Python run that prints its nonce, SIGTERMs the server once the run is
/// in flight, gives the server 300 ms to start draining, then calls `during`. Returns the
/// run's answer and its nonce.
pub fn sigterm_during_a_run(s: &Server, during: impl FnOnce()) -> (Value, String) {
    let tag = nonce();
    let done = std::thread::scope(|scope| {
        let run = scope.spawn(|| {
            s.run(json!({"language": "python", "code": "import sys, time\ntime.sleep(2)\nprint(sys.argv[1])", "args": [tag]}))
        });
        wait_until("the run started", Duration::from_secs(10), || {
            !processes_containing(&tag).is_empty()
        });
        sigterm(s);
        std::thread::sleep(Duration::from_millis(300));
        during();
        run.join().expect("run")
    });
    (done, tag)
}

/// Runs every request at once (one thread each); answers in the same order.
pub fn run_all(s: &Server, bodies: Vec<Value>) -> Vec<Value> {
    std::thread::scope(|sc| {
        let handles: Vec<_> = bodies
            .into_iter()
            .map(|b| sc.spawn(move || s.run(b)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}
