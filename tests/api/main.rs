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
