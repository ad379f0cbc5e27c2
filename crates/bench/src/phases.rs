//! Two of the measuring phases: interleaved latency (every case once per round, in a
//! shuffled order, so coderun and its baselines see the same machine) and throughput (ABBA
//! blocks at each concurrency). The back-to-back series are in `series`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::baseline::Bare;
use crate::client::{Api, Sample};
use crate::error::BenchError;
use crate::langs::Lang;
use crate::{log, Outcome};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// POST /execute, a new source each time for compiled languages.
    Coderun,
    /// POST /execute, the same source each time (a compile-cache hit).
    Hit,
    /// The runtime with coderun's binary and flags, no box.
    Bare,
    /// The cheapest start of the runtime.
    Floor,
    /// A 422: HTTP and JSON, no box.
    NoBox,
}

pub struct Case<'a> {
    /// The language's name, `http` (the 422 row) or `box` (the /bin/true rows).
    pub group: String,
    pub label: String,
    pub kind: Kind,
    /// The language has a compile step.
    pub compiled: bool,
    run: Box<dyn Fn() -> Outcome + 'a>,
}

/// Every latency case, in report order: per language coderun, its compile-cache hit (when
/// the server has a cache), bare and floor; then the 422 and the /bin/true box.
pub fn cases<'a>(
    api: &'a Api<'a>,
    bare: &'a Bare,
    langs: &'a [&'a Lang],
    bin_true: Option<&'a Lang>,
    cached: bool,
) -> Vec<Case<'a>> {
    let mut out: Vec<Case<'a>> = Vec::new();
    let case =
        |group: &str, label: &str, kind, compiled, run: Box<dyn Fn() -> Outcome + 'a>| Case {
            group: group.to_string(),
            label: label.to_string(),
            kind,
            compiled,
            run,
        };
    for &lang in langs {
        let name = lang.name();
        let compiled = lang.compiled();
        let (bare_label, floor_label) = bare.labels(name);
        let label = if compiled {
            "coderun POST /execute, new source each time"
        } else {
            "coderun POST /execute"
        };
        out.push(case(
            name,
            label,
            Kind::Coderun,
            compiled,
            Box::new(move || api.call(lang, true).map(Some)),
        ));
        if cached && compiled {
            out.push(case(
                name,
                "coderun POST /execute, same source (compile cache hit)",
                Kind::Hit,
                compiled,
                Box::new(move || api.call(lang, false).map(Some)),
            ));
        }
        out.push(case(
            name,
            &bare_label,
            Kind::Bare,
            compiled,
            Box::new(move || bare.bare(name, 0)),
        ));
        if let Some(floor_label) = floor_label {
            out.push(case(
                name,
                &floor_label,
                Kind::Floor,
                compiled,
                Box::new(move || bare.floor(name, 0)),
            ));
        }
    }
    out.push(case(
        "http",
        "POST /execute answered 422 (no box)",
        Kind::NoBox,
        false,
        Box::new(move || api.no_box().map(|()| None)),
    ));
    if let Some(t) = bin_true {
        out.push(case(
            "box",
            "coderun box running /bin/true",
            Kind::Coderun,
            false,
            Box::new(move || api.call(t, true).map(Some)),
        ));
        out.push(case(
            "box",
            &bare.labels(t.name()).0,
            Kind::Bare,
            false,
            Box::new(move || bare.bare(t.name(), 0)),
        ));
    }
    out
}

/// A small deterministic generator for the shuffles (splitmix64): the same order every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Fisher-Yates.
    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

/// Any failure stops the benchmark: a latency that was not a hello world is no latency.
fn check(case: &Case, r: Outcome) -> Result<Option<Sample>, BenchError> {
    r.map_err(|error| BenchError::Case {
        phase: "latency case",
        case: case.label.clone(),
        error,
    })
}

/// Runs every case once: page cache, runtime store, compile-cache entries for the hit rows.
pub fn warm_up(cases: &[Case]) -> Result<(), BenchError> {
    for case in cases {
        check(case, (case.run)())?;
    }
    Ok(())
}

/// One case's measurements: milliseconds end to end, and what the server said.
#[derive(Default)]
pub struct Times {
    pub ms: Vec<f64>,
    pub samples: Vec<Sample>,
}

/// `rounds` rounds of every case in a shuffled order.
pub fn latency(cases: &[Case], rounds: usize) -> Result<Vec<Times>, BenchError> {
    let mut times: Vec<Times> = cases.iter().map(|_| Times::default()).collect();
    let mut rng = Rng(1);
    let mut order: Vec<usize> = (0..cases.len()).collect();
    for round in 1..=rounds {
        rng.shuffle(&mut order);
        for &i in &order {
            let t = Instant::now();
            let r = (cases[i].run)();
            times[i].ms.push(t.elapsed().as_secs_f64() * 1000.0);
            if let Some(sample) = check(&cases[i], r)? {
                times[i].samples.push(sample);
            }
        }
        if round % 5 == 0 || round == rounds {
            log(&format!("  latency round {round}/{rounds}"));
        }
    }
    Ok(times)
}

/// Runs, time and errors of one side (coderun or bare) at one concurrency.
#[derive(Default)]
pub struct Side {
    pub seconds: f64,
    pub runs: usize,
    pub errors: BTreeMap<String, usize>,
}

impl Side {
    pub fn per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.runs as f64 / self.seconds
        } else {
            f64::NAN
        }
    }

    pub fn error_count(&self) -> usize {
        self.errors.values().sum()
    }

    /// `0`, or `3x HTTP 503 overloaded, 1x wrong output (status timeout)`.
    pub fn errors_shown(&self) -> String {
        if self.errors.is_empty() {
            return "0".into();
        }
        self.errors
            .iter()
            .map(|(k, v)| format!("{v}x {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn add(&mut self, seconds: f64, runs: usize, errors: BTreeMap<String, usize>) {
        self.seconds += seconds;
        self.runs += runs;
        for (k, v) in errors {
            *self.errors.entry(k).or_default() += v;
        }
    }
}

pub struct Level {
    pub lang: String,
    /// The /bin/true box.
    pub is_box: bool,
    pub concurrency: usize,
    pub runs: usize,
    pub coderun: Side,
    pub bare: Side,
    /// coderun runs that got a warm box.
    pub pooled: usize,
}

/// `n` runs of `f` from `conc` threads (each passes its worker index); seconds and errors.
fn batch(
    f: &(dyn Fn(usize) -> Outcome + Sync),
    n: usize,
    conc: usize,
) -> (f64, BTreeMap<String, usize>) {
    let next = AtomicUsize::new(0);
    let errors: Mutex<BTreeMap<String, usize>> = Mutex::new(BTreeMap::new());
    let t = Instant::now();
    std::thread::scope(|s| {
        for worker in 0..conc.min(n) {
            let (next, errors) = (&next, &errors);
            s.spawn(move || {
                while next.fetch_add(1, Ordering::Relaxed) < n {
                    if let Err(e) = f(worker) {
                        *errors
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .entry(e)
                            .or_default() += 1;
                    }
                }
            });
        }
    });
    let seconds = t.elapsed().as_secs_f64();
    (
        seconds,
        errors.into_inner().unwrap_or_else(|p| p.into_inner()),
    )
}

/// For each language and (concurrency, runs): coderun and bare in ABBA blocks (half the
/// runs each, coderun, bare, bare, coderun). New source per request for compiled languages.
pub fn throughput(
    api: &Api,
    bare: &Bare,
    levels: &[(usize, usize)],
    langs: &[&Lang],
) -> Vec<Level> {
    let mut out = Vec::new();
    for &lang in langs {
        let pooled = AtomicUsize::new(0);
        let coderun = |_worker: usize| {
            let sample = api.call(lang, true)?;
            if sample.pooled == Some(true) {
                pooled.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Some(sample))
        };
        let bare_run = |worker: usize| bare.bare(lang.name(), worker);
        batch(&coderun, 2, 2); // warm-up
        batch(&bare_run, 2, 2);
        for &(concurrency, runs) in levels {
            // Let the warm pools refill between levels, as between bursts of traffic.
            std::thread::sleep(Duration::from_secs(1));
            pooled.store(0, Ordering::Relaxed);
            let (h1, h2) = (runs / 2, runs - runs / 2);
            let mut level = Level {
                lang: lang.name().to_string(),
                is_box: lang.is_box,
                concurrency,
                runs,
                coderun: Side::default(),
                bare: Side::default(),
                pooled: 0,
            };
            for (is_coderun, n) in [(true, h1), (false, h1), (false, h2), (true, h2)] {
                if n == 0 {
                    continue;
                }
                if is_coderun {
                    let (secs, errs) = batch(&coderun, n, concurrency);
                    level.coderun.add(secs, n, errs);
                } else {
                    let (secs, errs) = batch(&bare_run, n, concurrency);
                    level.bare.add(secs, n, errs);
                }
            }
            level.pooled = pooled.load(Ordering::Relaxed);
            log(&format!(
                "  throughput {} c={concurrency}: coderun {:.1}/s, bare {:.1}/s",
                lang.name(),
                level.coderun.per_second(),
                level.bare.per_second()
            ));
            out.push(level);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffles_are_permutations_and_repeatable() {
        let mut a: Vec<usize> = (0..14).collect();
        let mut b = a.clone();
        Rng(1).shuffle(&mut a);
        Rng(1).shuffle(&mut b);
        assert_eq!(a, b);
        assert_ne!(a, (0..14).collect::<Vec<_>>());
        a.sort_unstable();
        assert_eq!(a, (0..14).collect::<Vec<_>>());
    }

    #[test]
    fn a_batch_runs_every_job_once_and_counts_errors() {
        let calls = AtomicUsize::new(0);
        let f = |worker: usize| {
            assert!(worker < 4);
            match calls.fetch_add(1, Ordering::Relaxed) % 3 {
                0 => Err("HTTP 503 overloaded".to_string()),
                _ => Ok(None),
            }
        };
        let (_, errors) = batch(&f, 10, 4);
        assert_eq!(calls.load(Ordering::Relaxed), 10);
        assert_eq!(errors.get("HTTP 503 overloaded"), Some(&4));
    }
}
