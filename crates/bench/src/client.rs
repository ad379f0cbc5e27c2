//! coderun as a client sees it: the servers the benchmark starts (private binary, free port,
//! its own config), and `POST /execute` over a new TCP connection per request.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use serde_json::{json, Value};

use crate::error::BenchError;
use crate::langs::Lang;

/// The HTTP client: no proxy, no keep-alive (every request opens its own connection, as a
/// one-off client would), generous timeout (a queued Rust compile can take a while).
pub fn client() -> Result<Client, BenchError> {
    Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(120))
        .build()
        .map_err(BenchError::HttpClient)
}

/// `GET url` as (status, JSON body); Err when there was no answer.
fn get_json(http: &Client, url: &str, timeout: Duration) -> Result<(u16, Value), String> {
    let r = http
        .get(url)
        .timeout(timeout)
        .send()
        .map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    let body = r.json::<Value>().unwrap_or(Value::Null);
    Ok((status, body))
}

/// The warm pools of a server as `/health` reports them (`{"python/run": 2, ...}`).
pub fn pools(http: &Client, url: &str) -> Option<Value> {
    get_json(http, &format!("{url}/health"), Duration::from_secs(5))
        .ok()
        .and_then(|(_, v)| v.get("pools").cloned())
}

/// Pools as `python/run 2, typescript/run 2`.
pub fn show_pools(pools: Option<&Value>) -> String {
    match pools.and_then(Value::as_object) {
        Some(m) if m.is_empty() => "none".into(),
        Some(m) => m
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", "),
        None => "n/a".into(),
    }
}

/// The most boxes each warm pool may hold (`{"python/run": 8, ...}`), from `/health`'s
/// `pool_max`; None when the server does not report it.
pub fn pool_max(http: &Client, url: &str) -> Option<BTreeMap<String, u64>> {
    let (_, v) = get_json(http, &format!("{url}/health"), Duration::from_secs(5)).ok()?;
    let m = v.get("pool_max")?.as_object()?;
    Some(
        m.iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_u64()?)))
            .collect(),
    )
}

/// One language as `/languages` shows it.
pub struct ServerLanguage {
    pub name: String,
    pub available: bool,
    /// The version line, or why the language is unavailable.
    pub detail: String,
}

/// The server's languages; None when it did not answer with a list.
pub fn languages(http: &Client, url: &str) -> Option<Vec<ServerLanguage>> {
    let (_, v) = get_json(http, &format!("{url}/languages"), Duration::from_secs(10)).ok()?;
    let list = v.get("languages")?.as_array()?;
    Some(
        list.iter()
            .filter_map(|l| {
                let text = |k: &str| l.get(k).and_then(Value::as_str).map(str::to_string);
                let available = l.get("available")?.as_bool()?;
                Some(ServerLanguage {
                    name: text("name")?,
                    available,
                    detail: if available {
                        text("version").unwrap_or_default()
                    } else {
                        text("error").unwrap_or_else(|| "unavailable".into())
                    },
                })
            })
            .collect(),
    )
}

/// The versions, `python Python 3.11.7, ...`.
pub fn versions(langs: Option<&[ServerLanguage]>) -> String {
    let shown: Vec<String> = langs
        .into_iter()
        .flatten()
        .filter(|l| l.available)
        .map(|l| format!("{} {}", l.name, l.detail))
        .collect();
    if shown.is_empty() {
        "?".into()
    } else {
        shown.join(", ")
    }
}

/// A `coderun serve` started by the benchmark; stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Server {
    child: Child,
    pub pid: u32,
    tag: String,
    pub url: String,
    log_path: PathBuf,
    stopped: bool,
}

impl Server {
    /// `<binary> --config <config> serve --listen 127.0.0.1:<free port> --languages-dir
    /// <langdir>`, with no `CODERUN_*` variables (the config file is the whole config);
    /// returns once `/health` answers 200.
    pub fn start(
        http: &Client,
        binary: &Path,
        config: &Path,
        langdir: &Path,
        work: &Path,
        tag: &str,
    ) -> Result<Server, BenchError> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| BenchError::server(tag, format!("cannot find a free port: {e}")))?
            .port();
        let log_path = work.join(format!("server-{tag}.log"));
        let log = File::create(&log_path)
            .and_then(|f| Ok((f.try_clone()?, f)))
            .map_err(|e| BenchError::io("cannot create", &log_path, e))?;
        let mut cmd = Command::new(binary);
        cmd.arg("--config")
            .arg(config)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--languages-dir")
            .arg(langdir)
            .stdin(Stdio::null())
            .stdout(log.0)
            .stderr(log.1);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("CODERUN_") {
                cmd.env_remove(k);
            }
        }
        let child = cmd.spawn().map_err(|e| {
            BenchError::server(tag, format!("cannot start {}: {e}", binary.display()))
        })?;
        let mut server = Server {
            pid: child.id(),
            child,
            tag: tag.to_string(),
            url: format!("http://127.0.0.1:{port}"),
            log_path,
            stopped: false,
        };
        // On an error, dropping `server` stops it: never leave one behind.
        server.wait_healthy(http)?;
        Ok(server)
    }

    fn wait_healthy(&mut self, http: &Client) -> Result<(), BenchError> {
        let deadline = Instant::now() + Duration::from_secs(180);
        let mut unhealthy_since: Option<Instant> = None;
        let fail = |s: &Server, message: String| BenchError::server(&s.tag, message);
        loop {
            match self.child.try_wait() {
                Ok(None) => {}
                Ok(Some(status)) => {
                    return Err(fail(
                        self,
                        format!(
                            "exited ({status}); see {}:\n{}",
                            self.log_path.display(),
                            self.tail()
                        ),
                    ))
                }
                Err(e) => return Err(fail(self, format!("cannot wait for it: {e}"))),
            }
            match get_json(
                http,
                &format!("{}/health", self.url),
                Duration::from_secs(2),
            ) {
                Ok((200, _)) => return Ok(()),
                // It answers, unhealthy: give its self-check a while.
                Ok((status, body)) => {
                    let since = *unhealthy_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > Duration::from_secs(30) {
                        return Err(fail(
                            self,
                            format!(
                                "unhealthy for 30 s (HTTP {status}: {body}); see {}",
                                self.log_path.display()
                            ),
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(_) => {
                    if Instant::now() > deadline {
                        return Err(fail(
                            self,
                            format!(
                                "not answering after 180 s; see {}:\n{}",
                                self.log_path.display(),
                                self.tail()
                            ),
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }

    /// Waits until the warm pools stop changing (the same for 2 s, at most `limit`); returns
    /// them.
    pub fn settle(&self, http: &Client, limit: Duration) -> Option<Value> {
        let start = Instant::now();
        let mut last = pools(http, &self.url);
        let mut since = Instant::now();
        while start.elapsed() < limit {
            std::thread::sleep(Duration::from_millis(200));
            let now = pools(http, &self.url);
            if now != last {
                last = now;
                since = Instant::now();
            } else if since.elapsed() >= Duration::from_secs(2) {
                break;
            }
        }
        last
    }

    fn tail(&self) -> String {
        let text = std::fs::read(&self.log_path).unwrap_or_default();
        let start = text.len().saturating_sub(2000);
        String::from_utf8_lossy(&text[start..]).into_owned()
    }

    /// SIGTERM (the server drains, destroys its pools and exits), SIGKILL after 10 s.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        if matches!(self.child.try_wait(), Ok(None)) {
            if let Ok(pid) = libc::pid_t::try_from(self.pid) {
                // SAFETY: kill(2) takes no pointers; the pid is our own child, which has not
                // been waited for, so it cannot have been reused by another process.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What the server said about one run (seconds), for "where the time goes".
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub compile_time: Option<f64>,
    pub wall_time: Option<f64>,
    pub compile_cached: Option<bool>,
    pub pooled: Option<bool>,
}

/// `POST /execute` against the main server (and the /bin/true one), checking every answer.
pub struct Api<'a> {
    http: &'a Client,
    url: String,
    true_url: Option<String>,
    nonce: String,
    counter: AtomicU64,
    /// When the last `POST /execute` (or bare run that should count as one) ended.
    last_busy: Mutex<Instant>,
}

impl<'a> Api<'a> {
    pub fn new(http: &'a Client, url: String, true_url: Option<String>) -> Api<'a> {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        Api {
            http,
            url,
            true_url,
            nonce: format!("{:x}{millis:x}", std::process::id()),
            counter: AtomicU64::new(0),
            last_busy: Mutex::new(Instant::now()),
        }
    }

    /// Counts now as the end of a request: the next [`Api::wait_idle`] waits from here.
    pub fn touch(&self) {
        *self.last_busy.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    /// Sleeps until no request of ours has ended for `idle` (other clients of a server given
    /// with --url are not seen).
    pub fn wait_idle(&self, idle: Duration) {
        let last = *self.last_busy.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(left) = idle.checked_sub(last.elapsed()) {
            std::thread::sleep(left);
        }
    }

    /// (status, JSON body if any); Err when there was no answer.
    pub fn post(&self, url: &str, body: &Value) -> Result<(u16, Option<Value>), String> {
        let r = self.http.post(format!("{url}/execute")).json(body).send();
        let r = r.map_err(|e| {
            let kind = if e.is_timeout() {
                "timeout"
            } else if e.is_connect() {
                "connect"
            } else {
                "request"
            };
            format!("connection: {kind}")
        });
        let out = r.map(|r| {
            let status = r.status().as_u16();
            (status, r.json::<Value>().ok())
        });
        self.touch();
        out
    }

    /// Hello world; `fresh` appends a comment with a nonce: a new program, a compile-cache
    /// miss (languages without a compile step always get the same source).
    pub fn source(&self, lang: &Lang, fresh: bool) -> String {
        let comment = lang.data.map(|d| d.comment);
        match comment {
            Some(comment) if fresh && lang.compiled() => {
                let n = self.counter.fetch_add(1, Ordering::Relaxed) + 1;
                format!("{}\n{comment} bench {}-{n}\n", lang.hello(), self.nonce)
            }
            _ => lang.hello().to_string(),
        }
    }

    /// One run; Err with a short error class (for counting) unless it was a 200 with status
    /// ok and the expected output.
    pub fn call(&self, lang: &Lang, fresh: bool) -> Result<Sample, String> {
        let url = if lang.is_box {
            self.true_url.as_deref().ok_or("no /bin/true server")?
        } else {
            self.url.as_str()
        };
        let body = json!({"code": self.source(lang, fresh), "language": lang.name()});
        let (status, data) = self.post(url, &body)?;
        let data = data.unwrap_or(Value::Null);
        if status != 200 {
            let code = data.get("code").and_then(Value::as_str).unwrap_or("");
            return Err(format!("HTTP {status} {code}").trim().to_string());
        }
        let run_status = data.get("status").and_then(Value::as_str).unwrap_or("?");
        if run_status != "ok" || data.get("stdout").and_then(Value::as_str) != Some(lang.expected())
        {
            return Err(format!("wrong output (status {run_status})"));
        }
        Ok(Sample {
            compile_time: data.get("compile_time").and_then(Value::as_f64),
            wall_time: data.get("wall_time").and_then(Value::as_f64),
            compile_cached: data.get("compile_cached").and_then(Value::as_bool),
            pooled: data.get("pooled").and_then(Value::as_bool),
        })
    }

    /// `POST /execute` for a language that does not exist: HTTP, JSON and validation, no box.
    pub fn no_box(&self) -> Result<(), String> {
        match self.post(
            &self.url,
            &json!({"code": "", "language": "no-such-language"}),
        )? {
            (422, _) => Ok(()),
            (status, _) => Err(format!("HTTP {status}")),
        }
    }

    /// The first request, `lang`'s hello world: does this server have a compile cache (ask
    /// with a compiled language), and warm pools?
    pub fn probe(&self, lang: &Lang) -> Result<(bool, bool), BenchError> {
        let body = json!({"code": lang.hello(), "language": lang.name()});
        let fail = |message: String| BenchError::server("measured", message);
        let (status, data) = self.post(&self.url, &body).map_err(fail)?;
        let data = data.unwrap_or(Value::Null);
        if status != 200 {
            return Err(fail(format!(
                "{} hello world: HTTP {status}: {data}",
                lang.name()
            )));
        }
        let cached = data.get("compile_cached").is_some_and(|v| !v.is_null());
        Ok((cached, data.get("pooled").is_some()))
    }
}
