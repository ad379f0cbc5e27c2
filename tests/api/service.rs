//! The service around `/execute`: health, index, languages, 404/405, overload.

use std::sync::Barrier;

use crate::common::*;
use crate::text;

const LANGUAGES: [(&str, &str); 3] = [
    ("python", "Python 3.11"),
    ("rust", "rustc 1.95"),
    ("typescript", "TypeScript "),
];

#[test]
fn health_reports_a_working_sandbox_and_every_language() {
    let s = shared();
    let (status, h) = s.get("/health");
    assert_eq!(status, 200, "{h:#}");
    assert_eq!(h["status"], "healthy", "{h:#}");
    assert_eq!(h["sandbox"]["ok"], true, "{h:#}");
    assert_eq!(h["sandbox"]["error"], Value::Null, "{h:#}");
    assert!(!text(&h, "backend").is_empty(), "{h:#}");
    assert!(h["checked_at"].as_u64().unwrap() > 1_600_000_000, "{h:#}");
    assert!(h["running"].is_u64() && h["queued"].is_u64(), "{h:#}");
    let langs = h["languages"].as_array().unwrap();
    assert_eq!(langs.len(), LANGUAGES.len(), "{h:#}");
    for (name, version) in LANGUAGES {
        let l = langs
            .iter()
            .find(|l| l["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing: {h:#}"));
        assert_eq!(l["available"], true, "{l:#}");
        assert_eq!(l["error"], Value::Null, "{l:#}");
        assert!(text(l, "version").starts_with(version), "{l:#}");
    }
}

#[test]
fn run_reports_the_same_version_as_health() {
    let s = shared();
    let (_, h) = s.get("/health");
    let r = s.run(json!({"code": "print(1)", "language": "python"}));
    let py = h["languages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "python")
        .unwrap();
    assert_eq!(r["version"], py["version"], "{r:#} vs {py:#}");
}

#[test]
fn index_lists_name_endpoints_and_languages() {
    let (status, i) = shared().get("/");
    assert_eq!(status, 200, "{i:#}");
    assert_eq!(i["name"], "coderun");
    assert!(!text(&i, "version").is_empty(), "{i:#}");
    assert_eq!(i["languages"], json!(["python", "rust", "typescript"]));
    let endpoints = i["endpoints"].as_object().unwrap();
    for e in ["POST /execute", "GET /health", "GET /languages", "GET /"] {
        assert!(endpoints.contains_key(e), "{e} missing: {i:#}");
    }
    let execute = endpoints["POST /execute"].as_str().unwrap();
    for field in ["code", "language", "timeout", "stdin", "args", "files"] {
        assert!(execute.contains(field), "{field} not described: {i:#}");
    }
}

#[test]
fn languages_lists_aliases_versions_and_compiled() {
    let (status, l) = shared().get("/languages");
    assert_eq!(status, 200, "{l:#}");
    let langs = l["languages"].as_array().unwrap();
    let names: Vec<&str> = langs.iter().map(|x| x["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["python", "rust", "typescript"], "{l:#}");
    let by = |n: &str| langs.iter().find(|x| x["name"] == n).unwrap().clone();
    assert_eq!(by("python")["aliases"], json!(["py", "python3"]));
    assert_eq!(by("python")["compiled"], false);
    assert_eq!(by("python")["display_name"], "Python");
    assert_eq!(by("rust")["aliases"], json!(["rs"]));
    assert_eq!(by("rust")["compiled"], true);
    assert_eq!(by("typescript")["aliases"], json!(["ts"]));
    assert_eq!(by("typescript")["compiled"], true);
    for (name, version) in LANGUAGES {
        let x = by(name);
        assert_eq!(x["available"], true, "{x:#}");
        assert!(text(&x, "version").starts_with(version), "{x:#}");
    }
    // Versions say what runs: TypeScript's names the checker and node; every runtime has its
    // plain version number (scripts/setup.sh installed the checker before the suites).
    let ts = by("typescript");
    assert!(text(&ts, "version").contains("(node 20."), "{ts:#}");
    assert_eq!(ts["typecheck"], true, "{ts:#}");
    assert!(text(&ts, "semver").starts_with("7."), "{ts:#}");
    assert!(text(&by("python"), "semver").starts_with("3.11."));
    assert!(text(&by("rust"), "semver").starts_with("1.95."));
    assert_eq!(by("python")["typecheck"], Value::Null);
}

#[test]
fn unknown_paths_and_wrong_methods_are_json_errors() {
    let s = shared();
    let (status, body) = s.get("/nope");
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["code"], "not_found");
    assert!(text(&body, "detail").contains("GET /"), "{body}");

    let (status, body) = s.post_raw("/run", b"{}");
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["code"], "not_found");

    let resp = s.client().get(s.url("/execute")).send().unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    assert_eq!(resp.headers()["allow"], "POST");
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let body: Value = resp.json().unwrap();
    assert_eq!(body["code"], "method_not_allowed", "{body}");
    assert!(!text(&body, "detail").is_empty());

    let (status, body) = s.post_raw("/health", b"{}");
    assert_eq!(status, 405, "{body}");
    assert_eq!(body["code"], "method_not_allowed");
}

#[test]
fn execute_does_not_require_a_json_content_type() {
    // `curl -d '{...}'` sends application/x-www-form-urlencoded; the body is still JSON.
    let s = shared();
    for content_type in ["application/x-www-form-urlencoded", "text/plain"] {
        let resp = s
            .client()
            .post(s.url("/execute"))
            .header("content-type", content_type)
            .body(r#"{"code": "print(6 * 7)", "language": "py"}"#)
            .send()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{content_type}");
        let body: Value = resp.json().unwrap();
        assert_eq!(body["stdout"], "42\n", "{content_type}: {body}");
    }
}

#[test]
fn a_full_queue_answers_503_overloaded_with_retry_after() {
    // One running slot and one queue place: of four concurrent 2-second programs, at least one
    // cannot be admitted.
    let s = Server::start_with("[engine]\nconcurrency = 1\nqueue = 1\n", &[]);
    let barrier = Barrier::new(4);
    let results: Vec<(u16, Option<String>, Value)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    let resp = s
                        .client()
                        .post(s.url("/execute"))
                        .json(&json!({"code": "import time\ntime.sleep(2)\nprint('done')", "language": "python"}))
                        .send()
                        .expect("POST");
                    let status = resp.status().as_u16();
                    let retry = resp
                        .headers()
                        .get("retry-after")
                        .map(|v| v.to_str().unwrap().to_string());
                    (status, retry, resp.json::<Value>().expect("json"))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let rejected: Vec<_> = results.iter().filter(|r| r.0 == 503).collect();
    let done: Vec<_> = results.iter().filter(|r| r.0 == 200).collect();
    assert!(!rejected.is_empty(), "nothing was rejected: {results:?}");
    assert!(
        done.len() >= 2,
        "the running and the queued request must both finish: {results:?}"
    );
    assert_eq!(rejected.len() + done.len(), 4, "{results:?}");
    for (_, retry, body) in &rejected {
        assert_eq!(body["code"], "overloaded", "{body}");
        assert!(text(body, "detail").contains("capacity"), "{body}");
        let secs: u64 = retry
            .as_deref()
            .expect("Retry-After header")
            .parse()
            .expect("Retry-After in seconds");
        assert!((1..=60).contains(&secs), "Retry-After {secs}");
    }
    for (_, retry, body) in &done {
        assert_eq!(retry, &None);
        assert_eq!(body["status"], "ok", "{body}");
        assert_eq!(body["stdout"], "done\n", "{body}");
    }
    // Once the load is gone the server admits again.
    let r = s.run(json!({"code": "print('again')", "language": "python"}));
    assert_eq!(r["stdout"], "again\n");
}

/// `coderun config check` accepts the shipped example config and names an unknown key, in a
/// file and in a `CODERUN_*` override.
#[test]
fn config_check_accepts_the_example_and_names_unknown_keys() {
    let bin = env!("CARGO_BIN_EXE_coderun");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let ok = std::process::Command::new(bin)
        .args(["config", "check"])
        .arg(root.join("coderun.example.toml"))
        .output()
        .expect("run coderun config check");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[engine]\nmemroy_mb = 1\n").expect("write");
    let out = std::process::Command::new(bin)
        .args(["config", "check"])
        .arg(&bad)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("memroy_mb"));
    let out = std::process::Command::new(bin)
        .args(["config", "check"])
        .arg(root.join("coderun.example.toml"))
        .env("CODERUN_ENGINE_QUEUEE", "3")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("CODERUN_ENGINE_QUEUEE") && err.contains("queuee"),
        "{err}"
    );
}

/// The value of the sample `name{labels}` in a Prometheus text exposition (0 when absent).
fn sample(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            (key == name_and_labels).then(|| value.parse().ok())?
        })
        .unwrap_or(0.0)
}

fn scrape(s: &Server) -> String {
    let resp = s
        .client()
        .get(s.url("/metrics"))
        .send()
        .expect("GET /metrics");
    assert_eq!(resp.status().as_u16(), 200);
    let ctype = resp.headers()["content-type"]
        .to_str()
        .unwrap_or("")
        .to_string();
    assert!(ctype.starts_with("text/plain"), "{ctype}");
    let text = resp.text().expect("body");
    // Every non-comment line is `name{labels} value` with a numeric value.
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (_, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        assert!(value.parse::<f64>().is_ok(), "bad value in {line:?}");
    }
    text
}

/// `/metrics` is Prometheus text; its counters and histograms move with real executions and
/// its gauges report the engine's state.
#[test]
fn metrics_scrape_parses_and_counters_move() {
    let s = shared();
    let before = scrape(s);
    let ok = r#"coderun_executions_total{language="python",status="ok"}"#;
    let fail = r#"coderun_executions_total{language="python",status="runtime_error"}"#;
    let http = r#"coderun_http_requests_total{route="/execute",status="200"}"#;
    let http422 = r#"coderun_http_requests_total{route="/execute",status="422"}"#;
    let runs = r#"coderun_run_seconds_count{language="python"}"#;
    s.run(json!({"language": "python", "code": "print(1)"}));
    s.run(json!({"language": "python", "code": "raise SystemExit(3)"}));
    let (status, _) = s.execute(&json!({"language": "cobol", "code": ""}));
    assert_eq!(status, 422);
    let after = scrape(s);
    assert!(sample(&after, ok) >= sample(&before, ok) + 1.0, "{after}");
    assert!(
        sample(&after, fail) >= sample(&before, fail) + 1.0,
        "{after}"
    );
    assert!(
        sample(&after, http) >= sample(&before, http) + 2.0,
        "{after}"
    );
    assert!(
        sample(&after, http422) >= sample(&before, http422) + 1.0,
        "{after}"
    );
    assert!(
        sample(&after, runs) >= sample(&before, runs) + 2.0,
        "{after}"
    );
    for name in [
        "coderun_queue_wait_seconds_bucket",
        "coderun_http_request_duration_seconds_bucket",
        "coderun_active_runs",
        "coderun_queue_depth",
        "coderun_sandbox_failures_total",
    ] {
        assert!(after.contains(name), "{name} missing from {after}");
    }
    assert!(
        after.contains(r#"coderun_pool_ready_boxes{pool="python/run"}"#),
        "{after}"
    );
}

/// Every response carries `X-Request-Id`: the client's own when it sent a sane one, a fresh
/// one otherwise; `/livez` answers while the process lives.
#[test]
fn request_ids_and_liveness() {
    let s = shared();
    let resp = s.client().get(s.url("/livez")).send().expect("GET /livez");
    assert_eq!(resp.status().as_u16(), 200);
    let fresh = resp.headers()["x-request-id"]
        .to_str()
        .expect("id")
        .to_string();
    assert!(fresh.len() >= 8, "{fresh}");
    let resp = s
        .client()
        .get(s.url("/nope"))
        .header("x-request-id", "client-id-42")
        .send()
        .expect("GET");
    assert_eq!(resp.status().as_u16(), 404);
    assert_eq!(resp.headers()["x-request-id"], "client-id-42");
    let resp = s
        .client()
        .get(s.url("/livez"))
        .header("x-request-id", "bad id with spaces")
        .send()
        .expect("GET");
    assert_ne!(resp.headers()["x-request-id"], "bad id with spaces");
}
