//! The report of a finished run: one function per section, in the order printed.

use crate::client::show_pools;
use crate::machine::{self, Tree};
use crate::phases::Kind;
use crate::report::{kib, mib, ms, p50, p95, ratio, Align, Report};
use crate::series::{Pattern, Series, DEFAULT_POOL_MAX, IDLE};
use crate::{Memory, Run, Snapshot, BUSY_LIMIT};

pub fn render(run: &Run, markdown: bool) -> String {
    let mut r = Report::new(markdown);
    machine_and_run(&mut r, run, markdown);
    latency(&mut r, run);
    where_the_time_goes(&mut r, run);
    throughput(&mut r, run);
    if let Some(m) = &run.memory {
        memory(&mut r, m);
    }
    targets(&mut r, run);
    r.render()
}

/// The first case of `group` and `kind`.
fn case_of<'a>(run: &'a Run, group: &str, kind: Kind) -> Option<&'a crate::CaseResult> {
    run.cases
        .iter()
        .find(|c| c.group == group && c.kind == kind)
}

/// p50 of the first case of `group` and `kind`; NaN when there is none.
fn p50_of(run: &Run, group: &str, kind: Kind) -> f64 {
    case_of(run, group, kind).map_or(f64::NAN, |c| p50(&c.times_ms))
}

/// How many samples the first case of `group` and `kind` has.
fn n_of(run: &Run, group: &str, kind: Kind) -> usize {
    case_of(run, group, kind).map_or(0, |c| c.times_ms.len())
}

/// `3/8`, or `n/a` when the server never said.
fn share(yes: usize, of: usize) -> String {
    if of == 0 {
        "n/a".into()
    } else {
        format!("{yes}/{of}")
    }
}

fn machine_and_run(r: &mut Report, run: &Run, markdown: bool) {
    let b = &run.binary;
    let mut coderun = format!("{} built {}, ", b.path.display(), machine::utc(b.built));
    coderun += &b
        .head
        .as_ref()
        .map_or("not in a git checkout".into(), |h| format!("from git {h}"));
    if !b.dirty.is_empty() {
        coderun += &format!(" + uncommitted changes to {}", b.dirty.join(", "));
    }
    if b.stale > 0 {
        coderun += &format!(
            "; WARNING: {} source files are newer than the binary",
            b.stale
        );
    }
    let server = match &run.external_url {
        Some(url) => format!(
            "{url} (already running: no memory numbers, no /bin/true box; its CPU time counts as other processes')"
        ),
        None => format!(
            "started by this command from a private copy of that binary: `coderun --config <private config> serve --languages-dir {}`; the config sets only a private, empty `compile_cache_dir` (otherwise the defaults; no CODERUN_* variables). A second server whose only language runs /bin/true; for memory, before both, one with pool_size = 0",
            run.langdir.display()
        ),
    };
    let mut languages = format!("{} (from {})", run.langs.join(", "), run.langdir.display());
    if !run.skipped.is_empty() {
        let skipped: Vec<String> = run
            .skipped
            .iter()
            .map(|(n, why)| format!("{n} ({why})"))
            .collect();
        languages += &format!("; skipped: {}", skipped.join(", "));
    }
    let c = &run.counts;
    let mut counts = format!(
        "{} interleaved rounds; {} measured burst(s) per language{}; {} sustained requests",
        c.rounds,
        c.bursts,
        c.burst_cap
            .map_or(String::new(), |cap| format!(" of at most {cap}")),
        c.sustained
    );
    if !run.levels.is_empty() {
        let levels: Vec<String> = c
            .levels
            .iter()
            .map(|(conc, n)| format!("{n} at c={conc}"))
            .collect();
        counts += &format!("; throughput {}", levels.join(", "));
    }
    let mode = if run.quick {
        format!("SMOKE TEST (--quick): {counts}. Too few samples to show anything but that every phase runs; no verdicts")
    } else {
        format!("full: {counts}")
    };
    let mut busy = format!(
        "{:.0}% in the second before the run, {:.0}% in the second after",
        run.busy_before * 100.0,
        run.busy_after * 100.0
    );
    if !run.top_before.is_empty() {
        let top: Vec<String> = run
            .top_before
            .iter()
            .take(3)
            .map(|(f, c)| format!("{c} ({:.0}% CPU)", f * 100.0))
            .collect();
        busy += &format!("; busiest other processes before: {}", top.join(", "));
    }
    let other: Vec<String> = run
        .cpu
        .iter()
        .map(|(name, c)| {
            format!(
                "{name}: other processes used {:.1} CPU-s of {:.0} available ({:.0}%), steal {:.1} s",
                c.other_cpu_s,
                c.available_cpu_s,
                c.other_frac * 100.0,
                c.steal_cpu_s
            )
        })
        .collect();
    let command = if markdown {
        format!("`{}` (in {})", run.command, run.cwd)
    } else {
        format!("{}   (cwd {})", run.command, run.cwd)
    };
    r.heading("Machine and run");
    r.items(&[
        ("machine", machine::describe()),
        ("command", command),
        ("mode", mode),
        ("started", run.started.clone()),
        ("coderun", coderun),
        ("server", server),
        (
            "client",
            "this process: blocking reqwest, a new TCP connection per request; bare processes spawned and waited for by it".into(),
        ),
        ("languages", languages),
        ("runtimes", run.versions.clone()),
        (
            "compile cache",
            if run.compile_cache && run.external_url.is_none() {
                "yes (responses carry compile_cached); a private one, empty at start".into()
            } else if run.compile_cache {
                "yes (responses carry compile_cached); the server's own, perhaps not empty at start".into()
            } else {
                "no (the server has none)".into()
            },
        ),
        (
            "load average",
            format!(
                "before {}, after {} (1, 5, 15 min)",
                run.load_before, run.load_after
            ),
        ),
        ("CPU busy", busy),
        ("other load", other.join("; ")),
    ]);
    let busy_phases: Vec<String> = run
        .cpu
        .iter()
        .filter(|(_, c)| c.other_frac > BUSY_LIMIT)
        .map(|(n, c)| format!("{n} {:.0}%", c.other_frac * 100.0))
        .collect();
    if !busy_phases.is_empty() {
        r.para(&format!(
            "**WARNING: other processes used more than {:.0}% of the machine ({}): discard this run and measure again on a quiet machine.**",
            BUSY_LIMIT * 100.0,
            busy_phases.join(", ")
        ));
    }
}

/// The two rows of a burst or sustained series: coderun, then bare with the ratios.
fn series_rows(run: &Run, s: &Series) -> [Vec<String>; 2] {
    let (pattern, what) = match s.pattern {
        Pattern::Burst {
            size,
            bursts,
            pool_max,
        } => {
            let mut source = match pool_max {
                Some(m) => format!("pool_max {m}"),
                None => format!(
                    "no pool_max for {}/run in /health: {DEFAULT_POOL_MAX}",
                    s.lang
                ),
            };
            if run.counts.burst_cap.is_some() && size < pool_max.unwrap_or(DEFAULT_POOL_MAX) {
                source += &format!(", capped at {size} by --quick");
            }
            (
                "burst",
                format!(
                    "{size} back to back after >= {} s idle ({source}), {bursts} burst(s)",
                    IDLE.as_secs()
                ),
            )
        }
        Pattern::Sustained { n } => ("sustained", format!("{n} back to back, no pause")),
    };
    let (c, b) = (&s.coderun, &s.bare);
    let warm = if run.has_pool {
        share(c.pooled, c.pooled_known)
    } else {
        "n/a".into()
    };
    let rate = |side: &crate::series::Side| match s.pattern {
        Pattern::Sustained { .. } => format!("{:.1}", side.per_second()),
        Pattern::Burst { .. } => String::new(),
    };
    [
        vec![
            s.lang.clone(),
            pattern.into(),
            format!("coderun POST /execute: {what}"),
            c.ms.len().to_string(),
            ms(p50(&c.ms)),
            ms(p95(&c.ms)),
            warm,
            rate(c),
            String::new(),
            String::new(),
        ],
        vec![
            s.lang.clone(),
            pattern.into(),
            match s.pattern {
                Pattern::Burst { .. } => "bare: as many back to back, after each coderun burst",
                Pattern::Sustained { .. } => "bare: as many back to back, after the coderun series",
            }
            .into(),
            b.ms.len().to_string(),
            ms(p50(&b.ms)),
            ms(p95(&b.ms)),
            String::new(),
            rate(b),
            ratio(p50(&c.ms), p50(&b.ms)),
            ratio(p95(&c.ms), p95(&b.ms)),
        ],
    ]
}

fn latency(r: &mut Report, run: &Run) {
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut last_group: Option<&str> = None;
    let series_of = |group: &str| -> Vec<Vec<String>> {
        run.series
            .iter()
            .filter(|s| s.lang == group)
            .flat_map(|s| series_rows(run, s))
            .collect()
    };
    for c in &run.cases {
        // A language's series rows follow its interleaved rows.
        if let Some(g) = last_group.filter(|g| *g != c.group) {
            rows.extend(series_of(g));
        }
        last_group = Some(&c.group);
        let t = &c.times_ms;
        let (vs50, vs95) = match c.kind {
            Kind::Bare | Kind::Floor => {
                let coderun = case_of(run, &c.group, Kind::Coderun);
                let of = |f: fn(&[f64]) -> f64| {
                    ratio(coderun.map_or(f64::NAN, |x| f(&x.times_ms)), f(t))
                };
                (of(p50), of(p95))
            }
            _ => (String::new(), String::new()),
        };
        let pooled: Vec<bool> = c.samples.iter().filter_map(|x| x.pooled).collect();
        let warm = match c.kind {
            Kind::Coderun | Kind::Hit if run.has_pool => {
                share(pooled.iter().filter(|p| **p).count(), pooled.len())
            }
            Kind::Coderun | Kind::Hit => "n/a".into(),
            _ => String::new(),
        };
        rows.push(vec![
            c.group.clone(),
            "interleaved".into(),
            c.label.clone(),
            t.len().to_string(),
            ms(p50(t)),
            ms(p95(t)),
            warm,
            String::new(),
            vs50,
            vs95,
        ]);
    }
    if let Some(g) = last_group {
        rows.extend(series_of(g));
    }
    r.heading("Latency: hello world, ms (interleaved, burst and sustained rows)");
    r.table(
        &[
            "language",
            "pattern",
            "case",
            "n",
            "p50",
            "p95",
            "ran in a warm box",
            "runs/s",
            "coderun p50 / this p50",
            "coderun p95 / this p95",
        ],
        &rows,
        Some(&[
            Align::Left,
            Align::Left,
            Align::Left,
            Align::Right,
            Align::Right,
            Align::Right,
            Align::Right,
            Align::Right,
            Align::Right,
            Align::Right,
        ]),
    );
    r.para(&format!(
        "Times are end to end as a client sees them: for coderun the HTTP request (a new TCP connection), queueing, the box(es) and the response; for the bare rows a process spawned and waited for. n is the number of samples of the row. **interleaved**: {} rounds, each running every case once in a shuffled order, so coderun and its baselines see the same machine; a request usually finds its warm pool full. **burst**: after the server had no request for >= {} s, as many requests back to back (each sent when the previous one was answered) as the language's run pool holds at most (one unmeasured burst first, so the pool has grown), then as many bare runs back to back: what a client that sends a handful after a pause gets. **sustained**: requests back to back with no pause, started after the same idle time, then as many bare runs: what a client that never waits gets once the pool is empty. Compiled languages' coderun rows (except \"same source\") append a comment with a nonce, so every request compiles.",
        run.counts.rounds,
        IDLE.as_secs()
    ));
}

fn where_the_time_goes(r: &mut Report, run: &Run) {
    let mut rows = Vec::new();
    for c in run.cases.iter().filter(|c| !c.samples.is_empty()) {
        let label = match (c.group.as_str(), c.kind) {
            ("box", _) => "box /bin/true".to_string(),
            (g, Kind::Hit) => format!("{g}, same source"),
            (g, _) if c.compiled => format!("{g}, new source"),
            (g, _) => g.to_string(),
        };
        let s = &c.samples;
        let compile: Vec<f64> = s
            .iter()
            .filter_map(|x| x.compile_time)
            .map(|v| v * 1000.0)
            .collect();
        let wall: Vec<f64> = s
            .iter()
            .filter_map(|x| x.wall_time)
            .map(|v| v * 1000.0)
            .collect();
        let rest: Vec<f64> = c
            .times_ms
            .iter()
            .zip(s)
            .map(|(e, x)| e - 1000.0 * (x.compile_time.unwrap_or(0.0) + x.wall_time.unwrap_or(0.0)))
            .collect();
        let hits: Vec<bool> = s.iter().filter_map(|x| x.compile_cached).collect();
        let pooled: Vec<bool> = s.iter().filter_map(|x| x.pooled).collect();
        let count = |v: &[bool]| share(v.iter().filter(|b| **b).count(), v.len());
        rows.push(vec![
            label,
            s.len().to_string(),
            ms(p50(&c.times_ms)),
            if compile.is_empty() {
                "-".into()
            } else {
                ms(p50(&compile))
            },
            ms(p50(&wall)),
            ms(p50(&rest)),
            if hits.is_empty() {
                "-".into()
            } else {
                count(&hits)
            },
            count(&pooled),
        ]);
    }
    r.heading("Where coderun's time goes (interleaved rows, p50 ms, as the server reports it)");
    r.table(
        &[
            "request",
            "n",
            "end to end",
            "compile_time",
            "wall_time (run step)",
            "the rest",
            "compile cache hits",
            "ran in a warm box",
        ],
        &rows,
        None,
    );
    r.para("compile_time and wall_time are the server's own numbers (box exec to exit); \"the rest\" is end to end minus both: HTTP, JSON, queueing, box set-up and tear-down (or taking a warm box), copying files in and out. The /bin/true row is the per-box floor: a fresh box that runs nothing. A warm (pooled) box's wall_time counts from the hand-off.");
}

fn throughput(r: &mut Report, run: &Run) {
    if run.levels.is_empty() {
        return;
    }
    let rows: Vec<Vec<String>> = run
        .levels
        .iter()
        .map(|l| {
            vec![
                if l.is_box {
                    "box /bin/true".into()
                } else {
                    l.lang.clone()
                },
                l.concurrency.to_string(),
                l.runs.to_string(),
                format!("{:.1}", l.coderun.per_second()),
                l.coderun.errors_shown(),
                if run.has_pool {
                    format!("{}/{}", l.pooled, l.coderun.runs)
                } else {
                    "n/a".into()
                },
                format!("{:.1}", l.bare.per_second()),
                l.bare.errors_shown(),
                ratio(l.coderun.per_second(), l.bare.per_second()),
            ]
        })
        .collect();
    r.heading("Throughput: hello world runs/s (ABBA blocks: coderun, bare, bare, coderun)");
    r.table(
        &[
            "language",
            "concurrency",
            "runs",
            "coderun runs/s",
            "coderun errors",
            "ran in a warm box",
            "bare runs/s",
            "bare errors",
            "coderun / bare",
        ],
        &rows,
        None,
    );
    r.para("coderun: POST /execute from that many client threads (new source per request for compiled languages); bare: the same binary and flags as the latency table's \"bare\" row, as processes from that many threads; runs is the count of each. An error is any non-200 answer (503 overloaded included), wrong output or failed exit. The server runs nproc boxes at once and queues up to 64 more. Each level starts after a 1 s pause (warm pools refill); a request that finds its pool empty runs in a fresh box.");
}

fn tree_shown(t: &Tree) -> String {
    if t.processes == 0 {
        "none".into()
    } else {
        format!(
            "{} processes, RSS {}, PSS {}",
            t.processes,
            mib(t.rss_kb),
            mib(t.pss_kb)
        )
    }
}

fn memory(r: &mut Report, m: &Memory) {
    let row = |server: &str, when: &str, s: &Snapshot, hwm: bool| {
        vec![
            server.to_string(),
            when.to_string(),
            kib(s.rss_kb),
            if hwm { kib(s.hwm_kb) } else { String::new() },
            tree_shown(&s.tree),
            show_pools(s.pools.as_ref()),
        ]
    };
    let mut rows = vec![
        row(
            "pool_size = 0",
            "right after /health answered",
            &m.no_pool_health,
            false,
        ),
        row("pool_size = 0", "idle (2 s later)", &m.no_pool_idle, true),
        row(
            "default pools",
            "right after /health answered",
            &m.health,
            false,
        ),
        row("default pools", "idle, pools full", &m.settled, false),
    ];
    if let Some(after) = &m.after {
        rows.push(row("default pools", "after the benchmark", after, true));
    }
    r.heading("Server memory (`coderun serve`, /proc/<pid>/status)");
    r.table(
        &[
            "server",
            "when",
            "server VmRSS",
            "server VmHWM",
            "its boxes (warm ones included)",
            "warm boxes ready",
        ],
        &rows,
        Some(&[
            Align::Left,
            Align::Left,
            Align::Right,
            Align::Right,
            Align::Left,
            Align::Left,
        ]),
    );
    r.para("Server: the `coderun serve` process itself (/proc/<pid>/status). Its boxes: every process below it (box helpers, waiting warm runtimes), RSS and PSS (/proc/<pid>/smaps_rollup) summed; PSS shares pages fairly between processes, RSS counts shared pages once per process.");

    let t = &m.settled.tree;
    let per = |kb: u64, n: usize| {
        if n == 0 {
            "n/a".into()
        } else {
            mib(kb / n as u64)
        }
    };
    let mut rows: Vec<Vec<String>> = t
        .kinds
        .iter()
        .map(|(kind, k)| {
            vec![
                kind.clone(),
                k.boxes.to_string(),
                format!("{:.1}", k.processes as f64 / k.boxes.max(1) as f64),
                per(k.rss_kb, k.boxes),
                per(k.pss_kb, k.boxes),
            ]
        })
        .collect();
    let boxes: usize = t.kinds.values().map(|k| k.boxes).sum();
    if boxes > 0 {
        rows.push(vec![
            "all warm boxes".into(),
            boxes.to_string(),
            format!("{:.1}", t.processes as f64 / boxes as f64),
            per(t.rss_kb, boxes),
            per(t.pss_kb, boxes),
        ]);
    }
    r.heading("Cost of one warm (pooled) box: idle server, pools full");
    r.table(
        &[
            "box (the program waiting in it)",
            "boxes",
            "processes per box",
            "RSS per box",
            "PSS per box",
        ],
        &rows,
        None,
    );
    let mut text = "Each direct child of the server is one box (its helper, the box's init, the runtime waiting for a program), named after the process at the bottom of it; per box: the kind's sum divided by its boxes.".to_string();
    if let (Some(with), Some(without)) = (m.settled.rss_kb, m.no_pool_idle.rss_kb) {
        if boxes > 0 {
            let growth = with as i64 - without as i64;
            text += &format!(
                " With the server's own growth (VmRSS with pools full minus VmRSS with pool_size = 0, idle: {:+.1} MiB) added to the boxes' PSS, one warm box costs {:.1} MiB.",
                growth as f64 / 1024.0,
                (growth + t.pss_kb as i64) as f64 / 1024.0 / boxes as f64
            );
        }
    }
    r.para(&text);
}

fn targets(r: &mut Report, run: &Run) {
    r.heading("Targets against this run");
    if run.quick {
        r.para(&format!(
            "None judged: this was a smoke test (--quick, {} interleaved rounds), which shows that every phase runs, not how fast. A handful of samples proves nothing; run `coderun bench` without --quick for the targets.",
            run.counts.rounds
        ));
        return;
    }
    let mut rows = Vec::new();
    let mut target = |name: &str, threshold: String, measured: String, n: String, met: bool| {
        rows.push(vec![
            name.to_string(),
            threshold,
            measured,
            n,
            if met { "yes" } else { "no" }.to_string(),
        ]);
    };
    let both = |group: &str, a: Kind, b: Kind| {
        format!("{} + {}", n_of(run, group, a), n_of(run, group, b))
    };
    let (py, py_floor) = (
        p50_of(run, "python", Kind::Coderun),
        p50_of(run, "python", Kind::Floor),
    );
    if !py.is_nan() && !py_floor.is_nan() {
        target(
            "Python hello p50 <= 0.5x floor `python3 -I -S -c`",
            format!("<= {} ms", ms(0.5 * py_floor)),
            format!("{} ms = {}", ms(py), ratio(py, py_floor)),
            both("python", Kind::Coderun, Kind::Floor),
            py <= 0.5 * py_floor,
        );
    }
    let node = p50_of(run, "typescript", Kind::Floor);
    for (name, kind) in [
        ("TypeScript hello p50 <= 0.3x bare `node -e`", Kind::Coderun),
        ("(same, compile cache hit)", Kind::Hit),
    ] {
        let ts = p50_of(run, "typescript", kind);
        if ts.is_nan() || node.is_nan() {
            continue;
        }
        target(
            name,
            format!("<= {} ms", ms(0.3 * node)),
            format!("{} ms = {}", ms(ts), ratio(ts, node)),
            both("typescript", kind, Kind::Floor),
            ts <= 0.3 * node,
        );
    }
    let (rs, rs_hit, rustc) = (
        p50_of(run, "rust", Kind::Coderun),
        p50_of(run, "rust", Kind::Hit),
        p50_of(run, "rust", Kind::Bare),
    );
    if !rs.is_nan() && !rustc.is_nan() {
        target(
            "Rust hello p50 <= 1.1x bare rustc + run, cache miss",
            format!("<= {} ms", ms(1.1 * rustc)),
            format!("{} ms = {}", ms(rs), ratio(rs, rustc)),
            both("rust", Kind::Coderun, Kind::Bare),
            rs <= 1.1 * rustc,
        );
    }
    if !rs.is_nan() {
        target(
            "Rust hello p50 <= 5 ms, cache hit",
            "<= 5 ms".into(),
            if rs_hit.is_nan() {
                "no compile cache".into()
            } else {
                format!("{} ms", ms(rs_hit))
            },
            n_of(run, "rust", Kind::Hit).to_string(),
            rs_hit <= 5.0,
        );
    }
    for l in run
        .levels
        .iter()
        .filter(|l| l.concurrency == 16 && !l.is_box)
    {
        let (a, b) = (l.coderun.per_second(), l.bare.per_second());
        let errors = l.coderun.error_count();
        target(
            &format!("{} throughput at c=16 >= 0.9x bare, no errors", l.lang),
            ">= 0.90x, 0 errors".into(),
            format!("{}, {errors} errors", ratio(a, b)),
            format!("{} + {}", l.coderun.runs, l.bare.runs),
            a >= 0.9 * b && errors == 0,
        );
    }
    if let Some(m) = &run.memory {
        if let Some(rss) = m.no_pool_idle.rss_kb {
            target(
                "serve idle RSS <= 20 MiB (pool_size = 0)",
                "<= 20 MiB".into(),
                mib(rss),
                "1 reading".into(),
                rss <= 20 * 1024,
            );
        }
        if let Some(rss) = m.settled.rss_kb {
            let total = rss + m.settled.tree.pss_kb;
            target(
                "(with default pools: server VmRSS + its warm boxes' PSS, pools full)",
                "<= 20 MiB".into(),
                mib(total),
                "1 reading".into(),
                total <= 20 * 1024,
            );
        }
    }
    r.table(
        &[
            "target",
            "threshold",
            "measured",
            "n (coderun + baseline)",
            "met?",
        ],
        &rows,
        Some(&[
            Align::Left,
            Align::Right,
            Align::Right,
            Align::Right,
            Align::Left,
        ]),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::series::Side;
    use crate::{Binary, CaseResult, Counts};

    fn case(group: &str, label: &str, kind: Kind, ms: f64) -> CaseResult {
        CaseResult {
            group: group.into(),
            label: label.into(),
            kind,
            compiled: false,
            times_ms: vec![ms; 5],
            samples: Vec::new(),
        }
    }

    fn side(ms: f64, n: usize) -> Side {
        Side {
            ms: vec![ms; n],
            seconds: ms * n as f64 / 1000.0,
            pooled: 1,
            pooled_known: n,
        }
    }

    fn run(quick: bool) -> Run {
        Run {
            counts: Counts::new(None, quick).expect("counts"),
            quick,
            command: "coderun bench".into(),
            cwd: "/repo".into(),
            started: "now".into(),
            binary: Binary {
                path: "/repo/target/release/coderun".into(),
                built: std::time::SystemTime::UNIX_EPOCH,
                head: None,
                dirty: Vec::new(),
                stale: 0,
            },
            langdir: "/repo/languages".into(),
            langs: vec!["python".into()],
            skipped: vec![("cobol".into(), "no bench data".into())],
            external_url: None,
            versions: "python Python 3".into(),
            compile_cache: true,
            has_pool: true,
            load_before: "0".into(),
            load_after: "0".into(),
            busy_before: 0.0,
            top_before: Vec::new(),
            busy_after: 0.0,
            cpu: Vec::new(),
            cases: vec![
                case("python", "coderun POST /execute", Kind::Coderun, 6.0),
                case("python", "bare: python3", Kind::Bare, 40.0),
                case("python", "floor: python3 -I -S -c", Kind::Floor, 10.0),
                case(
                    "http",
                    "POST /execute answered 422 (no box)",
                    Kind::NoBox,
                    0.5,
                ),
            ],
            series: vec![Series {
                lang: "python".into(),
                pattern: Pattern::Burst {
                    size: 4,
                    bursts: 1,
                    pool_max: Some(4),
                },
                coderun: side(12.0, 4),
                bare: side(40.0, 4),
            }],
            levels: Vec::new(),
            memory: None,
        }
    }

    #[test]
    fn a_quick_run_is_a_smoke_test_without_verdicts() {
        let text = render(&run(true), true);
        assert!(text.contains("SMOKE TEST"), "{text}");
        assert!(text.contains("None judged"), "{text}");
        assert!(!text.contains("met?"), "{text}");
        assert!(text.contains("cobol (no bench data)"), "{text}");
    }

    #[test]
    fn a_full_run_judges_the_targets_and_counts_the_samples() {
        let text = render(&run(false), true);
        assert!(text.contains("| met? |"), "{text}");
        assert!(
            text.contains("| Python hello p50 <= 0.5x floor `python3 -I -S -c` | <= 5.0 ms | 6.0 ms = 0.60x | 5 + 5 | no |"),
            "{text}"
        );
        // The burst rows come right after python's interleaved rows, before the 422 row.
        let at = |needle: &str| {
            text.find(needle)
                .unwrap_or_else(|| panic!("{needle}: {text}"))
        };
        let burst = at("| python | burst | coderun POST /execute: 4 back to back after >= 5 s idle (pool_max 4), 1 burst(s) | 4 | 12.0 | 12.0 | 1/4 |");
        assert!(at("| python | interleaved | floor:") < burst && burst < at("| http |"));
        assert!(text.contains("| python | burst | bare: as many back to back, after each coderun burst | 4 | 40.0 | 40.0 |  |  | 0.30x | 0.30x |"), "{text}");
    }
}
