//! Prometheus metrics, served as text at `GET /metrics`.
//!
//! Counters and histograms are recorded as requests pass; gauges (active runs, queue depth,
//! ready pooled boxes) are read from the engine at scrape time.

use std::time::Duration;

use coderun_engine::{Engine, Execution};
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_seconds: HistogramVec,
    executions: IntCounterVec,
    queue_seconds: Histogram,
    compile_seconds: HistogramVec,
    run_seconds: HistogramVec,
    compile_cache: IntCounterVec,
    pooled_runs: IntCounterVec,
    sandbox_failures: IntCounter,
    active_runs: IntGauge,
    queue_depth: IntGauge,
    pool_ready: IntGaugeVec,
}

fn histogram(name: &str, help: &str) -> HistogramOpts {
    HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec())
}

impl Metrics {
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let m = Metrics {
            http_requests: IntCounterVec::new(
                Opts::new(
                    "coderun_http_requests_total",
                    "HTTP requests by route and status",
                ),
                &["route", "status"],
            )?,
            http_seconds: HistogramVec::new(
                histogram(
                    "coderun_http_request_duration_seconds",
                    "HTTP request latency, end to end",
                ),
                &["route"],
            )?,
            executions: IntCounterVec::new(
                Opts::new(
                    "coderun_executions_total",
                    "Executions by language and outcome status",
                ),
                &["language", "status"],
            )?,
            queue_seconds: Histogram::with_opts(histogram(
                "coderun_queue_wait_seconds",
                "Time an execution waited for a run slot",
            ))?,
            compile_seconds: HistogramVec::new(
                histogram("coderun_compile_seconds", "Compile step duration"),
                &["language"],
            )?,
            run_seconds: HistogramVec::new(
                histogram("coderun_run_seconds", "Run step wall time (exec to exit)"),
                &["language"],
            )?,
            compile_cache: IntCounterVec::new(
                Opts::new(
                    "coderun_compile_cache_total",
                    "Compile cache lookups by result",
                ),
                &["language", "result"],
            )?,
            pooled_runs: IntCounterVec::new(
                Opts::new(
                    "coderun_runs_total",
                    "Run steps by language and box kind (pooled or fresh)",
                ),
                &["language", "box"],
            )?,
            sandbox_failures: IntCounter::new(
                "coderun_sandbox_failures_total",
                "Requests that failed because the sandbox could not be set up",
            )?,
            active_runs: IntGauge::new("coderun_active_runs", "Executions running now")?,
            queue_depth: IntGauge::new("coderun_queue_depth", "Executions waiting for a run slot")?,
            pool_ready: IntGaugeVec::new(
                Opts::new("coderun_pool_ready_boxes", "Warm boxes ready per pool"),
                &["pool"],
            )?,
            registry,
        };
        m.registry.register(Box::new(m.http_requests.clone()))?;
        m.registry.register(Box::new(m.http_seconds.clone()))?;
        m.registry.register(Box::new(m.executions.clone()))?;
        m.registry.register(Box::new(m.queue_seconds.clone()))?;
        m.registry.register(Box::new(m.compile_seconds.clone()))?;
        m.registry.register(Box::new(m.run_seconds.clone()))?;
        m.registry.register(Box::new(m.compile_cache.clone()))?;
        m.registry.register(Box::new(m.pooled_runs.clone()))?;
        m.registry.register(Box::new(m.sandbox_failures.clone()))?;
        m.registry.register(Box::new(m.active_runs.clone()))?;
        m.registry.register(Box::new(m.queue_depth.clone()))?;
        m.registry.register(Box::new(m.pool_ready.clone()))?;
        Ok(m)
    }

    pub fn http(&self, route: &str, status: u16, took: Duration) {
        self.http_requests
            .with_label_values(&[route, &status.to_string()])
            .inc();
        self.http_seconds
            .with_label_values(&[route])
            .observe(took.as_secs_f64());
    }

    pub fn execution(&self, e: &Execution) {
        let status = serde_json::to_value(e.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let lang = e.language.as_str();
        self.executions.with_label_values(&[lang, &status]).inc();
        self.queue_seconds.observe(e.queue_time);
        if let Some(t) = e.compile_time {
            self.compile_seconds.with_label_values(&[lang]).observe(t);
        }
        if let Some(hit) = e.compile_cached {
            let result = if hit { "hit" } else { "miss" };
            self.compile_cache.with_label_values(&[lang, result]).inc();
        }
        if e.status != coderun_engine::Status::CompileError {
            self.run_seconds
                .with_label_values(&[lang])
                .observe(e.wall_time);
            let kind = if e.pooled { "pooled" } else { "fresh" };
            self.pooled_runs.with_label_values(&[lang, kind]).inc();
        }
    }

    pub fn sandbox_failure(&self) {
        self.sandbox_failures.inc();
    }

    /// The text exposition, with the gauges read from the engine now.
    pub fn render(&self, engine: &Engine) -> String {
        self.active_runs.set(engine.running() as i64);
        self.queue_depth.set(engine.queued() as i64);
        for (pool, status) in engine.pools() {
            self.pool_ready
                .with_label_values(&[&pool])
                .set(status.ready as i64);
        }
        let mut out = Vec::new();
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(out).unwrap_or_default()
    }
}
