//! The `coderun` binary: `serve`, `run`, `doctor`, `bench`, plus two commands for its own use
//! inside boxes (`__box`, the per-box helper, and `transpile-ts`, the TypeScript compile step).

mod config;
mod transpile;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use coderun_engine::{Engine, ExecuteRequest, LanguageFile, Status};
use coderun_sandbox::Backend;
use coderun_sandbox_linux::{LinuxBackend, LinuxConfig};

use crate::config::Config;

/// Language files built into the binary, used when no languages dir is found.
const BUILTIN_LANGUAGES: [(&str, &str); 3] = [
    (
        "python.toml",
        include_str!("../../../languages/python.toml"),
    ),
    ("rust.toml", include_str!("../../../languages/rust.toml")),
    (
        "typescript.toml",
        include_str!("../../../languages/typescript.toml"),
    ),
];

#[derive(Parser)]
#[command(name = "coderun", version, about = "Secure code execution service")]
struct Cli {
    /// Configuration file (TOML).
    #[arg(long, global = true, env = "CODERUN_CONFIG")]
    config: Option<PathBuf>,
    /// Log progress (INFO lines) on stderr; `serve` always does, `run` and `doctor` only
    /// with this flag. CODERUN_LOG (e.g. `info`, `coderun_engine=debug`) overrides both.
    #[arg(long, short, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API.
    Serve {
        /// Address to listen on (default 127.0.0.1:8000; 0.0.0.0:8000 to expose it).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Directory of language files.
        #[arg(long)]
        languages_dir: Option<PathBuf>,
    },
    /// Run one program through the same engine and sandbox, print its output, exit with its code.
    Run {
        file: PathBuf,
        #[arg(long, short)]
        language: Option<String>,
        /// File whose content is the program's stdin, `-` for this command's standard input.
        /// Without it, a piped or redirected standard input is passed on; a terminal is not
        /// read. Capped at the engine's `max_stdin_bytes` (1 MiB by default).
        #[arg(long)]
        stdin: Option<PathBuf>,
        /// Wall-clock limit in seconds.
        #[arg(long)]
        timeout: Option<f64>,
        #[arg(long)]
        languages_dir: Option<PathBuf>,
        /// Arguments for the program (after `--`).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Check the host: namespaces, cgroups, seccomp, each language runtime.
    Doctor {
        #[arg(long)]
        languages_dir: Option<PathBuf>,
    },
    /// Measure latency, throughput and memory against the bare runtimes; print a report.
    Bench(coderun_bench::BenchArgs),
    /// (inside a compile box) Transpile every TypeScript file of the work dir.
    #[command(name = "transpile-ts", hide = true)]
    TranspileTs {
        /// Write all outputs as one JSON object {path: code} to this file.
        #[arg(long)]
        bundle: PathBuf,
        /// Also run a type check.
        #[arg(long)]
        typecheck: bool,
        /// A pooled compile box: wait on this fd for the files before transpiling.
        #[arg(long)]
        wait_fd: Option<i32>,
    },
    /// (inside a box) Print the TypeScript toolchain's version line.
    #[command(name = "typescript-version", hide = true)]
    TypescriptVersion {
        /// The node binary the programs run on.
        #[arg(long, default_value = "/usr/bin/node")]
        node: PathBuf,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate a config file (with the environment's CODERUN_* overrides applied).
    Check { file: PathBuf },
    /// Print the SHA-256 of an API key, for auth.key_sha256 or auth.keys_file.
    HashKey { key: String },
}

fn main() {
    // The per-box helper: before anything else (no runtime, no threads, no logging set-up).
    if std::env::args_os().nth(1).is_some_and(|a| a == "__box") {
        std::process::exit(coderun_sandbox_linux::helper::helper_main());
    }
    match try_main() {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("coderun: {e:#}");
            std::process::exit(2);
        }
    }
}

fn try_main() -> anyhow::Result<i32> {
    let cli = Cli::parse();
    if let Command::TranspileTs {
        bundle,
        typecheck,
        wait_fd,
    } = &cli.command
    {
        return transpile::main(bundle, *typecheck, *wait_fd);
    }
    if let Command::TypescriptVersion { node } = &cli.command {
        println!("{}", transpile::version_line(node)?);
        return Ok(0);
    }
    if let Command::Config {
        command: ConfigCommand::HashKey { key },
    } = &cli.command
    {
        println!("{}", coderun_api::guard::hash_key(key));
        return Ok(0);
    }
    if let Command::Config {
        command: ConfigCommand::Check { file },
    } = &cli.command
    {
        return match Config::load(Some(file)) {
            Ok(_) => {
                println!("{}: ok", file.display());
                Ok(0)
            }
            Err(e) => {
                eprintln!("{}: {e:#}", file.display());
                Ok(1)
            }
        };
    }
    if let Command::Bench(args) = &cli.command {
        // Its servers get their own config; it runs no engine here (and no async runtime:
        // its HTTP client is the blocking one).
        if cli.config.is_some() {
            eprintln!(
                "coderun bench: --config is not used; the benchmark configures its own servers"
            );
        }
        return Ok(coderun_bench::main(args)?);
    }
    let config = Config::load(cli.config.as_deref())?;
    // `run` and `doctor` print what the user asked for, not the service's progress.
    let quiet = !cli.verbose && !matches!(cli.command, Command::Serve { .. });
    init_logging(
        config.server.log_format,
        if quiet { "warn" } else { "info" },
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match cli.command {
            Command::Serve {
                listen,
                languages_dir,
            } => serve(config, listen, languages_dir).await,
            Command::Run {
                file,
                language,
                stdin,
                timeout,
                languages_dir,
                args,
            } => run(config, languages_dir, file, language, stdin, timeout, args).await,
            Command::Doctor { languages_dir } => doctor(config, languages_dir).await,
            Command::TranspileTs { .. }
            | Command::TypescriptVersion { .. }
            | Command::Config { .. }
            | Command::Bench(_) => Ok(2),
        }
    })
}

/// Logs to stderr at `default_level`, or as the CODERUN_LOG filter says when it is set.
fn init_logging(format: config::LogFormat, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CODERUN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        config::LogFormat::Json => builder.json().with_current_span(true).try_init(),
        config::LogFormat::Pretty => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
}

fn load_languages(dir: Option<&Path>) -> anyhow::Result<Vec<LanguageFile>> {
    let exe_repo = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent()?.parent()?.parent().map(|p| p.join("languages")));
    let candidates: Vec<PathBuf> = match dir {
        Some(d) => vec![d.to_path_buf()],
        None => [Some(PathBuf::from("languages")), exe_repo]
            .into_iter()
            .flatten()
            .collect(),
    };
    for d in &candidates {
        if d.is_dir() {
            let d = std::fs::canonicalize(d)?;
            tracing::info!(dir = %d.display(), "loading language files");
            return Ok(coderun_engine::language::load_dir(&d)?);
        }
    }
    if dir.is_some() {
        bail!("languages dir {} does not exist", candidates[0].display());
    }
    tracing::info!("using the built-in language files");
    BUILTIN_LANGUAGES
        .iter()
        .map(|(name, text)| Ok(LanguageFile::parse(text, Path::new(name))?))
        .collect()
}

struct Service {
    engine: Arc<Engine>,
    /// The sandbox instance's id (its state dir and cgroup are named after it), for the log.
    instance: String,
}

fn build(config: &Config, languages_dir: Option<&Path>) -> anyhow::Result<Service> {
    let exe = std::env::current_exe().context("cannot find the coderun binary")?;
    let mut lc = LinuxConfig::with_defaults(exe.clone());
    lc.state_root = config.sandbox.state_dir.clone();
    lc.data_dir = config.sandbox.data_dir.clone();
    lc.uid_lock_dir = config.sandbox.uid_lock_dir.clone();
    lc.uid_base = config.sandbox.uid_base;
    lc.uid_slots = config.sandbox.uid_slots;
    if let Some(p) = &config.sandbox.seccomp_policy {
        lc.seccomp_policy = std::fs::read_to_string(p)
            .with_context(|| format!("cannot read seccomp policy {}", p.display()))?;
    }
    let backend = Arc::new(LinuxBackend::new(lc).context("cannot set up the native sandbox")?);
    let langs = load_languages(languages_dir.or(config.server.languages_dir.as_deref()))?;
    let scratch = backend.instance_dir().join("artifacts");
    let instance = backend.instance_id().to_string();
    let mut engine_config = config.engine.clone();
    if engine_config.compile_cache_dir.is_none() {
        engine_config.compile_cache_dir = Some(config.sandbox.data_dir.join("compile-cache"));
    }
    // From here on the backend is reached only through the engine and the trait.
    let engine = Engine::new(
        backend as Arc<dyn Backend>,
        engine_config,
        langs,
        &exe,
        scratch,
    )?;
    Ok(Service {
        engine: Arc::new(engine),
        instance,
    })
}

async fn serve(
    mut config: Config,
    listen: Option<std::net::SocketAddr>,
    languages_dir: Option<PathBuf>,
) -> anyhow::Result<i32> {
    if let Some(l) = listen {
        config.server.listen = l;
    }
    let service = build(&config, languages_dir.as_deref())?;
    let health = service.engine.self_check().await;
    for l in &health.languages {
        match (&l.version, &l.error) {
            (Some(v), _) => tracing::info!(language = %l.name, version = %v, "language ready"),
            (None, _) => {
                tracing::warn!(language = %l.name, error = ?l.detail, "language unavailable")
            }
        }
        if l.typecheck == Some(false) {
            tracing::info!(language = %l.name, "type checker not installed: typecheck requests get 503 (scripts/setup.sh installs it)");
        }
    }
    if !health.sandbox_ok {
        tracing::error!(error = ?health.sandbox_detail, "sandbox self-check failed: /health reports unhealthy");
    }
    service.engine.spawn_self_check_loop();
    service.engine.start_pools();
    let mut state =
        coderun_api::AppState::new(service.engine.clone(), config.server.body_limit_bytes);
    state.guard = Arc::new(
        coderun_api::guard::Guard::new(&config.auth, &config.rate_limit)
            .map_err(anyhow::Error::msg)?,
    );
    state.cors = coderun_api::guard::cors(&config.cors).map_err(anyhow::Error::msg)?;
    state.deadline = config.request_deadline();
    let draining = state.draining.clone();
    let app = coderun_api::app(state);
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    tracing::info!(addr = %listener.local_addr()?, instance = ?service.instance, "coderun listening");
    let grace = std::time::Duration::from_secs(config.server.shutdown_grace_s);
    let engine = service.engine.clone();
    // On SIGTERM/SIGINT: drain (health says so, new runs get 503 + Retry-After, the port
    // stays open) until the runs whose clients still wait finish (a run whose client went
    // away has already ended) or the grace period ends, then kill what is left and stop
    // accepting.
    let shutdown = async move {
        shutdown_signal().await;
        draining.store(true, std::sync::atomic::Ordering::SeqCst);
        engine.stop_pools();
        tracing::info!(grace_s = grace.as_secs(), "draining");
        let deadline = tokio::time::Instant::now() + grace;
        while engine.running() + engine.queued() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let left = engine.running() + engine.queued();
        if left > 0 {
            tracing::warn!(left, "grace period over: killing the runs still in flight");
            engine.kill_all();
        }
    };
    serve_http(listener, app, shutdown, config.server.header_read_timeout_s).await;
    // Dropping the service destroys the warm pools, the instance's cgroups and state dir.
    drop(service);
    tracing::info!("shut down cleanly");
    Ok(0)
}

/// The accept loop: like `axum::serve` with graceful shutdown, plus a header read timeout
/// (a client that trickles its request headers — slowloris — is cut off), and each
/// connection's peer address for the rate limiter.
async fn serve_http(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    shutdown: impl std::future::Future<Output = ()>,
    header_read_timeout_s: u64,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use tower::Service;

    let mut make = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(std::time::Duration::from_secs(header_read_timeout_s.max(1)));
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            conn = listener.accept() => match conn {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of fds and the like: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Ok(svc) = make.call(peer).await;
        let svc = hyper_util::service::TowerToHyperService::new(svc);
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
    drop(listener);
    // Let in-flight connections finish their requests.
    graceful.shutdown().await;
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

async fn run(
    config: Config,
    languages_dir: Option<PathBuf>,
    file: PathBuf,
    language: Option<String>,
    stdin: Option<PathBuf>,
    timeout: Option<f64>,
    args: Vec<String>,
) -> anyhow::Result<i32> {
    use std::io::{IsTerminal, Read};
    /// Reads all of `from` as the program's stdin, failing past the engine's limit (and
    /// reading at most one byte past it, so an endless producer cannot fill the memory).
    fn read_stdin(from: impl Read, what: &str, limit: u64) -> anyhow::Result<String> {
        let mut bytes = Vec::new();
        from.take(limit.saturating_add(1))
            .read_to_end(&mut bytes)
            .with_context(|| format!("cannot read {what}"))?;
        if bytes.len() as u64 > limit {
            let size = if limit > 0 && limit.trailing_zeros() >= 20 {
                format!("{} MiB", limit >> 20)
            } else {
                format!("{limit} bytes")
            };
            bail!(
                "{what} is over the stdin limit of {size} (engine max_stdin_bytes = {limit}); \
                 pass less, or raise max_stdin_bytes in the [engine] section of the config"
            );
        }
        String::from_utf8(bytes)
            .map_err(|_| anyhow::anyhow!("{what} is not UTF-8 text; a program's stdin must be"))
    }
    let limit = config.engine.max_stdin_bytes;
    let stdin = match stdin {
        Some(p) if p.as_os_str() == "-" => Some(read_stdin(
            std::io::stdin().lock(),
            "standard input",
            limit,
        )?),
        Some(p) => {
            let f =
                std::fs::File::open(&p).with_context(|| format!("cannot read {}", p.display()))?;
            Some(read_stdin(f, &p.display().to_string(), limit)?)
        }
        // Piped or redirected: passed on, as `echo 5 6 | python3 sum.py` would.
        None if !std::io::stdin().is_terminal() => Some(read_stdin(
            std::io::stdin().lock(),
            "standard input",
            limit,
        )?),
        None => None,
    };
    let service = build(&config, languages_dir.as_deref())?;
    let code = std::fs::read_to_string(&file)
        .with_context(|| format!("cannot read {}", file.display()))?;
    let language = match language {
        Some(l) => l,
        None => {
            let ext = file.extension().and_then(|e| e.to_str()).unwrap_or("");
            service
                .engine
                .language_for_extension(ext)
                .with_context(|| {
                    format!(
                        "cannot tell the language of {}; pass --language",
                        file.display()
                    )
                })?
        }
    };
    let exec = service
        .engine
        .execute(ExecuteRequest {
            code,
            language,
            timeout_s: timeout,
            stdin,
            args,
            ..Default::default()
        })
        .await?;
    use std::io::Write;
    if exec.status == Status::CompileError {
        eprint!("{}", exec.error.unwrap_or_default());
        return Ok(1);
    }
    print!("{}", exec.stdout);
    eprint!("{}", exec.stderr);
    std::io::stdout().flush()?;
    if exec.status != Status::Ok && exec.status != Status::RuntimeError {
        if let Some(e) = &exec.error {
            eprintln!("coderun: {}", e.lines().next().unwrap_or(""));
        }
    }
    Ok(match (exec.status, exec.exit_code, &exec.signal) {
        (Status::Timeout, _, _) => 124,
        (_, Some(c), _) => c,
        (_, None, _) => 137,
    })
}

async fn doctor(config: Config, languages_dir: Option<PathBuf>) -> anyhow::Result<i32> {
    let mut failed = false;
    let print = |ok: bool, name: &str, detail: &str, fix: Option<&str>| {
        println!("[{}] {name}: {detail}", if ok { " ok " } else { "FAIL" });
        if let Some(fix) = fix {
            println!("       fix: {fix}");
        }
    };
    let service = match build(&config, languages_dir.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            // No backend: say what the host lacks, then why the sandbox could not start.
            for c in coderun_sandbox_linux::host_checks() {
                print(c.ok, &c.name, &c.detail, c.fix.as_deref());
            }
            print(
                false,
                "sandbox",
                &format!("{e:#}"),
                Some("see the checks above"),
            );
            return Ok(1);
        }
    };
    for c in service.engine.host_checks() {
        failed |= !c.ok;
        print(c.ok, &c.name, &c.detail, c.fix.as_deref());
    }
    let health = service.engine.self_check().await;
    let detail = if health.sandbox_ok {
        "a real box ran (user/pid/mount/net/ipc/uts/cgroup namespaces, seccomp, rlimits)"
            .to_string()
    } else {
        health.sandbox_detail.clone().unwrap_or_default()
    };
    failed |= !health.sandbox_ok;
    print(
        health.sandbox_ok,
        "sandbox self-check",
        &detail,
        (!health.sandbox_ok)
            .then_some("run `coderun doctor` as root on a kernel with user namespaces"),
    );
    for l in &health.languages {
        failed |= !l.available;
        match (&l.version, l.detail.as_ref().or(l.error.as_ref())) {
            (Some(v), _) => print(true, &format!("language {}", l.name), v, None),
            (None, e) => print(
                false,
                &format!("language {}", l.name),
                e.map_or("unavailable", |e| e.as_str()),
                Some("install the runtime or fix its language file"),
            ),
        }
        // Type checking is optional: missing, it is reported, not a failure.
        match l.typecheck {
            Some(true) => print(true, &format!("typecheck {}", l.name), "installed", None),
            Some(false) => print(
                true,
                &format!("typecheck {}", l.name),
                "not installed: `\"typecheck\": true` requests get 503 typecheck_unavailable",
                Some("run scripts/setup.sh (it installs the checker into tools/node_modules)"),
            ),
            None => {}
        }
    }
    Ok(i32::from(failed))
}
