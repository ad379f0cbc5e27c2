//! The machine and its processes, from /proc: what the machine is, how busy it is, how much
//! CPU other processes used while the benchmark ran, and the memory of a server and its boxes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

/// CPUs, model, RAM, kernel and distribution, in one line.
pub fn describe() -> String {
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = read("/proc/cpuinfo")
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "?".into());
    let memory = read("/proc/meminfo")
        .and_then(|s| field_kb(&s, "MemTotal"))
        .map_or("?".into(), |kb| {
            format!("{:.1} GiB ({kb} kB)", kb as f64 / 1_048_576.0)
        });
    let kernel = read("/proc/sys/kernel/osrelease").map_or("?".into(), |s| s.trim().to_string());
    let os = read("/etc/os-release")
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim().trim_matches('"').to_string())
        })
        .unwrap_or_else(|| "?".into());
    format!("{nproc} CPUs ({cpu}), {memory} RAM, kernel {kernel}, {os}")
}

fn read(path: impl AsRef<Path>) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// `Field:   1234 kB` of a /proc status-like text, in kB.
fn field_kb(text: &str, field: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// A field of /proc/<pid>/status in kB (`VmRSS`, `VmHWM`).
pub fn status_kb(pid: u32, field: &str) -> Option<u64> {
    field_kb(&read(format!("/proc/{pid}/status"))?, field)
}

/// The 1, 5 and 15 minute load averages.
pub fn loadavg() -> String {
    read("/proc/loadavg").map_or("?".into(), |s| {
        s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    })
}

/// One process as /proc/<pid>/stat shows it.
struct Proc {
    comm: String,
    ppid: u32,
    /// utime + stime, clock ticks.
    ticks: u64,
    /// cutime + cstime: its children that it has waited for.
    child_ticks: u64,
}

fn proc_stat(pid: u32) -> Option<Proc> {
    let s = read(format!("/proc/{pid}/stat"))?;
    let open = s.find('(')?;
    let close = s.rfind(')')?;
    let comm = s.get(open + 1..close)?.to_string();
    // After the comm: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
    // utime stime cutime cstime ...
    let rest: Vec<&str> = s.get(close + 1..)?.split_whitespace().collect();
    let num = |i: usize| rest.get(i).and_then(|v| v.parse::<u64>().ok());
    Some(Proc {
        comm,
        ppid: u32::try_from(num(1)?).ok()?,
        ticks: num(11)? + num(12)?,
        child_ticks: num(13)? + num(14)?,
    })
}

fn all_procs() -> HashMap<u32, Proc> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return HashMap::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, proc_stat(pid)?)))
        .collect()
}

fn children(table: &HashMap<u32, Proc>) -> HashMap<u32, Vec<u32>> {
    let mut kids: HashMap<u32, Vec<u32>> = HashMap::new();
    for (pid, p) in table {
        kids.entry(p.ppid).or_default().push(*pid);
    }
    for v in kids.values_mut() {
        v.sort_unstable();
    }
    kids
}

/// `root` and every process below it.
fn descendants(root: u32, kids: &HashMap<u32, Vec<u32>>) -> Vec<u32> {
    let mut seen = HashSet::new();
    let mut todo = vec![root];
    let mut out = Vec::new();
    while let Some(p) = todo.pop() {
        if seen.insert(p) {
            out.push(p);
            todo.extend(kids.get(&p).into_iter().flatten());
        }
    }
    out
}

fn clock_ticks_per_s() -> f64 {
    // SAFETY: sysconf only reads a configuration value; it has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// (busy, total, steal) clock ticks of the whole machine, from /proc/stat.
fn cpu_stat() -> (u64, u64, u64) {
    let line = read("/proc/stat").and_then(|s| s.lines().next().map(str::to_string));
    let mut v: Vec<u64> = line
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .filter_map(|x| x.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    v.resize(8, 0);
    let (user, nice, system, idle, iowait, irq, softirq, steal) =
        (v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]);
    let busy = user + nice + system + irq + softirq + steal;
    (busy, busy + idle + iowait, steal)
}

/// CPU ticks used by this process and everything below it: the live ones' own time plus what
/// each has waited for (a bare process, a box, a server that has been stopped).
fn our_ticks() -> u64 {
    let table = all_procs();
    let kids = children(&table);
    descendants(std::process::id(), &kids)
        .iter()
        .filter_map(|p| table.get(p))
        .map(|p| p.ticks + p.child_ticks)
        .sum()
}

/// CPU use of the machine over `period`, and the busiest processes that are not ours.
pub fn busy_sample(period: Duration) -> (f64, Vec<(f64, String)>) {
    let (b0, t0, _) = cpu_stat();
    let p0 = all_procs();
    std::thread::sleep(period);
    let (b1, t1, _) = cpu_stat();
    let p1 = all_procs();
    let ours: HashSet<u32> = descendants(std::process::id(), &children(&p1))
        .into_iter()
        .collect();
    let hz = clock_ticks_per_s();
    let mut top: Vec<(f64, String)> = p1
        .iter()
        .filter(|(pid, _)| !ours.contains(pid))
        .filter_map(|(pid, p)| {
            let d = p.ticks.checked_sub(p0.get(pid)?.ticks)?;
            (d > 0).then(|| (d as f64 / hz / period.as_secs_f64(), p.comm.clone()))
        })
        .collect();
    top.sort_by(|a, b| b.0.total_cmp(&a.0));
    top.truncate(5);
    let frac = if t1 > t0 {
        (b1 - b0) as f64 / (t1 - t0) as f64
    } else {
        0.0
    };
    (frac, top)
}

/// The CPU time the machine spent between a mark and now, split into ours (this process and
/// everything below it, servers and boxes included) and everyone else's.
pub struct CpuMeter {
    at: Instant,
    busy: u64,
    steal: u64,
    ours: u64,
}

pub struct CpuUse {
    pub available_cpu_s: f64,
    pub other_cpu_s: f64,
    pub steal_cpu_s: f64,
    pub other_frac: f64,
}

impl CpuMeter {
    pub fn mark() -> CpuMeter {
        let (busy, _, steal) = cpu_stat();
        CpuMeter {
            at: Instant::now(),
            busy,
            steal,
            ours: our_ticks(),
        }
    }

    pub fn since(&self) -> CpuUse {
        let (busy, _, steal) = cpu_stat();
        let ours = our_ticks();
        let hz = clock_ticks_per_s();
        let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let seconds = self.at.elapsed().as_secs_f64();
        let steal_d = steal.saturating_sub(self.steal);
        let other = busy
            .saturating_sub(self.busy)
            .saturating_sub(ours.saturating_sub(self.ours))
            .saturating_sub(steal_d);
        let other_cpu_s = other as f64 / hz;
        let available_cpu_s = seconds * ncpu;
        CpuUse {
            available_cpu_s,
            other_cpu_s,
            steal_cpu_s: steal_d as f64 / hz,
            other_frac: if available_cpu_s > 0.0 {
                other_cpu_s / available_cpu_s
            } else {
                0.0
            },
        }
    }
}

/// Memory of the processes below a server: each direct child is one box (its helper, and the
/// runtime waiting in it for a warm box).
#[derive(Clone, Default)]
pub struct Tree {
    pub processes: usize,
    pub rss_kb: u64,
    pub pss_kb: u64,
    /// Per kind of box (named after the program at the bottom of it): boxes, processes, RSS, PSS.
    pub kinds: BTreeMap<String, BoxKind>,
}

#[derive(Clone, Default)]
pub struct BoxKind {
    pub boxes: usize,
    pub processes: usize,
    pub rss_kb: u64,
    pub pss_kb: u64,
}

fn pss_kb(pid: u32) -> Option<u64> {
    field_kb(&read(format!("/proc/{pid}/smaps_rollup"))?, "Pss")
}

/// The boxes below `server`: RSS (VmRSS) and PSS (smaps_rollup) summed, per kind and in all.
pub fn tree(server: u32) -> Tree {
    let table = all_procs();
    let kids = children(&table);
    let mut out = Tree::default();
    for &top in kids.get(&server).into_iter().flatten() {
        let procs = descendants(top, &kids);
        // The deepest process names the box: python3, node, or coderun (the transpiler).
        let leaf = procs.last().copied().unwrap_or(top);
        let mut kind = table.get(&leaf).map_or("?".into(), |p| p.comm.clone());
        if kind == "coderun" {
            let cmdline = read(format!("/proc/{leaf}/cmdline")).unwrap_or_default();
            if let Some(sub) = cmdline.split('\0').nth(1) {
                kind = format!("coderun {sub}");
            }
        }
        let k = out.kinds.entry(kind).or_default();
        k.boxes += 1;
        for &p in &procs {
            let rss = status_kb(p, "VmRSS").unwrap_or(0);
            let pss = pss_kb(p).unwrap_or(0);
            k.processes += 1;
            k.rss_kb += rss;
            k.pss_kb += pss;
            out.processes += 1;
            out.rss_kb += rss;
            out.pss_kb += pss;
        }
    }
    out
}

/// The repository's HEAD (short) and the files with uncommitted changes.
pub fn git_state(root: &Path) -> (Option<String>, Vec<String>) {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(root)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let head = git(&["rev-parse", "--short", "HEAD"])
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.get(3..).map(str::to_string))
        .collect();
    (head, dirty)
}

/// Files under `dirs` changed after `than` (source newer than the binary).
pub fn newer_files(dirs: &[&Path], than: SystemTime) -> usize {
    let mut n = 0;
    let mut todo: Vec<std::path::PathBuf> = dirs.iter().map(|d| d.to_path_buf()).collect();
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                todo.push(e.path());
            } else if meta.modified().is_ok_and(|m| m > than) {
                n += 1;
            }
        }
    }
    n
}

/// `2026-11-26 11:23:32 UTC`.
pub fn utc(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        let at = |s| utc(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(at(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(at(1_795_694_311), "2026-11-26 11:58:31 UTC");
    }

    #[test]
    fn status_fields_in_kb() {
        let s = "Name:\tcoderun\nVmHWM:\t   10744 kB\nVmRSS:\t    8712 kB\n";
        assert_eq!(field_kb(s, "VmRSS"), Some(8712));
        assert_eq!(field_kb(s, "VmHWM"), Some(10744));
        assert_eq!(field_kb(s, "VmSwap"), None);
        assert!(status_kb(std::process::id(), "VmRSS").is_some_and(|v| v > 0));
    }
}
