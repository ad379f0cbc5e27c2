//! The guard at the HTTP edge, in process: API keys (schemes, empty and padded keys,
//! disagreeing headers, keys files, which routes need one), rate limits (per key, per client
//! IP or IPv6 /64, failed key attempts per client, `X-Forwarded-For` only from trusted
//! proxies, `Retry-After`, the sweep of refilled buckets), CORS (allowlist,
//! preflights, never `*` or credentials) and the request deadline.

mod support;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use axum::routing::get as route_get;
use axum::Router;
use coderun_api::guard::{self, AuthConfig, CorsConfig, Guard, RateLimitConfig};
use support::*;

const KEY: &str = "guard-test-key-0123456789";
const OTHER: &str = "guard-other-key-9876543210";
const PEER: &str = "203.0.113.10:40000";
const OTHER_PEER: &str = "203.0.113.20:40000";

fn no_rate() -> RateLimitConfig {
    RateLimitConfig::default()
}

fn no_cors() -> CorsConfig {
    CorsConfig::default()
}

/// Asserts a 401 with the JSON error body and `WWW-Authenticate: Bearer`.
#[track_caller]
fn assert_unauthorized(a: &Answer, what: &str) {
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{what}: {}", a.body);
    assert_eq!(a.body["code"], "unauthorized", "{what}: {}", a.body);
    assert!(a.body["detail"].is_string(), "{what}: {}", a.body);
    assert_eq!(a.header("www-authenticate"), Some("Bearer"), "{what}");
}

// --- API keys -------------------------------------------------------------------------------

#[tokio::test]
async fn bearer_in_any_case_and_x_api_key_are_accepted() {
    let app = app(&keys(&[KEY]), &no_rate(), &no_cors());
    let bearer = format!("Bearer {KEY}");
    let lower = format!("bearer {KEY}");
    let upper = format!("BEARER {KEY}");
    for headers in [
        [("authorization", bearer.as_str())],
        [("authorization", lower.as_str())],
        [("authorization", upper.as_str())],
        [("x-api-key", KEY)],
    ] {
        let a = get(&app, "/languages", PEER, &headers).await;
        assert_eq!(a.status, StatusCode::OK, "{headers:?}: {}", a.body);
    }
}

#[tokio::test]
async fn missing_wrong_and_other_scheme_keys_are_refused() {
    let app = app(&keys(&[KEY]), &no_rate(), &no_cors());
    // "Basic " + base64("user:" + KEY), and the key itself under other schemes.
    let basic = format!("Basic {KEY}");
    let token = format!("Token {KEY}");
    let glued = format!("Bearer{KEY}");
    for headers in [
        vec![],
        vec![("authorization", "Bearer wrong-key")],
        vec![(
            "authorization",
            "Basic dXNlcjpndWFyZC10ZXN0LWtleS0wMTIzNDU2Nzg5",
        )],
        vec![("authorization", basic.as_str())],
        vec![("authorization", token.as_str())],
        vec![("authorization", KEY)],
        vec![("authorization", glued.as_str())],
        vec![("x-api-key", "wrong-key")],
        vec![("x-api-key", OTHER)],
    ] {
        let a = get(&app, "/languages", PEER, &headers).await;
        assert_unauthorized(&a, &format!("{headers:?}"));
    }
}

/// An empty key is never a key, even when (by mistake) the hash of "" is configured.
#[tokio::test]
async fn empty_keys_are_refused_even_if_the_empty_key_is_configured() {
    let app = app(&keys(&["", KEY]), &no_rate(), &no_cors());
    for headers in [
        [("authorization", "Bearer")],
        [("authorization", "Bearer ")],
        [("authorization", "Bearer  \t ")],
        [("x-api-key", "")],
        [("x-api-key", "   ")],
    ] {
        let a = get(&app, "/languages", PEER, &headers).await;
        assert_unauthorized(&a, &format!("{headers:?}"));
    }
    // Positive control: the real key works on the same router.
    let a = get(&app, "/languages", PEER, &[("x-api-key", KEY)]).await;
    assert_eq!(a.status, StatusCode::OK);
}

/// Whitespace around the key is ignored (header values are trimmed on the wire anyway);
/// anything else that changes the key is a wrong key.
#[tokio::test]
async fn whitespace_around_a_key_is_ignored_but_the_key_must_be_exact() {
    let app = app(&keys(&[KEY]), &no_rate(), &no_cors());
    let padded_bearer = format!("Bearer   {KEY}  ");
    let tab_bearer = format!("Bearer\t{KEY}");
    let padded = format!("  {KEY}\t");
    for headers in [
        [("authorization", padded_bearer.as_str())],
        [("authorization", tab_bearer.as_str())],
        [("x-api-key", padded.as_str())],
    ] {
        let a = get(&app, "/languages", PEER, &headers).await;
        assert_eq!(a.status, StatusCode::OK, "{headers:?}: {}", a.body);
    }
    let longer = format!("{KEY}x");
    let shorter = &KEY[..KEY.len() - 1];
    let inner = format!("{} {}", &KEY[..5], &KEY[5..]);
    let upper = KEY.to_uppercase();
    for bad in [longer.as_str(), shorter, inner.as_str(), upper.as_str()] {
        let a = get(&app, "/languages", PEER, &[("x-api-key", bad)]).await;
        assert_unauthorized(&a, bad);
    }
}

/// When a request presents two keys that differ it is refused, whichever of them is valid:
/// the request does not get to pick the credential that is checked.
#[tokio::test]
async fn two_headers_with_different_keys_are_refused() {
    let app = app(&keys(&[KEY, OTHER]), &no_rate(), &no_cors());
    let bearer_key = format!("Bearer {KEY}");
    let bearer_other = format!("Bearer {OTHER}");
    for headers in [
        // Both valid, but different.
        vec![("authorization", bearer_key.as_str()), ("x-api-key", OTHER)],
        // One valid, one not, in either header.
        vec![("authorization", "Bearer wrong-key"), ("x-api-key", KEY)],
        vec![
            ("authorization", bearer_key.as_str()),
            ("x-api-key", "wrong-key"),
        ],
        // Repeated lines of the same header.
        vec![("x-api-key", KEY), ("x-api-key", OTHER)],
        vec![
            ("authorization", bearer_key.as_str()),
            ("authorization", bearer_other.as_str()),
        ],
        vec![("x-api-key", KEY), ("x-api-key", "")],
    ] {
        let a = get(&app, "/languages", PEER, &headers).await;
        assert_unauthorized(&a, &format!("{headers:?}"));
    }
    // The same key twice is fine, and a non-Bearer Authorization (for a proxy) is not a key.
    for headers in [
        vec![("authorization", bearer_key.as_str()), ("x-api-key", KEY)],
        vec![("x-api-key", KEY), ("x-api-key", KEY)],
        vec![
            ("authorization", "Basic cHJveHk6cGFzcw=="),
            ("x-api-key", KEY),
        ],
    ] {
        let a = get(&app, "/languages", PEER, &headers).await;
        assert_eq!(a.status, StatusCode::OK, "{headers:?}: {}", a.body);
    }
}

/// A temp file with `text`, removed on drop.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(name: &str, text: &str) -> TempFile {
        let path =
            std::env::temp_dir().join(format!("coderun-guard-{}-{name}", std::process::id()));
        std::fs::write(&path, text).expect("write temp file");
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A keys file may hold comments, blank and indented lines, CRLF line ends and upper-case
/// hex; its keys add to `key_sha256`.
#[tokio::test]
async fn keys_file_with_comments_blank_lines_and_crlf() {
    const THIRD: &str = "guard-third-key-55555";
    let file = TempFile::new(
        "keys-ok",
        &format!(
            "# keys for the ide\n\n   {}  \r\n# {}\r\n\t\n{}\n",
            guard::hash_key(KEY),
            guard::hash_key(THIRD),
            guard::hash_key(OTHER).to_uppercase()
        ),
    );
    let auth = AuthConfig {
        key_sha256: vec![guard::hash_key("inline-key-777")],
        keys_file: Some(file.0.clone()),
        ..AuthConfig::default()
    };
    let app = app(&auth, &no_rate(), &no_cors());
    for key in [KEY, OTHER, "inline-key-777"] {
        let a = get(&app, "/languages", PEER, &[("x-api-key", key)]).await;
        assert_eq!(a.status, StatusCode::OK, "{key}: {}", a.body);
    }
    // A commented-out hash is not a key.
    let a = get(&app, "/languages", PEER, &[("x-api-key", THIRD)]).await;
    assert_unauthorized(&a, "commented-out key");
}

#[test]
fn bad_keys_and_keys_files_are_config_errors() {
    let with_file = |text: &str, name: &str| {
        let file = TempFile::new(name, text);
        let auth = AuthConfig {
            keys_file: Some(file.0.clone()),
            ..AuthConfig::default()
        };
        (
            Guard::new(&auth, &no_rate()).err(),
            file.0.display().to_string(),
        )
    };
    let hash = guard::hash_key(KEY);
    for (name, text) in [
        ("not-hex", "not-a-hash\n".to_string()),
        ("inline-comment", format!("{hash} # alice\n")),
        ("short", format!("{}\n", &hash[..63])),
        ("clear-key", format!("{KEY}\n")),
    ] {
        let (err, path) = with_file(&text, name);
        let err = err.unwrap_or_else(|| panic!("{name}: accepted {text:?}"));
        assert!(err.contains(&path), "{name}: {err}");
    }
    let missing = AuthConfig {
        keys_file: Some("/nonexistent/coderun-keys".into()),
        ..AuthConfig::default()
    };
    let err = Guard::new(&missing, &no_rate())
        .err()
        .expect("missing file");
    assert!(err.contains("/nonexistent/coderun-keys"), "{err}");
    let inline = AuthConfig {
        key_sha256: vec![KEY.to_string()],
        ..AuthConfig::default()
    };
    assert!(
        Guard::new(&inline, &no_rate()).is_err(),
        "a clear key as a hash"
    );
}

/// Which routes need a key: all but `/livez`, and `/health`, `/metrics` only when protected.
#[tokio::test]
async fn probes_are_open_or_protected_by_config() {
    let guarded = [
        "/",
        "/languages",
        "/openapi.json",
        "/docs",
        "/docs/",
        "/nope",
    ];
    for (protect_health, protect_metrics) in
        [(false, false), (true, false), (false, true), (true, true)]
    {
        let auth = AuthConfig {
            protect_health,
            protect_metrics,
            ..keys(&[KEY])
        };
        let app = app(&auth, &no_rate(), &no_cors());
        let case = format!("protect_health={protect_health} protect_metrics={protect_metrics}");
        for (path, protected) in [
            ("/livez", false),
            ("/health", protect_health),
            ("/metrics", protect_metrics),
        ]
        .into_iter()
        .chain(guarded.iter().map(|p| (*p, true)))
        {
            let a = get(&app, path, PEER, &[]).await;
            if protected {
                assert_unauthorized(&a, &format!("{case} {path}"));
            } else {
                assert_ne!(
                    a.status,
                    StatusCode::UNAUTHORIZED,
                    "{case} {path} should be open"
                );
            }
            let a = get(&app, path, PEER, &[("x-api-key", KEY)]).await;
            assert_ne!(
                a.status,
                StatusCode::UNAUTHORIZED,
                "{case} {path} with the key"
            );
        }
        let a = send(&app, request(Method::POST, "/execute", PEER, &[])).await;
        assert_unauthorized(&a, &format!("{case} POST /execute"));
    }
}

#[tokio::test]
async fn without_keys_nothing_needs_a_key() {
    let app = app(&AuthConfig::default(), &no_rate(), &no_cors());
    for path in ["/", "/languages", "/health", "/metrics", "/openapi.json"] {
        let a = get(&app, path, PEER, &[("authorization", "Bearer whatever")]).await;
        assert_ne!(a.status, StatusCode::UNAUTHORIZED, "{path}: {}", a.body);
    }
}

/// OPTIONS skips the key check (for CORS preflights); without CORS no handler answers it, so
/// it gets nothing but an error.
#[tokio::test]
async fn options_without_a_key_reaches_no_handler() {
    let app = app(&keys(&[KEY]), &no_rate(), &no_cors());
    for path in [
        "/",
        "/languages",
        "/execute",
        "/health",
        "/metrics",
        "/openapi.json",
        "/docs/",
    ] {
        let a = send(&app, request(Method::OPTIONS, path, PEER, &[])).await;
        assert!(
            a.status.is_client_error(),
            "OPTIONS {path}: {} {}",
            a.status,
            a.body
        );
        assert!(a.body["code"].is_string(), "OPTIONS {path}: {}", a.body);
    }
}

// --- Rate limits ----------------------------------------------------------------------------

/// Statuses of `n` GETs of /languages in a row.
async fn statuses(app: &Router, n: usize, from: &str, headers: &[(&str, &str)]) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(get(app, "/languages", from, headers).await.status.as_u16());
    }
    out
}

/// With keys, the bucket is the key's: another key from the same address has its own, the
/// same key from another address shares it.
#[tokio::test]
async fn with_keys_the_bucket_is_per_key_not_per_address() {
    let app = app(&keys(&[KEY, OTHER]), &rate(1, 2, &[]), &no_cors());
    let key = [("x-api-key", KEY)];
    assert_eq!(statuses(&app, 3, PEER, &key).await, [200, 200, 429]);
    assert_eq!(
        statuses(&app, 1, PEER, &[("x-api-key", OTHER)]).await,
        [200]
    );
    assert_eq!(
        statuses(&app, 1, OTHER_PEER, &key).await,
        [429],
        "same key, other address"
    );
    // A Bearer token is the same key (the same bucket).
    let bearer = format!("Bearer {KEY}");
    assert_eq!(
        statuses(&app, 1, OTHER_PEER, &[("authorization", bearer.as_str())]).await,
        [429]
    );
}

/// Without keys, the bucket is the client address; an IPv4 client seen through an IPv6
/// socket (`::ffff:a.b.c.d`) is the same client.
#[tokio::test]
async fn without_keys_the_bucket_is_per_client_address() {
    let app = app(&AuthConfig::default(), &rate(1, 2, &[]), &no_cors());
    assert_eq!(statuses(&app, 3, PEER, &[]).await, [200, 200, 429]);
    assert_eq!(statuses(&app, 1, OTHER_PEER, &[]).await, [200]);
    assert_eq!(
        statuses(&app, 1, "203.0.113.10:50000", &[]).await,
        [429],
        "other port"
    );
    assert_eq!(
        statuses(&app, 1, "[::ffff:203.0.113.10]:40000", &[]).await,
        [429],
        "IPv4-mapped IPv6"
    );
}

/// An IPv6 client is its /64: another address in the same /64 is the same bucket, another
/// /64 is another client, directly or through a trusted proxy. IPv4, IPv4-mapped IPv6
/// included (all of it inside `::/64`), stays per address.
#[tokio::test]
async fn ipv6_clients_are_bucketed_by_their_64() {
    let app = app(
        &AuthConfig::default(),
        &rate(1, 2, &["10.0.0.1"]),
        &no_cors(),
    );
    assert_eq!(
        statuses(&app, 2, "[2001:db8:1:2::1]:40000", &[]).await,
        [200, 200]
    );
    for same in [
        "[2001:db8:1:2::2]:40000",
        "[2001:db8:1:2:ffff:ffff:ffff:ffff]:1",
        "[2001:db8:1:2:abcd:1234:5678:9abc]:40000",
    ] {
        assert_eq!(statuses(&app, 1, same, &[]).await, [429], "{same}");
    }
    for other in [
        "[2001:db8:1:3::1]:40000",
        "[2001:db8:1::1]:40000",
        "[2001:db8:8001:2::1]:40000",
    ] {
        assert_eq!(statuses(&app, 1, other, &[]).await, [200], "{other}");
    }
    let proxy = "10.0.0.1:1234";
    let via = |xff: &'static str| [("x-forwarded-for", xff)];
    assert_eq!(
        statuses(&app, 2, proxy, &via("2001:db8:5:6::1")).await,
        [200, 200]
    );
    assert_eq!(
        statuses(&app, 1, proxy, &via("2001:db8:5:6:1:2:3:4")).await,
        [429],
        "same /64 through the proxy"
    );
    assert_eq!(
        statuses(&app, 1, proxy, &via("[2001:db8:5:7::1]:443")).await,
        [200],
        "another /64 through the proxy"
    );
    assert_eq!(
        statuses(&app, 3, "[::ffff:198.51.100.30]:1", &[]).await,
        [200, 200, 429]
    );
    for other in ["[::ffff:198.51.100.31]:1", "198.51.100.32:1"] {
        assert_eq!(statuses(&app, 1, other, &[]).await, [200], "{other}");
    }
}

/// `X-Forwarded-For` from a peer that is not a trusted proxy changes nothing: a client
/// cannot get a fresh bucket by making one up.
#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let app = app(
        &AuthConfig::default(),
        &rate(1, 2, &["10.0.0.1"]),
        &no_cors(),
    );
    let spoof = |ip: &'static str| [("x-forwarded-for", ip)];
    assert_eq!(statuses(&app, 1, PEER, &spoof("198.51.100.1")).await, [200]);
    assert_eq!(statuses(&app, 1, PEER, &spoof("198.51.100.2")).await, [200]);
    for forged in ["198.51.100.3", "10.0.0.1", "198.51.100.4, 198.51.100.5"] {
        assert_eq!(
            statuses(&app, 1, PEER, &spoof(forged)).await,
            [429],
            "{forged}"
        );
    }
    assert_eq!(statuses(&app, 1, PEER, &[]).await, [429]);
    // The clients it named were never charged.
    let proxy = "10.0.0.1:1234";
    assert_eq!(
        statuses(&app, 1, proxy, &spoof("198.51.100.1")).await,
        [200]
    );
}

/// From a trusted proxy the client is the last address the proxy appended (in the last
/// `X-Forwarded-For` line); earlier entries are the client's own and may be forged.
#[tokio::test]
async fn forwarded_for_from_a_trusted_proxy_names_the_client() {
    let app = app(
        &AuthConfig::default(),
        &rate(1, 2, &["10.0.0.1"]),
        &no_cors(),
    );
    let proxy = "10.0.0.1:1234";
    let via = |xff: &'static str| [("x-forwarded-for", xff)];
    assert_eq!(
        statuses(&app, 3, proxy, &via("198.51.100.7")).await,
        [200, 200, 429]
    );
    assert_eq!(
        statuses(&app, 1, proxy, &via("198.51.100.8")).await,
        [200],
        "another client"
    );
    // The same client behind forged entries, a port, or an IPv6 view of the proxy.
    for xff in [
        "198.51.100.99, 198.51.100.7",
        "1.2.3.4,198.51.100.7",
        "198.51.100.7:5555",
    ] {
        assert_eq!(statuses(&app, 1, proxy, &via(xff)).await, [429], "{xff}");
    }
    let lines = [
        ("x-forwarded-for", "198.51.100.99"),
        ("x-forwarded-for", "198.51.100.7"),
    ];
    assert_eq!(
        statuses(&app, 1, proxy, &lines).await,
        [429],
        "two header lines"
    );
    assert_eq!(
        statuses(&app, 1, "[::ffff:10.0.0.1]:1234", &via("198.51.100.7")).await,
        [429],
        "the proxy over IPv6"
    );
    // Without a usable entry the proxy itself is the client.
    assert_eq!(statuses(&app, 2, proxy, &via("unknown")).await, [200, 200]);
    assert_eq!(statuses(&app, 1, proxy, &[]).await, [429]);
}

#[tokio::test]
async fn a_429_has_a_positive_integer_retry_after_and_the_json_body() {
    let app = app(&AuthConfig::default(), &rate(1, 1, &[]), &no_cors());
    assert_eq!(
        get(&app, "/languages", PEER, &[]).await.status,
        StatusCode::OK
    );
    for path in ["/languages", "/", "/openapi.json", "/nope"] {
        let a = get(&app, path, PEER, &[]).await;
        assert_eq!(
            a.status,
            StatusCode::TOO_MANY_REQUESTS,
            "{path}: {}",
            a.body
        );
        let wait = a.header("retry-after").expect("Retry-After");
        let secs: u64 = wait
            .parse()
            .unwrap_or_else(|_| panic!("Retry-After {wait:?}"));
        assert!(secs >= 1, "Retry-After {secs}");
        assert_eq!(a.body["code"], "rate_limited", "{}", a.body);
        let detail = a.body["detail"].as_str().expect("detail");
        assert!(detail.contains(&format!("{secs} s")), "{detail}");
        assert!(a
            .header("content-type")
            .unwrap()
            .starts_with("application/json"));
    }
    let a = send(&app, request(Method::POST, "/execute", PEER, &[])).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "POST /execute");
}

#[tokio::test]
async fn probes_are_never_rate_limited() {
    let app = app(&AuthConfig::default(), &rate(1, 1, &[]), &no_cors());
    assert_eq!(statuses(&app, 2, PEER, &[]).await, [200, 429]);
    for path in ["/livez", "/health", "/metrics"] {
        for _ in 0..3 {
            let a = get(&app, path, PEER, &[]).await;
            assert_ne!(a.status, StatusCode::TOO_MANY_REQUESTS, "{path}");
        }
    }
}

/// With keys, a request that fails the key check is charged to its client's address, with
/// the same quota: once that is spent, a missing or wrong key gets 429 + `Retry-After`
/// instead of 401, on every route that needs a key (protected probes too). Valid keys keep
/// their own buckets, other clients theirs, and open routes stay open.
#[tokio::test]
async fn failed_key_attempts_are_rate_limited_per_client() {
    let auth = AuthConfig {
        protect_metrics: true,
        ..keys(&[KEY])
    };
    let app = app(&auth, &rate(1, 2, &["10.0.0.1"]), &no_cors());
    let wrong = [("x-api-key", "wrong-key")];
    assert_eq!(statuses(&app, 3, PEER, &wrong).await, [401, 401, 429]);
    let missing = send(&app, request(Method::POST, "/execute", PEER, &[])).await;
    let guessed = get(&app, "/metrics", PEER, &[("authorization", "Bearer guess")]).await;
    for (what, a) in [("missing key", missing), ("protected /metrics", guessed)] {
        assert_eq!(
            a.status,
            StatusCode::TOO_MANY_REQUESTS,
            "{what}: {}",
            a.body
        );
        assert_eq!(a.body["code"], "rate_limited", "{what}: {}", a.body);
        let secs: u64 = a
            .header("retry-after")
            .expect("Retry-After")
            .parse()
            .unwrap();
        assert!(secs >= 1, "{what}: Retry-After {secs}");
        let detail = a.body["detail"].as_str().expect("detail");
        assert!(detail.contains(&format!("{secs} s")), "{what}: {detail}");
    }
    // Routes that need no key are not charged or limited (/health is 503 here: no
    // self-check has run).
    for path in ["/livez", "/health", "/livez"] {
        let a = get(&app, path, PEER, &[]).await;
        assert!(
            ![StatusCode::UNAUTHORIZED, StatusCode::TOO_MANY_REQUESTS].contains(&a.status),
            "{path}: {} {}",
            a.status,
            a.body
        );
    }
    // The valid key from the same address has its own bucket; probes never charge it.
    let key = [("x-api-key", KEY)];
    for _ in 0..3 {
        assert_eq!(
            get(&app, "/metrics", PEER, &key).await.status,
            StatusCode::OK
        );
    }
    assert_eq!(statuses(&app, 3, PEER, &key).await, [200, 200, 429]);
    // Another client has its own budget; through the trusted proxy the client is the one it
    // names, and a client that names one itself is still itself.
    assert_eq!(statuses(&app, 2, OTHER_PEER, &wrong).await, [401, 401]);
    let proxy = "10.0.0.1:1234";
    let via = |xff: &'static str| [("x-forwarded-for", xff), ("x-api-key", "wrong-key")];
    assert_eq!(
        statuses(&app, 3, proxy, &via("198.51.100.9")).await,
        [401, 401, 429]
    );
    assert_eq!(statuses(&app, 1, proxy, &via("198.51.100.10")).await, [401]);
    assert_eq!(statuses(&app, 1, PEER, &via("198.51.100.11")).await, [429]);
}

/// Without rate limits, failed key attempts are only ever 401.
#[tokio::test]
async fn without_rate_limits_failed_key_attempts_stay_401() {
    let app = app(&keys(&[KEY]), &no_rate(), &no_cors());
    let statuses = statuses(&app, 30, PEER, &[("x-api-key", "wrong-key")]).await;
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
}

/// A sweep drops the buckets that have refilled and keeps the spent ones (still spent).
#[tokio::test]
async fn a_sweep_drops_refilled_buckets_and_keeps_spent_ones() {
    // Four a second, burst 1: a bucket is full again 250 ms after its request.
    let state = support::state(&AuthConfig::default(), &rate(4, 1, &[]), &no_cors());
    let guard = state.guard.clone();
    let app = coderun_api::app(state);
    let client = |i: usize| format!("198.51.100.{i}:40000");
    for i in 1..=20 {
        assert_eq!(
            statuses(&app, 1, &client(i), &[]).await,
            [200],
            "client {i}"
        );
    }
    assert_eq!(guard.buckets(), 20);
    guard.sweep();
    assert_eq!(guard.buckets(), 20, "a sweep dropped spent buckets");
    assert_eq!(
        statuses(&app, 1, &client(20), &[]).await,
        [429],
        "a sweep forgot a spent bucket"
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    guard.sweep();
    assert_eq!(guard.buckets(), 0, "refilled buckets were kept");
    // A client that comes back starts full, as it would have anyway.
    assert_eq!(statuses(&app, 1, &client(20), &[]).await, [200]);
    assert_eq!(guard.buckets(), 1);
}

/// The app sweeps by itself every `SWEEP_EVERY` (Tokio's clock paused and moved by hand;
/// the buckets refill on the real clock in 1 ms).
#[tokio::test(start_paused = true)]
async fn the_app_sweeps_in_the_background() {
    let state = support::state(&AuthConfig::default(), &rate(1000, 1, &[]), &no_cors());
    let guard = state.guard.clone();
    let app = coderun_api::app(state);
    for i in 1..=5 {
        let from = format!("198.51.100.{i}:40000");
        assert_eq!(statuses(&app, 1, &from, &[]).await, [200]);
    }
    std::thread::sleep(Duration::from_millis(20));
    tokio::time::sleep(guard::SWEEP_EVERY - Duration::from_secs(1)).await;
    assert_eq!(guard.buckets(), 5, "swept before SWEEP_EVERY");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(guard.buckets(), 0, "not swept after SWEEP_EVERY");
}

#[test]
fn a_zero_rate_or_burst_is_a_config_error() {
    let auth = AuthConfig::default();
    assert!(Guard::new(&auth, &rate(0, 1, &[])).is_err());
    assert!(Guard::new(&auth, &rate(1, 0, &[])).is_err());
    // Off, the numbers are not used.
    let off = RateLimitConfig {
        enabled: false,
        ..rate(0, 0, &[])
    };
    assert!(Guard::new(&auth, &off).is_ok());
}

// --- CORS -------------------------------------------------------------------------------------

const ORIGIN: &str = "https://ide.example.com";

fn cors_for(origins: &[&str]) -> CorsConfig {
    CorsConfig {
        allowed_origins: origins.iter().map(|o| o.to_string()).collect(),
    }
}

/// No CORS answer may allow any origin (`*`) or credentials.
#[track_caller]
fn assert_no_wildcard_or_credentials(a: &Answer) {
    assert_ne!(a.header("access-control-allow-origin"), Some("*"));
    assert_eq!(a.header("access-control-allow-credentials"), None);
}

fn preflight(
    path: &str,
    origin: &str,
    method: &str,
    headers: &str,
) -> axum::http::Request<axum::body::Body> {
    request(
        Method::OPTIONS,
        path,
        PEER,
        &[
            ("origin", origin),
            ("access-control-request-method", method),
            ("access-control-request-headers", headers),
        ],
    )
}

#[tokio::test]
async fn an_allowed_origin_gets_the_header_and_others_get_none() {
    let app = app(
        &AuthConfig::default(),
        &no_rate(),
        &cors_for(&[ORIGIN, "http://localhost:3000"]),
    );
    for origin in [ORIGIN, "http://localhost:3000"] {
        let a = get(&app, "/languages", PEER, &[("origin", origin)]).await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.header("access-control-allow-origin"), Some(origin));
        let vary = a
            .headers
            .get_all("vary")
            .iter()
            .map(|v| v.to_str().unwrap().to_ascii_lowercase())
            .collect::<Vec<_>>()
            .join(",");
        assert!(vary.contains("origin"), "Vary: {vary}");
        assert_no_wildcard_or_credentials(&a);
    }
    for origin in [
        "https://evil.example.net",
        "https://ide.example.com.evil.net",
        "http://ide.example.com",
        "https://ide.example.com:8443",
        "null",
    ] {
        let a = get(&app, "/languages", PEER, &[("origin", origin)]).await;
        assert_eq!(a.header("access-control-allow-origin"), None, "{origin}");
        assert_no_wildcard_or_credentials(&a);
    }
    let a = get(&app, "/languages", PEER, &[]).await;
    assert_eq!(a.header("access-control-allow-origin"), None, "no Origin");
}

/// A preflight from an allowed origin is answered (before any key is asked for) with the
/// methods and headers the API uses; one from another origin gets no allow-origin.
#[tokio::test]
async fn preflights_are_answered_for_allowed_origins_only() {
    let app = app(&keys(&[KEY]), &no_rate(), &cors_for(&[ORIGIN]));
    let a = send(
        &app,
        preflight(
            "/execute",
            ORIGIN,
            "POST",
            "content-type, authorization, x-api-key",
        ),
    )
    .await;
    assert!(a.status.is_success(), "{} {}", a.status, a.body);
    assert_eq!(a.header("access-control-allow-origin"), Some(ORIGIN));
    let methods = a
        .header("access-control-allow-methods")
        .expect("allow-methods")
        .to_ascii_uppercase();
    assert!(
        methods.contains("POST") && methods.contains("GET"),
        "{methods}"
    );
    assert!(
        !methods.contains("DELETE") && !methods.contains("PUT"),
        "{methods}"
    );
    let allowed = a
        .header("access-control-allow-headers")
        .expect("allow-headers")
        .to_ascii_lowercase();
    for h in ["content-type", "authorization", "x-api-key", "x-request-id"] {
        assert!(allowed.contains(h), "{h} not in {allowed}");
    }
    assert_eq!(a.header("access-control-max-age"), Some("600"));
    assert_no_wildcard_or_credentials(&a);

    let denied = send(
        &app,
        preflight(
            "/execute",
            "https://evil.example.net",
            "POST",
            "content-type",
        ),
    )
    .await;
    assert_eq!(denied.header("access-control-allow-origin"), None);
    assert_no_wildcard_or_credentials(&denied);
}

/// Errors to an allowed origin carry the CORS headers too (so the page can read them), and
/// Retry-After and X-Request-Id are exposed to it.
#[tokio::test]
async fn errors_to_an_allowed_origin_are_readable_by_it() {
    let app = app(&keys(&[KEY]), &rate(1, 1, &[]), &cors_for(&[ORIGIN]));
    let a = get(&app, "/languages", PEER, &[("origin", ORIGIN)]).await;
    assert_unauthorized(&a, "no key");
    assert_eq!(a.header("access-control-allow-origin"), Some(ORIGIN));
    let ok = get(
        &app,
        "/languages",
        PEER,
        &[("origin", ORIGIN), ("x-api-key", KEY)],
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK);
    let limited = get(
        &app,
        "/languages",
        PEER,
        &[("origin", ORIGIN), ("x-api-key", KEY)],
    )
    .await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.header("access-control-allow-origin"), Some(ORIGIN));
    let exposed = limited
        .header("access-control-expose-headers")
        .expect("expose-headers")
        .to_ascii_lowercase();
    assert!(
        exposed.contains("retry-after") && exposed.contains("x-request-id"),
        "{exposed}"
    );
    assert_no_wildcard_or_credentials(&limited);
}

#[tokio::test]
async fn without_an_allowlist_there_are_no_cors_headers() {
    assert!(guard::cors(&CorsConfig::default()).expect("ok").is_none());
    let app = app(&AuthConfig::default(), &no_rate(), &no_cors());
    let a = send(&app, preflight("/execute", ORIGIN, "POST", "content-type")).await;
    assert_eq!(a.header("access-control-allow-origin"), None);
    let a = get(&app, "/languages", PEER, &[("origin", ORIGIN)]).await;
    assert_eq!(a.header("access-control-allow-origin"), None);
}

#[test]
fn wildcards_and_anything_but_exact_origins_are_config_errors() {
    for bad in [
        "*",
        "https://ide.example.com/",
        "ide.example.com",
        "null",
        "file://",
        "https://a.com\n",
    ] {
        assert!(
            guard::cors(&cors_for(&[ORIGIN, bad])).is_err(),
            "{bad:?} accepted"
        );
    }
    assert!(guard::cors(&cors_for(&[ORIGIN, "http://localhost:3000"]))
        .expect("ok")
        .is_some());
}

// --- Deadline ---------------------------------------------------------------------------------

/// The guard cuts a request at the deadline with a JSON 504; a fast one is untouched.
#[tokio::test]
async fn requests_past_the_deadline_are_a_504() {
    let mut state = support::state(&AuthConfig::default(), &no_rate(), &no_cors());
    state.deadline = Duration::from_millis(200);
    let app = Router::new()
        .route(
            "/slow",
            route_get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "late"
            }),
        )
        .route("/fast", route_get(|| async { "fast" }))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::guard,
        ))
        .with_state(state);
    let started = std::time::Instant::now();
    let a = get(&app, "/slow", PEER, &[]).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(a.status, StatusCode::GATEWAY_TIMEOUT, "{}", a.body);
    assert_eq!(a.body["code"], "deadline_exceeded", "{}", a.body);
    let a = get(&app, "/fast", PEER, &[]).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body, "fast");
}
