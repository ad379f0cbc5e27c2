//! How the native backend keeps a box warm: its runner protocol, described once, here.
//!
//! The engine asks for a warm box with a [`WarmSpec`] (the command every program of the box
//! starts with, e.g. `python3 -E -s -u -B main.py`) and later hands it a [`Program`]. This
//! backend keeps a box warm in one of two ways, chosen from the command by [`Warm::choose`]:
//!
//! - **Runner**: the runtime itself starts ahead of time inside the box (in the box's own
//!   cgroup, at the lowest CPU weight) and blocks reading its fd 3. At hand-off the helper
//!   writes one JSON message to that pipe and closes it:
//!   `{"main": "main.py", "args": [...], "files": [{"path", "content", "executable"}]}`.
//!   The runner writes the files into `/work` itself (it is already confined: uid 1000,
//!   seccomp), closes fd 3 and runs the program as a fresh start would. Runners:
//!   - Python (`runners/python.py`): `python3 FLAGS /opt/coderun/runner/python.py ROOM`, where
//!     ROOM is argv space the runner writes the program's command line over, so `ps` and
//!     `/proc/<pid>/cmdline` show `python3 FLAGS main.py ARGS` as for a fresh run. The room is
//!     spaces, so `ps` shows a short line before it.
//!   - Node (`runners/node.js`): `node FLAGS --require /opt/coderun/runner/node.js main.js`;
//!     the preload reads fd 3 before node resolves `main.js`.
//!   - coderun's own TypeScript transpiler: `coderun transpile-ts ... --wait-fd 3` reads the
//!     files from fd 3 (only `files` is used).
//!
//!   A runner takes files as text only; a program with a host file (a compiled binary) is
//!   refused by [`PreparedBox::accepts`](coderun_sandbox::PreparedBox::accepts) and runs fresh.
//! - **Parked**: for anything else (a compiler, a compiled binary), the program's process is
//!   set up and confined all the way to the exec and waits there, before the exec, on fd 3.
//!   At hand-off the helper sends an [`ExecHeader`](crate::protocol::ExecHeader) frame and one
//!   frame per file; the parked process writes the files beneath `/work` with `openat2` and
//!   execs the program's argv.
//!
//! Either way the cgroup's memory, process and CPU-bandwidth limits and the work dir's size
//! are fixed when the box is set up: a program asking for other values of those runs fresh.
//! Wall time, CPU time and the output cap are set at hand-off and count from it.

use std::path::{Path, PathBuf};

use coderun_sandbox::{FileSource, InputFile, Limits, Program, RuntimeMount};

/// Where the runner scripts appear in a box.
pub const RUNNER_DIR: &str = "/opt/coderun/runner";

/// The runner scripts, built into the binary (sources in the repository's `runners/`).
const SCRIPTS: [(&str, &str); 2] = [
    ("python.py", include_str!("../../../runners/python.py")),
    ("node.js", include_str!("../../../runners/node.js")),
];

/// Argv room a Python runner reserves for the program's command line: one argument of
/// spaces. CPython decodes and copies every argument at start-up, so room costs CPU in every
/// warm box (3 x 100,000 bytes cost 11-17 ms per run); a program whose command line does not
/// fit runs in a fresh box instead, so `/proc/<pid>/cmdline` is never cut short.
const ROOM_ARGS: usize = 1;
const ROOM_BYTES: usize = 4096;

/// How a box for a given command is kept warm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warm {
    Runner(Runner),
    Parked,
}

/// A runtime started ahead of time that waits on fd 3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runner {
    pub kind: RunnerKind,
    /// What the box executes ahead of time.
    pub argv: Vec<String>,
    /// The command a program must start with (the warm spec's); its arguments follow.
    pub command: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunnerKind {
    Python,
    Node,
    Transpiler,
}

fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn is_python(argv0: &str) -> bool {
    let name = base_name(argv0);
    name == "python3"
        || name == "python"
        || name
            .strip_prefix("python3.")
            .is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
}

impl Warm {
    /// The way to keep a box for `command` warm: a runner where this backend has one for the
    /// command's runtime and the command ends with the main file, else parked.
    pub fn choose(command: &[String]) -> Warm {
        let (Some(first), Some(last)) = (command.first(), command.last()) else {
            return Warm::Parked;
        };
        let script = command.len() >= 2 && !last.starts_with('-') && !last.contains('/');
        let head = &command[..command.len() - 1];
        let runner = |kind, argv| {
            Warm::Runner(Runner {
                kind,
                argv,
                command: command.to_vec(),
            })
        };
        if is_python(first) && script && last.ends_with(".py") {
            let mut argv = head.to_vec();
            argv.push(format!("{RUNNER_DIR}/python.py"));
            argv.extend((0..ROOM_ARGS).map(|_| " ".repeat(ROOM_BYTES)));
            return runner(RunnerKind::Python, argv);
        }
        if base_name(first) == "node" && script && last.ends_with(".js") {
            let mut argv = head.to_vec();
            argv.push("--require".into());
            argv.push(format!("{RUNNER_DIR}/node.js"));
            argv.push(last.clone());
            return runner(RunnerKind::Node, argv);
        }
        if base_name(first) == "coderun" && command.get(1).is_some_and(|c| c == "transpile-ts") {
            let mut argv = command.to_vec();
            argv.extend(["--wait-fd".to_string(), "3".to_string()]);
            return runner(RunnerKind::Transpiler, argv);
        }
        Warm::Parked
    }

    /// Whether a box kept warm this way can run `program` as a fresh box would.
    pub fn accepts(&self, box_limits: &Limits, program: &Program) -> bool {
        if !same_fixed_limits(box_limits, &program.limits) || program.streams.is_some() {
            return false;
        }
        match self {
            Warm::Parked => !program.argv.is_empty(),
            Warm::Runner(r) => {
                let args_ok = match r.kind {
                    RunnerKind::Transpiler => program.argv == r.command,
                    RunnerKind::Python => {
                        program.argv.starts_with(&r.command)
                            && program.argv.iter().map(|a| a.len() + 1).sum::<usize>() < ROOM_BYTES
                    }
                    RunnerKind::Node => program.argv.starts_with(&r.command),
                };
                args_ok
                    && program
                        .files
                        .iter()
                        .all(|f| matches!(f.source, FileSource::Inline(_)))
            }
        }
    }
}

impl Runner {
    /// The message written to the runner's fd 3 for `program` (which it accepts).
    pub fn message(&self, argv: &[String], files: &[InputFile]) -> Result<String, String> {
        let main = self.command.last().cloned().unwrap_or_default();
        let args = argv.get(self.command.len()..).unwrap_or_default();
        let files = files
            .iter()
            .map(|f| match &f.source {
                FileSource::Inline(content) => Ok(serde_json::json!({
                    "path": f.path, "content": content, "executable": f.executable,
                })),
                FileSource::Host(_) => Err("a runner takes files as text only".to_string()),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(serde_json::json!({"main": main, "args": args, "files": files}).to_string())
    }
}

/// Whether a program's limits match those a warm box fixed at set-up (everything but the
/// wall time, the CPU time and the output cap).
pub fn same_fixed_limits(boxed: &Limits, wanted: &Limits) -> bool {
    let fixed = |l: &Limits| Limits {
        wall_time_ms: 0,
        cpu_time_ms: 0,
        output_bytes: 0,
        ..l.clone()
    };
    fixed(boxed) == fixed(wanted)
}

/// Writes the runner scripts under `data_dir` (a directory named by their content, so a
/// server of another version never changes the files a running server's boxes see) and
/// returns the mount that shows them at [`RUNNER_DIR`].
pub fn install(data_dir: &Path) -> std::io::Result<RuntimeMount> {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for (name, text) in SCRIPTS {
        hash.update(name.as_bytes());
        hash.update([0]);
        hash.update(text.as_bytes());
        hash.update([0]);
    }
    let digest = hash.finalize();
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    let dir: PathBuf = data_dir.join("runners").join(hex);
    if !dir.join(".complete").exists() {
        std::fs::create_dir_all(&dir)?;
        for (name, text) in SCRIPTS {
            let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
            std::fs::write(&tmp, text)?;
            std::fs::rename(&tmp, dir.join(name))?;
        }
        std::fs::write(dir.join(".complete"), b"")?;
    }
    Ok(RuntimeMount {
        source: dir,
        target: RUNNER_DIR.into(),
        include: SCRIPTS.iter().map(|(n, _)| n.to_string()).collect(),
        exclude: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn limits() -> Limits {
        Limits {
            wall_time_ms: 1000,
            cpu_time_ms: 1000,
            memory_mb: 128,
            max_processes: 64,
            output_bytes: 1024,
            workdir_mb: 64,
            workdir_inodes: 64,
            cpu_millicores: 1000,
            file_size_mb: 16,
            open_files: 64,
            stack_mb: 8,
        }
    }

    fn program(argv: &[&str], files: Vec<InputFile>) -> Program {
        Program {
            argv: v(argv),
            files,
            stdin: Vec::new(),
            limits: limits(),
            streams: None,
        }
    }

    fn text(path: &str) -> InputFile {
        InputFile {
            path: path.into(),
            source: FileSource::Inline("x".into()),
            executable: false,
        }
    }

    #[test]
    fn python_gets_the_runner_with_room_in_place_of_the_script() {
        let cmd = v(&["/opt/coderun/python/bin/python3", "-E", "-s", "main.py"]);
        let Warm::Runner(r) = Warm::choose(&cmd) else {
            panic!("python should get a runner")
        };
        assert_eq!(r.kind, RunnerKind::Python);
        assert_eq!(
            &r.argv[..4],
            &v(&[
                "/opt/coderun/python/bin/python3",
                "-E",
                "-s",
                "/opt/coderun/runner/python.py"
            ])[..]
        );
        assert_eq!(r.argv.len(), 4 + ROOM_ARGS);
        assert!(r.argv[4..].iter().all(|a| a.trim().is_empty()));
        let msg = r
            .message(
                &v(&[
                    "/opt/coderun/python/bin/python3",
                    "-E",
                    "-s",
                    "main.py",
                    "a",
                    "b",
                ]),
                &[text("main.py")],
            )
            .unwrap();
        let msg: serde_json::Value = serde_json::from_str(&msg).unwrap();
        assert_eq!(msg["main"], "main.py");
        assert_eq!(msg["args"], serde_json::json!(["a", "b"]));
        assert_eq!(msg["files"][0]["path"], "main.py");
    }

    #[test]
    fn node_preloads_the_runner_before_the_main_file() {
        let cmd = v(&["/usr/bin/node", "--enable-source-maps", "main.js"]);
        let Warm::Runner(r) = Warm::choose(&cmd) else {
            panic!("node should get a runner")
        };
        assert_eq!(
            r.argv,
            v(&[
                "/usr/bin/node",
                "--enable-source-maps",
                "--require",
                "/opt/coderun/runner/node.js",
                "main.js"
            ])
        );
    }

    #[test]
    fn the_transpiler_waits_on_fd_3_and_takes_only_its_own_command() {
        let cmd = v(&[
            "/opt/coderun/bin/coderun",
            "transpile-ts",
            "--bundle",
            "b.json",
        ]);
        let warm = Warm::choose(&cmd);
        let Warm::Runner(r) = &warm else {
            panic!("the transpiler should get a runner")
        };
        assert_eq!(r.argv[4..], v(&["--wait-fd", "3"])[..]);
        assert!(warm.accepts(
            &limits(),
            &program(
                &[
                    "/opt/coderun/bin/coderun",
                    "transpile-ts",
                    "--bundle",
                    "b.json"
                ],
                vec![text("main.ts")]
            )
        ));
        let typecheck = program(
            &[
                "/opt/coderun/bin/coderun",
                "transpile-ts",
                "--bundle",
                "b.json",
                "--typecheck",
            ],
            vec![],
        );
        assert!(!warm.accepts(&limits(), &typecheck));
    }

    #[test]
    fn anything_else_is_parked() {
        for cmd in [
            v(&["/work/main"]),
            v(&["/opt/coderun/rust/bin/rustc", "-o", "main", "main.rs"]),
            v(&["/opt/coderun/python/bin/python3", "-c", "print(1)"]),
            v(&["/usr/bin/python3.11x", "main.py"]),
            Vec::new(),
        ] {
            assert_eq!(Warm::choose(&cmd), Warm::Parked, "{cmd:?}");
        }
    }

    #[test]
    fn a_program_must_fit_what_the_box_fixed() {
        let warm = Warm::choose(&v(&["/usr/bin/python3", "main.py"]));
        let ok = program(
            &["/usr/bin/python3", "main.py", "arg"],
            vec![text("main.py")],
        );
        assert!(warm.accepts(&limits(), &ok));
        let mut more_memory = program(&["/usr/bin/python3", "main.py"], vec![]);
        more_memory.limits.memory_mb = 256;
        assert!(!warm.accepts(&limits(), &more_memory));
        let mut longer = program(&["/usr/bin/python3", "main.py"], vec![]);
        longer.limits.wall_time_ms = 9000;
        longer.limits.output_bytes = 1;
        assert!(warm.accepts(&limits(), &longer));
        let other = program(&["/usr/bin/python3", "-c", "1"], vec![]);
        assert!(!warm.accepts(&limits(), &other));
        // A command line longer than the runner's room runs fresh (cmdline stays whole).
        let long = "x".repeat(ROOM_BYTES);
        let too_long = program(&["/usr/bin/python3", "main.py", &long], vec![]);
        assert!(!warm.accepts(&limits(), &too_long));
        let host = program(
            &["/usr/bin/python3", "main.py"],
            vec![InputFile {
                path: "main".into(),
                source: FileSource::Host("/tmp/x".into()),
                executable: true,
            }],
        );
        assert!(!warm.accepts(&limits(), &host));
        assert!(Warm::Parked.accepts(&limits(), &host));
    }

    #[test]
    fn install_writes_the_scripts_once_by_content() {
        let dir = tempfile::tempdir().unwrap();
        let a = install(dir.path()).unwrap();
        let b = install(dir.path()).unwrap();
        assert_eq!(a, b);
        assert!(a.source.join("python.py").is_file() && a.source.join("node.js").is_file());
        assert_eq!(a.target, PathBuf::from(RUNNER_DIR));
    }
}
