//! Production concerns at the HTTP edge: API keys, rate limits, CORS, the request deadline.

use crate::common::*;

const KEY: &str = "test-key-0123456789";
const OTHER_KEY: &str = "another-key-9876543210";

fn post(s: &Server, headers: &[(&str, &str)]) -> reqwest::blocking::Response {
    let mut req = s
        .client()
        .post(s.url("/execute"))
        .json(&json!({"language": "python", "code": "print('in')"}));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().expect("POST /execute")
}

/// With keys configured: no key or a wrong key is 401 with the JSON body and
/// WWW-Authenticate; the right key works as a Bearer token and as X-API-Key; /health,
/// /metrics and /livez stay open by default. With protect_health, /health needs a key too.
#[test]
fn api_keys_guard_every_route_but_the_probes() {
    let s = Server::start_with(
        &format!("[auth]\nkey_sha256 = [\"{}\"]\n", hash_key(KEY)),
        &[],
    );
    for headers in [
        vec![],
        vec![("authorization", "Bearer wrong")],
        vec![("x-api-key", OTHER_KEY)],
    ] {
        let resp = post(&s, &headers);
        assert_eq!(resp.status().as_u16(), 401, "{headers:?}");
        assert_eq!(resp.headers()["www-authenticate"], "Bearer");
        let body: Value = resp.json().expect("json");
        assert_eq!(body["code"], "unauthorized", "{body}");
    }
    let bearer = format!("Bearer {KEY}");
    for headers in [
        vec![("authorization", bearer.as_str())],
        vec![("x-api-key", KEY)],
    ] {
        let resp = post(&s, &headers);
        assert_eq!(resp.status().as_u16(), 200, "{headers:?}");
        let body: Value = resp.json().expect("json");
        assert_eq!(body["output"], "in\n");
    }
    for open in ["/health", "/metrics", "/livez"] {
        assert_eq!(s.get(open).0, 200, "{open} should stay open");
    }
    assert_eq!(s.get("/languages").0, 401);

    let guarded = Server::start_with(
        &format!(
            "[auth]\nkey_sha256 = [\"{}\"]\nprotect_health = true\nprotect_metrics = true\n",
            hash_key(KEY)
        ),
        &[],
    );
    assert_eq!(guarded.get("/health").0, 401);
    assert_eq!(guarded.get("/metrics").0, 401);
    assert_eq!(guarded.get("/livez").0, 200);
    let resp = guarded
        .client()
        .get(guarded.url("/health"))
        .header("x-api-key", KEY)
        .send()
        .expect("GET");
    assert_eq!(resp.status().as_u16(), 200);
}

/// A token bucket per API key: past the burst, 429 with Retry-After and the JSON body, while
/// another key still has its own budget.
#[test]
fn rate_limit_answers_429_with_retry_after_per_key() {
    let s = Server::start_with(
        &format!(
            "[auth]\nkey_sha256 = [\"{}\", \"{}\"]\n[rate_limit]\nenabled = true\nper_second = 1\nburst = 3\n",
            hash_key(KEY),
            hash_key(OTHER_KEY)
        ),
        &[],
    );
    let get = |key: &str| {
        s.client()
            .get(s.url("/languages"))
            .header("x-api-key", key)
            .send()
            .expect("GET /languages")
    };
    let statuses: Vec<u16> = (0..6).map(|_| get(KEY).status().as_u16()).collect();
    assert_eq!(&statuses[..3], &[200, 200, 200], "{statuses:?}");
    assert!(statuses[3..].contains(&429), "{statuses:?}");
    let limited = get(KEY);
    assert_eq!(limited.status().as_u16(), 429);
    assert!(limited.headers().contains_key("retry-after"));
    let body: Value = limited.json().expect("json");
    assert_eq!(body["code"], "rate_limited");
    assert_eq!(
        get(OTHER_KEY).status().as_u16(),
        200,
        "another key has its own bucket"
    );
    assert_eq!(s.get("/health").0, 200, "probes are not rate limited");
}

/// Without auth the bucket is per client IP, and CODERUN_* environment overrides reach the
/// rate limiter too.
#[test]
fn rate_limit_per_client_ip_from_the_environment() {
    let s = Server::start_with(
        "",
        &[
            ("CODERUN_RATE_LIMIT_ENABLED", "true"),
            ("CODERUN_RATE_LIMIT_PER_SECOND", "1"),
            ("CODERUN_RATE_LIMIT_BURST", "2"),
        ],
    );
    let statuses: Vec<u16> = (0..5).map(|_| s.get("/languages").0).collect();
    assert_eq!(&statuses[..2], &[200, 200], "{statuses:?}");
    assert!(statuses[2..].contains(&429), "{statuses:?}");
}

/// CORS: an allowed origin's preflight and request get Access-Control-Allow-Origin for that
/// origin (never `*`, never credentials); another origin gets none; the default server
/// answers no origin at all.
#[test]
fn cors_allowlist() {
    let origin = "https://ide.example.com";
    let s = Server::start_with(&format!("[cors]\nallowed_origins = [\"{origin}\"]\n"), &[]);
    let preflight = |s: &Server, from: &str| {
        s.client()
            .request(reqwest::Method::OPTIONS, s.url("/execute"))
            .header("origin", from)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
            .expect("OPTIONS")
    };
    let ok = preflight(&s, origin);
    assert!(ok.status().is_success(), "{}", ok.status());
    assert_eq!(ok.headers()["access-control-allow-origin"], origin);
    assert!(!ok
        .headers()
        .contains_key("access-control-allow-credentials"));
    let denied = preflight(&s, "https://evil.example.net");
    assert!(!denied.headers().contains_key("access-control-allow-origin"));
    let real = s
        .client()
        .post(s.url("/execute"))
        .header("origin", origin)
        .json(&json!({"language": "python", "code": "print(1)"}))
        .send()
        .expect("POST");
    assert_eq!(real.headers()["access-control-allow-origin"], origin);
    let default = preflight(shared(), origin);
    assert!(!default
        .headers()
        .contains_key("access-control-allow-origin"));
}

/// A request past the server's deadline is answered 504 with the JSON body.
#[test]
fn request_deadline_is_a_504() {
    let s = Server::start_with("[server]\nrequest_deadline_s = 1\n", &[]);
    let (status, body) = s.execute(
        &json!({"language": "python", "code": "import time\ntime.sleep(3)", "timeout": 5}),
    );
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["code"], "deadline_exceeded");
}

/// The optional denylist (off by default) refuses code and files containing a pattern with
/// 422, for its language only.
#[test]
fn denylist_is_off_by_default_and_refuses_listed_patterns() {
    let ctypes = json!({"language": "python", "code": "import ctypes\nprint('ok')"});
    assert_eq!(
        shared().run(ctypes.clone())["output"],
        "ok\n",
        "off by default"
    );
    let s = Server::start_with("[engine.denylist]\npython = [\"import ctypes\"]\n", &[]);
    let (status, body) = s.execute(&ctypes);
    assert_eq!(status, 422, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or("")
            .contains("import ctypes"),
        "{body}"
    );
    let (status, _) = s.execute(&json!({"language": "python", "code": "import util",
        "files": [{"name": "util.py", "content": "import ctypes"}]}));
    assert_eq!(status, 422);
    let ts = s.run(json!({"language": "typescript", "code": "console.log('import ctypes')"}));
    assert_eq!(
        ts["output"], "import ctypes\n",
        "other languages are not affected"
    );
}

/// A client that trickles its request headers (slowloris) is cut off after the header read
/// timeout, while a client that sends them promptly on the same server is answered.
#[test]
fn slow_request_headers_are_cut_off() {
    use std::io::{Read, Write};
    let s = Server::start_with("[server]\nheader_read_timeout_s = 1\n", &[]);
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut slow = std::net::TcpStream::connect(&addr).expect("connect");
    slow.write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n")
        .expect("partial headers");
    slow.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    let _ = slow.read_to_end(&mut buf);
    let took = started.elapsed();
    assert!(
        took < std::time::Duration::from_secs(5),
        "slow client held for {took:?}"
    );
    let text = String::from_utf8_lossy(&buf);
    assert!(
        !text.contains("alive"),
        "the incomplete request was answered: {text}"
    );
    // Positive control: the same request sent at once is answered.
    assert_eq!(s.get("/livez").0, 200);
}
