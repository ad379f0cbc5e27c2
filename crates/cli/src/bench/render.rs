//! The report of a finished run: one function per section, in the order printed.

use super::client::show_pools;
use super::machine::{self, Tree};
use super::phases::Kind;
use super::report::{kib, mib, ms, p50, p95, ratio, Align, Report};
use super::{Lang, Memory, Run, Snapshot, BUSY_LIMIT};

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

/// p50 of the first case of `group` and `kind`; NaN when there is none.
fn p50_of(run: &Run, group: &str, kind: Kind) -> f64 {
    run.cases
        .iter()
        .find(|c| c.group == group && c.kind == kind)
        .map_or(f64::NAN, |c| p50(&c.times_ms))
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
            "started by this command from a private copy of that binary: `coderun --config <private config> serve --languages-dir {}`; the config sets only a private, empty `compile_cache_dir` (otherwise the defaults: concurrency = nproc, queue 64, pool_size 2; no CODERUN_* variables). A second server whose only language runs /bin/true; for memory, before both, one with pool_size = 0",
            run.langdir.display()
        ),
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
        ("started", run.started.clone()),
        ("coderun", coderun),
        ("server", server),
        (
            "client",
            "this process: blocking reqwest, a new TCP connection per request; bare processes spawned and waited for by it".into(),
        ),
        ("runtimes", run.versions.clone()),
        (
            "compile cache",
            if run.compile_cache {
                "yes (responses carry compile_cached); a private one, empty at start".into()
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

fn latency(r: &mut Report, run: &Run) {
    let rows: Vec<Vec<String>> = run
        .cases
        .iter()
        .map(|c| {
            let t = &c.times_ms;
            let vs = match c.kind {
                Kind::Bare | Kind::Floor => ratio(p50_of(run, c.group, Kind::Coderun), p50(t)),
                _ => String::new(),
            };
            vec![
                c.group.to_string(),
                c.label.clone(),
                ms(p50(t)),
                ms(p95(t)),
                vs,
            ]
        })
        .collect();
    r.heading(&format!(
        "Latency: hello world, {} interleaved rounds (shuffled each round), ms",
        run.rounds
    ));
    r.table(
        &["language", "case", "p50", "p95", "coderun p50 / this p50"],
        &rows,
        Some(&[
            Align::Left,
            Align::Left,
            Align::Right,
            Align::Right,
            Align::Right,
        ]),
    );
    r.para("Times are end to end as a client sees them: for coderun the HTTP request (a new TCP connection), queueing, the box(es) and the response; for the bare rows a process spawned and waited for. Compiled languages' \"new source\" rows append a comment with a nonce, so every request compiles.");
}

fn where_the_time_goes(r: &mut Report, run: &Run) {
    let mut rows = Vec::new();
    for c in run.cases.iter().filter(|c| !c.samples.is_empty()) {
        let label = match (c.group, c.kind) {
            ("box", _) => "box /bin/true".to_string(),
            (g, Kind::Hit) => format!("{g}, same source"),
            ("python", _) => "python".to_string(),
            (g, _) => format!("{g}, new source"),
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
        let count = |v: &[bool]| format!("{}/{}", v.iter().filter(|b| **b).count(), v.len());
        rows.push(vec![
            label,
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
            if pooled.is_empty() {
                "n/a".into()
            } else {
                count(&pooled)
            },
        ]);
    }
    r.heading("Where coderun's time goes (p50 ms, as the server reports it)");
    r.table(
        &[
            "request",
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
                match l.lang {
                    Lang::True => "box /bin/true".into(),
                    lang => lang.name().into(),
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
    r.para("coderun: POST /execute from that many client threads (new source per request for compiled languages); bare: the same binary and flags as the latency table's \"bare\" row, as processes from that many threads. An error is any non-200 answer (503 overloaded included), wrong output or failed exit. The server runs nproc boxes at once and queues up to 64 more. Each level starts after a 1 s pause (warm pools refill); a request that finds its pool empty runs in a fresh box.");
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
    let mut rows = Vec::new();
    let mut target = |name: &str, threshold: String, measured: String, met: bool| {
        rows.push(vec![
            name.to_string(),
            threshold,
            measured,
            if met { "yes" } else { "no" }.to_string(),
        ]);
    };
    let (py, py_floor) = (
        p50_of(run, "python", Kind::Coderun),
        p50_of(run, "python", Kind::Floor),
    );
    target(
        "Python hello p50 <= 0.5x floor `python3 -I -S -c`",
        format!("<= {} ms", ms(0.5 * py_floor)),
        format!("{} ms = {}", ms(py), ratio(py, py_floor)),
        py <= 0.5 * py_floor,
    );
    let node = p50_of(run, "typescript", Kind::Floor);
    for (name, kind) in [
        ("TypeScript hello p50 <= 0.3x bare `node -e`", Kind::Coderun),
        ("(same, compile cache hit)", Kind::Hit),
    ] {
        let ts = p50_of(run, "typescript", kind);
        if kind == Kind::Hit && ts.is_nan() {
            continue;
        }
        target(
            name,
            format!("<= {} ms", ms(0.3 * node)),
            format!("{} ms = {}", ms(ts), ratio(ts, node)),
            ts <= 0.3 * node,
        );
    }
    let (rs, rs_hit, rustc) = (
        p50_of(run, "rust", Kind::Coderun),
        p50_of(run, "rust", Kind::Hit),
        p50_of(run, "rust", Kind::Bare),
    );
    target(
        "Rust hello p50 <= 1.1x bare rustc + run, cache miss",
        format!("<= {} ms", ms(1.1 * rustc)),
        format!("{} ms = {}", ms(rs), ratio(rs, rustc)),
        rs <= 1.1 * rustc,
    );
    target(
        "Rust hello p50 <= 5 ms, cache hit",
        "<= 5 ms".into(),
        if rs_hit.is_nan() {
            "no compile cache".into()
        } else {
            format!("{} ms", ms(rs_hit))
        },
        rs_hit <= 5.0,
    );
    for l in run
        .levels
        .iter()
        .filter(|l| l.concurrency == 16 && l.lang != Lang::True)
    {
        let (a, b) = (l.coderun.per_second(), l.bare.per_second());
        let errors = l.coderun.error_count();
        target(
            &format!(
                "{} throughput at c=16 >= 0.9x bare, no errors",
                l.lang.name()
            ),
            ">= 0.90x, 0 errors".into(),
            format!("{}, {errors} errors", ratio(a, b)),
            a >= 0.9 * b && errors == 0,
        );
    }
    if let Some(m) = &run.memory {
        if let Some(rss) = m.no_pool_idle.rss_kb {
            target(
                "serve idle RSS <= 20 MiB (pool_size = 0)",
                "<= 20 MiB".into(),
                mib(rss),
                rss <= 20 * 1024,
            );
        }
        if let Some(rss) = m.settled.rss_kb {
            let total = rss + m.settled.tree.pss_kb;
            target(
                "(with default pools: server VmRSS + its warm boxes' PSS, pools full)",
                "<= 20 MiB".into(),
                mib(total),
                total <= 20 * 1024,
            );
        }
    }
    r.heading("Targets against this run");
    r.table(
        &["target", "threshold", "measured", "met?"],
        &rows,
        Some(&[Align::Left, Align::Right, Align::Right, Align::Left]),
    );
}
