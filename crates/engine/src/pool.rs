//! Warm pools of single-use boxes, one per pooled language step (a `[run.pool]` or
//! `[compile.pool]` table in the language file).
//!
//! The engine owns how many boxes are kept; the backend owns how a box is kept warm
//! ([`Backend::prepare`]). A box is never reused, and no runtime is ever forked from another.
//!
//! Sizing: a pool keeps `min` boxes ready while it is quiet. A request that leaves it empty
//! (or finds it empty) raises its target to `max`, so a client sending requests back to back
//! finds warm boxes; after `idle` without a request the target falls back to `min` and the
//! extra boxes are destroyed. One task per pool refills it, one box at a time, and the
//! backend sets warm boxes up at a low CPU weight, so refilling never slows the runs.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use coderun_sandbox::{Backend, OutputFile, PreparedBox, WarmSpec};
use tokio::sync::Notify;

use crate::language::PoolDef;
use crate::plan::{env, expand, Plan};
use crate::step::Scratch;
use crate::Language;

/// One ready box and, for a compile box, the host file its output will land in.
pub(crate) struct Ready {
    pub prepared: Box<dyn PreparedBox>,
    pub artifact: Option<Scratch>,
}

/// How many boxes a pool keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sizing {
    pub min: usize,
    pub max: usize,
    pub idle: Duration,
}

impl Sizing {
    pub fn new(def: &PoolDef, config: &crate::EngineConfig) -> Sizing {
        let (min, max) = config.pool_bounds();
        let max = def.max.unwrap_or(max);
        let min = def.min.unwrap_or(min).min(max);
        Sizing {
            min,
            max,
            idle: Duration::from_secs(def.idle_s.unwrap_or(config.pool_idle_s)),
        }
    }
}

struct State {
    ready: VecDeque<Ready>,
    /// How many boxes the refill task aims at, between `min` and `max`.
    target: usize,
    last_take: Instant,
}

pub(crate) struct Pool {
    pub name: String,
    template: WarmSpec,
    pub sizing: Sizing,
    state: Mutex<State>,
    wake: Notify,
    /// Set at shutdown: no more boxes are prepared, the ready ones are destroyed.
    stopped: AtomicBool,
    /// The refill task, aborted at shutdown (a box being set up is then dropped too).
    refill: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Pool {
    pub fn new(name: String, template: WarmSpec, sizing: Sizing) -> Pool {
        Pool {
            name,
            template,
            sizing,
            state: Mutex::new(State {
                ready: VecDeque::new(),
                target: sizing.min,
                last_take: Instant::now(),
            }),
            wake: Notify::new(),
            stopped: AtomicBool::new(false),
            refill: Mutex::new(None),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stops refilling and destroys the ready boxes (shutdown).
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        if let Some(task) = self.refill.lock().unwrap_or_else(|p| p.into_inner()).take() {
            task.abort();
        }
        let drained: Vec<Ready> = self.lock().ready.drain(..).collect();
        drop(drained);
        self.wake.notify_one();
    }

    fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// A ready box, if there is one (never waits: without one the request runs fresh). Finding
    /// none is demand the pool did not meet: it grows to its maximum. A box taken is either
    /// [`used`](Self::used) or [`put_back`](Self::put_back).
    pub fn take(&self) -> Option<Ready> {
        if self.is_stopped() {
            return None;
        }
        let taken = self.lock().ready.pop_front();
        if taken.is_none() {
            self.demand();
        }
        taken
    }

    /// A box taken was used: the pool refills, and grows to its maximum if it is now empty.
    pub fn used(&self) {
        self.demand();
    }

    fn demand(&self) {
        {
            let mut state = self.lock();
            state.last_take = Instant::now();
            if state.ready.is_empty() {
                state.target = self.sizing.max;
            }
        }
        self.wake.notify_one();
    }

    /// Gives back a box taken but not used (it did not fit the request): the pool is as if
    /// it had not been asked.
    pub fn put_back(&self, ready: Ready) {
        if self.is_stopped() {
            return;
        }
        self.lock().ready.push_front(ready);
    }

    pub fn ready_count(&self) -> usize {
        self.lock().ready.len()
    }

    /// Shrinks a pool idle for longer than its idle time back to its minimum; returns the
    /// boxes to destroy (outside the lock).
    fn shrink_if_idle(&self) -> Vec<Ready> {
        let mut state = self.lock();
        if state.target > self.sizing.min && state.last_take.elapsed() >= self.sizing.idle {
            state.target = self.sizing.min;
            let keep = self.sizing.min.min(state.ready.len());
            return state.ready.drain(keep..).collect();
        }
        Vec::new()
    }

    /// Keeps the pool at its target until it is stopped or the engine is dropped. `artifact`
    /// names a fresh scratch file for a compile box's output.
    pub fn spawn_refill(
        self: &Arc<Self>,
        backend: Arc<dyn Backend>,
        artifact: impl Fn() -> PathBuf + Send + 'static,
    ) {
        let weak: Weak<Pool> = Arc::downgrade(self);
        let task = tokio::spawn(async move {
            let mut failures = 0u32;
            loop {
                let Some(pool) = weak.upgrade() else { return };
                if pool.is_stopped() {
                    return;
                }
                drop(pool.shrink_if_idle());
                let (ready, target) = {
                    let state = pool.lock();
                    (state.ready.len(), state.target)
                };
                if ready >= target {
                    // Wake on a take, or once a second to shrink or notice the engine is gone.
                    let _ =
                        tokio::time::timeout(Duration::from_secs(1), pool.wake.notified()).await;
                    continue;
                }
                let mut spec = pool.template.clone();
                let scratch = spec.collect.as_mut().map(|c| {
                    c.host_path = artifact();
                    Scratch(c.host_path.clone())
                });
                match backend.prepare(spec).await {
                    Ok(prepared) => {
                        failures = 0;
                        let ready = Ready {
                            prepared,
                            artifact: scratch,
                        };
                        if pool.is_stopped() {
                            return;
                        }
                        pool.lock().ready.push_back(ready);
                    }
                    Err(e) => {
                        failures += 1;
                        tracing::warn!(pool = %pool.name, error = %e, "cannot prepare a warm box");
                        drop(pool);
                        // Back off; requests meanwhile run fresh.
                        tokio::time::sleep(Duration::from_millis(
                            500 * u64::from(failures.min(20)),
                        ))
                        .await;
                    }
                }
            }
        });
        *self.refill.lock().unwrap_or_else(|p| p.into_inner()) = Some(task.abort_handle());
    }
}

/// A pool of a language: its step's name and the box every member is made from.
pub(crate) struct Template {
    pub step: &'static str,
    pub spec: WarmSpec,
    pub sizing: Sizing,
}

/// The pool templates of a language, from its default plan (a request with no options).
/// Steps whose runtimes are missing have no pool.
pub(crate) fn templates(
    config: &crate::EngineConfig,
    lang: &Language,
    plan: &Plan,
) -> Vec<Template> {
    let file = &lang.file;
    let run = file.run.pool.as_ref().map(|pool| {
        let step = (&file.run.command, &file.run.runtimes, &file.run.env);
        ("run", pool, step, plan.run_limits.clone(), None)
    });
    let compile = file.compile.as_ref().and_then(|compile| {
        let pool = compile.pool.as_ref()?;
        let step = (&compile.command, &compile.runtimes, &compile.env);
        let collect = OutputFile {
            path: compile.output.clone(),
            host_path: PathBuf::new(),
            max_bytes: config.compile_output_bytes,
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
        // The step's runtimes as a request without options mounts them (a missing optional
        // one, like the type checker, is left out).
        let Ok(mounts) = lang.mounts_for(runtimes) else {
            continue;
        };
        let sizing = Sizing::new(pool, config);
        if sizing.max == 0 {
            continue;
        }
        out.push(Template {
            step,
            spec: WarmSpec {
                label: format!("{}-{step}-warm", file.name),
                command: expand(command, &file.source_file, &[], &[]),
                env: env(step_env),
                mounts,
                limits,
                collect,
            },
            sizing,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizing_takes_the_language_file_then_the_server() {
        let mut config = crate::EngineConfig::default();
        let def = PoolDef::default();
        let s = Sizing::new(&def, &config);
        assert_eq!((s.min, s.max, s.idle), (2, 8, Duration::from_secs(60)));
        let def = PoolDef {
            min: Some(1),
            max: Some(4),
            idle_s: Some(5),
        };
        let s = Sizing::new(&def, &config);
        assert_eq!((s.min, s.max, s.idle), (1, 4, Duration::from_secs(5)));
        config.pool_size = Some(0);
        let s = Sizing::new(&PoolDef::default(), &config);
        assert_eq!((s.min, s.max), (0, 0));
        config.pool_size = None;
        config.pool_max = 1;
        let s = Sizing::new(&PoolDef::default(), &config);
        assert_eq!((s.min, s.max), (1, 1), "min never passes max");
    }
}
