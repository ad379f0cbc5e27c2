//! Checking a request against the server's caps and working out its limits: the request,
//! then the language file, then the server's defaults, never past the server's maxima.

use std::collections::BTreeMap;

use coderun_sandbox::{FileSource, InputFile, Limits};

use crate::config::EngineConfig;
use crate::language::LanguageFile;
use crate::{invalid, EngineError, ExecuteRequest};

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
    pub files: Vec<InputFile>,
    pub args: Vec<String>,
    pub stdin: Vec<u8>,
    pub run_limits: Limits,
    pub compile_limits: Limits,
    pub typecheck: bool,
}

pub(crate) fn seconds(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{} s", ms as f64 / 1000.0)
    }
}

/// Checks the request against the caps and works out its limits.
pub(crate) fn plan(
    cfg: &EngineConfig,
    file: &LanguageFile,
    req: &ExecuteRequest,
) -> Result<Plan, EngineError> {
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
        // A file may not sit under another (or under a name the language or its compiler
        // writes), nor be a directory above one.
        let clash = |other: &str| {
            name.starts_with(&format!("{other}/")) || other.starts_with(&format!("{name}/"))
        };
        if files.iter().any(|f| clash(&f.path)) || reserved.iter().any(|r| clash(r)) {
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

pub(crate) fn expand(
    command: &[String],
    source: &str,
    args: &[String],
    flags: &[String],
) -> Vec<String> {
    let mut out = Vec::with_capacity(command.len() + args.len());
    for part in command {
        match part.as_str() {
            "{args}" => out.extend(args.iter().cloned()),
            "{flags}" => out.extend(flags.iter().cloned()),
            _ => out.push(part.replace("{source}", source)),
        }
    }
    out
}

pub(crate) fn env(extra: &BTreeMap<String, String>) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = BASE_ENV
        .iter()
        .filter(|(k, _)| !extra.contains_key(*k))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    env.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    env
}
