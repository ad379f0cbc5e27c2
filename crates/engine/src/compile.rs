//! The compile step: the compile cache, the compiler's box, and what the run step gets from
//! it (a binary, or a bundle of files). A cancelled compile leaves nothing behind: its output
//! is a [`Scratch`] file removed on drop, and the cache is filled only after a success.

use std::collections::BTreeMap;

use coderun_sandbox::{FileSource, InputFile, OutputFile, SandboxError};

use crate::language::{CompileDef, OutputKind};
use crate::plan::{env, expand, Plan};
use crate::result::{compile_failed, limit_sentence, lossy};
use crate::step::{self, Scratch, Step};
use crate::{Engine, EngineError, Execution, Language};

/// What the compile step left for the run step.
pub(crate) struct Compiled {
    /// The run box's files: the request's, plus the binary or the bundle.
    pub run_files: Vec<InputFile>,
    pub output: String,
    pub time: f64,
    pub cached: bool,
    /// The compiler's output file on the host, until the run box has copied it.
    pub _artifact: Scratch,
}

pub(crate) enum CompileResult {
    Compiled(Compiled),
    /// The program did not compile: this is the answer.
    Failed(Execution),
}

pub(crate) async fn compile(
    engine: &Engine,
    lang: &Language,
    compile: &CompileDef,
    plan: &Plan,
) -> Result<CompileResult, EngineError> {
    let file = &lang.file;
    let artifact = Scratch(engine.scratch_file(&format!("{}-out", file.name)));
    let flags = if plan.typecheck {
        compile.typecheck_flags.clone()
    } else {
        Vec::new()
    };
    let step = Step {
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
    let key = cache_key(engine, lang, &step);
    let looked_up = std::time::Instant::now();
    let hit = match (&engine.cache, &key) {
        (Some(cache), Some(key)) => cache.get(key, &artifact.0),
        _ => None,
    };
    let (output, time, cached) = match hit {
        Some(hit) => (hit.compile_output, looked_up.elapsed().as_secs_f64(), true),
        None => {
            let pool = engine.pool(&file.name, "compile");
            let ran = step::run(engine.backend.as_ref(), pool.as_deref(), step).await?;
            let out = ran.outcome;
            let mut text = lossy(&out.stdout);
            text.push_str(&lossy(&out.stderr));
            let time = out.wall_time_us as f64 / 1e6;
            if !out.success() || !out.collected {
                let message = match out.limit {
                    Some(hit) => format!(
                        "Compilation failed: {}\n{text}",
                        limit_sentence(hit, &plan.compile_limits)
                    ),
                    None if out.success() => format!(
                        "{text}\nCompilation produced no {} (or it was over {} bytes)",
                        compile.output, engine.config.compile_output_bytes
                    ),
                    None => text.clone(),
                };
                return Ok(CompileResult::Failed(compile_failed(
                    &file.name,
                    engine.version(lang),
                    message,
                    text,
                    time,
                    &out,
                )));
            }
            if let (Some(cache), Some(key)) = (&engine.cache, &key) {
                if let Err(e) = cache.put(key, &artifact.0, &text) {
                    tracing::warn!(language = %file.name, "compile cache: cannot store: {e}");
                }
            }
            (text, time, false)
        }
    };
    let mut run_files = plan.files.clone();
    match compile.output_kind {
        OutputKind::Binary => run_files.push(InputFile {
            path: compile.output.clone(),
            source: FileSource::Host(artifact.0.clone()),
            executable: true,
        }),
        OutputKind::Bundle => {
            let bytes = std::fs::read(&artifact.0)
                .map_err(|e| EngineError::Internal(format!("reading compile output: {e}")))?;
            let bundle: BTreeMap<String, String> = serde_json::from_slice(&bytes).map_err(|e| {
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
    Ok(CompileResult::Compiled(Compiled {
        run_files,
        output,
        time,
        cached,
        _artifact: artifact,
    }))
}

/// The compile cache key of a compile step, or None when the compiler's version is unknown
/// (then nothing is cached: a key must pin the compiler).
fn cache_key(engine: &Engine, lang: &Language, step: &Step) -> Option<String> {
    engine.cache.as_ref()?;
    let version = engine.version(lang)?;
    key_of(&lang.file.name, &version, step)
}

fn key_of(language: &str, version: &str, spec: &Step) -> Option<String> {
    let mut parts: Vec<Vec<u8>> = vec![
        b"coderun-compile-v1".to_vec(),
        language.as_bytes().to_vec(),
        version.as_bytes().to_vec(),
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
