//! Load suite: a bounded soak. N runs (CODERUN_SOAK_RUNS, default 240 so CI stays short; the
//! reported soak used 2,000) at concurrency 16, one in ten hostile. Every well-behaved run
//! prints its own nonce and must get exactly that back; every request is answered with 200 or
//! with 503 + Retry-After; the server never dies and nothing is left behind.

#[path = "../common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;

/// Hostile programs (language, code, timeout): fork bomb, memory bomb, output flood on both
/// streams, kill(-1), disk fill, a sleeper past its limit, CPU spin in threads.
const HOSTILE: [(&str, &str, f64); 7] = [
    ("python", "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass", 2.0),
    ("python", "b = []\nwhile True:\n    b.append(bytearray(16 << 20))", 5.0),
    ("python", "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n    sys.stderr.write('y' * 65536)", 5.0),
    ("python", "import os, signal\nos.kill(-1, signal.SIGKILL)", 5.0),
    ("python", "with open('/work/fill', 'wb') as f:\n    while True:\n        f.write(b'z' * (1 << 20))", 5.0),
    ("python", "import time\ntime.sleep(60)", 1.0),
    ("typescript", "const { Worker } = require('worker_threads');\nfor (let i = 0; i < 4; i++) new Worker('for(;;){}', { eval: true });\nfor(;;){}", 1.0),
];

#[derive(Default)]
struct Tally {
    ok: AtomicUsize,
    hostile: AtomicUsize,
    overloaded: AtomicUsize,
    wrong: Mutex<Vec<String>>,
}

#[test]
fn soak_mixed_load_answers_every_request_and_leaves_nothing() {
    let runs: usize = std::env::var("CODERUN_SOAK_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(240);
    let concurrency = 16;
    let state = tempfile::Builder::new()
        .prefix("coderun-soak-")
        .tempdir_in("/run")
        .expect("state dir");
    let s = Server::start_with(
        &format!("[sandbox]\nstate_dir = \"{}\"\n", state.path().display()),
        &[],
    );
    // Confinement check before any hostile program runs.
    let probe = s.run(json!({
        "language": "python",
        "code": "import os\nprint(os.getpid(), os.getuid(), os.path.exists('/work/main/Cargo.toml'))",
    }));
    let probe_out = probe["output"].as_str().unwrap_or("");
    let pid: u32 = probe_out
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    assert!(
        pid > 0 && pid < 10 && probe_out.contains(" 1000 False"),
        "refusing to run hostile programs: the box is not confined: {probe}"
    );

    let next = AtomicUsize::new(0);
    let tally = Tally::default();
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..concurrency {
            scope.spawn(|| {
                let client = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(120))
                    .build()
                    .expect("client");
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= runs {
                        return;
                    }
                    let nonce = nonce();
                    let body = if i % 10 == 9 {
                        let (lang, code, timeout) = HOSTILE[(i / 10) % HOSTILE.len()];
                        json!({"language": lang, "code": code, "timeout": timeout})
                    } else if i % 10 == 4 {
                        json!({"language": "typescript", "code": "console.log(process.argv[2])", "args": [nonce]})
                    } else if i % 50 == 7 {
                        json!({"language": "rust", "code": "fn main() { println!(\"{}\", std::env::args().nth(1).unwrap()); }", "args": [nonce]})
                    } else {
                        json!({"language": "python", "code": "import sys\nprint(sys.argv[1])", "args": [nonce]})
                    };
                    let resp = client.post(s.url("/execute")).json(&body).send();
                    let resp = match resp {
                        Ok(r) => r,
                        Err(e) => {
                            tally.wrong.lock().unwrap().push(format!("request {i}: {e}"));
                            continue;
                        }
                    };
                    let status = resp.status().as_u16();
                    let retry_after = resp.headers().contains_key("retry-after");
                    let value: Value = resp.json().unwrap_or(Value::Null);
                    match status {
                        503 if retry_after && value["code"] == "overloaded" => {
                            tally.overloaded.fetch_add(1, Ordering::Relaxed);
                        }
                        200 if i % 10 == 9 => {
                            tally.hostile.fetch_add(1, Ordering::Relaxed);
                        }
                        200 if value["output"] == format!("{nonce}\n") && value["status"] == "ok" => {
                            tally.ok.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => tally
                            .wrong
                            .lock()
                            .unwrap()
                            .push(format!("request {i} ({body}) answered {status}: {value}")),
                    }
                }
            });
        }
    });
    let elapsed = started.elapsed();
    let wrong = tally.wrong.lock().unwrap();
    let ok = tally.ok.load(Ordering::Relaxed);
    let hostile = tally.hostile.load(Ordering::Relaxed);
    let overloaded = tally.overloaded.load(Ordering::Relaxed);
    let hwm_kb = std::fs::read_to_string(format!("/proc/{}/status", s.pid))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0);
    eprintln!(
        "soak: {runs} runs at concurrency {concurrency} in {:.1} s ({:.1} runs/s): {ok} ok with their own nonce, {hostile} hostile answered 200, {overloaded} 503 overloaded, {} wrong; server peak RSS {} MiB",
        elapsed.as_secs_f64(),
        runs as f64 / elapsed.as_secs_f64(),
        wrong.len(),
        hwm_kb / 1024
    );
    assert!(
        wrong.is_empty(),
        "{} wrong answers:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert_eq!(ok + hostile + overloaded, runs);
    assert!(ok > runs / 2, "most well-behaved runs should get through");
    assert!(
        hwm_kb < 512 * 1024,
        "server peak RSS {hwm_kb} KiB is not bounded"
    );

    // The server survived; no box of any run is left (only the warm pool's idle boxes, each
    // of whose processes is a waiting runtime); after a graceful stop nothing at all is.
    // Pools grow after a burst and refill in the background, and a helper removes its box
    // just after its report: a box being set up or torn down has a state dir but is not
    // (yet, or any more) ready. Within a few seconds every state dir is a ready box's.
    let instance = std::fs::read_dir(state.path().join("instances"))
        .expect("instances")
        .flatten()
        .next()
        .expect("instance dir");
    let counts = || {
        let (status, health) = s.get("/health");
        assert_eq!(status, 200, "{health}");
        let pooled: u64 = health["pools"]
            .as_object()
            .map(|p| p.values().filter_map(Value::as_u64).sum())
            .unwrap_or(0);
        let boxes = std::fs::read_dir(instance.path().join("boxes"))
            .expect("boxes")
            .count() as u64;
        (boxes, pooled)
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (boxes, pooled) = counts();
        if boxes <= pooled {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{boxes} box state dirs for {pooled} pooled boxes"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let id = instance.file_name().to_string_lossy().into_owned();
    s.stop();
    assert!(
        !instance.path().exists(),
        "instance state dir left after stop"
    );
    for d in instance_cgroup_dirs(&id) {
        assert!(
            !d.exists(),
            "instance cgroup {} left after stop",
            d.display()
        );
    }
}
