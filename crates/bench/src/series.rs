//! Back-to-back series at concurrency 1: each request sent as soon as the previous one was
//! answered, and beside it as many bare runs back to back. Where the interleaved rows show a
//! request that finds its warm pool full, these show what a client sending several in a row
//! gets:
//!
//! - **burst**: once the server has been idle for [`IDLE`], `pool_max` requests (the most
//!   boxes the language's run pool holds, from `/health`): how many find a warm box, and what
//!   the ones that do not cost. Before the measured bursts one unmeasured burst drains the
//!   pool, so that it grows to its maximum (a pool grows after it drains and shrinks only
//!   after a longer idle time).
//! - **sustained**: `n` requests with no pause, started after [`IDLE`]: the pool's refill
//!   against a client that never waits, as p50/p95 and runs/s.
//!
//! For compiled languages every request is a new source (a compile-cache miss), as in the
//! interleaved "new source" rows.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::baseline::Bare;
use crate::client::Api;
use crate::error::BenchError;
use crate::langs::Lang;
use crate::{log, Outcome};

/// How long the server must have had no request of ours before a burst.
pub const IDLE: Duration = Duration::from_secs(5);

/// The burst size when `/health` does not report the pool's maximum.
pub const DEFAULT_POOL_MAX: usize = 8;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Pattern {
    /// `bursts` bursts of `size` requests, each after [`IDLE`]: the run pool's `pool_max` as
    /// `/health` reports it (None when it does not: [`DEFAULT_POOL_MAX`]), perhaps capped by
    /// --quick.
    Burst {
        size: usize,
        bursts: usize,
        pool_max: Option<usize>,
    },
    Sustained {
        n: usize,
    },
}

/// One side of a series: milliseconds per run, the series' time, the runs that got a warm
/// box (and of how many the server said so at all).
#[derive(Default)]
pub struct Side {
    pub ms: Vec<f64>,
    pub seconds: f64,
    pub pooled: usize,
    pub pooled_known: usize,
}

impl Side {
    pub fn per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.ms.len() as f64 / self.seconds
        } else {
            f64::NAN
        }
    }

    fn extend(&mut self, other: Side) {
        self.ms.extend(other.ms);
        self.seconds += other.seconds;
        self.pooled += other.pooled;
        self.pooled_known += other.pooled_known;
    }
}

pub struct Series {
    pub lang: String,
    pub pattern: Pattern,
    pub coderun: Side,
    pub bare: Side,
}

/// `n` runs of `f` back to back. Any failure stops the benchmark, as in the latency phase.
fn back_to_back(n: usize, what: &str, f: &dyn Fn() -> Outcome) -> Result<Side, BenchError> {
    let mut side = Side::default();
    let start = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        let r = f();
        side.ms.push(t.elapsed().as_secs_f64() * 1000.0);
        let sample = r.map_err(|error| BenchError::Case {
            phase: "series",
            case: what.to_string(),
            error,
        })?;
        if let Some(pooled) = sample.and_then(|s| s.pooled) {
            side.pooled_known += 1;
            side.pooled += usize::from(pooled);
        }
    }
    side.seconds = start.elapsed().as_secs_f64();
    Ok(side)
}

/// A language's run pool's `pool_max` from `/health` (`<lang>/run`); None when the server
/// does not report one (or reports 0: no pool).
pub fn pool_max_of(pool_max: Option<&BTreeMap<String, u64>>, lang: &str) -> Option<usize> {
    pool_max
        .and_then(|m| m.get(&format!("{lang}/run")))
        .and_then(|&v| usize::try_from(v).ok())
        .filter(|&v| v > 0)
}

/// One unmeasured burst, then `bursts` measured ones, each after [`IDLE`] and followed by
/// as many bare runs.
pub fn burst(
    api: &Api,
    bare: &Bare,
    lang: &Lang,
    pool_max: Option<usize>,
    cap: Option<usize>,
    bursts: usize,
) -> Result<Series, BenchError> {
    let size = pool_max.unwrap_or(DEFAULT_POOL_MAX);
    let size = cap.map_or(size, |cap| size.min(cap));
    let name = lang.name();
    let coderun = || api.call(lang, true).map(Some);
    let bare_run = || bare.bare(name, 0);
    let what = format!("{name} burst");
    log(&format!(
        "  {name}: {bursts} burst(s) of {size}, each after {} s idle (one more first, unmeasured) ...",
        IDLE.as_secs()
    ));
    api.wait_idle(IDLE);
    back_to_back(size, &what, &coderun)?;
    let mut series = Series {
        lang: name.to_string(),
        pattern: Pattern::Burst {
            size,
            bursts,
            pool_max,
        },
        coderun: Side::default(),
        bare: Side::default(),
    };
    for _ in 0..bursts {
        api.wait_idle(IDLE);
        series.coderun.extend(back_to_back(size, &what, &coderun)?);
        series.bare.extend(back_to_back(size, &what, &bare_run)?);
        // The idle time before the next burst starts after the bare runs too.
        api.touch();
    }
    Ok(series)
}

/// `n` requests back to back after [`IDLE`], then `n` bare runs back to back.
pub fn sustained(api: &Api, bare: &Bare, lang: &Lang, n: usize) -> Result<Series, BenchError> {
    let name = lang.name();
    let what = format!("{name} sustained");
    log(&format!("  {name}: {n} requests back to back ..."));
    api.wait_idle(IDLE);
    let coderun = back_to_back(n, &what, &|| api.call(lang, true).map(Some))?;
    let bare = back_to_back(n, &what, &|| bare.bare(name, 0))?;
    api.touch();
    Ok(Series {
        lang: name.to_string(),
        pattern: Pattern::Sustained { n },
        coderun,
        bare,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_burst_is_the_run_pools_maximum_from_health() {
        let m: BTreeMap<String, u64> = [
            ("python/run".to_string(), 6),
            ("python/compile".to_string(), 3),
            ("rust/run".into(), 0),
        ]
        .into_iter()
        .collect();
        assert_eq!(pool_max_of(Some(&m), "python"), Some(6));
        assert_eq!(pool_max_of(Some(&m), "rust"), None);
        assert_eq!(pool_max_of(Some(&m), "typescript"), None);
        assert_eq!(pool_max_of(None, "python"), None);
    }

    #[test]
    fn a_series_counts_its_runs_and_warm_boxes() {
        use crate::client::Sample;
        let calls = std::cell::Cell::new(0);
        let f = || {
            calls.set(calls.get() + 1);
            Ok(Some(Sample {
                compile_time: None,
                wall_time: Some(0.001),
                compile_cached: None,
                pooled: Some(calls.get() % 2 == 0),
            }))
        };
        let side = back_to_back(5, "test", &f).expect("no failures");
        assert_eq!((side.ms.len(), side.pooled, side.pooled_known), (5, 2, 5));
        assert!(side.per_second() > 0.0);
        let err = back_to_back(3, "test", &|| Err("HTTP 503 overloaded".into()));
        assert!(matches!(err, Err(BenchError::Case { .. })));
    }
}
