//! Warm pools of single-use boxes.
//!
//! For each language step that has a `pool` in its language file (Python's run, TypeScript's
//! compile and run, Rust's compile and run), up to `pool_size` boxes are kept fully set up —
//! namespaces, root, cgroup, seccomp — with the runtime already started inside the box's own
//! cgroup and waiting on fd 3 for a program, or (a parked pool, for steps with no runtime to
//! start early) with the program's process confined and waiting just before its exec. A request takes one, hands it the program, and the pool refills in
//! the background. A box is never reused, and no interpreter is ever forked from another
//! (every box starts its own runtime: no shared random state between runs). An idle pool
//! costs memory, not CPU: its runtimes block in `read(3)`.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use coderun_sandbox::{Backend, BoxSpec, Limits, PreparedBox};
use tokio::sync::Notify;

/// One ready box and, for a compile box, where its artefact will land.
pub(crate) struct Ready {
    pub prepared: Box<dyn PreparedBox>,
    pub artifact: Option<PathBuf>,
}

pub(crate) struct Pool {
    pub name: String,
    /// The box every member is made from; `collect.host_path` is replaced per member.
    template: BoxSpec,
    /// What a request must match to use this pool (fixed when a box is set up).
    pub limits: Limits,
    /// The file the runner runs.
    pub main: String,
    /// Parked boxes (no runner): the hand-off names the command to execute.
    pub parked: bool,
    size: usize,
    ready: Mutex<VecDeque<Ready>>,
    wake: Notify,
    /// Set at shutdown: no more boxes are prepared, the ready ones are destroyed.
    stopped: std::sync::atomic::AtomicBool,
}

impl Pool {
    pub fn new(name: String, template: BoxSpec, main: String, parked: bool, size: usize) -> Pool {
        Pool {
            name,
            limits: template.limits.clone(),
            template,
            main,
            parked,
            size,
            ready: Mutex::new(VecDeque::new()),
            wake: Notify::new(),
            stopped: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Stops refilling and destroys the ready boxes (shutdown).
    pub fn stop(&self) {
        self.stopped
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.lock().clear();
        self.wake.notify_one();
    }

    fn is_stopped(&self) -> bool {
        self.stopped.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Ready>> {
        self.ready.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A ready box, if there is one (never waits: without one the request runs unpooled).
    pub fn take(&self) -> Option<Ready> {
        if self.is_stopped() {
            return None;
        }
        let taken = self.lock().pop_front();
        self.wake.notify_one();
        taken
    }

    pub fn ready_count(&self) -> usize {
        self.lock().len()
    }

    /// Keeps the pool full until the engine is dropped. `artifact` names a fresh scratch file
    /// for a compile box's output.
    pub fn spawn_refill(
        self: &Arc<Self>,
        backend: Arc<dyn Backend>,
        artifact: impl Fn() -> PathBuf + Send + 'static,
    ) {
        let weak: Weak<Pool> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut failures = 0u32;
            loop {
                let Some(pool) = weak.upgrade() else { return };
                if pool.is_stopped() {
                    return;
                }
                if pool.ready_count() >= pool.size {
                    // Wake on a take, or once a second to notice the engine is gone.
                    let _ =
                        tokio::time::timeout(Duration::from_secs(1), pool.wake.notified()).await;
                    continue;
                }
                let mut spec = pool.template.clone();
                let path = spec.collect.as_mut().map(|c| {
                    c.host_path = artifact();
                    c.host_path.clone()
                });
                let prepared = if pool.parked {
                    backend.park(spec).await
                } else {
                    backend.prepare(spec).await
                };
                match prepared {
                    Ok(prepared) => {
                        failures = 0;
                        pool.lock().push_back(Ready {
                            prepared,
                            artifact: path,
                        });
                    }
                    Err(e) => {
                        failures += 1;
                        tracing::warn!(pool = %pool.name, error = %e, "cannot prepare a pooled box");
                        drop(pool);
                        // Back off; requests meanwhile run unpooled.
                        tokio::time::sleep(Duration::from_millis(
                            500 * u64::from(failures.min(20)),
                        ))
                        .await;
                    }
                }
            }
        });
    }
}
