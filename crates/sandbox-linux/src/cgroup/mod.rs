//! Per-box resource control with Linux cgroups (v1 and v2), in the spirit of youki's
//! `libcgroups`: one [`Layout`] describing the host, one private `Driver` trait with a v1
//! and a v2 implementation, and small handles ([`Instance`], [`BoxCgroup`]) that only ever
//! touch directories this server created itself.
//!
//! # Nesting
//!
//! The server never writes to a cgroup it did not create. Everything lives *below the
//! cgroup the server process already sits in* (read from `/proc/self/cgroup`):
//!
//! ```text
//! <own cgroup>/                      <- not ours: only read (and, v2, subtree_control)
//!   coderun-<instance>/              <- one per server instance ("instance cgroup")
//!     <box>/                         <- one per sandbox box, carries the limits
//! ```
//!
//! A start-up sweep can find instance cgroups left by dead servers with
//! [`Layout::list_instances`] and remove them with [`Instance::destroy`].
//!
//! # cgroup v1
//!
//! Every controller is its own hierarchy mounted somewhere (normally
//! `/sys/fs/cgroup/<controller>`), and the process can sit at a *different* path in each
//! one, e.g. `/process_api/<id>` in `memory` but `/` in `pids`. [`Layout`] therefore keeps
//! one "own" directory per controller we use (`memory`, `pids`, `cpu`, `cpuacct`); the
//! instance and box directories are created in each of them. Co-mounted hierarchies
//! (`cpu,cpuacct` mounted once) simply resolve to the same directory, and all operations
//! work on the de-duplicated list of directories. Limits: `memory.limit_in_bytes`,
//! `memory.memsw.limit_in_bytes` (= the memory limit, i.e. no swap on top, when swap
//! accounting exists), `pids.max`, `cpu.cfs_period_us`/`cpu.cfs_quota_us`.
//!
//! # cgroup v2
//!
//! One unified hierarchy; [`Layout`] holds the same directory for all four controllers.
//! Controllers must be enabled top-down through `cgroup.subtree_control`, and the kernel's
//! "no internal processes" rule refuses that (`EBUSY`) in a non-root cgroup that holds
//! processes, which the server's own cgroup always does (it holds the server). So on v2 the
//! instance cgroup `coderun-<instance>` is made at the root of the hierarchy as this process
//! sees it (like Docker's cgroupfs driver), where the rule does not apply: the server
//! enables `+memory +pids +cpu` there (systemd hosts already have them) and in the instance
//! cgroup. Inside a container with its own cgroup namespace that root is the container's
//! cgroup, which holds the container's processes: they must first move into a leaf (the
//! container entrypoint does). Limits: `memory.max`, `memory.swap.max = 0`,
//! `memory.oom.group = 1`, `pids.max`, `cpu.max`.
//!
//! # Hybrid hosts
//!
//! When the v1 `memory` controller is mounted, v1 is used even if a (controller-less)
//! cgroup2 hierarchy is mounted too, as on systemd "hybrid" hosts.
//!
//! # Fake file systems (tests)
//!
//! [`Layout::detect_from`] takes a `root_prefix` prepended to all mount points so unit
//! tests can run against a temporary directory. A real cgroupfs creates all control files
//! on `mkdir` and allows `rmdir` of a directory that still contains them; a temp dir does
//! neither. So when `root_prefix` is not `/` (or empty), [`Layout::fake_fs`] is set, and
//! then (and only then): control files are created when written, optional control files
//! (`memory.memsw.limit_in_bytes`, `memory.swap.max`, `memory.oom.group`) are treated as
//! present, plain files are deleted before `rmdir`, and no signals are ever sent (a fake
//! `cgroup.procs` is not kernel-backed, so its pids must not be trusted).

mod v1;
mod v2;

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Prefix of every instance cgroup directory name.
pub const INSTANCE_PREFIX: &str = "coderun-";

/// How long [`BoxCgroup::kill_all`] keeps trying before reporting survivors.
const KILL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long `rmdir` is retried on `EBUSY` (processes still exiting).
const RMDIR_TIMEOUT: Duration = Duration::from_secs(1);
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Which cgroup hierarchy the host uses for our controllers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Version {
    V1,
    V2,
}

/// Limits applied to one box's cgroup. A value of 0 means "no limit" for every field
/// except `cpu_period_us`, where 0 selects the kernel default of 100 ms.
///
/// Swap: v1 sets `memory.memsw.limit_in_bytes = memory_bytes` when the file exists (no
/// swap beyond the RAM limit); v2 sets `memory.swap.max = 0` when it exists. v2 also sets
/// `memory.oom.group = 1` when it exists, so an OOM kill takes the whole box down.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CgroupLimits {
    pub memory_bytes: u64,
    pub pids_max: u64,
    pub cpu_quota_us: u64,
    pub cpu_period_us: u64,
}

/// Kernel default CFS period used when `cpu_period_us` is 0.
const DEFAULT_CPU_PERIOD_US: u64 = 100_000;

impl CgroupLimits {
    fn period_us(&self) -> u64 {
        if self.cpu_period_us == 0 {
            DEFAULT_CPU_PERIOD_US
        } else {
            self.cpu_period_us
        }
    }
}

/// Absolute directory of one cgroup in each controller we use. On v1 the four can differ
/// (or coincide when hierarchies are co-mounted); on v2 all four are the same directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerDirs {
    pub memory: PathBuf,
    pub pids: PathBuf,
    pub cpu: PathBuf,
    pub cpuacct: PathBuf,
}

impl ControllerDirs {
    fn same(dir: PathBuf) -> Self {
        ControllerDirs {
            memory: dir.clone(),
            pids: dir.clone(),
            cpu: dir.clone(),
            cpuacct: dir,
        }
    }

    fn join(&self, name: &str) -> Self {
        ControllerDirs {
            memory: self.memory.join(name),
            pids: self.pids.join(name),
            cpu: self.cpu.join(name),
            cpuacct: self.cpuacct.join(name),
        }
    }

    /// The distinct directories, in a stable order (memory, pids, cpu, cpuacct).
    fn distinct(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = Vec::with_capacity(4);
        for d in [&self.memory, &self.pids, &self.cpu, &self.cpuacct] {
            if !out.contains(d) {
                out.push(d.clone());
            }
        }
        out
    }
}

/// Where this host's cgroups are and which of them this process sits in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Layout {
    pub version: Version,
    /// Where instance cgroups are made, per controller. v1: this process's own cgroup (e.g.
    /// `/sys/fs/cgroup/memory/process_api/<id>`); v2: the root of the unified hierarchy,
    /// four times (see the module docs for why).
    pub own: ControllerDirs,
    /// True when detected under a `root_prefix` other than `/`: the "cgroupfs" is a plain
    /// directory (unit tests). See the module docs for what changes.
    pub fake_fs: bool,
}

/// Errors of the cgroup module; every variant names the step and the path involved.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("invalid cgroup name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("failed to read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("failed to parse {} ({content:?}): {reason}", path.display())]
    Parse {
        path: PathBuf,
        content: String,
        reason: String,
    },
    #[error("cannot use cgroups on this host: {0}")]
    Detect(String),
    #[error("failed to write {value} to {}: {source}", path.display())]
    Write {
        path: PathBuf,
        value: String,
        source: io::Error,
    },
    #[error(
        "failed to enable controllers ({value}) in {}: {source}; cgroup v2 forbids enabling \
         controllers for the children of a non-root cgroup that itself contains processes \
         (\"no internal processes\" rule): start the server in a leaf cgroup of a delegated \
         subtree (e.g. systemd Delegate=yes, with the server process moved into a child \
         cgroup) so that its own cgroup holds no other processes, or enable the controllers \
         there beforehand",
        path.display()
    )]
    NoInternalProcesses {
        path: PathBuf,
        value: String,
        source: io::Error,
    },
    #[error("failed to create cgroup directory {}: {source}", path.display())]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("cgroup {} already exists", path.display())]
    AlreadyExists { path: PathBuf },
    #[error("{} exists but is not a directory (or is a symlink)", path.display())]
    NotADirectory { path: PathBuf },
    #[error("failed to list cgroup directory {}: {source}", path.display())]
    ListDir { path: PathBuf, source: io::Error },
    #[error("failed to remove cgroup directory {}: {source}", path.display())]
    RemoveDir { path: PathBuf, source: io::Error },
    #[error("failed to move pid {pid} into {}: {source}", path.display())]
    AddProcess {
        pid: i32,
        path: PathBuf,
        source: io::Error,
    },
    #[error("failed to send SIGKILL to pid {pid}: {source}")]
    Kill { pid: i32, source: io::Error },
    #[error("processes {survivors:?} still in {dirs:?} after {waited:?} of SIGKILL")]
    KillTimeout {
        survivors: Vec<i32>,
        dirs: Vec<PathBuf>,
        waited: Duration,
    },
}

type Result<T> = std::result::Result<T, CgroupError>;

// ---------------------------------------------------------------------------------------
// The version-specific driver.
// ---------------------------------------------------------------------------------------

/// What differs between cgroup v1 and v2. Everything else (directories, `cgroup.procs`,
/// killing, removal) is shared and lives in this file.
trait Driver: Sync {
    /// Called after the instance directories exist (v2: enable controllers).
    fn prepare_instance(&self, own: &Cg, instance: &Cg) -> Result<()>;
    /// Write `limits` into a freshly created box.
    fn apply_limits(&self, cg: &Cg, limits: &CgroupLimits) -> Result<()>;
    fn cpu_usage_ns(&self, cg: &Cg) -> Result<u64>;
    fn memory_peak_bytes(&self, cg: &Cg) -> Result<u64>;
    fn memory_current_bytes(&self, cg: &Cg) -> Result<u64>;
    fn oom_killed(&self, cg: &Cg) -> Result<bool>;
    /// Weight the box's CPU share low (a warm box starting its runtime in the background)
    /// or back to the default (a box running a request's program).
    fn set_background(&self, cg: &Cg, background: bool) -> Result<()>;
    /// Kill everything in one kernel operation if possible (v2 `cgroup.kill`).
    /// Returns true if such a mechanism was used.
    fn kill_fast(&self, cg: &Cg) -> Result<bool>;
}

fn driver(version: Version) -> &'static dyn Driver {
    match version {
        Version::V1 => &v1::V1,
        Version::V2 => &v2::V2,
    }
}

/// One cgroup (own, instance or box) across all controllers, plus the fake-fs flag.
#[derive(Debug, Clone)]
struct Cg {
    dirs: ControllerDirs,
    fake_fs: bool,
}

impl Cg {
    /// Write a control file. Never creates it on a real cgroupfs; never follows a symlink.
    fn write(&self, path: &Path, value: &str) -> Result<()> {
        write_ctl(path, value, self.fake_fs).map_err(|source| CgroupError::Write {
            path: path.to_path_buf(),
            value: value.to_string(),
            source,
        })
    }

    /// Write an optional control file: skipped when the kernel did not create it.
    fn write_optional(&self, path: &Path, value: &str) -> Result<()> {
        if self.fake_fs || path.exists() {
            self.write(path, value)
        } else {
            Ok(())
        }
    }

    fn read(&self, path: &Path) -> Result<String> {
        read_ctl(path)
    }

    fn read_u64(&self, path: &Path) -> Result<u64> {
        let text = self.read(path)?;
        text.trim().parse::<u64>().map_err(|e| CgroupError::Parse {
            path: path.to_path_buf(),
            content: text.clone(),
            reason: e.to_string(),
        })
    }
}

fn write_ctl(path: &Path, value: &str, fake_fs: bool) -> io::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(fake_fs)
        .truncate(fake_fs)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    // cgroupfs parses each write(2) separately; values are short, so this is one write.
    f.write_all(value.as_bytes())
}

fn read_ctl(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|source| CgroupError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Parse `key value` lines (cpu.stat, memory.events, memory.oom_control, ...).
fn flat_keyed(path: &Path, text: &str, key: &str) -> Result<Option<u64>> {
    for line in text.lines() {
        let mut it = line.split_whitespace();
        if it.next() == Some(key) {
            let v = it.next().unwrap_or("");
            return v.parse::<u64>().map(Some).map_err(|e| CgroupError::Parse {
                path: path.to_path_buf(),
                content: line.to_string(),
                reason: e.to_string(),
            });
        }
    }
    Ok(None)
}

// ---------------------------------------------------------------------------------------
// Names and directories.
// ---------------------------------------------------------------------------------------

/// Instance and box names: `[A-Za-z0-9_-]{1,64}`.
fn validate_name(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(CgroupError::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > 64 {
        return bad("longer than 64 bytes");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return bad("only A-Z, a-z, 0-9, '_' and '-' are allowed");
    }
    Ok(())
}

fn is_valid_name(name: &str) -> bool {
    validate_name(name).is_ok()
}

/// `mkdir` of exactly one component (the parent must exist). With `exist_ok`, an existing
/// real directory is accepted; a symlink or file never is. Returns whether it was created.
fn mkdir_one(path: &Path, exist_ok: bool) -> Result<bool> {
    match fs::create_dir(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            // mkdir(2) does not follow a symlink in the last component, but check what is
            // there before using it.
            match fs::symlink_metadata(path) {
                Ok(m) if m.file_type().is_dir() => {
                    if exist_ok {
                        Ok(false)
                    } else {
                        Err(CgroupError::AlreadyExists {
                            path: path.to_path_buf(),
                        })
                    }
                }
                _ => Err(CgroupError::NotADirectory {
                    path: path.to_path_buf(),
                }),
            }
        }
        Err(source) => Err(CgroupError::CreateDir {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// `rmdir`, retrying `EBUSY` briefly; a missing directory is fine. On a fake fs the plain
/// files inside are deleted first (a real cgroupfs allows rmdir with control files).
fn rmdir_retry(path: &Path, fake_fs: bool) -> Result<()> {
    let deadline = Instant::now() + RMDIR_TIMEOUT;
    if fake_fs {
        if let Ok(rd) = fs::read_dir(path) {
            for entry in rd.flatten() {
                if entry.file_type().map(|t| !t.is_dir()).unwrap_or(false) {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
    }
    loop {
        match fs::remove_dir(path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                thread::sleep(POLL_INTERVAL);
            }
            Err(source) => {
                return Err(CgroupError::RemoveDir {
                    path: path.to_path_buf(),
                    source,
                })
            }
        }
    }
}

/// Names of the real subdirectories of each dir (union, sorted); missing dirs are skipped.
fn list_subdirs(dirs: &[PathBuf]) -> Result<BTreeSet<String>> {
    let mut names = BTreeSet::new();
    for dir in dirs {
        let rd = match fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(CgroupError::ListDir {
                    path: dir.clone(),
                    source,
                })
            }
        };
        for entry in rd {
            let entry = entry.map_err(|source| CgroupError::ListDir {
                path: dir.clone(),
                source,
            })?;
            let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
            if let (true, Some(name)) = (is_dir, entry.file_name().to_str()) {
                names.insert(name.to_string());
            }
        }
    }
    Ok(names)
}

/// Remove `dirs` (best effort for all of them), returning the first error.
fn remove_all(dirs: &[PathBuf], fake_fs: bool) -> Result<()> {
    let mut first = None;
    for d in dirs {
        if let Err(e) = rmdir_retry(d, fake_fs) {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

// ---------------------------------------------------------------------------------------
// Detection.
// ---------------------------------------------------------------------------------------

/// One line of /proc/self/mountinfo, reduced to what we need.
struct Mount {
    root: String,
    mount_point: String,
    fs_type: String,
    super_opts: Vec<String>,
}

/// Undo the octal escaping of mountinfo (`\040` = space etc.).
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            let oct = &b[i + 1..i + 4];
            if oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                let v = oct
                    .iter()
                    .fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
                if let Ok(v) = u8::try_from(v) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_mountinfo(text: &str) -> Vec<Mount> {
    let mut mounts = Vec::new();
    for line in text.lines() {
        // id parent maj:min root mount_point opts [optional...] - fstype source super_opts
        let fields: Vec<&str> = line.split_whitespace().collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        if sep < 6 || fields.len() < sep + 3 {
            continue;
        }
        mounts.push(Mount {
            root: unescape_mountinfo(fields[3]),
            mount_point: unescape_mountinfo(fields[4]),
            fs_type: fields[sep + 1].to_string(),
            super_opts: fields
                .get(sep + 3)
                .map(|o| o.split(',').map(str::to_string).collect())
                .unwrap_or_default(),
        });
    }
    mounts
}

/// `(controllers, path)` per line of /proc/self/cgroup; v2 has an empty controller list.
fn parse_proc_cgroup(text: &str) -> Vec<(Vec<String>, String)> {
    text.lines()
        .filter_map(|line| {
            let mut it = line.splitn(3, ':');
            let _id = it.next()?;
            let ctrls = it.next()?;
            let path = it.next()?;
            let ctrls = ctrls
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect();
            Some((ctrls, path.to_string()))
        })
        .collect()
}

/// `root_prefix` + mount point + (cgroup path relative to the mount's root).
fn map_to_mount(root_prefix: &Path, m: &Mount, cgroup_path: &str) -> Option<PathBuf> {
    let rel = if m.root == "/" {
        cgroup_path.trim_start_matches('/')
    } else {
        let rest = cgroup_path.strip_prefix(m.root.as_str())?;
        if !rest.is_empty() && !rest.starts_with('/') {
            return None;
        }
        rest.trim_start_matches('/')
    };
    let mut dir = root_prefix.join(m.mount_point.trim_start_matches('/'));
    if !rel.is_empty() {
        dir.push(rel);
    }
    Some(dir)
}

fn is_fake_root(root_prefix: &Path) -> bool {
    !(root_prefix.as_os_str().is_empty() || root_prefix == Path::new("/"))
}

const V1_CONTROLLERS: [&str; 4] = ["memory", "pids", "cpu", "cpuacct"];
const V2_CONTROLLERS: [&str; 3] = ["memory", "pids", "cpu"];

fn detect_v1(
    cgroups: &[(Vec<String>, String)],
    mounts: &[Mount],
    root_prefix: &Path,
) -> std::result::Result<ControllerDirs, String> {
    let mut dirs = Vec::new();
    let mut problems = Vec::new();
    for ctrl in V1_CONTROLLERS {
        let has = |opts: &[String]| opts.iter().any(|o| o == ctrl);
        let v1_mounts: Vec<&Mount> = mounts
            .iter()
            .filter(|m| m.fs_type == "cgroup" && has(&m.super_opts))
            .collect();
        if v1_mounts.is_empty() {
            problems.push(format!("the v1 '{ctrl}' controller is not mounted"));
            continue;
        }
        let Some((_, path)) = cgroups.iter().find(|(c, _)| has(c)) else {
            problems.push(format!(
                "/proc/self/cgroup has no line for the v1 '{ctrl}' controller"
            ));
            continue;
        };
        match v1_mounts
            .iter()
            .find_map(|m| map_to_mount(root_prefix, m, path))
        {
            Some(d) => dirs.push(d),
            None => problems.push(format!(
                "this process's '{ctrl}' cgroup {path} is outside every mount of that \
                 hierarchy (mount roots: {:?})",
                v1_mounts
                    .iter()
                    .map(|m| m.root.as_str())
                    .collect::<Vec<_>>()
            )),
        }
    }
    if !problems.is_empty() {
        return Err(format!(
            "the cgroup v1 memory controller is mounted (so v1 is used), but {}. Fix: mount \
             each missing v1 controller, e.g. `mkdir -p /sys/fs/cgroup/pids && mount -t cgroup \
             -o pids cgroup /sys/fs/cgroup/pids` (likewise memory, cpu, cpuacct; cpu,cpuacct \
             may share one mount)",
            problems.join("; ")
        ));
    }
    let mut it = dirs.into_iter();
    let (Some(memory), Some(pids), Some(cpu), Some(cpuacct)) =
        (it.next(), it.next(), it.next(), it.next())
    else {
        return Err("internal error: incomplete v1 controller list".into());
    };
    Ok(ControllerDirs {
        memory,
        pids,
        cpu,
        cpuacct,
    })
}

fn detect_v2(
    cgroups: &[(Vec<String>, String)],
    mounts: &[Mount],
    root_prefix: &Path,
) -> std::result::Result<PathBuf, String> {
    let v2_mounts: Vec<&Mount> = mounts.iter().filter(|m| m.fs_type == "cgroup2").collect();
    if v2_mounts.is_empty() {
        return Err("no cgroup2 file system is mounted".into());
    }
    let Some((_, path)) = cgroups.iter().find(|(c, _)| c.is_empty()) else {
        return Err("/proc/self/cgroup has no cgroup v2 line (\"0::<path>\")".into());
    };
    let mut notes = Vec::new();
    for m in &v2_mounts {
        let Some(dir) = map_to_mount(root_prefix, m, path) else {
            notes.push(format!(
                "this process's v2 cgroup {path} is outside the cgroup2 mount at {} (root {})",
                m.mount_point, m.root
            ));
            continue;
        };
        let file = dir.join("cgroup.controllers");
        let available = match fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => {
                notes.push(format!("cannot read {}: {e}", file.display()));
                continue;
            }
        };
        let have: Vec<&str> = available.split_whitespace().collect();
        let missing: Vec<&str> = V2_CONTROLLERS
            .iter()
            .copied()
            .filter(|c| !have.contains(c))
            .collect();
        if missing.is_empty() {
            // Instances go at the root of the hierarchy (as seen by this process: a cgroup
            // namespace's root), not below our own cgroup: the kernel's "no internal
            // processes" rule refuses domain controllers in the children of a non-root
            // cgroup that holds processes, and ours always holds at least this server.
            return Ok(root_prefix.join(m.mount_point.trim_start_matches('/')));
        }
        notes.push(format!(
            "{} lists [{}], missing [{}]",
            file.display(),
            have.join(" "),
            missing.join(" ")
        ));
    }
    Err(notes.join("; "))
}

impl Layout {
    /// Pure: decide the layout from the text of `/proc/self/cgroup` and
    /// `/proc/self/mountinfo`, with `root_prefix` prepended to mount points (empty or `/` on
    /// a real host; a temp dir in tests, which sets [`Layout::fake_fs`]). Prefers v1 when
    /// the v1 memory controller is mounted (hybrid hosts), else v2 when a cgroup2 mount
    /// offers memory, pids and cpu in this process's `cgroup.controllers`, else errors
    /// saying what is missing and how to fix it.
    pub fn detect_from(
        proc_self_cgroup: &str,
        mountinfo: &str,
        root_prefix: &Path,
    ) -> Result<Layout> {
        let cgroups = parse_proc_cgroup(proc_self_cgroup);
        let mounts = parse_mountinfo(mountinfo);
        let fake_fs = is_fake_root(root_prefix);
        let root_prefix = if root_prefix.as_os_str().is_empty() {
            Path::new("/")
        } else {
            root_prefix
        };

        let v1_memory_mounted = mounts
            .iter()
            .any(|m| m.fs_type == "cgroup" && m.super_opts.iter().any(|o| o == "memory"));
        if v1_memory_mounted {
            return detect_v1(&cgroups, &mounts, root_prefix)
                .map(|own| Layout {
                    version: Version::V1,
                    own,
                    fake_fs,
                })
                .map_err(CgroupError::Detect);
        }
        match detect_v2(&cgroups, &mounts, root_prefix) {
            Ok(dir) => Ok(Layout {
                version: Version::V2,
                own: ControllerDirs::same(dir),
                fake_fs,
            }),
            Err(why) => Err(CgroupError::Detect(format!(
                "the v1 memory controller is not mounted, and cgroup v2 is unusable: {why}. \
                 Fix: either boot with the unified hierarchy and start the server in a \
                 cgroup whose parent delegates memory, pids and cpu (e.g. `echo \"+memory \
                 +pids +cpu\" > <parent>/cgroup.subtree_control`, or systemd Delegate=yes), \
                 or mount the v1 controllers (`mount -t cgroup -o memory cgroup \
                 /sys/fs/cgroup/memory`, likewise pids, cpu, cpuacct)"
            ))),
        }
    }

    /// Detect from `/proc/self/cgroup` and `/proc/self/mountinfo` on the real host.
    pub fn detect() -> Result<Layout> {
        let cgroup = read_ctl(Path::new("/proc/self/cgroup"))?;
        let mountinfo = read_ctl(Path::new("/proc/self/mountinfo"))?;
        Layout::detect_from(&cgroup, &mountinfo, Path::new("/"))
    }

    fn own_cg(&self) -> Cg {
        Cg {
            dirs: self.own.clone(),
            fake_fs: self.fake_fs,
        }
    }

    /// Create the instance cgroup `coderun-<instance>` under this process's own cgroup in
    /// every controller (one `mkdir`; the own cgroup must exist; an existing instance
    /// directory is reused). v2: enables `+memory +pids +cpu` in the own cgroup's and the
    /// instance's `cgroup.subtree_control`.
    pub fn create_instance(&self, instance: &str) -> Result<Instance> {
        validate_name(instance)?;
        let inst = self.open_instance(instance);
        let cg = inst.cg();
        let mut created = Vec::new();
        for dir in cg.dirs.distinct() {
            match mkdir_one(&dir, true) {
                Ok(true) => created.push(dir),
                Ok(false) => {}
                Err(e) => {
                    let _ = remove_all(&created, self.fake_fs);
                    return Err(e);
                }
            }
        }
        if let Err(e) = driver(self.version).prepare_instance(&self.own_cg(), &cg) {
            let _ = remove_all(&created, self.fake_fs);
            return Err(e);
        }
        Ok(inst)
    }

    /// Names (without the `coderun-` prefix) of the instance cgroups below this process's
    /// own cgroup, in any controller. The caller decides which ones are stale.
    pub fn list_instances(&self) -> Result<Vec<String>> {
        Ok(list_subdirs(&self.own.distinct())?
            .into_iter()
            .filter_map(|d| d.strip_prefix(INSTANCE_PREFIX).map(str::to_string))
            .filter(|n| is_valid_name(n))
            .collect())
    }

    /// Handle to an (assumed) existing instance, e.g. for the start-up sweep. Nothing is
    /// checked or touched until a method is called. An invalid name yields a handle whose
    /// every operation fails with [`CgroupError::InvalidName`].
    pub fn open_instance(&self, instance: &str) -> Instance {
        Instance {
            layout: self.clone(),
            name: instance.to_string(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Instance.
// ---------------------------------------------------------------------------------------

/// This server instance's parent cgroup `coderun-<name>` (in every controller).
#[derive(Debug, Clone)]
pub struct Instance {
    layout: Layout,
    name: String,
}

impl Instance {
    /// The instance name (without the `coderun-` prefix).
    pub fn name(&self) -> &str {
        &self.name
    }

    fn cg(&self) -> Cg {
        Cg {
            dirs: self
                .layout
                .own
                .join(&format!("{INSTANCE_PREFIX}{}", self.name)),
            fake_fs: self.layout.fake_fs,
        }
    }

    /// The instance's distinct directories.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.cg().dirs.distinct()
    }

    /// Create box cgroup `<instance>/<name>` in every controller and write `limits`.
    /// Fails with [`CgroupError::AlreadyExists`] if it exists; on any failure the
    /// directories created so far are removed again.
    pub fn create_box(&self, name: &str, limits: &CgroupLimits) -> Result<BoxCgroup> {
        validate_name(&self.name)?;
        validate_name(name)?;
        let bx = self.open_box(name);
        let cg = bx.cg();
        let mut created = Vec::new();
        for dir in cg.dirs.distinct() {
            match mkdir_one(&dir, false) {
                Ok(_) => created.push(dir),
                Err(e) => {
                    let _ = remove_all(&created, cg.fake_fs);
                    return Err(e);
                }
            }
        }
        if let Err(e) = driver(bx.version).apply_limits(&cg, limits) {
            let _ = remove_all(&created, cg.fake_fs);
            return Err(e);
        }
        Ok(bx)
    }

    /// Handle to an (assumed) existing box; see [`Layout::open_instance`] for invalid names.
    pub fn open_box(&self, name: &str) -> BoxCgroup {
        BoxCgroup {
            version: self.layout.version,
            instance: self.name.clone(),
            name: name.to_string(),
            cg: self.cg().dirs.join(name),
            fake_fs: self.layout.fake_fs,
        }
    }

    /// Names of the box cgroups in this instance (union over controllers).
    pub fn list_boxes(&self) -> Result<Vec<String>> {
        validate_name(&self.name)?;
        Ok(list_subdirs(&self.paths())?
            .into_iter()
            .filter(|n| is_valid_name(n))
            .collect())
    }

    /// Kill every process in every box, remove every box, then remove the instance
    /// directories. Keeps going after errors and returns the first one. Idempotent.
    pub fn destroy(&self) -> Result<()> {
        validate_name(&self.name)?;
        let mut first = None;
        for name in self.list_boxes()? {
            let bx = self.open_box(&name);
            if let Err(e) = bx.kill_all() {
                first.get_or_insert(e);
            }
            if let Err(e) = bx.remove() {
                first.get_or_insert(e);
            }
        }
        if first.is_none() {
            if let Err(e) = remove_all(&self.paths(), self.layout.fake_fs) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

// ---------------------------------------------------------------------------------------
// Box.
// ---------------------------------------------------------------------------------------

/// One box's cgroup (in every controller).
#[derive(Debug, Clone)]
pub struct BoxCgroup {
    version: Version,
    instance: String,
    name: String,
    cg: ControllerDirs,
    fake_fs: bool,
}

impl BoxCgroup {
    fn cg(&self) -> Cg {
        Cg {
            dirs: self.cg.clone(),
            fake_fs: self.fake_fs,
        }
    }

    fn check(&self) -> Result<()> {
        validate_name(&self.instance)?;
        validate_name(&self.name)
    }

    /// The box name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Move `pid` into the box: writes `cgroup.procs` in each controller's directory.
    pub fn add_process(&self, pid: i32) -> Result<()> {
        self.check()?;
        let cg = self.cg();
        for dir in cg.dirs.distinct() {
            let path = dir.join("cgroup.procs");
            write_ctl(&path, &pid.to_string(), cg.fake_fs)
                .map_err(|source| CgroupError::AddProcess { pid, path, source })?;
        }
        Ok(())
    }

    /// A warm box's runtime starts in the background: while `background` is set, the box
    /// gets the smallest CPU share (v1 `cpu.shares` 2, v2 `cpu.weight` 1) so that refilling
    /// a pool never slows the programs being run; the hand-off sets the default back (1024,
    /// 100). Shares are relative to the other boxes and only matter when the CPU is busy.
    pub fn set_background(&self, background: bool) -> Result<()> {
        self.check()?;
        driver(self.version).set_background(&self.cg(), background)
    }

    /// Total CPU time used by the box (v1 `cpuacct.usage`; v2 `cpu.stat` usage_usec).
    pub fn cpu_usage_ns(&self) -> Result<u64> {
        self.check()?;
        driver(self.version).cpu_usage_ns(&self.cg())
    }

    /// Peak memory usage (v1 `memory.max_usage_in_bytes`; v2 `memory.peak`, 0 if absent).
    pub fn memory_peak_bytes(&self) -> Result<u64> {
        self.check()?;
        driver(self.version).memory_peak_bytes(&self.cg())
    }

    /// Current memory usage (v1 `memory.usage_in_bytes`; v2 `memory.current`).
    pub fn memory_current_bytes(&self) -> Result<u64> {
        self.check()?;
        driver(self.version).memory_current_bytes(&self.cg())
    }

    /// Whether the kernel OOM-killed something in the box (v1 `memory.oom_control`
    /// `oom_kill`, or `under_oom` on kernels without that line; v2 `memory.events`).
    pub fn oom_killed(&self) -> Result<bool> {
        self.check()?;
        driver(self.version).oom_killed(&self.cg())
    }

    /// `pids.peak`, if the kernel provides it.
    pub fn pids_peak(&self) -> Option<u64> {
        self.check().ok()?;
        let cg = self.cg();
        cg.read_u64(&cg.dirs.pids.join("pids.peak")).ok()
    }

    /// Union of `cgroup.procs` over the controllers, sorted. A missing box directory
    /// counts as empty.
    pub fn procs(&self) -> Result<Vec<i32>> {
        self.check()?;
        let mut pids = BTreeSet::new();
        for dir in self.cg.distinct() {
            let path = dir.join("cgroup.procs");
            let text = match fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => return Err(CgroupError::Read { path, source }),
            };
            for tok in text.split_whitespace() {
                let pid = tok.parse::<i32>().map_err(|e| CgroupError::Parse {
                    path: path.clone(),
                    content: tok.to_string(),
                    reason: e.to_string(),
                })?;
                pids.insert(pid);
            }
        }
        Ok(pids.into_iter().collect())
    }

    /// SIGKILL everything in the box until `cgroup.procs` is empty (v2: via `cgroup.kill`
    /// when present). Gives up after ~2 s with [`CgroupError::KillTimeout`]. On a fake fs
    /// no signal is sent; leftover pids are reported as survivors at once.
    ///
    /// On v1 a pid read from `cgroup.procs` could in theory exit and be reused before the
    /// signal lands; boxes hold only short-lived sandbox processes and the window is tiny.
    pub fn kill_all(&self) -> Result<()> {
        self.check()?;
        let start = Instant::now();
        let cg = self.cg();
        let fast = if self.fake_fs {
            false
        } else {
            driver(self.version).kill_fast(&cg)?
        };
        loop {
            let pids = self.procs()?;
            if pids.is_empty() {
                return Ok(());
            }
            if self.fake_fs || start.elapsed() >= KILL_TIMEOUT {
                return Err(CgroupError::KillTimeout {
                    survivors: pids,
                    dirs: self.cg.distinct(),
                    waited: start.elapsed(),
                });
            }
            if !fast {
                for pid in pids {
                    send_sigkill(pid)?;
                }
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// `rmdir` the box in every controller, retrying `EBUSY` briefly. Idempotent.
    pub fn remove(&self) -> Result<()> {
        self.check()?;
        remove_all(&self.cg.distinct(), self.fake_fs)
    }

    /// The box's distinct directories (one per mounted hierarchy).
    pub fn paths(&self) -> Vec<PathBuf> {
        self.cg.distinct()
    }
}

fn send_sigkill(pid: i32) -> Result<()> {
    if pid <= 0 {
        // kill(0 or negative) would hit process groups; cgroup.procs never lists these.
        return Ok(());
    }
    // SAFETY: kill(2) takes plain integers and has no memory-safety preconditions; `pid` is
    // a positive pid read from the box's cgroup.procs, so this signals exactly that process.
    let rc = unsafe { libc::kill(pid, libc::SIGKILL) };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::ESRCH) {
        Ok(()) // already gone
    } else {
        Err(CgroupError::Kill { pid, source: err })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// /proc/self/cgroup of the development host (hybrid: v1 controllers + empty cgroup2).
    const HOST_CGROUP: &str = "9:name=systemd:/
8:pids:/
7:blkio:/
6:freezer:/
5:devices:/
4:memory:/process_api/6241886258c7cf628b977272759cbcb9
3:cpuset:/
2:cpuacct:/
1:cpu:/
0::/
";

    /// /proc/self/mountinfo of the development host.
    const HOST_MOUNTINFO: &str = "22 27 0:21 / /proc rw,relatime - proc proc rw
23 27 0:22 / /sys rw,relatime - sysfs sysfs rw
24 27 0:6 / /dev rw,relatime - devtmpfs devtmpfs rw,size=12334524k,nr_inodes=3083631,mode=755
25 24 0:23 / /dev/shm rw,relatime - tmpfs tmpfs rw,size=24684096k
26 24 0:24 / /dev/pts rw,relatime - devpts devpts rw,mode=600,ptmxmode=000
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534
28 27 0:25 / /mnt/sandboxing/model_tools_env/v1/python ro,nosuid,nodev,relatime - tmpfs model_tools_unavailable ro,size=4k,mode=755
29 26 0:26 / /dev/pts rw,relatime - devpts devpts rw,mode=600,ptmxmode=000
30 25 0:27 / /dev/shm rw,relatime - tmpfs tmpfs rw,size=24684096k
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    const HOST_OWN_MEMORY: &str = "process_api/6241886258c7cf628b977272759cbcb9";

    const V2_MOUNTINFO: &str = "22 1 0:21 / /proc rw,relatime - proc proc rw
30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    const MIB: u64 = 1024 * 1024;

    fn limits() -> CgroupLimits {
        CgroupLimits {
            memory_bytes: 128 * MIB,
            pids_max: 16,
            cpu_quota_us: 50_000,
            cpu_period_us: 100_000,
        }
    }

    fn read(p: &Path) -> String {
        fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
    }

    fn put(p: &Path, s: &str) {
        fs::write(p, s).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
    }

    /// A fake pure-v2 host under `tmp`, own cgroup /user.slice/x.
    fn fake_v2(tmp: &Path) -> Layout {
        let own = tmp.join("sys/fs/cgroup/user.slice/x");
        fs::create_dir_all(&own).unwrap();
        put(
            &own.join("cgroup.controllers"),
            "cpuset cpu io memory pids\n",
        );
        Layout::detect_from("0::/user.slice/x\n", V2_MOUNTINFO, tmp).unwrap()
    }

    /// A fake copy of the development host (v1) under `tmp`.
    fn fake_v1(tmp: &Path) -> Layout {
        for d in ["memory", "pids", "cpu", "cpuacct"] {
            fs::create_dir_all(tmp.join("sys/fs/cgroup").join(d)).unwrap();
        }
        fs::create_dir_all(tmp.join("sys/fs/cgroup/memory").join(HOST_OWN_MEMORY)).unwrap();
        Layout::detect_from(HOST_CGROUP, HOST_MOUNTINFO, tmp).unwrap()
    }

    #[test]
    fn detect_host_text_is_v1_with_per_controller_dirs() {
        for prefix in ["/", ""] {
            let l = Layout::detect_from(HOST_CGROUP, HOST_MOUNTINFO, Path::new(prefix)).unwrap();
            assert_eq!(l.version, Version::V1);
            assert!(!l.fake_fs);
            assert_eq!(
                l.own.memory,
                Path::new("/sys/fs/cgroup/memory").join(HOST_OWN_MEMORY)
            );
            assert_eq!(l.own.pids, Path::new("/sys/fs/cgroup/pids"));
            assert_eq!(l.own.cpu, Path::new("/sys/fs/cgroup/cpu"));
            assert_eq!(l.own.cpuacct, Path::new("/sys/fs/cgroup/cpuacct"));
            assert_eq!(l.own.distinct().len(), 4);
        }
    }

    #[test]
    fn detect_with_prefix_sets_fake_fs() {
        let tmp = tempfile::tempdir().unwrap();
        let l = Layout::detect_from(HOST_CGROUP, HOST_MOUNTINFO, tmp.path()).unwrap();
        assert!(l.fake_fs);
        assert_eq!(l.own.pids, tmp.path().join("sys/fs/cgroup/pids"));
    }

    #[test]
    fn detect_pure_v2() {
        let tmp = tempfile::tempdir().unwrap();
        let l = fake_v2(tmp.path());
        assert_eq!(l.version, Version::V2);
        assert!(l.fake_fs);
        // Instances go at the hierarchy's root, not below our own (non-root) cgroup, whose
        // children could not get controllers while it holds this process.
        let root = tmp.path().join("sys/fs/cgroup");
        assert_eq!(l.own, ControllerDirs::same(root.clone()));
        assert_eq!(l.own.distinct(), vec![root]);
    }

    #[test]
    fn detect_v2_missing_controllers_names_them() {
        let tmp = tempfile::tempdir().unwrap();
        let own = tmp.path().join("sys/fs/cgroup/user.slice/x");
        fs::create_dir_all(&own).unwrap();
        put(&own.join("cgroup.controllers"), "cpu io\n");
        let err = Layout::detect_from("0::/user.slice/x\n", V2_MOUNTINFO, tmp.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing [memory pids]"), "{err}");
        assert!(err.contains("subtree_control"), "{err}");
    }

    #[test]
    fn detect_hybrid_without_controllers_is_a_clear_error() {
        // The host's layout minus the v1 memory/pids/cpu/cpuacct mounts: only an empty
        // cgroup2 at /sys/fs/cgroup/unified remains.
        let tmp = tempfile::tempdir().unwrap();
        let unified = tmp.path().join("sys/fs/cgroup/unified");
        fs::create_dir_all(&unified).unwrap();
        put(&unified.join("cgroup.controllers"), "");
        let mountinfo: String = HOST_MOUNTINFO
            .lines()
            .filter(|l| {
                !["rw,memory", "rw,pids", "rw,cpu", "rw,cpuacct"]
                    .iter()
                    .any(|o| l.ends_with(o))
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let err = Layout::detect_from(HOST_CGROUP, &mountinfo, tmp.path()).unwrap_err();
        assert!(matches!(err, CgroupError::Detect(_)));
        let msg = err.to_string();
        assert!(msg.contains("v1 memory controller is not mounted"), "{msg}");
        assert!(msg.contains("missing [memory pids cpu]"), "{msg}");
        assert!(msg.contains("Fix:"), "{msg}");

        // No cgroup at all.
        let err = Layout::detect_from("", "", tmp.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("no cgroup2 file system is mounted"), "{err}");
    }

    #[test]
    fn detect_v1_with_missing_pids_names_it() {
        let mountinfo: String = HOST_MOUNTINFO
            .lines()
            .filter(|l| !l.ends_with("rw,pids"))
            .map(|l| format!("{l}\n"))
            .collect();
        let err = Layout::detect_from(HOST_CGROUP, &mountinfo, Path::new("/"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("the v1 'pids' controller is not mounted"),
            "{err}"
        );
        assert!(err.contains("mount -t cgroup"), "{err}");
    }

    #[test]
    fn detect_co_mounted_cpu_cpuacct() {
        let cgroup = "5:pids:/a\n4:memory:/a\n3:cpu,cpuacct:/a\n0::/a\n";
        let mountinfo = "\
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:9 - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,nosuid shared:10 - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,nosuid shared:11 - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,nosuid shared:12 - cgroup2 cgroup2 rw,nsdelegate
";
        let l = Layout::detect_from(cgroup, mountinfo, Path::new("/")).unwrap();
        assert_eq!(l.version, Version::V1);
        assert_eq!(l.own.cpu, Path::new("/sys/fs/cgroup/cpu,cpuacct/a"));
        assert_eq!(l.own.cpu, l.own.cpuacct);
        assert_eq!(l.own.distinct().len(), 3);
    }

    #[test]
    fn detect_maps_mount_root_and_unescapes() {
        // Container without cgroup namespace: the hierarchy is mounted from /docker/abc.
        let cgroup = "3:pids:/docker/abc\n2:memory:/docker/abc/sub\n1:cpu,cpuacct:/docker/abc\n";
        let mountinfo = "\
1 0 0:1 /docker/abc /sys/fs/cgroup/mem\\040ory rw - cgroup cgroup rw,memory
2 0 0:2 /docker/abc /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
3 0 0:3 /docker/abc /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpuacct,cpu
";
        let l = Layout::detect_from(cgroup, mountinfo, Path::new("/")).unwrap();
        assert_eq!(l.own.memory, Path::new("/sys/fs/cgroup/mem ory/sub"));
        assert_eq!(l.own.pids, Path::new("/sys/fs/cgroup/pids"));
        assert_eq!(l.own.cpuacct, Path::new("/sys/fs/cgroup/cpu"));

        // A cgroup outside the mount's root cannot be mapped.
        let err = Layout::detect_from("2:memory:/other\n", mountinfo, Path::new("/"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("outside every mount"), "{err}");
    }

    #[test]
    fn names_are_validated() {
        for bad in [
            "",
            "..",
            ".",
            "a/b",
            "/",
            "a b",
            "ä",
            &"x".repeat(65),
            "a\0b",
        ] {
            assert!(
                matches!(validate_name(bad), Err(CgroupError::InvalidName { .. })),
                "{bad:?}"
            );
        }
        for good in ["a", "box-1_X", &"x".repeat(64)] {
            validate_name(good).unwrap();
        }
        let tmp = tempfile::tempdir().unwrap();
        let l = fake_v2(tmp.path());
        assert!(matches!(
            l.create_instance("../x"),
            Err(CgroupError::InvalidName { .. })
        ));
        let inst = l.create_instance("i").unwrap();
        assert!(matches!(
            inst.create_box("..", &limits()),
            Err(CgroupError::InvalidName { .. })
        ));
        let bad_box = inst.open_box("a/b");
        assert!(matches!(
            bad_box.remove(),
            Err(CgroupError::InvalidName { .. })
        ));
        assert!(matches!(
            l.open_instance("..").destroy(),
            Err(CgroupError::InvalidName { .. })
        ));
    }

    #[test]
    fn v2_fake_fs_instance_box_and_stats() {
        let tmp = tempfile::tempdir().unwrap();
        let l = fake_v2(tmp.path());
        let own = l.own.memory.clone();
        let inst = l.create_instance("srv1").unwrap();
        let idir = own.join("coderun-srv1");
        assert_eq!(inst.paths(), vec![idir.clone()]);
        assert_eq!(
            read(&own.join("cgroup.subtree_control")),
            "+memory +pids +cpu"
        );
        assert_eq!(
            read(&idir.join("cgroup.subtree_control")),
            "+memory +pids +cpu"
        );
        // Re-creating the instance reuses it.
        l.create_instance("srv1").unwrap();
        assert_eq!(l.list_instances().unwrap(), vec!["srv1".to_string()]);

        let bx = inst.create_box("b1", &limits()).unwrap();
        let bdir = idir.join("b1");
        assert_eq!(bx.paths(), vec![bdir.clone()]);
        assert_eq!(read(&bdir.join("memory.max")), (128 * MIB).to_string());
        assert_eq!(read(&bdir.join("memory.swap.max")), "0");
        assert_eq!(read(&bdir.join("memory.oom.group")), "1");
        assert_eq!(read(&bdir.join("pids.max")), "16");
        assert_eq!(read(&bdir.join("cpu.max")), "50000 100000");
        bx.set_background(true).unwrap();
        assert_eq!(read(&bdir.join("cpu.weight")), "1");
        bx.set_background(false).unwrap();
        assert_eq!(read(&bdir.join("cpu.weight")), "100");
        assert!(matches!(
            inst.create_box("b1", &limits()),
            Err(CgroupError::AlreadyExists { .. })
        ));

        // Unlimited values.
        let unl = CgroupLimits {
            memory_bytes: 0,
            pids_max: 0,
            cpu_quota_us: 0,
            cpu_period_us: 0,
        };
        let b2 = inst.create_box("b2", &unl).unwrap();
        let b2dir = idir.join("b2");
        assert_eq!(b2.paths(), vec![b2dir.clone()]);
        assert_eq!(read(&b2dir.join("memory.max")), "max");
        assert_eq!(read(&b2dir.join("pids.max")), "max");
        assert_eq!(read(&b2dir.join("cpu.max")), "max 100000");
        assert_eq!(
            inst.list_boxes().unwrap(),
            vec!["b1".to_string(), "b2".to_string()]
        );

        // Stats from files the "kernel" wrote.
        assert_eq!(bx.memory_peak_bytes().unwrap(), 0, "memory.peak absent");
        put(&bdir.join("memory.peak"), "4096000\n");
        put(&bdir.join("memory.current"), "1234\n");
        put(
            &bdir.join("cpu.stat"),
            "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\nnr_periods 0\n",
        );
        put(
            &bdir.join("memory.events"),
            "low 0\nhigh 0\nmax 3\noom 1\noom_kill 0\noom_group_kill 0\n",
        );
        assert_eq!(bx.memory_peak_bytes().unwrap(), 4_096_000);
        assert_eq!(bx.memory_current_bytes().unwrap(), 1234);
        assert_eq!(bx.cpu_usage_ns().unwrap(), 2_500_000);
        assert!(!bx.oom_killed().unwrap());
        put(
            &bdir.join("memory.events"),
            "low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\noom_group_kill 1\n",
        );
        assert!(bx.oom_killed().unwrap());
        assert_eq!(bx.pids_peak(), None);
        put(&bdir.join("pids.peak"), "7\n");
        assert_eq!(bx.pids_peak(), Some(7));

        // add_process writes cgroup.procs; a fake fs never signals, it reports survivors.
        bx.add_process(4242).unwrap();
        assert_eq!(read(&bdir.join("cgroup.procs")), "4242");
        assert_eq!(bx.procs().unwrap(), vec![4242]);
        match bx.kill_all() {
            Err(CgroupError::KillTimeout { survivors, .. }) => assert_eq!(survivors, vec![4242]),
            other => panic!("expected KillTimeout, got {other:?}"),
        }
        put(&bdir.join("cgroup.procs"), "");
        bx.kill_all().unwrap();

        // remove is idempotent; destroy removes the rest.
        bx.remove().unwrap();
        assert!(!bdir.exists());
        bx.remove().unwrap();
        assert_eq!(bx.procs().unwrap(), Vec::<i32>::new());
        inst.destroy().unwrap();
        assert!(!idir.exists());
        assert!(!b2dir.exists());
        assert!(own.exists(), "own cgroup must never be removed");
        assert!(l.list_instances().unwrap().is_empty());
        inst.destroy().unwrap();
    }

    #[test]
    fn v2_skips_subtree_control_when_already_enabled() {
        let tmp = tempfile::tempdir().unwrap();
        let l = fake_v2(tmp.path());
        put(
            &l.own.memory.join("cgroup.subtree_control"),
            "cpu memory pids io\n",
        );
        l.create_instance("a").unwrap();
        assert_eq!(
            read(&l.own.memory.join("cgroup.subtree_control")),
            "cpu memory pids io\n"
        );
    }

    #[test]
    fn v1_fake_fs_writes_and_reads() {
        let tmp = tempfile::tempdir().unwrap();
        let l = fake_v1(tmp.path());
        let inst = l.create_instance("srv").unwrap();
        let cg = tmp.path().join("sys/fs/cgroup");
        let mem_i = cg.join("memory").join(HOST_OWN_MEMORY).join("coderun-srv");
        let expect_inst = vec![
            mem_i.clone(),
            cg.join("pids/coderun-srv"),
            cg.join("cpu/coderun-srv"),
            cg.join("cpuacct/coderun-srv"),
        ];
        assert_eq!(inst.paths(), expect_inst);
        assert!(!mem_i.join("cgroup.subtree_control").exists());

        let bx = inst.create_box("b", &limits()).unwrap();
        let mem = mem_i.join("b");
        assert_eq!(bx.paths().len(), 4);
        assert_eq!(read(&mem.join("memory.limit_in_bytes")), "134217728");
        assert_eq!(read(&mem.join("memory.memsw.limit_in_bytes")), "134217728");
        assert_eq!(read(&cg.join("pids/coderun-srv/b/pids.max")), "16");
        assert_eq!(
            read(&cg.join("cpu/coderun-srv/b/cpu.cfs_quota_us")),
            "50000"
        );
        assert_eq!(
            read(&cg.join("cpu/coderun-srv/b/cpu.cfs_period_us")),
            "100000"
        );
        bx.set_background(true).unwrap();
        assert_eq!(read(&cg.join("cpu/coderun-srv/b/cpu.shares")), "2");
        bx.set_background(false).unwrap();
        assert_eq!(read(&cg.join("cpu/coderun-srv/b/cpu.shares")), "1024");

        put(
            &cg.join("cpuacct/coderun-srv/b/cpuacct.usage"),
            "123456789\n",
        );
        put(&mem.join("memory.max_usage_in_bytes"), "67108864\n");
        put(&mem.join("memory.usage_in_bytes"), "1000\n");
        put(
            &mem.join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
        );
        assert_eq!(bx.cpu_usage_ns().unwrap(), 123_456_789);
        assert_eq!(bx.memory_peak_bytes().unwrap(), 64 * MIB);
        assert_eq!(bx.memory_current_bytes().unwrap(), 1000);
        assert!(!bx.oom_killed().unwrap());
        put(
            &mem.join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
        );
        assert!(bx.oom_killed().unwrap());
        // Old kernels without the oom_kill line: fall back to under_oom.
        put(
            &mem.join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 1\n",
        );
        assert!(bx.oom_killed().unwrap());
        put(
            &mem.join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\n",
        );
        assert!(!bx.oom_killed().unwrap());
        put(&mem.join("memory.oom_control"), "oom_kill x\n");
        assert!(matches!(bx.oom_killed(), Err(CgroupError::Parse { .. })));

        // Procs are the union over controllers.
        put(&mem.join("cgroup.procs"), "10\n11\n");
        put(&cg.join("pids/coderun-srv/b/cgroup.procs"), "11\n12\n");
        assert_eq!(bx.procs().unwrap(), vec![10, 11, 12]);
        put(&mem.join("cgroup.procs"), "");
        put(&cg.join("pids/coderun-srv/b/cgroup.procs"), "");

        assert_eq!(l.list_instances().unwrap(), vec!["srv".to_string()]);
        inst.destroy().unwrap();
        for p in expect_inst {
            assert!(!p.exists(), "{}", p.display());
        }
        assert!(cg.join("memory").join(HOST_OWN_MEMORY).exists());
    }

    #[test]
    fn create_fails_without_parent_and_rejects_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let l = fake_v2(tmp.path());
        fs::remove_dir_all(&l.own.memory).unwrap();
        assert!(matches!(
            l.create_instance("x"),
            Err(CgroupError::CreateDir { .. })
        ));
        assert!(!l.own.memory.exists(), "parent must not be created");

        let l = fake_v2(tmp.path());
        let inst = l.create_instance("x").unwrap();
        let target = tmp.path().join("elsewhere");
        fs::create_dir(&target).unwrap();
        std::os::unix::fs::symlink(&target, inst.paths()[0].join("evil")).unwrap();
        assert!(matches!(
            inst.create_box("evil", &limits()),
            Err(CgroupError::NotADirectory { .. })
        ));
        assert_eq!(fs::read_dir(&target).unwrap().count(), 0);
        // Symlinks are not listed as boxes.
        assert!(inst.list_boxes().unwrap().is_empty());
    }

    #[test]
    fn write_error_names_value_path_and_cause() {
        let tmp = tempfile::tempdir().unwrap();
        let cg = Cg {
            dirs: ControllerDirs::same(tmp.path().to_path_buf()),
            fake_fs: false,
        };
        let p = tmp.path().join("memory.limit_in_bytes");
        let msg = cg.write(&p, "134217728").unwrap_err().to_string();
        assert!(
            msg.starts_with(&format!("failed to write 134217728 to {}: ", p.display())),
            "{msg}"
        );
        assert!(!p.exists(), "real-fs mode must not create control files");
        cg.write_optional(&p, "1").unwrap();
        assert!(!p.exists());
    }

    // -----------------------------------------------------------------------------------
    // Real cgroup v1 tests: run only as root on a host with /sys/fs/cgroup/memory.
    // -----------------------------------------------------------------------------------

    mod real {
        use super::*;
        use std::os::unix::fs::MetadataExt;
        use std::os::unix::process::ExitStatusExt;
        use std::process::{Child, Command, Stdio};

        const PYTHON: &str = "/root/.pyenv/versions/3.11.7/bin/python3.11";

        /// The real layout, or None (test skipped) when not root on a v1 host.
        fn real_layout() -> Option<Layout> {
            let root = fs::metadata("/proc/self")
                .map(|m| m.uid() == 0)
                .unwrap_or(false);
            if !Path::new("/sys/fs/cgroup/memory").exists() || !root {
                eprintln!("skipped: needs root and a cgroup v1 memory hierarchy");
                return None;
            }
            let l = Layout::detect().expect("detect");
            assert_eq!(l.version, Version::V1);
            assert!(!l.fake_fs);
            Some(l)
        }

        /// Cleans up even when the test panics: kills only the children it spawned (by
        /// their handles) and destroys only the instance cgroup the test created.
        struct Guard {
            children: Vec<Child>,
            instance: Option<Instance>,
        }

        impl Guard {
            fn new(layout: &Layout) -> (Guard, Instance) {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .subsec_nanos();
                let name = format!("coderun-test-{}-{nanos:x}", std::process::id());
                assert!(!layout.list_instances().unwrap().contains(&name));
                let inst = layout.create_instance(&name).expect("create_instance");
                (
                    Guard {
                        children: Vec::new(),
                        instance: Some(inst.clone()),
                    },
                    inst,
                )
            }

            /// Spawn `cmd` with a piped stdin (the child waits for a line before working).
            fn spawn(&mut self, cmd: &mut Command) -> i32 {
                let child = cmd
                    .stdin(Stdio::piped())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("spawn");
                let pid = child.id() as i32;
                self.children.push(child);
                pid
            }

            fn go(&mut self, pid: i32) {
                let c = self.child(pid);
                let mut stdin = c.stdin.take().expect("stdin");
                stdin.write_all(b"go\n").unwrap();
            }

            fn child(&mut self, pid: i32) -> &mut Child {
                self.children
                    .iter_mut()
                    .find(|c| c.id() as i32 == pid)
                    .expect("our child")
            }
        }

        impl Drop for Guard {
            fn drop(&mut self) {
                for c in &mut self.children {
                    let _ = c.kill();
                    let _ = c.wait();
                }
                if let Some(inst) = self.instance.take() {
                    if let Err(e) = inst.destroy() {
                        eprintln!("cleanup of {:?} failed: {e}", inst.paths());
                    }
                }
            }
        }

        fn wait_timeout(c: &mut Child, t: Duration) -> Option<std::process::ExitStatus> {
            let end = Instant::now() + t;
            while Instant::now() < end {
                if let Some(st) = c.try_wait().unwrap() {
                    return Some(st);
                }
                thread::sleep(Duration::from_millis(20));
            }
            None
        }

        #[test]
        fn real_v1_lifecycle() {
            let Some(layout) = real_layout() else { return };
            let own_mem = fs::read_to_string("/proc/self/cgroup")
                .unwrap()
                .lines()
                .find_map(|l| l.strip_prefix("4:memory:").map(str::to_string));
            if let Some(p) = own_mem {
                assert_eq!(
                    layout.own.memory,
                    Path::new("/sys/fs/cgroup/memory").join(p.trim_start_matches('/'))
                );
            }
            let (mut g, inst) = Guard::new(&layout);
            let inst_name = inst.name().to_string();
            assert!(layout.list_instances().unwrap().contains(&inst_name));
            for p in inst.paths() {
                assert!(p.is_dir(), "{}", p.display());
            }

            let lim = CgroupLimits {
                memory_bytes: 64 * MIB,
                pids_max: 8,
                cpu_quota_us: 50_000,
                cpu_period_us: 100_000,
            };
            let bx = inst.create_box("box1", &lim).unwrap();
            assert!(matches!(
                inst.create_box("box1", &lim),
                Err(CgroupError::AlreadyExists { .. })
            ));
            assert_eq!(inst.list_boxes().unwrap(), vec!["box1".to_string()]);
            let mem = &bx.cg.memory;
            assert_eq!(read(&mem.join("memory.limit_in_bytes")).trim(), "67108864");
            let memsw = mem.join("memory.memsw.limit_in_bytes");
            if memsw.exists() {
                assert_eq!(read(&memsw).trim(), "67108864");
            }
            assert_eq!(read(&bx.cg.pids.join("pids.max")).trim(), "8");
            assert_eq!(read(&bx.cg.cpu.join("cpu.cfs_quota_us")).trim(), "50000");
            assert_eq!(read(&bx.cg.cpu.join("cpu.cfs_period_us")).trim(), "100000");
            bx.set_background(true).unwrap();
            assert_eq!(read(&bx.cg.cpu.join("cpu.shares")).trim(), "2");
            bx.set_background(false).unwrap();
            assert_eq!(read(&bx.cg.cpu.join("cpu.shares")).trim(), "1024");
            eprintln!(
                "host: memsw={} pids.peak={} oom_control={:?}",
                memsw.exists(),
                bx.cg.pids.join("pids.peak").exists(),
                read(&mem.join("memory.oom_control"))
            );

            let a = g.spawn(Command::new("/bin/sleep").arg("30"));
            let b = g.spawn(Command::new("/bin/sleep").arg("30"));
            bx.add_process(a).unwrap();
            bx.add_process(b).unwrap();
            assert_eq!(bx.procs().unwrap(), {
                let mut v = vec![a, b];
                v.sort();
                v
            });
            for pid in [a, b] {
                let text = read(Path::new(&format!("/proc/{pid}/cgroup")));
                let want = format!("/coderun-{inst_name}/box1");
                for ctrl in ["memory", "pids", "cpu", "cpuacct"] {
                    let line = text
                        .lines()
                        .find(|l| l.split(':').nth(1) == Some(ctrl))
                        .unwrap_or_else(|| panic!("no {ctrl} line in {text}"));
                    assert!(line.ends_with(&want), "{line} !~ {want}");
                }
            }
            // Readable; may be 0: v1 does not move already-charged pages with a task
            // (memory.move_charge_at_immigrate = 0), and sleep allocates nothing new.
            bx.memory_current_bytes().unwrap();

            bx.kill_all().unwrap();
            assert!(bx.procs().unwrap().is_empty());
            for pid in [a, b] {
                let st = wait_timeout(g.child(pid), Duration::from_secs(5)).expect("exited");
                assert_eq!(st.signal(), Some(libc::SIGKILL));
            }

            let box_paths = bx.paths();
            assert_eq!(box_paths.len(), 4);
            bx.remove().unwrap();
            for p in &box_paths {
                assert!(!p.exists(), "{}", p.display());
            }
            bx.remove().unwrap(); // idempotent

            let inst_paths = inst.paths();
            inst.destroy().unwrap();
            for p in &inst_paths {
                assert!(!p.exists(), "{}", p.display());
            }
            assert!(!layout.list_instances().unwrap().contains(&inst_name));
            assert!(layout.own.memory.is_dir(), "own cgroup untouched");
        }

        #[test]
        fn real_v1_pids_limit_caps_forks() {
            let Some(layout) = real_layout() else { return };
            let (mut g, inst) = Guard::new(&layout);
            let lim = CgroupLimits {
                memory_bytes: 64 * MIB,
                pids_max: 4,
                cpu_quota_us: 0,
                cpu_period_us: 0,
            };
            let bx = inst.create_box("forky", &lim).unwrap();
            let sh = g.spawn(
                Command::new("/bin/sh")
                    .arg("-c")
                    .arg("read x; for i in $(seq 20); do sleep 5 & done; wait"),
            );
            bx.add_process(sh).unwrap();
            g.go(sh);
            let mut max_seen = 0;
            let end = Instant::now() + Duration::from_millis(1500);
            while Instant::now() < end {
                let n = bx.procs().unwrap().len();
                assert!(n as u64 <= lim.pids_max, "{n} processes > pids.max");
                max_seen = max_seen.max(n);
                thread::sleep(Duration::from_millis(20));
            }
            assert!(max_seen >= 2, "the shell never forked (max {max_seen})");
            let events = read(&bx.cg.pids.join("pids.events"));
            let refused = flat_keyed(Path::new("pids.events"), &events, "max")
                .unwrap()
                .unwrap_or(0);
            assert!(refused > 0, "no fork was refused: {events:?}");
            if let Some(peak) = bx.pids_peak() {
                assert!(peak <= lim.pids_max, "pids.peak {peak}");
            }
            eprintln!("pids: max seen {max_seen}, refused forks {refused}");

            bx.kill_all().unwrap();
            assert!(bx.procs().unwrap().is_empty());
            inst.destroy().unwrap();
            for p in inst.paths() {
                assert!(!p.exists());
            }
        }

        #[test]
        fn real_v1_memory_hog_is_oom_killed() {
            let Some(layout) = real_layout() else { return };
            if !Path::new(PYTHON).exists() {
                eprintln!("skipped: {PYTHON} missing");
                return;
            }
            let (mut g, inst) = Guard::new(&layout);
            let lim = CgroupLimits {
                memory_bytes: 64 * MIB,
                pids_max: 8,
                cpu_quota_us: 0,
                cpu_period_us: 0,
            };
            let bx = inst.create_box("hog", &lim).unwrap();
            let py = g.spawn(
                Command::new(PYTHON)
                    .arg("-c")
                    .arg("import sys; sys.stdin.readline(); b = bytearray(200 * 1024 * 1024)"),
            );
            bx.add_process(py).unwrap();
            assert!(!bx.oom_killed().unwrap());
            g.go(py);
            let st = wait_timeout(g.child(py), Duration::from_secs(20)).expect("hog exited");
            assert_eq!(st.signal(), Some(libc::SIGKILL), "{st:?}");
            assert!(bx.oom_killed().unwrap());
            let peak = bx.memory_peak_bytes().unwrap();
            eprintln!("hog: peak {peak} bytes");
            assert!(
                (56 * MIB..=64 * MIB).contains(&peak),
                "peak {peak} not close to 64 MiB"
            );
            assert!(bx.procs().unwrap().is_empty());
            inst.destroy().unwrap();
            for p in inst.paths() {
                assert!(!p.exists());
            }
        }

        #[test]
        fn real_v1_cpu_usage_grows_and_quota_throttles() {
            let Some(layout) = real_layout() else { return };
            let (mut g, inst) = Guard::new(&layout);
            let lim = CgroupLimits {
                memory_bytes: 64 * MIB,
                pids_max: 8,
                cpu_quota_us: 50_000,
                cpu_period_us: 100_000,
            };
            let bx = inst.create_box("busy", &lim).unwrap();
            let sh = g.spawn(
                Command::new("/bin/sh")
                    .arg("-c")
                    .arg("read x; while :; do :; done"),
            );
            bx.add_process(sh).unwrap();
            g.go(sh);
            thread::sleep(Duration::from_millis(300));
            let u1 = bx.cpu_usage_ns().unwrap();
            let t1 = Instant::now();
            thread::sleep(Duration::from_millis(1000));
            let u2 = bx.cpu_usage_ns().unwrap();
            let wall = t1.elapsed().as_nanos() as u64;
            eprintln!(
                "cpu: {} ms of cpu in {} ms wall",
                (u2 - u1) / 1_000_000,
                wall / 1_000_000
            );
            assert!(u2 > u1, "cpu usage did not grow: {u1} -> {u2}");
            assert!(u2 - u1 > wall / 10, "busy loop barely ran");
            assert!(u2 - u1 < wall * 8 / 10, "50% quota not enforced");
            let stat = read(&bx.cg.cpu.join("cpu.stat"));
            let throttled = flat_keyed(Path::new("cpu.stat"), &stat, "nr_throttled")
                .unwrap()
                .unwrap_or(0);
            // Throttling shows only when the loop could use more than its quota: on a machine
            // so busy that it got well under 50% of a CPU, the quota never had to act.
            if u2 - u1 > wall * 4 / 10 {
                assert!(throttled > 0, "{stat}");
            } else {
                eprintln!(
                    "busy machine: the loop got under 40% of a CPU, throttling not observable"
                );
            }

            bx.kill_all().unwrap();
            assert!(bx.procs().unwrap().is_empty());
            let st = wait_timeout(g.child(sh), Duration::from_secs(5)).expect("exited");
            assert_eq!(st.signal(), Some(libc::SIGKILL));
            inst.destroy().unwrap();
            for p in inst.paths() {
                assert!(!p.exists());
            }
        }
    }
}
