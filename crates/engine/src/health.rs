//! The self-check behind `/health`, `/languages` and `coderun doctor`: every language's
//! version command, run in a real box.
//!
//! What a client may read (`error` sentences) never holds a host path, an errno or a helper's
//! output: those go to the `detail` fields, which only the log and `coderun doctor` show.

use std::time::{SystemTime, UNIX_EPOCH};

use coderun_sandbox::{BoxSpec, Limits};

use crate::plan::env;
use crate::result::lossy;
use crate::{Engine, Health, LanguageHealth};

/// What a client reads when the sandbox failed its self-check.
pub const SANDBOX_FAILED: &str =
    "the sandbox self-check failed on this server; the operator can run `coderun doctor` or read the server log";
/// What a client reads when a language's runtime is missing or broken.
pub const LANGUAGE_UNAVAILABLE: &str =
    "the language's runtime is not installed or does not work on this server; the operator can run `coderun doctor`";

pub(crate) async fn self_check(engine: &Engine) -> Health {
    let mut languages = Vec::new();
    let mut sandbox_ok = false;
    let mut sandbox_detail = None;
    for lang in &engine.languages {
        let file = &lang.file;
        let mut entry = LanguageHealth {
            name: file.name.clone(),
            display_name: file.display_name.clone(),
            aliases: file.aliases.clone(),
            compiled: file.compile.is_some(),
            available: false,
            version: None,
            typecheck: lang.typecheck_available(),
            error: None,
            detail: None,
        };
        let unavailable = |entry: &mut LanguageHealth, detail: String| {
            tracing::warn!(language = %file.name, %detail, "language unavailable");
            entry.error = Some(LANGUAGE_UNAVAILABLE.into());
            entry.detail = Some(detail);
        };
        match lang.all_mounts() {
            Err(e) => unavailable(&mut entry, e.detail()),
            Ok(mounts) => {
                let step_env = match &file.compile {
                    Some(c) => c.env.clone(),
                    None => file.run.env.clone(),
                };
                let spec = BoxSpec {
                    label: format!("{}-version", file.name),
                    argv: file.version_command.clone(),
                    env: env(&step_env),
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
                            unavailable(
                                &mut entry,
                                format!("version command failed: {}", text.trim()),
                            );
                        }
                    }
                    Err(e) => {
                        tracing::error!(language = %file.name, error = %e, "self-check box failed");
                        sandbox_detail = Some(e.to_string());
                        entry.error = Some(SANDBOX_FAILED.into());
                        entry.detail = Some(e.to_string());
                    }
                }
            }
        }
        languages.push(entry);
    }
    let sandbox_detail = match (sandbox_ok, sandbox_detail) {
        (true, _) => None,
        (false, Some(d)) => Some(d),
        (false, None) => Some("no self-check box ran (no language has its runtimes)".into()),
    };
    Health {
        healthy: sandbox_ok && languages.iter().any(|l| l.available),
        backend: engine.backend.name().to_string(),
        sandbox_ok,
        sandbox_error: sandbox_detail.as_ref().map(|_| SANDBOX_FAILED.to_string()),
        sandbox_detail,
        checked_at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        languages,
    }
}
