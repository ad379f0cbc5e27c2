//! Validation, limits and the compile → run pipeline.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use coderun_sandbox::{
    BoxSpec, Exec, FileSource, Handoff, InputFile, LimitHit, Limits, Outcome, OutputFile,
    RuntimeMount, SandboxError,
};

use crate::language::{OutputKind, RuntimeDef};
use crate::{
    invalid, signal_name, Engine, EngineError, ExecuteRequest, Execution, Health, Language,
    LanguageHealth, Status,
};

/// Environment of every box: a minimal one, never the server's.
const BASE_ENV: [(&str, &str); 4] = [
    ("PATH", "/usr/local/bin:/usr/bin:/bin"),
    ("HOME", "/work"),
    ("LANG", "C.UTF-8"),
    ("TMPDIR", "/tmp"),
];

/// A validated request, ready to run.
#[derive(Debug)]
pub(crate) struct Plan {
    files: Vec<InputFile>,
    args: Vec<String>,
    stdin: Vec<u8>,
    run_limits: Limits,
    compile_limits: Limits,
    typecheck: bool,
}

pub(crate) fn resolve_runtime(
    name: &str,
    def: &RuntimeDef,
    base_dir: &Path,
) -> Result<RuntimeMount, String> {
    let source = match (&def.path, def.locate.split_first()) {
        (Some(p), _) => base_dir.join(p),
        (None, Some((cmd, args))) => {
            let out = std::process::Command::new(cmd)
                .args(args)
                .stdin(std::process::Stdio::null())
                .output()
                .map_err(|e| format!("runtime {name}: cannot run {cmd}: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "runtime {name}: `{}` failed: {}",
                    def.locate.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
            std::fs::canonicalize(&text).map_err(|e| format!("runtime {name}: {text}: {e}"))?
        }
        (None, None) => return Err(format!("runtime {name}: neither path nor locate given")),
    };
    if !source.exists() {
        return Err(format!(
            "runtime {name}: {} does not exist",
            source.display()
        ));
    }
    Ok(RuntimeMount {
        source,
        target: def.mount_at.clone(),
        include: def.include.clone(),
        exclude: def.exclude.clone(),
    })
}

/// The coderun binary itself, shown in the box as `/opt/coderun/bin/coderun`.
pub(crate) fn self_mount(exe: &Path) -> Result<RuntimeMount, String> {
    let (Some(dir), Some(name)) = (exe.parent(), exe.file_name()) else {
        return Err(format!("cannot mount {}", exe.display()));
    };
    if name != "coderun" {
        return Err(format!(
            "the coderun binary must be named coderun, not {name:?}"
        ));
    }
    Ok(RuntimeMount {
        source: dir.to_path_buf(),
        target: "/opt/coderun/bin".into(),
        include: vec![name.to_string_lossy().into_owned()],
        exclude: Vec::new(),
    })
}

fn seconds(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{} s", ms as f64 / 1000.0)
    }
}

/// Checks the request against the caps and works out its limits.
pub(crate) fn plan(
    engine: &Engine,
    lang: &Language,
    req: &ExecuteRequest,
) -> Result<Plan, EngineError> {
    let cfg = &engine.config;
    let file = &lang.file;
    let lim = &file.limits;
    if req.code.len() as u64 > cfg.max_code_bytes {
        return Err(invalid(
            "code",
            format!(
                "{} bytes is over the {}-byte limit",
                req.code.len(),
                cfg.max_code_bytes
            ),
        ));
    }
    let stdin = req.stdin.clone().unwrap_or_default().into_bytes();
    if stdin.len() as u64 > cfg.max_stdin_bytes {
        return Err(invalid(
            "stdin",
            format!(
                "{} bytes is over the {}-byte limit",
                stdin.len(),
                cfg.max_stdin_bytes
            ),
        ));
    }
    if req.args.len() as u64 > cfg.max_args {
        return Err(invalid(
            "args",
            format!(
                "{} arguments is over the limit of {}",
                req.args.len(),
                cfg.max_args
            ),
        ));
    }
    for (i, a) in req.args.iter().enumerate() {
        if a.len() as u64 > cfg.max_arg_bytes {
            return Err(invalid(
                &format!("args[{i}]"),
                format!("over the {}-byte limit", cfg.max_arg_bytes),
            ));
        }
        if a.contains('\0') {
            return Err(invalid(&format!("args[{i}]"), "contains a NUL byte"));
        }
    }
    if req.files.len() as u64 > cfg.max_files {
        return Err(invalid(
            "files",
            format!(
                "{} files is over the limit of {}",
                req.files.len(),
                cfg.max_files
            ),
        ));
    }
    let total: usize = req.files.iter().map(|(_, c)| c.len()).sum();
    if total as u64 > cfg.max_files_bytes {
        return Err(invalid(
            "files",
            format!(
                "{total} bytes in all is over the {}-byte limit",
                cfg.max_files_bytes
            ),
        ));
    }
    if let Some(patterns) = cfg.denylist.get(&file.name) {
        let sources = std::iter::once(("code".to_string(), req.code.as_str())).chain(
            req.files
                .iter()
                .enumerate()
                .map(|(i, (_, c))| (format!("files[{i}].content"), c.as_str())),
        );
        for (field, text) in sources {
            if let Some(p) = patterns
                .iter()
                .find(|p| !p.is_empty() && text.contains(p.as_str()))
            {
                return Err(invalid(
                    &field,
                    format!(
                        "contains {p:?}, which this server does not accept for {}",
                        file.name
                    ),
                ));
            }
        }
    }
    let mut files = vec![InputFile {
        path: file.source_file.clone(),
        source: FileSource::Inline(req.code.clone()),
        executable: false,
    }];
    let mut reserved: Vec<&str> = vec![file.source_file.as_str()];
    reserved.extend(file.extra_files.keys().map(String::as_str));
    if let Some(c) = &file.compile {
        reserved.push(c.output.as_str());
    }
    for (i, (name, content)) in req.files.iter().enumerate() {
        let field = format!("files[{i}].name");
        coderun_sandbox::validate_relative_path(name).map_err(|m| invalid(&field, m))?;
        if reserved.contains(&name.as_str()) || files.iter().any(|f| &f.path == name) {
            return Err(invalid(&field, format!("{name:?} is already used (by the main source, a generated file or another entry)")));
        }
        if files.iter().any(|f| {
            name.starts_with(&format!("{}/", f.path)) || f.path.starts_with(&format!("{name}/"))
        }) {
            return Err(invalid(
                &field,
                format!("{name:?} clashes with another file's directory"),
            ));
        }
        files.push(InputFile {
            path: name.clone(),
            source: FileSource::Inline(content.clone()),
            executable: false,
        });
    }
    for (name, content) in &file.extra_files {
        files.push(InputFile {
            path: name.clone(),
            source: FileSource::Inline(content.clone()),
            executable: false,
        });
    }
    if req.typecheck
        && file
            .compile
            .as_ref()
            .is_none_or(|c| c.typecheck_flags.is_empty())
    {
        return Err(invalid(
            "typecheck",
            format!("type checking is not available for {}", file.name),
        ));
    }

    let wall_time_ms = match req.timeout_s {
        Some(t) if !t.is_finite() || t <= 0.0 => {
            return Err(invalid(
                "timeout",
                "must be a number of seconds greater than 0",
            ))
        }
        Some(t) if t * 1000.0 > cfg.max_wall_time_ms as f64 => {
            return Err(invalid(
                "timeout",
                format!(
                    "{t} s is over the server maximum of {}",
                    seconds(cfg.max_wall_time_ms)
                ),
            ))
        }
        Some(t) => ((t * 1000.0).ceil() as u64).max(1),
        None => lim
            .wall_time_ms
            .unwrap_or(cfg.wall_time_ms)
            .min(cfg.max_wall_time_ms),
    };
    let bounded =
        |field: &str, asked: Option<u64>, lang: Option<u64>, default: u64, max: u64| match asked {
            Some(0) => Err(invalid(field, "must be greater than 0")),
            Some(v) if v > max => Err(invalid(
                field,
                format!("{v} is over the server maximum of {max}"),
            )),
            Some(v) => Ok(v),
            None => Ok(lang.unwrap_or(default).min(max)),
        };
    let memory_mb = bounded(
        "memory_mb",
        req.memory_mb,
        lim.memory_mb,
        cfg.memory_mb,
        cfg.max_memory_mb,
    )?;
    let max_processes = bounded(
        "max_processes",
        req.max_processes,
        lim.max_processes,
        cfg.max_processes,
        cfg.max_max_processes,
    )?;
    let output_bytes = bounded(
        "max_output_bytes",
        req.output_bytes,
        lim.output_bytes,
        cfg.output_bytes,
        cfg.max_output_bytes,
    )?;
    let cpu_time_ms = match (req.timeout_s, lim.cpu_time_ms, cfg.cpu_time_ms) {
        (None, Some(c), _) => c,
        (None, None, c) if c > 0 => c,
        _ => wall_time_ms,
    };
    let run_limits = Limits {
        wall_time_ms,
        cpu_time_ms,
        memory_mb,
        max_processes,
        output_bytes,
        workdir_mb: cfg.workdir_mb,
        workdir_inodes: cfg.workdir_inodes,
        cpu_millicores: cfg.cpu_millicores,
        file_size_mb: cfg.file_size_mb,
        open_files: cfg.open_files,
        stack_mb: cfg.stack_mb,
    };
    let compile_wall = lim.compile_wall_time_ms.unwrap_or(cfg.compile_wall_time_ms);
    let compile_limits = Limits {
        wall_time_ms: compile_wall,
        cpu_time_ms: compile_wall * 2,
        memory_mb: lim.compile_memory_mb.unwrap_or(cfg.compile_memory_mb),
        max_processes: cfg.compile_max_processes,
        output_bytes: cfg.output_bytes,
        // Compilers need room for objects and the binary.
        workdir_mb: cfg.workdir_mb.max(256),
        workdir_inodes: cfg.workdir_inodes,
        cpu_millicores: cfg.cpu_millicores,
        file_size_mb: cfg.file_size_mb.max(256),
        open_files: cfg.open_files.max(1024),
        stack_mb: cfg.stack_mb,
    };
    Ok(Plan {
        files,
        args: req.args.clone(),
        stdin,
        run_limits,
        compile_limits,
        typecheck: req.typecheck,
    })
}

fn expand(command: &[String], source: &str, args: &[String], flags: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(command.len() + args.len());
    for part in command {
        match part.as_str() {
            "{args}" => out.extend(args.iter().cloned()),
            "{flags}" => out.extend(flags.iter().cloned()),
            // Room in a pooled runner's argv for the program's real command line, which the
            // runner writes over it at hand-off (so /proc/<pid>/cmdline and ps show it). A
            // single argument may not exceed 128 KiB.
            "{room}" => out.extend((0..3).map(|_| ".".repeat(100_000))),
            _ => out.push(part.replace("{source}", source)),
        }
    }
    out
}

fn env(extra: &BTreeMap<String, String>) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = BASE_ENV
        .iter()
        .filter(|(k, _)| !extra.contains_key(*k))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    env.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    env
}

fn limit_sentence(hit: LimitHit, limits: &Limits) -> String {
    match hit {
        LimitHit::WallTime => format!("Time limit exceeded ({})", seconds(limits.wall_time_ms)),
        LimitHit::CpuTime => format!("CPU time limit exceeded ({})", seconds(limits.cpu_time_ms)),
        LimitHit::Memory => format!("Memory limit exceeded ({} MiB)", limits.memory_mb),
        LimitHit::Output => format!(
            "Output limit exceeded ({} byte{} per stream)",
            limits.output_bytes,
            if limits.output_bytes == 1 { "" } else { "s" }
        ),
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Removes a scratch file when dropped.
struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

pub(crate) async fn execute(
    engine: &Engine,
    lang: &Language,
    plan: Plan,
) -> Result<Execution, EngineError> {
    let file = &lang.file;
    let mut run_files = plan.files.clone();
    let mut compile_output = None;
    let mut compile_time = None;
    let mut compile_cached = None;
    let _artifact;
    if let Some(compile) = &file.compile {
        let artifact = Scratch(engine.scratch_file(&format!("{}-out", file.name)));
        let flags = if plan.typecheck {
            compile.typecheck_flags.clone()
        } else {
            Vec::new()
        };
        let spec = BoxSpec {
            label: format!("{}-compile", file.name),
            argv: expand(&compile.command, &file.source_file, &[], &flags),
            env: env(&compile.env),
            mounts: lang.mounts_for(&compile.runtimes)?,
            files: plan.files.clone(),
            stdin: Vec::new(),
            limits: plan.compile_limits.clone(),
            collect: Some(OutputFile {
                path: compile.output.clone(),
                host_path: artifact.0.clone(),
                max_bytes: engine.config.compile_output_bytes,
            }),
        };
        let key = cache_key(engine, lang, &spec);
        let looked_up = std::time::Instant::now();
        let hit = match (&engine.cache, &key) {
            (Some(cache), Some(key)) => cache.get(key, &artifact.0),
            _ => None,
        };
        if let Some(hit) = hit {
            compile_time = Some(looked_up.elapsed().as_secs_f64());
            compile_output = Some(hit.compile_output);
            compile_cached = Some(true);
        } else {
            let pooled = if plan.typecheck {
                None
            } else {
                engine
                    .pool(&file.name, "compile")
                    .and_then(|p| p.take().map(|ready| (p, ready)))
            };
            let out = match pooled {
                Some((pool, ready)) => {
                    let (message, exec) = if pool.parked {
                        let files = plan.files.clone();
                        (
                            String::new(),
                            Some(Exec {
                                argv: spec.argv.clone(),
                                files,
                            }),
                        )
                    } else {
                        (handoff_message(&file.source_file, &[], &plan.files)?, None)
                    };
                    let out = ready
                        .prepared
                        .start(Handoff {
                            message,
                            exec,
                            stdin: Vec::new(),
                            wall_time_ms: plan.compile_limits.wall_time_ms,
                            cpu_time_ms: plan.compile_limits.cpu_time_ms,
                            output_bytes: plan.compile_limits.output_bytes,
                        })
                        .await?;
                    // The pooled box wrote its artefact where it was told when it was set up.
                    if let Some(path) = ready.artifact {
                        if out.collected {
                            std::fs::rename(&path, &artifact.0).map_err(|e| {
                                EngineError::Internal(format!("moving a pooled artefact: {e}"))
                            })?;
                        } else {
                            let _ = std::fs::remove_file(&path);
                        }
                    }
                    out
                }
                None => engine.backend.run(spec).await?,
            };
            let mut text = lossy(&out.stdout);
            text.push_str(&lossy(&out.stderr));
            compile_time = Some(out.wall_time_us as f64 / 1e6);
            if !out.success() || !out.collected {
                let message = match out.limit {
                    Some(hit) => format!(
                        "Compilation failed: {}\n{text}",
                        limit_sentence(hit, &plan.compile_limits).to_lowercase()
                    ),
                    None if out.success() => format!(
                        "{text}\nCompilation produced no {} (or it was over {} bytes)",
                        compile.output, engine.config.compile_output_bytes
                    ),
                    None => text.clone(),
                };
                return Ok(compile_failed(
                    engine,
                    lang,
                    message,
                    text,
                    compile_time,
                    &out,
                ));
            }
            if let (Some(cache), Some(key)) = (&engine.cache, &key) {
                if let Err(e) = cache.put(key, &artifact.0, &text) {
                    tracing::warn!(language = %file.name, "compile cache: cannot store: {e}");
                }
            }
            compile_output = Some(text);
            compile_cached = Some(false);
        }
        match compile.output_kind {
            OutputKind::Binary => run_files.push(InputFile {
                path: compile.output.clone(),
                source: FileSource::Host(artifact.0.clone()),
                executable: true,
            }),
            OutputKind::Bundle => {
                let bytes = std::fs::read(&artifact.0)
                    .map_err(|e| EngineError::Internal(format!("reading compile output: {e}")))?;
                let bundle: BTreeMap<String, String> =
                    serde_json::from_slice(&bytes).map_err(|e| {
                        EngineError::Sandbox(SandboxError::Helper(format!(
                            "compiler wrote a bad bundle: {e}"
                        )))
                    })?;
                for (path, content) in bundle {
                    coderun_sandbox::validate_relative_path(&path).map_err(|m| {
                        EngineError::Sandbox(SandboxError::Helper(format!("bad bundle entry: {m}")))
                    })?;
                    run_files.retain(|f| f.path != path);
                    run_files.push(InputFile {
                        path,
                        source: FileSource::Inline(content),
                        executable: false,
                    });
                }
            }
        }
        _artifact = artifact;
    }
    let pool = engine.pool(&file.name, "run").filter(|p| {
        // A runner takes its files as text; a parked box takes any file.
        same_box_limits(&p.limits, &plan.run_limits)
            && (p.parked
                || run_files
                    .iter()
                    .all(|f| matches!(f.source, FileSource::Inline(_))))
    });
    let taken = pool.and_then(|p| p.take().map(|ready| (p, ready)));
    let pooled = taken.is_some();
    let out = match taken {
        Some((pool, ready)) => {
            let (message, exec) = if pool.parked {
                let argv = expand(&file.run.command, &file.source_file, &plan.args, &[]);
                (
                    String::new(),
                    Some(Exec {
                        argv,
                        files: run_files,
                    }),
                )
            } else {
                (handoff_message(&pool.main, &plan.args, &run_files)?, None)
            };
            ready
                .prepared
                .start(Handoff {
                    message,
                    exec,
                    stdin: plan.stdin,
                    wall_time_ms: plan.run_limits.wall_time_ms,
                    cpu_time_ms: plan.run_limits.cpu_time_ms,
                    output_bytes: plan.run_limits.output_bytes,
                })
                .await?
        }
        None => {
            let spec = BoxSpec {
                label: format!("{}-run", file.name),
                argv: expand(&file.run.command, &file.source_file, &plan.args, &[]),
                env: env(&file.run.env),
                mounts: lang.mounts_for(&file.run.runtimes)?,
                files: run_files,
                stdin: plan.stdin,
                limits: plan.run_limits.clone(),
                collect: None,
            };
            engine.backend.run(spec).await?
        }
    };
    let mut exec = finish(
        engine,
        lang,
        &plan.run_limits,
        out,
        compile_output,
        compile_time,
    );
    exec.compile_cached = compile_cached;
    exec.pooled = pooled;
    Ok(exec)
}

/// What a pooled box's runner receives: the main file, the arguments, every file.
fn handoff_message(
    main: &str,
    args: &[String],
    files: &[InputFile],
) -> Result<String, EngineError> {
    let files: Vec<serde_json::Value> = files
        .iter()
        .map(|f| match &f.source {
            FileSource::Inline(content) => Ok(serde_json::json!({
                "path": f.path, "content": content, "executable": f.executable,
            })),
            FileSource::Host(_) => Err(EngineError::Internal(
                "a host file cannot be handed to a pooled box".into(),
            )),
        })
        .collect::<Result<_, _>>()?;
    Ok(serde_json::json!({"main": main, "args": args, "files": files}).to_string())
}

/// Whether a request's run limits are those a pooled box was set up with (wall time, CPU
/// time and output caps are set at hand-off; the rest is fixed in the box).
fn same_box_limits(pool: &Limits, wanted: &Limits) -> bool {
    Limits {
        wall_time_ms: 0,
        cpu_time_ms: 0,
        output_bytes: 0,
        ..pool.clone()
    } == Limits {
        wall_time_ms: 0,
        cpu_time_ms: 0,
        output_bytes: 0,
        ..wanted.clone()
    }
}

fn pool_mounts(
    lang: &Language,
    step: &[String],
    runner: &[String],
) -> Result<Vec<RuntimeMount>, EngineError> {
    let mut mounts = lang.mounts_for(step)?;
    mounts.extend(lang.mounts_for_all(runner)?);
    Ok(mounts)
}

/// One pool of a language: the box every member is made from, and how it is handed a
/// program.
pub(crate) struct PoolTemplate {
    pub step: &'static str,
    pub spec: BoxSpec,
    /// The file the runner runs (runner pools).
    pub main: String,
    /// Parked: no runner; the hand-off executes the step's own command.
    pub parked: bool,
}

/// The pool templates of a language. Steps whose runtimes are missing have no pool.
pub(crate) fn pool_templates(engine: &Engine, lang: &Language) -> Vec<PoolTemplate> {
    let file = &lang.file;
    let defaults = ExecuteRequest {
        language: file.name.clone(),
        ..Default::default()
    };
    let Ok(plan) = plan(engine, lang, &defaults) else {
        return Vec::new();
    };
    let run = file.run.pool.as_ref().map(|pool| {
        let step = (&file.run.command, &file.run.runtimes, &file.run.env);
        ("run", pool, step, plan.run_limits.clone(), None)
    });
    let compile = file.compile.as_ref().and_then(|compile| {
        let pool = compile.pool.as_ref()?;
        let step = (&compile.command, &compile.runtimes, &compile.env);
        let collect = OutputFile {
            path: compile.output.clone(),
            host_path: std::path::PathBuf::new(),
            max_bytes: engine.config.compile_output_bytes,
        };
        Some((
            "compile",
            pool,
            step,
            plan.compile_limits.clone(),
            Some(collect),
        ))
    });
    let mut out = Vec::new();
    for (step, pool, (command, runtimes, step_env), limits, collect) in
        run.into_iter().chain(compile)
    {
        // The step's own runtimes as the step mounts them (a missing optional one, like the
        // type checker, is left out); the pool's runner runtimes must all be there.
        let Ok(mounts) = pool_mounts(lang, runtimes, &pool.runtimes) else {
            continue;
        };
        let parked = pool.command.is_empty();
        let argv = if parked {
            expand(command, &file.source_file, &[], &[])
        } else {
            expand(&pool.command, &file.source_file, &[], &[])
        };
        out.push(PoolTemplate {
            step,
            spec: BoxSpec {
                label: format!("{}-{step}-pooled", file.name),
                argv,
                env: env(step_env),
                mounts,
                files: Vec::new(),
                stdin: Vec::new(),
                limits,
                collect,
            },
            main: pool
                .main
                .clone()
                .unwrap_or_else(|| file.source_file.clone()),
            parked,
        });
    }
    out
}

/// The compile cache key of a compile box, or None when the compiler's version is unknown
/// (then nothing is cached: a key must pin the compiler).
fn cache_key(engine: &Engine, lang: &Language, spec: &BoxSpec) -> Option<String> {
    engine.cache.as_ref()?;
    let version = version(engine, lang)?;
    let mut parts: Vec<Vec<u8>> = vec![
        b"coderun-compile-v1".to_vec(),
        lang.file.name.clone().into_bytes(),
        version.into_bytes(),
    ];
    parts.extend(spec.argv.iter().map(|a| a.clone().into_bytes()));
    parts.push(b"env".to_vec());
    for (k, v) in &spec.env {
        parts.push(format!("{k}={v}").into_bytes());
    }
    parts.push(b"mounts".to_vec());
    for m in &spec.mounts {
        use std::os::unix::fs::MetadataExt;
        parts.push(m.source.as_os_str().as_encoded_bytes().to_vec());
        parts.push(m.target.as_os_str().as_encoded_bytes().to_vec());
        // The identity of what is mounted: a rebuilt coderun (its transpiler) or a replaced
        // toolchain file gets new keys even when version strings stay the same.
        let includes = if m.include.is_empty() {
            vec![String::new()]
        } else {
            m.include.clone()
        };
        for inc in includes {
            if let Ok(meta) = std::fs::metadata(m.source.join(&inc)) {
                parts.push(
                    format!(
                        "{inc}:{}:{}:{}:{}",
                        meta.ino(),
                        meta.len(),
                        meta.mtime(),
                        meta.mtime_nsec()
                    )
                    .into_bytes(),
                );
            }
        }
    }
    parts.push(b"files".to_vec());
    for f in &spec.files {
        let FileSource::Inline(content) = &f.source else {
            return None;
        };
        parts.push(f.path.clone().into_bytes());
        parts.push(vec![u8::from(f.executable)]);
        parts.push(content.clone().into_bytes());
    }
    Some(crate::cache::CompileCache::key(
        parts.iter().map(Vec::as_slice),
    ))
}

fn version(engine: &Engine, lang: &Language) -> Option<String> {
    engine
        .health()
        .and_then(|h| h.languages.into_iter().find(|l| l.name == lang.file.name))
        .and_then(|l| l.version)
}

fn compile_failed(
    engine: &Engine,
    lang: &Language,
    message: String,
    text: String,
    compile_time: Option<f64>,
    out: &Outcome,
) -> Execution {
    Execution {
        status: Status::CompileError,
        success: false,
        stdout: String::new(),
        stderr: String::new(),
        error: Some(message),
        exit_code: None,
        signal: None,
        compile_output: Some(text),
        compile_time,
        compile_cached: Some(false),
        pooled: false,
        queue_time: 0.0,
        wall_time: 0.0,
        cpu_time: 0.0,
        memory_kb: out.memory_peak_kb,
        truncated: out.stdout_truncated || out.stderr_truncated,
        language: lang.file.name.clone(),
        version: version(engine, lang),
    }
}

fn finish(
    engine: &Engine,
    lang: &Language,
    limits: &Limits,
    out: Outcome,
    compile_output: Option<String>,
    compile_time: Option<f64>,
) -> Execution {
    let stderr = lossy(&out.stderr);
    let status = match out.limit {
        Some(LimitHit::WallTime | LimitHit::CpuTime) => Status::Timeout,
        Some(LimitHit::Memory) => Status::MemoryLimit,
        Some(LimitHit::Output) => Status::OutputLimit,
        None if out.success() => Status::Ok,
        None => Status::RuntimeError,
    };
    let error = match out.limit {
        Some(hit) if stderr.is_empty() => Some(limit_sentence(hit, limits)),
        Some(hit) => Some(format!("{}\n{stderr}", limit_sentence(hit, limits))),
        None if stderr.is_empty() => None,
        None => Some(stderr.clone()),
    };
    let version = version(engine, lang);
    Execution {
        status,
        success: out.success(),
        stdout: lossy(&out.stdout),
        stderr,
        error,
        exit_code: out.exit_code(),
        signal: out.signal().map(signal_name),
        compile_output,
        compile_time,
        compile_cached: None,
        pooled: false,
        queue_time: 0.0,
        wall_time: out.wall_time_us as f64 / 1e6,
        cpu_time: out.cpu_time_us as f64 / 1e6,
        memory_kb: out.memory_peak_kb,
        truncated: out.stdout_truncated || out.stderr_truncated,
        language: lang.file.name.clone(),
        version,
    }
}

pub(crate) async fn self_check(engine: &Engine) -> Health {
    let mut languages = Vec::new();
    let mut sandbox_ok = false;
    let mut sandbox_error = None;
    for lang in &engine.languages {
        let file = &lang.file;
        let mut entry = LanguageHealth {
            name: file.name.clone(),
            display_name: file.display_name.clone(),
            aliases: file.aliases.clone(),
            compiled: file.compile.is_some(),
            available: false,
            version: None,
            error: None,
        };
        match lang.all_mounts() {
            Err(e) => entry.error = Some(e.to_string()),
            Ok(mounts) => {
                let run_env = if file.compile.is_some() {
                    file.compile
                        .as_ref()
                        .map(|c| c.env.clone())
                        .unwrap_or_default()
                } else {
                    file.run.env.clone()
                };
                let spec = BoxSpec {
                    label: format!("{}-version", file.name),
                    argv: file.version_command.clone(),
                    env: env(&run_env),
                    mounts,
                    files: Vec::new(),
                    stdin: Vec::new(),
                    limits: Limits {
                        wall_time_ms: 10_000,
                        cpu_time_ms: 10_000,
                        memory_mb: engine.config.compile_memory_mb,
                        max_processes: engine.config.compile_max_processes,
                        output_bytes: 64 << 10,
                        workdir_mb: 16,
                        workdir_inodes: 64,
                        cpu_millicores: engine.config.cpu_millicores,
                        file_size_mb: 16,
                        open_files: 256,
                        stack_mb: 8,
                    },
                    collect: None,
                };
                match engine.backend.run(spec).await {
                    Ok(out) => {
                        sandbox_ok = true;
                        let text = format!("{}{}", lossy(&out.stdout), lossy(&out.stderr));
                        let first = text.lines().next().unwrap_or("").trim().to_string();
                        if out.success() && !first.is_empty() {
                            entry.available = true;
                            entry.version = Some(first);
                        } else {
                            entry.error = Some(format!("version command failed: {}", text.trim()));
                        }
                    }
                    Err(e) => {
                        tracing::error!(language = %file.name, error = %e, "self-check box failed");
                        sandbox_error = Some(e.to_string());
                        entry.error = Some("sandbox failure".into());
                    }
                }
            }
        }
        languages.push(entry);
    }
    Health {
        healthy: sandbox_ok && languages.iter().any(|l| l.available),
        backend: engine.backend.name().to_string(),
        sandbox_ok,
        sandbox_error: if sandbox_ok {
            None
        } else {
            sandbox_error.or(Some("no self-check box ran".into()))
        },
        checked_at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        languages,
    }
}
