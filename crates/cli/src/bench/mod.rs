//! `coderun bench`: what a request costs in coderun next to running the same program on the
//! host without a sandbox, measured in one run on one machine.
//!
//! The benchmark copies its own binary to a temp dir (a rebuild during the run cannot change
//! it) and starts `coderun serve` from that copy on free ports, with a private, empty compile
//! cache: first one with `pool_size = 0` for the server's memory without warm pools (stopped
//! again), then the one measured, with the repository's languages and default pools, and a
//! second one whose only language runs `/bin/true` (the cost of a fresh box as such).
//!
//! 1. Latency of a hello world per language, every case once per round in a shuffled order:
//!    `POST /execute` (new source each time for compiled languages — a compile-cache miss —
//!    and the same source, a hit), the bare runtime with coderun's binary and flags (from
//!    `languages/*.toml`), the floor (`python3 -I -S -c`, `node -e`, plain `rustc` + run), a
//!    422 (HTTP and JSON alone) and the `/bin/true` box next to `/bin/true`.
//! 2. Throughput at concurrency 1, 4 and 16, coderun and bare processes in ABBA blocks; any
//!    non-200 or wrong output is an error.
//! 3. Memory: VmRSS/VmHWM of the server without and with pools, RSS/PSS of the boxes below it.
//! 4. The machine, the load, and the CPU time other processes used during each phase.
//!
//! Progress goes to stderr, the report to stdout (Markdown with `--markdown`).

mod baseline;
mod client;
mod machine;
mod phases;
mod render;
mod report;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use serde_json::Value;

use self::client::{Api, Sample, Server};
use self::machine::{CpuUse, Tree};
use self::phases::{Kind, Level};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Latency rounds (default 50; 5 with --quick).
    #[arg(long)]
    runs: Option<usize>,
    /// Small counts: a smoke run of every phase.
    #[arg(long)]
    quick: bool,
    /// Print the report as Markdown (for docs/performance.md).
    #[arg(long)]
    markdown: bool,
    /// Measure an already running server instead (no memory numbers, no /bin/true box).
    #[arg(long)]
    url: Option<String>,
    /// Latency and memory only.
    #[arg(long)]
    skip_throughput: bool,
    /// The language files (default: ./languages, then the repository the binary was built in).
    #[arg(long)]
    languages_dir: Option<PathBuf>,
}

/// One run of a case: Ok, or a short error class (counted in the throughput tables).
pub type Outcome = Result<(), String>;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Lang {
    Python,
    TypeScript,
    Rust,
    /// A language whose only command is /bin/true, on its own server.
    True,
}

impl Lang {
    pub fn name(self) -> &'static str {
        match self {
            Lang::Python => "python",
            Lang::TypeScript => "typescript",
            Lang::Rust => "rust",
            Lang::True => "true",
        }
    }

    pub fn hello(self) -> &'static str {
        match self {
            Lang::Python => "print(\"Hello, World!\")",
            Lang::TypeScript => "const who: string = \"World\";\nconsole.log(`Hello, ${who}!`);",
            Lang::Rust => "fn main() { println!(\"Hello, World!\"); }",
            Lang::True => "",
        }
    }

    pub fn expected(self) -> &'static str {
        match self {
            Lang::True => "",
            _ => "Hello, World!\n",
        }
    }

    pub fn compiled(self) -> bool {
        matches!(self, Lang::TypeScript | Lang::Rust)
    }
}

/// Progress, to stderr.
pub fn log(msg: &str) {
    eprintln!("{msg}");
}

/// Benchmark only: a box that runs /bin/true, the per-box floor. (A version command that
/// prints nothing would make the language unavailable, hence echo.)
const TRUE_TOML: &str = r#"# Benchmark only: a box that runs /bin/true, the per-box floor.
name = "true"
display_name = "true"
extensions = ["true"]
source_file = "main.txt"
version_command = ["/bin/echo", "true"]

[run]
command = ["/bin/true"]
"#;

/// A fraction of the machine used by others above which a run should be discarded.
const BUSY_LIMIT: f64 = 0.05;

/// A server's memory at one moment.
pub struct Snapshot {
    pub rss_kb: Option<u64>,
    pub hwm_kb: Option<u64>,
    pub tree: Tree,
    pub pools: Option<Value>,
}

fn snapshot(http: &reqwest::blocking::Client, server: &Server) -> Snapshot {
    Snapshot {
        rss_kb: machine::status_kb(server.pid, "VmRSS"),
        hwm_kb: machine::status_kb(server.pid, "VmHWM"),
        tree: machine::tree(server.pid),
        pools: client::pools(http, &server.url),
    }
}

/// Memory of the servers the benchmark started: one with `pool_size = 0`, then the measured
/// one (default pools) at three moments.
pub struct Memory {
    pub no_pool_health: Snapshot,
    pub no_pool_idle: Snapshot,
    pub health: Snapshot,
    pub settled: Snapshot,
    pub after: Option<Snapshot>,
}

/// The binary measured and where it came from.
pub struct Binary {
    pub path: PathBuf,
    pub built: SystemTime,
    /// The repository's HEAD, and the files with uncommitted changes.
    pub head: Option<String>,
    pub dirty: Vec<String>,
    /// Source files changed after the binary was built.
    pub stale: usize,
}

/// One latency case's results: milliseconds end to end, and what the server said.
pub struct CaseResult {
    pub group: &'static str,
    pub label: String,
    pub kind: Kind,
    pub times_ms: Vec<f64>,
    pub samples: Vec<Sample>,
}

/// Everything the report is made of.
pub struct Run {
    pub rounds: usize,
    pub command: String,
    pub cwd: String,
    pub started: String,
    pub binary: Binary,
    pub langdir: PathBuf,
    /// `--url`, when the server was not ours.
    pub external_url: Option<String>,
    pub versions: String,
    pub compile_cache: bool,
    pub has_pool: bool,
    pub load_before: String,
    pub load_after: String,
    pub busy_before: f64,
    pub top_before: Vec<(f64, String)>,
    pub busy_after: f64,
    /// Other processes' CPU use, per phase.
    pub cpu: Vec<(&'static str, CpuUse)>,
    pub cases: Vec<CaseResult>,
    pub levels: Vec<Level>,
    pub memory: Option<Memory>,
}

pub fn main(args: &BenchArgs) -> anyhow::Result<i32> {
    let run = measure(args)?;
    let busy: Vec<String> = run
        .cpu
        .iter()
        .filter(|(_, c)| c.other_frac > BUSY_LIMIT)
        .map(|(name, c)| format!("{name} {:.0}%", c.other_frac * 100.0))
        .collect();
    if !busy.is_empty() {
        log(&format!(
            "WARNING: other processes used more than {:.0}% of the machine ({}): discard this run",
            BUSY_LIMIT * 100.0,
            busy.join(", ")
        ));
    }
    println!("{}", render::render(&run, args.markdown));
    Ok(0)
}

fn measure(args: &BenchArgs) -> anyhow::Result<Run> {
    let rounds = args.runs.unwrap_or(if args.quick { 5 } else { 50 });
    if rounds == 0 {
        bail!("--runs must be at least 1");
    }
    let levels: [(usize, usize); 3] = if args.quick {
        [(1, 4), (4, 8), (16, 16)]
    } else {
        [(1, 40), (4, 80), (16, 80)]
    };
    let exe = std::env::current_exe().context("cannot find the coderun binary")?;
    let langdir = find_languages_dir(args.languages_dir.as_deref(), &exe)?;
    let root = langdir
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let command = shell_join(std::env::args());
    let cwd = std::env::current_dir().map_or("?".into(), |d| d.display().to_string());
    let started = machine::utc(SystemTime::now());
    let load_before = machine::loadavg();
    let (busy_before, top_before) = machine::busy_sample(Duration::from_secs(1));
    let (head, dirty) = machine::git_state(&root);
    let built = std::fs::metadata(&exe)
        .and_then(|m| m.modified())
        .context("cannot read the binary's modification time")?;
    let stale = machine::newer_files(&[&root.join("crates"), &langdir], built);

    // Declared before the servers, so dropped after them: they stop before their files go.
    let work_dir = tempfile::Builder::new()
        .prefix("coderun-bench-")
        .tempdir()
        .context("cannot create a temp dir")?;
    let work = work_dir.path();
    // A private copy: someone rebuilding target/ cannot change the binary under the run. It
    // must be called `coderun` (the server shows itself in boxes under that name).
    std::fs::create_dir(work.join("bin"))?;
    let binary = work.join("bin").join("coderun");
    std::fs::copy(&exe, &binary)
        .with_context(|| format!("cannot copy {} to {}", exe.display(), binary.display()))?;
    let http = client::client()?;
    let bare = baseline::Bare::new(&langdir, work, &binary)?;

    let servers = match &args.url {
        Some(_) => None,
        None => Some(start_servers(&http, &binary, &langdir, work)?),
    };
    let (url, true_url) = match (&args.url, &servers) {
        (Some(u), _) => (u.trim_end_matches('/').to_string(), None),
        (None, Some(s)) => (
            s.main.url.clone(),
            s.bin_true.as_ref().map(|t| t.url.clone()),
        ),
        (None, None) => bail!("no server to measure"),
    };
    let api = Api::new(&http, url.clone(), true_url);
    let (compile_cache, has_pool) = api.probe()?;
    let versions = client::versions(&http, &url);

    log(&format!("latency: {rounds} rounds ..."));
    let cases = phases::cases(&api, &bare, compile_cache);
    let meter = machine::CpuMeter::mark();
    phases::warm_up(&cases)?;
    api.take_samples();
    let times = phases::latency(&cases, rounds)?;
    let mut samples = api.take_samples();
    let mut cpu = vec![("latency phase", meter.since())];
    let cases: Vec<CaseResult> = cases
        .into_iter()
        .zip(times)
        .enumerate()
        .map(|(i, (c, times_ms))| CaseResult {
            group: c.group,
            label: c.label,
            kind: c.kind,
            times_ms,
            samples: samples.remove(&i).unwrap_or_default(),
        })
        .collect();

    let mut levels_out = Vec::new();
    if !args.skip_throughput {
        log("throughput ...");
        let mut langs = vec![Lang::Python, Lang::TypeScript, Lang::Rust];
        if api.has_true_box() {
            langs.push(Lang::True);
        }
        let meter = machine::CpuMeter::mark();
        levels_out = phases::throughput(&api, &bare, &levels, &langs);
        cpu.push(("throughput phase", meter.since()));
    }
    // The last memory snapshot, then the servers stop (dropped with `s`).
    let memory = servers.map(|mut s| {
        s.memory.after = Some(snapshot(&http, &s.main));
        s.memory
    });
    let load_after = machine::loadavg();
    let (busy_after, _) = machine::busy_sample(Duration::from_secs(1));
    Ok(Run {
        rounds,
        command,
        cwd,
        started,
        binary: Binary {
            path: exe,
            built,
            head,
            dirty,
            stale,
        },
        langdir,
        external_url: args.url.clone(),
        versions,
        compile_cache,
        has_pool,
        load_before,
        load_after,
        busy_before,
        top_before,
        busy_after,
        cpu,
        cases,
        levels: levels_out,
        memory,
    })
}

/// The servers the benchmark starts (stopped when dropped).
struct Servers {
    main: Server,
    bin_true: Option<Server>,
    memory: Memory,
}

/// First a server with `pool_size = 0` (its memory, then stopped), then the one measured
/// (default pools; memory once /health answers and once its pools are full), then the
/// `/bin/true` one. Each gets a private, empty compile cache: the benchmark neither fills
/// the machine's cache nor gets hits from earlier runs.
fn start_servers(
    http: &reqwest::blocking::Client,
    binary: &Path,
    langdir: &Path,
    work: &Path,
) -> anyhow::Result<Servers> {
    let config = work.join("config.toml");
    write_config(&config, &work.join("compile-cache"), None)?;
    let no_pool_config = work.join("config-no-pool.toml");
    write_config(
        &no_pool_config,
        &work.join("compile-cache-no-pool"),
        Some(0),
    )?;

    log("starting coderun serve with pool_size = 0 (its memory without warm pools) ...");
    let mut s = Server::start(http, binary, &no_pool_config, langdir, work, "no-pool")?;
    let no_pool_health = snapshot(http, &s);
    s.settle(http, Duration::from_secs(30));
    let no_pool_idle = snapshot(http, &s);
    s.stop();

    log("starting coderun serve ...");
    let main = Server::start(http, binary, &config, langdir, work, "main")?;
    let health = snapshot(http, &main);
    log("  waiting for the warm pools to fill ...");
    main.settle(http, Duration::from_secs(30));
    let settled = snapshot(http, &main);

    // A server whose only language runs /bin/true (no pools, no runtimes): the cost of a
    // fresh box as such.
    let true_dir = work.join("languages-true");
    std::fs::create_dir(&true_dir)?;
    std::fs::write(true_dir.join("true.toml"), TRUE_TOML)?;
    let bin_true = match Server::start(http, binary, &config, &true_dir, work, "true") {
        Ok(s) => Some(s),
        Err(e) => {
            log(&format!("note: no /bin/true box: {e:#}"));
            None
        }
    };
    Ok(Servers {
        main,
        bin_true,
        memory: Memory {
            no_pool_health,
            no_pool_idle,
            health,
            settled,
            after: None,
        },
    })
}

/// `languages/` with python.toml: the flag, ./languages, or the repository the binary was
/// built in (target/<profile>/coderun).
fn find_languages_dir(arg: Option<&Path>, exe: &Path) -> anyhow::Result<PathBuf> {
    let candidates: Vec<PathBuf> = match arg {
        Some(d) => vec![d.to_path_buf()],
        None => [
            Some(PathBuf::from("languages")),
            exe.parent()
                .and_then(Path::parent)
                .and_then(Path::parent)
                .map(|p| p.join("languages")),
        ]
        .into_iter()
        .flatten()
        .collect(),
    };
    for d in &candidates {
        if d.join("python.toml").is_file() {
            return std::fs::canonicalize(d)
                .with_context(|| format!("cannot open {}", d.display()));
        }
    }
    bail!(
        "no languages dir with python.toml, typescript.toml and rust.toml (looked in {}); run from the repository root or pass --languages-dir",
        candidates
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// A config with only the compile cache dir (and the pool size) set.
fn write_config(path: &Path, cache_dir: &Path, pool_size: Option<i64>) -> anyhow::Result<()> {
    let mut engine = toml::Table::new();
    engine.insert(
        "compile_cache_dir".into(),
        toml::Value::String(cache_dir.to_string_lossy().into_owned()),
    );
    if let Some(n) = pool_size {
        engine.insert("pool_size".into(), toml::Value::Integer(n));
    }
    let mut table = toml::Table::new();
    table.insert("engine".into(), toml::Value::Table(engine));
    std::fs::write(path, table.to_string())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The command line as a shell would take it back.
fn shell_join(args: impl IntoIterator<Item = String>) -> String {
    args.into_iter()
        .map(|a| {
            let plain = !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
            if plain {
                a
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_quote_what_a_shell_would_split() {
        let args = [
            "target/release/coderun",
            "bench",
            "--url",
            "http://x:1/",
            "it's a b",
        ];
        assert_eq!(
            shell_join(args.iter().map(|s| s.to_string())),
            r"target/release/coderun bench --url http://x:1/ 'it'\''s a b'"
        );
    }

    #[test]
    fn the_bench_configs_are_valid_configs() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("c.toml");
        write_config(&path, Path::new("/tmp/a \"b\""), Some(0)).expect("written");
        let cfg = crate::config::Config::load_with_env(Some(&path), Vec::new()).expect("valid");
        assert_eq!(cfg.engine.pool_size, Some(0));
        assert_eq!(
            cfg.engine.compile_cache_dir.as_deref(),
            Some(Path::new("/tmp/a \"b\""))
        );
    }
}
