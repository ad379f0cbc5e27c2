//! Running one step of a request (its compile or its run): in a warm box from the step's
//! pool when one is ready and the backend says it takes the program, else in a fresh box.
//! The compile step and the run step go through the same code.

use std::path::PathBuf;

use coderun_sandbox::{
    Backend, BoxSpec, InputFile, Limits, Outcome, OutputFile, Program, RuntimeMount, SandboxError,
};

use crate::pool::{Pool, Ready};

/// One program to run in one box.
pub(crate) struct Step {
    pub label: String,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub mounts: Vec<RuntimeMount>,
    pub files: Vec<InputFile>,
    pub stdin: Vec<u8>,
    pub limits: Limits,
    /// A file to copy out (a compiler's output), to `host_path`.
    pub collect: Option<OutputFile>,
}

pub(crate) struct Ran {
    pub outcome: Outcome,
    /// Whether it ran in a warm box.
    pub pooled: bool,
}

/// A host file owned by the engine (a compiler's output), removed when dropped.
#[derive(Debug)]
pub(crate) struct Scratch(pub PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs the step; dropping the future ends its box (the backend's contract).
pub(crate) async fn run(
    backend: &dyn Backend,
    pool: Option<&Pool>,
    step: Step,
) -> Result<Ran, SandboxError> {
    let Step {
        label,
        argv,
        env,
        mounts,
        files,
        stdin,
        limits,
        collect,
    } = step;
    let mut program = Program {
        argv,
        files,
        stdin,
        limits,
        streams: None,
    };
    if let Some(pool) = pool {
        if let Some(ready) = pool.take() {
            if ready.prepared.accepts(&program) {
                pool.used();
                let Ready { prepared, artifact } = ready;
                let outcome = prepared.start(program).await?;
                // A warm compile box writes its output where it was told at set-up.
                if let (Some(collect), Some(artifact)) = (&collect, artifact) {
                    if outcome.collected {
                        std::fs::rename(&artifact.0, &collect.host_path)?;
                    }
                }
                return Ok(Ran {
                    outcome,
                    pooled: true,
                });
            }
            // Not for this program (other limits, other flags): it stays warm for the next.
            pool.put_back(ready);
        }
    }
    let spec = BoxSpec {
        label,
        argv: std::mem::take(&mut program.argv),
        env,
        mounts,
        files: std::mem::take(&mut program.files),
        stdin: std::mem::take(&mut program.stdin),
        limits: program.limits,
        collect,
    };
    Ok(Ran {
        outcome: backend.run(spec).await?,
        pooled: false,
    })
}
