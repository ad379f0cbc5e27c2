//! `coderun bench`: what a request costs in coderun next to running the same program on the
//! host without a sandbox, measured in one run on one machine. A library: the `coderun`
//! binary links it as its `bench` subcommand.
//!
//! The languages are the language files of the languages dir (`languages/*.toml`: names,
//! compile and run steps, runtimes), joined by name with the benchmark's own data (a hello
//! world, the floor command; see `langs`); a file without bench data, or a language the server
//! cannot run, is reported as skipped.
//!
//! The benchmark copies its own binary to a temp dir (a rebuild during the run cannot change
//! it) and starts `coderun serve` from that copy on free ports, with a private, empty compile
//! cache: first one with `pool_size = 0` for the server's memory without warm pools (stopped
//! again), then the one measured, with the languages dir and default pools, and a second one
//! whose only language runs `/bin/true` (the cost of a fresh box as such).
//!
//! 1. Latency of a hello world per language, interleaved: every case once per round in a
//!    shuffled order: `POST /execute` (new source each time for compiled languages — a
//!    compile-cache miss — and the same source, a hit), the bare runtime with coderun's binary
//!    and flags (from the language file), the floor, a 422 (HTTP and JSON alone) and the
//!    `/bin/true` box next to `/bin/true`.
//! 2. Back-to-back series at concurrency 1 (see `series`): a burst of `pool_max` requests
//!    after the server was idle 5 s, and a sustained series with no pause, each beside as
//!    many bare runs back to back.
//! 3. Throughput at concurrency 1, 4 and 16, coderun and bare processes in ABBA blocks; any
//!    non-200 or wrong output is an error.
//! 4. Memory: VmRSS/VmHWM of the server without and with pools, RSS/PSS of the boxes below it.
//! 5. The machine, the load, and the CPU time other processes used during each phase.
//!
//! Progress goes to stderr, the report to stdout (Markdown with `--markdown`). With `--quick`
//! the counts are small and the report gives no verdicts: it is a smoke test.

mod baseline;
mod client;
mod error;
mod langs;
mod machine;
mod phases;
mod render;
mod report;
mod series;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde_json::Value;

use self::baseline::Bare;
use self::client::{Api, Sample, Server};
pub use self::error::BenchError;
use self::langs::Lang;
use self::machine::{CpuUse, Tree};
use self::phases::Kind;
use self::series::Series;

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Latency rounds (default 50; 5 with --quick); the burst and sustained series scale
    /// with it.
    #[arg(long)]
    runs: Option<usize>,
    /// Small counts: a smoke run of every phase, with no verdicts.
    #[arg(long)]
    quick: bool,
    /// Print the report as Markdown (for docs/performance.md).
    #[arg(long)]
    markdown: bool,
    /// Measure an already running server instead (no memory numbers, no /bin/true box).
    #[arg(long)]
    url: Option<String>,
    /// Skip the throughput levels (concurrency 1, 4, 16).
    #[arg(long)]
    skip_throughput: bool,
    /// The language files (default: ./languages, then the repository the binary was built in).
    #[arg(long)]
    languages_dir: Option<PathBuf>,
}

/// One run of a case: what the server said (None for a bare process), or a short error
/// class (counted in the throughput tables).
pub type Outcome = Result<Option<Sample>, String>;

/// Progress, to stderr.
pub fn log(msg: &str) {
    eprintln!("{msg}");
}

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
    pub group: String,
    pub label: String,
    pub kind: Kind,
    pub compiled: bool,
    pub times_ms: Vec<f64>,
    pub samples: Vec<Sample>,
}

/// The counts of a run.
#[derive(Clone, Copy)]
pub struct Counts {
    /// Interleaved latency rounds.
    pub rounds: usize,
    /// Measured bursts per language (each of the pool's maximum, at most `burst_cap`).
    pub bursts: usize,
    pub burst_cap: Option<usize>,
    /// Requests of the sustained series.
    pub sustained: usize,
    /// (concurrency, runs) of the throughput levels.
    pub levels: [(usize, usize); 3],
}

impl Counts {
    fn new(runs: Option<usize>, quick: bool) -> Result<Counts, BenchError> {
        let rounds = runs.unwrap_or(if quick { 5 } else { 50 });
        if rounds == 0 {
            return Err(BenchError::NoRuns);
        }
        Ok(Counts {
            rounds,
            // 5 bursts and 200 sustained requests for the default 50 rounds.
            bursts: if quick { 1 } else { rounds.div_ceil(10) },
            burst_cap: quick.then_some(4),
            sustained: 4 * rounds,
            levels: if quick {
                [(1, 4), (4, 8), (16, 16)]
            } else {
                [(1, 40), (4, 80), (16, 80)]
            },
        })
    }
}

/// Everything the report is made of.
pub struct Run {
    pub counts: Counts,
    /// `--quick`: a smoke test, no verdicts.
    pub quick: bool,
    pub command: String,
    pub cwd: String,
    pub started: String,
    pub binary: Binary,
    pub langdir: PathBuf,
    /// The languages measured, and those skipped with the reason.
    pub langs: Vec<String>,
    pub skipped: Vec<(String, String)>,
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
    pub series: Vec<Series>,
    pub levels: Vec<phases::Level>,
    pub memory: Option<Memory>,
}

/// Runs the benchmark and prints its report; the exit code.
pub fn main(args: &BenchArgs) -> Result<i32, BenchError> {
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
    if run.quick {
        log(
            "smoke test (--quick): too few samples for any verdict; run without --quick to measure",
        );
    }
    println!("{}", render::render(&run, args.markdown));
    Ok(0)
}

fn measure(args: &BenchArgs) -> Result<Run, BenchError> {
    let counts = Counts::new(args.runs, args.quick)?;
    let exe = std::env::current_exe()
        .map_err(|e| BenchError::io("cannot find the coderun binary", "/proc/self/exe", e))?;
    let langdir = find_languages_dir(args.languages_dir.as_deref(), &exe)?;
    let mut selection = langs::select(coderun_engine::language::load_dir(&langdir)?);
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
        .map_err(|e| BenchError::io("cannot read the modification time of", &exe, e))?;
    let stale = machine::newer_files(&[&root.join("crates"), &langdir], built);

    // Declared before the servers, so dropped after them: they stop before their files go.
    let work_dir = tempfile::Builder::new()
        .prefix("coderun-bench-")
        .tempdir()
        .map_err(|e| BenchError::io("cannot create a temp dir in", std::env::temp_dir(), e))?;
    let work = work_dir.path();
    // A private copy: someone rebuilding target/ cannot change the binary under the run. It
    // must be called `coderun` (the server shows itself in boxes under that name).
    let bin_dir = work.join("bin");
    std::fs::create_dir(&bin_dir).map_err(|e| BenchError::io("cannot create", &bin_dir, e))?;
    let binary = bin_dir.join("coderun");
    std::fs::copy(&exe, &binary)
        .map_err(|e| BenchError::io("cannot copy the binary to", &binary, e))?;
    let http = client::client()?;
    let bin_true = Lang::bin_true()?;

    let servers = match &args.url {
        Some(_) => None,
        None => Some(start_servers(&http, &binary, &langdir, work)?),
    };
    let (url, mut true_url) = match (&args.url, &servers) {
        (Some(u), _) => (u.trim_end_matches('/').to_string(), None),
        (_, Some(s)) => (
            s.main.url.clone(),
            s.bin_true.as_ref().map(|t| t.url.clone()),
        ),
        (None, None) => return Err(BenchError::server("measured", "no server to measure")),
    };

    // What the server cannot run, and what has no baseline here, is skipped, with the reason.
    let server_langs = client::languages(&http, &url);
    if let Some(list) = &server_langs {
        for name in selection
            .names()
            .into_iter()
            .map(str::to_string)
            .collect::<Vec<_>>()
        {
            match list.iter().find(|l| l.name == name) {
                None => selection.skip(&name, "the server does not have it".into()),
                Some(l) if !l.available => {
                    selection.skip(&name, format!("unavailable on the server: {}", l.detail))
                }
                Some(_) => {}
            }
        }
    }
    let (bare, failed) = {
        let mut all: Vec<&Lang> = selection.langs.iter().collect();
        if true_url.is_some() {
            all.push(&bin_true);
        }
        Bare::new(&all, work, &binary)
    };
    for (name, reason) in failed {
        if name == bin_true.name() {
            log(&format!("note: no /bin/true box: {reason}"));
            true_url = None;
        } else {
            selection.skip(&name, reason);
        }
    }
    for (name, reason) in &selection.skipped {
        log(&format!("skipping {name}: {reason}"));
    }
    let measured: Vec<&Lang> = selection.langs.iter().collect();
    let Some(probe_lang) = measured
        .iter()
        .find(|l| l.compiled())
        .or_else(|| measured.first())
    else {
        let reasons: Vec<String> = selection
            .skipped
            .iter()
            .map(|(n, r)| format!("{n}: {r}"))
            .collect();
        return Err(BenchError::NothingToMeasure {
            reason: if reasons.is_empty() {
                format!("{} has no language files", langdir.display())
            } else {
                reasons.join("; ")
            },
        });
    };
    let box_lang = true_url.is_some().then_some(&bin_true);
    let api = Api::new(&http, url.clone(), true_url);
    let (compile_cache, has_pool) = api.probe(probe_lang)?;
    let versions = client::versions(server_langs.as_deref());

    log(&format!(
        "latency: {} interleaved rounds ...",
        counts.rounds
    ));
    let cases = phases::cases(&api, &bare, &measured, box_lang, compile_cache);
    let meter = machine::CpuMeter::mark();
    phases::warm_up(&cases)?;
    let times = phases::latency(&cases, counts.rounds)?;
    let mut cpu = vec![("latency phase", meter.since())];
    let cases: Vec<CaseResult> = cases
        .into_iter()
        .zip(times)
        .map(|(c, t)| CaseResult {
            group: c.group,
            label: c.label,
            kind: c.kind,
            compiled: c.compiled,
            times_ms: t.ms,
            samples: t.samples,
        })
        .collect();

    let pool_max = client::pool_max(&http, &url);
    log(&format!(
        "bursts after {} s idle ({}{}) ...",
        series::IDLE.as_secs(),
        if pool_max.is_some() {
            "sizes from /health's pool_max".to_string()
        } else {
            format!("no pool_max in /health: {}", series::DEFAULT_POOL_MAX)
        },
        counts
            .burst_cap
            .map_or(String::new(), |cap| format!(", at most {cap} with --quick"))
    ));
    let meter = machine::CpuMeter::mark();
    let mut runs_series = Vec::new();
    for lang in &measured {
        let lang_max = series::pool_max_of(pool_max.as_ref(), lang.name());
        runs_series.push(series::burst(
            &api,
            &bare,
            lang,
            lang_max,
            counts.burst_cap,
            counts.bursts,
        )?);
    }
    cpu.push(("burst phase", meter.since()));
    log(&format!(
        "sustained: {} requests back to back ...",
        counts.sustained
    ));
    let meter = machine::CpuMeter::mark();
    for lang in &measured {
        runs_series.push(series::sustained(&api, &bare, lang, counts.sustained)?);
    }
    cpu.push(("sustained phase", meter.since()));

    let mut levels_out = Vec::new();
    if !args.skip_throughput {
        log("throughput ...");
        let mut langs = measured.clone();
        langs.extend(box_lang);
        let meter = machine::CpuMeter::mark();
        levels_out = phases::throughput(&api, &bare, &counts.levels, &langs);
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
        counts,
        quick: args.quick,
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
        langs: selection.names().into_iter().map(str::to_string).collect(),
        skipped: selection.skipped,
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
        series: runs_series,
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
) -> Result<Servers, BenchError> {
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
    let true_file = true_dir.join("true.toml");
    std::fs::create_dir(&true_dir)
        .and_then(|()| std::fs::write(&true_file, langs::TRUE_TOML))
        .map_err(|e| BenchError::io("cannot write", &true_file, e))?;
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

/// A languages dir with language files: the flag, ./languages, or the repository the binary
/// was built in (target/<profile>/coderun).
fn find_languages_dir(arg: Option<&Path>, exe: &Path) -> Result<PathBuf, BenchError> {
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
    let has_toml = |d: &Path| {
        std::fs::read_dir(d).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.path().extension().is_some_and(|x| x == "toml"))
        })
    };
    for d in &candidates {
        if has_toml(d) {
            return std::fs::canonicalize(d).map_err(|e| BenchError::io("cannot open", d, e));
        }
    }
    Err(BenchError::NoLanguagesDir {
        looked: candidates
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// The config of a server the benchmark starts: only the compile cache dir (and the pool
/// size) set, the rest the defaults.
pub fn server_config(cache_dir: &Path, pool_size: Option<i64>) -> String {
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
    table.to_string()
}

fn write_config(path: &Path, cache_dir: &Path, pool_size: Option<i64>) -> Result<(), BenchError> {
    std::fs::write(path, server_config(cache_dir, pool_size))
        .map_err(|e| BenchError::io("cannot write", path, e))
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
}
