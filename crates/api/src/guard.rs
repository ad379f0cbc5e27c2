//! Who may call the API and how often: API keys, rate limits, CORS, the request deadline.
//!
//! - API keys (optional): `Authorization: Bearer <key>` or `X-API-Key: <key>`. Only SHA-256
//!   hashes of the keys are kept; a presented key is hashed and compared with every stored
//!   hash in constant time. Missing, empty or wrong key, or two headers with different keys:
//!   401 with the JSON error body. `/livez` is always open; `/health` and `/metrics` are open
//!   unless configured otherwise.
//! - Rate limits (off by default): a token bucket per API key, or per client IP when auth is
//!   off (`X-Forwarded-For` is believed only from a configured trusted proxy, and only the
//!   entry that proxy appended; an IPv6 client is its /64). With auth on, requests that fail
//!   the key check are limited per client IP the same way, so keys cannot be guessed at
//!   full speed. Over the budget: 429 with `Retry-After`. Every [`SWEEP_EVERY`] a
//!   background task drops the buckets that have refilled (they are no different from new
//!   ones), so memory follows the clients seen in the last minute or so, not every client
//!   ever seen.
//! - CORS: an allowlist of exact origins (default none); preflights are answered; `*` and
//!   credentials are never allowed.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::{ApiError, AppState};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// SHA-256 (hex) of each accepted API key (`coderun config hash-key KEY` prints one).
    pub key_sha256: Vec<String>,
    /// A file with more hashes, one per line (`#` comments allowed).
    pub keys_file: Option<std::path::PathBuf>,
    pub protect_health: bool,
    pub protect_metrics: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    pub enabled: bool,
    /// Sustained requests per second per key (or client IP).
    pub per_second: u32,
    /// Requests allowed at once above the sustained rate.
    pub burst: u32,
    /// Peers whose `X-Forwarded-For` is believed (reverse proxies).
    pub trusted_proxies: Vec<IpAddr>,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            enabled: false,
            per_second: 10,
            burst: 20,
            trusted_proxies: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsConfig {
    /// Exact origins allowed to call the API from a browser, e.g. "https://ide.example.com".
    pub allowed_origins: Vec<String>,
}

/// The checks built from the config, shared by every request.
pub struct Guard {
    keys: Vec<[u8; 32]>,
    protect_health: bool,
    protect_metrics: bool,
    limiter: Option<(DefaultKeyedRateLimiter<String>, Vec<IpAddr>)>,
    /// Set once the background sweep of idle buckets is running.
    sweeping: AtomicBool,
}

/// How often the background task drops rate-limit buckets that have refilled.
pub const SWEEP_EVERY: Duration = Duration::from_secs(60);

pub fn hash_key(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn parse_hash(s: &str) -> Result<[u8; 32], String> {
    let s = s.trim();
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "{s:?} is not a SHA-256 hex digest (64 hex digits); use `coderun config hash-key KEY`"
        ));
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// Constant-time equality of two digests.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Guard {
    pub fn new(auth: &AuthConfig, rate: &RateLimitConfig) -> Result<Guard, String> {
        let mut keys = Vec::new();
        for h in &auth.key_sha256 {
            keys.push(parse_hash(h)?);
        }
        if let Some(file) = &auth.keys_file {
            let text = std::fs::read_to_string(file)
                .map_err(|e| format!("auth.keys_file {}: {e}", file.display()))?;
            for line in text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
            {
                keys.push(
                    parse_hash(line)
                        .map_err(|e| format!("auth.keys_file {}: {e}", file.display()))?,
                );
            }
        }
        let limiter = if rate.enabled {
            let per_second = NonZeroU32::new(rate.per_second)
                .ok_or("rate_limit.per_second must be greater than 0")?;
            let burst =
                NonZeroU32::new(rate.burst).ok_or("rate_limit.burst must be greater than 0")?;
            let quota = Quota::per_second(per_second).allow_burst(burst);
            Some((RateLimiter::keyed(quota), rate.trusted_proxies.clone()))
        } else {
            None
        };
        Ok(Guard {
            keys,
            protect_health: auth.protect_health,
            protect_metrics: auth.protect_metrics,
            limiter,
            sweeping: AtomicBool::new(false),
        })
    }

    /// A guard that lets everything through (no keys, no limits).
    pub fn open() -> Guard {
        Guard {
            keys: Vec::new(),
            protect_health: false,
            protect_metrics: false,
            limiter: None,
            sweeping: AtomicBool::new(false),
        }
    }

    /// How many rate-limit buckets are held (0 without rate limits).
    pub fn buckets(&self) -> usize {
        self.limiter.as_ref().map_or(0, |(l, _)| l.len())
    }

    /// Drops the buckets that have fully refilled: a client that comes back gets a new one,
    /// which is the same thing.
    pub fn sweep(&self) {
        if let Some((limiter, _)) = &self.limiter {
            let before = limiter.len();
            limiter.retain_recent();
            limiter.shrink_to_fit();
            tracing::debug!(before, after = limiter.len(), "rate-limit buckets swept");
        }
    }

    /// Starts the background task that calls [`Guard::sweep`] every [`SWEEP_EVERY`] (once
    /// per guard, only with rate limits, only inside a Tokio runtime). The task holds no
    /// strong reference: it ends when the guard is dropped.
    pub fn start_sweeping(self: &Arc<Self>) {
        if self.limiter.is_none() || self.sweeping.swap(true, Ordering::SeqCst) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.sweeping.store(false, Ordering::SeqCst);
            return;
        };
        let guard = Arc::downgrade(self);
        runtime.spawn(async move {
            let start = tokio::time::Instant::now() + SWEEP_EVERY;
            let mut every = tokio::time::interval_at(start, SWEEP_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                match guard.upgrade() {
                    Some(g) => g.sweep(),
                    None => break,
                }
            }
        });
    }

    fn needs_key(&self, path: &str) -> bool {
        match path {
            _ if self.keys.is_empty() => false,
            "/livez" => false,
            "/health" => self.protect_health,
            "/metrics" => self.protect_metrics,
            _ => true,
        }
    }

    /// The presented key's hash if it is one of ours.
    fn check_key(&self, req: &Request) -> Option<String> {
        let presented = presented_key(req.headers())?;
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        // Compare with every key (no early exit), in constant time each.
        let found = self
            .keys
            .iter()
            .fold(false, |acc, k| acc | same(k, &digest));
        found.then(|| hash_key(presented))
    }
}

/// The one API key a request presents: `Authorization: Bearer <key>` (the scheme in any case)
/// and/or `X-API-Key: <key>`, surrounding whitespace ignored. None when there is no key, the
/// key is empty, a header is unreadable, or the request presents keys that disagree (a
/// request must not be able to pick which of two credentials is checked).
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    let mut keys = Vec::new();
    for v in headers.get_all(header::AUTHORIZATION) {
        let v = v.to_str().ok()?.trim();
        let (scheme, rest) = v.split_once([' ', '\t']).unwrap_or((v, ""));
        // Other schemes (`Basic` for a proxy, say) are not API keys.
        if scheme.eq_ignore_ascii_case("bearer") {
            keys.push(rest.trim());
        }
    }
    for v in headers.get_all("x-api-key") {
        keys.push(v.to_str().ok()?.trim());
    }
    let first = *keys.first()?;
    (!first.is_empty() && keys.iter().all(|k| *k == first)).then_some(first)
}

/// The client a request is from: the peer, or, when the peer is a trusted proxy, the last
/// address in the last `X-Forwarded-For` line (what that proxy appended; earlier entries are
/// the client's own and may be forged). IPv4-mapped IPv6 addresses count as IPv4.
fn client_ip(req: &Request, trusted: &[IpAddr]) -> Option<IpAddr> {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()?
        .0
        .ip()
        .to_canonical();
    if trusted.iter().any(|t| t.to_canonical() == peer) {
        let forwarded = req
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .map(str::trim)
            .and_then(|ip| {
                ip.parse::<IpAddr>()
                    .or_else(|_| ip.parse::<SocketAddr>().map(|a| a.ip()))
                    .ok()
            });
        return Some(forwarded.map_or(peer, |ip| ip.to_canonical()));
    }
    Some(peer)
}

/// The rate-limit bucket of a client address. IPv4 (IPv4-mapped IPv6 included: `client_ip`
/// gives those as IPv4) is per address; IPv6 is per /64, the smallest block a host or
/// customer is usually given, so moving around inside it does not get a fresh bucket.
fn ip_bucket(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("ip:{v4}"),
        IpAddr::V6(v6) => format!(
            "ip:{}/64",
            Ipv6Addr::from(u128::from(v6) & !(u128::MAX >> 64))
        ),
    }
}

/// Auth, then the rate limit, then the request deadline. A request with a valid key is
/// charged to its key's bucket; one that fails the key check to its client's (per IP, as
/// without auth), so guessing keys is rate limited too, and its 401 becomes a 429 once that
/// budget is spent. Probes (`/livez`, `/health`, `/metrics`) are limited only when they
/// refuse a key.
pub async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let g = &state.guard;
    let path = req.uri().path().to_string();
    let needs_key = g.needs_key(&path) && req.method() != Method::OPTIONS;
    let key_id = if needs_key { g.check_key(&req) } else { None };
    let refused = needs_key && key_id.is_none();
    let probe = matches!(path.as_str(), "/livez" | "/health" | "/metrics");
    if let Some((limiter, trusted)) = &g.limiter {
        if !probe || refused {
            let bucket = key_id
                .map(|k| format!("key:{k}"))
                .or_else(|| client_ip(&req, trusted).map(ip_bucket))
                .unwrap_or_else(|| "unknown".into());
            if let Err(not_until) = limiter.check_key(&bucket) {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                // Rounded up: a client that waits exactly this long gets its token.
                let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
                let detail = if refused {
                    format!("too many requests without a valid API key from this client; retry in {secs} s")
                } else {
                    format!("rate limit exceeded; retry in {secs} s")
                };
                return ApiError {
                    retry_after_s: Some(secs),
                    ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", detail)
                }
                .into_response();
            }
        }
    }
    if refused {
        let mut resp = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or invalid API key; send it as `Authorization: Bearer <key>` or `X-API-Key: <key>`",
        )
        .into_response();
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return resp;
    }
    match tokio::time::timeout(state.deadline, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "deadline_exceeded",
            format!(
                "the request took longer than the server's {} s deadline",
                state.deadline.as_secs()
            ),
        )
        .into_response(),
    }
}

/// The CORS layer for an allowlist (None: no CORS headers, browsers refuse cross-origin use).
pub fn cors(config: &CorsConfig) -> Result<Option<tower_http::cors::CorsLayer>, String> {
    if config.allowed_origins.is_empty() {
        return Ok(None);
    }
    let mut origins = Vec::new();
    for o in &config.allowed_origins {
        if o == "*" || !(o.starts_with("http://") || o.starts_with("https://")) || o.ends_with('/')
        {
            return Err(format!("cors.allowed_origins: {o:?} is not an exact origin like \"https://ide.example.com\" (\"*\" is not allowed)"));
        }
        origins.push(
            HeaderValue::from_str(o).map_err(|e| format!("cors.allowed_origins: {o:?}: {e}"))?,
        );
    }
    Ok(Some(
        tower_http::cors::CorsLayer::new()
            .allow_origin(origins)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                "x-api-key".parse().unwrap_or(header::CONTENT_TYPE),
                "x-request-id".parse().unwrap_or(header::CONTENT_TYPE),
            ])
            .expose_headers([
                "x-request-id".parse().unwrap_or(header::CONTENT_TYPE),
                header::RETRY_AFTER,
            ])
            .max_age(Duration::from_secs(600)),
    ))
}
