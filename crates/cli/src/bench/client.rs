//! coderun as a client sees it: the servers the benchmark starts (private binary, free port,
//! its own config), and `POST /execute` over a new TCP connection per request.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use reqwest::blocking::Client;
use serde_json::{json, Value};

use super::{Lang, Outcome};

/// The HTTP client: no proxy, no keep-alive (every request opens its own connection, as a
/// one-off client would), generous timeout (a queued Rust compile can take a while).
pub fn client() -> anyhow::Result<Client> {
    Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(120))
        .build()
        .context("cannot build the HTTP client")
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

/// The `/languages` versions, `python Python 3.11.7, ...`.
pub fn versions(http: &Client, url: &str) -> String {
    let Ok((_, v)) = get_json(http, &format!("{url}/languages"), Duration::from_secs(10)) else {
        return "?".into();
    };
    let list = v.get("languages").unwrap_or(&v);
    let shown: Vec<String> = list
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| {
            Some(format!(
                "{} {}",
                l.get("name")?.as_str()?,
                l.get("version")?.as_str()?
            ))
        })
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
    ) -> anyhow::Result<Server> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("cannot find a free port")?
            .port();
        let log_path = work.join(format!("server-{tag}.log"));
        let log = File::create(&log_path)
            .with_context(|| format!("cannot create {}", log_path.display()))?;
        let mut cmd = Command::new(binary);
        cmd.arg("--config")
            .arg(config)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--languages-dir")
            .arg(langdir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("CODERUN_") {
                cmd.env_remove(k);
            }
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let mut server = Server {
            pid: child.id(),
            child,
            url: format!("http://127.0.0.1:{port}"),
            log_path,
            stopped: false,
        };
        // On an error, dropping `server` stops it: never leave one behind.
        server.wait_healthy(http)?;
        Ok(server)
    }

    fn wait_healthy(&mut self, http: &Client) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(180);
        let mut unhealthy_since: Option<Instant> = None;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "server exited ({status}); see {}:\n{}",
                    self.log_path.display(),
                    self.tail()
                );
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
                        bail!(
                            "server unhealthy for 30 s (HTTP {status}: {body}); see {}",
                            self.log_path.display()
                        );
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(_) => {
                    if Instant::now() > deadline {
                        bail!(
                            "server not answering after 180 s; see {}:\n{}",
                            self.log_path.display(),
                            self.tail()
                        );
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
    samples: Mutex<BTreeMap<usize, Vec<Sample>>>,
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
            samples: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn has_true_box(&self) -> bool {
        self.true_url.is_some()
    }

    /// (status, JSON body if any); Err when there was no answer.
    pub fn post(&self, url: &str, body: &Value) -> Result<(u16, Option<Value>), String> {
        let r = self
            .http
            .post(format!("{url}/execute"))
            .json(body)
            .send()
            .map_err(|e| {
                let kind = if e.is_timeout() {
                    "timeout"
                } else if e.is_connect() {
                    "connect"
                } else {
                    "request"
                };
                format!("connection: {kind}")
            })?;
        let status = r.status().as_u16();
        Ok((status, r.json::<Value>().ok()))
    }

    /// Hello world; `fresh` appends a comment with a nonce: a new program, a compile-cache
    /// miss (Python has no compile step, so it is always the same).
    pub fn source(&self, lang: Lang, fresh: bool) -> String {
        if !fresh || !lang.compiled() {
            return lang.hello().to_string();
        }
        let n = self.counter.fetch_add(1, Ordering::Relaxed) + 1;
        format!("{}\n// bench {}-{n}\n", lang.hello(), self.nonce)
    }

    /// One run; Err with a short error class (for counting) unless it was a 200 with status
    /// ok and the expected output. `record` keeps the server's numbers under that key (the
    /// latency case's index).
    pub fn call(
        &self,
        lang: Lang,
        fresh: bool,
        record: Option<usize>,
        pooled: Option<&AtomicUsize>,
    ) -> Outcome {
        let url = match lang {
            Lang::True => self.true_url.as_deref().ok_or("no /bin/true server")?,
            _ => self.url.as_str(),
        };
        let code = if lang == Lang::True {
            String::new()
        } else {
            self.source(lang, fresh)
        };
        let (status, data) = self.post(url, &json!({"code": code, "language": lang.name()}))?;
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
        let was_pooled = data.get("pooled").and_then(Value::as_bool);
        if let Some(key) = record {
            let sample = Sample {
                compile_time: data.get("compile_time").and_then(Value::as_f64),
                wall_time: data.get("wall_time").and_then(Value::as_f64),
                compile_cached: data.get("compile_cached").and_then(Value::as_bool),
                pooled: was_pooled,
            };
            self.samples
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(key)
                .or_default()
                .push(sample);
        }
        if let (Some(counter), Some(true)) = (pooled, was_pooled) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// `POST /execute` for a language that does not exist: HTTP, JSON and validation, no box.
    pub fn no_box(&self) -> Outcome {
        match self.post(
            &self.url,
            &json!({"code": "", "language": "no-such-language"}),
        )? {
            (422, _) => Ok(()),
            (status, _) => Err(format!("HTTP {status}")),
        }
    }

    /// The first request: does this server have a compile cache, and warm pools?
    pub fn probe(&self) -> anyhow::Result<(bool, bool)> {
        let body = json!({"code": Lang::Rust.hello(), "language": "rust"});
        let (status, data) = self.post(&self.url, &body).map_err(anyhow::Error::msg)?;
        let data = data.unwrap_or(Value::Null);
        if status != 200 {
            bail!("rust hello world: HTTP {status}: {data}");
        }
        let cached = data.get("compile_cached").is_some_and(|v| !v.is_null());
        Ok((cached, data.get("pooled").is_some()))
    }

    /// The recorded samples, by key; forgets them.
    pub fn take_samples(&self) -> BTreeMap<usize, Vec<Sample>> {
        std::mem::take(&mut *self.samples.lock().unwrap_or_else(|e| e.into_inner()))
    }
}
