//! API suite: the real server, real programs in the real sandbox, asserting on the JSON.
//!
//! Modules by theme: `python`, `typescript`, `rust_lang` (per-language behaviour), `common_run`
//! (aliases, timeouts, stdin), `errors` (every API error with its status and code) and
//! `service` (health, index, languages, 404/405, overload), `openapi` (`/openapi.json`, `/docs`),
//! `docs` (the README's request, response and error tables against the code).

#[path = "../common/mod.rs"]
mod common;

mod common_run;
mod docs;
mod errors;
mod openapi;
mod production;
mod python;
mod rust_lang;
mod service;
mod typescript;

use common::*;

/// Runs `code` in `language` on the shared server and returns the 200 body.
pub fn run_code(language: &str, code: &str) -> Value {
    shared().run(json!({"code": code, "language": language}))
}

/// Asserts that `r` is a clean, successful run of `language` (any output).
#[track_caller]
pub fn assert_success(r: &Value, language: &str) {
    assert_eq!(r["status"], "ok", "{r:#}");
    assert_eq!(r["success"], true, "{r:#}");
    assert_eq!(r["exit_code"], 0, "{r:#}");
    assert_eq!(r["signal"], Value::Null, "{r:#}");
    assert_eq!(r["output"], r["stdout"], "{r:#}");
    assert_eq!(r["language"], language, "{r:#}");
    assert_eq!(r["truncated"], false, "{r:#}");
}

/// Asserts that `r` is a clean, successful run of `language` that printed exactly `stdout`.
#[track_caller]
pub fn assert_ok(r: &Value, language: &str, stdout: &str) {
    assert_success(r, language);
    assert_eq!(r["stdout"], stdout, "{r:#}");
}

/// Asserts a failed run that exited by itself with `code`.
#[track_caller]
pub fn assert_exit(r: &Value, code: i64) {
    assert_eq!(r["status"], "runtime_error", "{r:#}");
    assert_eq!(r["success"], false, "{r:#}");
    assert_eq!(r["exit_code"], code, "{r:#}");
    assert_eq!(r["signal"], Value::Null, "{r:#}");
}

/// The string field `key` of `r` (panics with the body when it is not a string).
#[track_caller]
pub fn text<'a>(r: &'a Value, key: &str) -> &'a str {
    r[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is not a string in {r:#}"))
}

/// Runs named jobs on their own threads and fails with the list of every job that panicked
/// (so one broken case does not hide the others).
pub fn parallel<'a>(jobs: Vec<(String, Box<dyn FnOnce() + Send + 'a>)>) {
    let failures: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .into_iter()
            .map(|(name, job)| (name, scope.spawn(job)))
            .collect();
        handles
            .into_iter()
            .filter_map(|(name, h)| {
                h.join().err().map(|e| {
                    let msg = e
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    format!("[{name}] {msg}")
                })
            })
            .collect()
    });
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// Boxes a job for [`parallel`].
pub fn job<'a>(
    name: &str,
    f: impl FnOnce() + Send + 'a,
) -> (String, Box<dyn FnOnce() + Send + 'a>) {
    (name.to_string(), Box::new(f))
}

/// An answer read off the wire: status, content type and body text.
pub struct WireAnswer {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

impl WireAnswer {
    /// The body as JSON (a JSON string if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| Value::String(self.body.clone()))
    }
}

/// POSTs `body` to `path` over a plain TCP connection and returns the server's answer, also
/// when the server answers before it has read the whole body. Over the body limit a server
/// may answer 413 and close as soon as the limit is reached; the rest of the body then meets
/// EPIPE or ECONNRESET, and an HTTP client that writes the whole body before it reads reports
/// that error instead of the answer (this made the suite flaky). Here one thread writes while
/// this one reads, and a write cut short by the server's close is expected, not a failure.
pub fn post_on_the_wire(s: &Server, path: &str, body: &[u8]) -> WireAnswer {
    use std::io::{ErrorKind, Read, Write};
    let addr = s.base.trim_start_matches("http://");
    let stream = std::net::TcpStream::connect(addr).expect("connect to the server");
    let timeout = Some(std::time::Duration::from_secs(120));
    stream.set_read_timeout(timeout).expect("read timeout");
    stream.set_write_timeout(timeout).expect("write timeout");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut writer = stream.try_clone().expect("clone the stream");
    let mut reader = stream;
    let (wrote, raw) = std::thread::scope(|scope| {
        let write = scope.spawn(move || {
            writer
                .write_all(head.as_bytes())
                .and_then(|()| writer.write_all(body))
        });
        let mut raw = Vec::new();
        let mut buf = [0u8; 16 << 10];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // The server closed with part of the body unread: its answer, read before
                // the reset, is complete.
                Err(e) if e.kind() == ErrorKind::ConnectionReset && !raw.is_empty() => break,
                Err(e) => panic!("reading the answer to POST {path}: {e}"),
            }
        }
        (write.join().expect("writer thread"), raw)
    });
    if let Err(e) = wrote {
        assert!(
            matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset),
            "writing POST {path}: {e}"
        );
    }
    parse_answer(path, &raw)
}

/// Parses a raw HTTP/1.1 response (a `Content-Length` or chunked body, or one up to the close).
fn parse_answer(path: &str, raw: &[u8]) -> WireAnswer {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete answer to POST {path}: {raw:?}"));
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let rest = &raw[end + 4..];
    let status_line = head.split("\r\n").next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let header = |name: &str| {
        head.split("\r\n").skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    let cut = format!("the answer to POST {path} is cut short: {head}");
    let body: Vec<u8> =
        if header("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
            let mut body = Vec::new();
            let mut rest = rest;
            loop {
                let line_end = rest.windows(2).position(|w| w == b"\r\n").expect(&cut);
                let size = std::str::from_utf8(&rest[..line_end])
                    .ok()
                    .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
                    .expect("chunk size");
                if size == 0 {
                    break;
                }
                let chunk = rest.get(line_end + 2..line_end + 2 + size).expect(&cut);
                body.extend_from_slice(chunk);
                rest = rest.get(line_end + 4 + size..).expect(&cut);
            }
            body
        } else {
            match header("content-length").and_then(|l| l.parse::<usize>().ok()) {
                Some(len) => rest.get(..len).expect(&cut).to_vec(),
                None => rest.to_vec(),
            }
        };
    WireAnswer {
        status,
        content_type: header("content-type").unwrap_or_default(),
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}
