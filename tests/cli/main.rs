//! CLI suite: the real `coderun` binary as a user runs it from a shell (`coderun run`,
//! `coderun doctor`), real programs in the real sandbox. Needs root, like the other suites.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a finished `coderun` command printed, and its exit code.
struct Finished {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Finished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// How the command's standard input is set up.
enum Input<'a> {
    /// A pipe that receives these bytes, then is closed (`echo ... | coderun run`).
    Piped(&'a [u8]),
    /// A terminal nobody types into (the slave side of a fresh pty).
    Terminal,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A scratch dir with `name` holding `text`, for the program files the commands run.
fn program(name: &str, text: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("coderun-cli-test-")
        .tempdir()
        .expect("temp dir");
    std::fs::write(dir.path().join(name), text).expect("write the program");
    dir
}

/// Runs `coderun ARGS` in `dir` with this stdin and environment; fails the test if it takes
/// more than a minute (a command that waits for input that never comes).
fn coderun(dir: &Path, args: &[&str], input: Input, env: &[(&str, &str)]) -> Finished {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_coderun"));
    cmd.args(args)
        .current_dir(dir)
        .env_remove("CODERUN_LOG")
        .env_remove("CODERUN_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    // The terminal's master side stays open until the command ends: a reader of the slave
    // would wait, not see EOF.
    let mut _master = None;
    match input {
        Input::Piped(_) => {
            cmd.stdin(Stdio::piped());
        }
        Input::Terminal => {
            let (mut master, mut slave) = (-1, -1);
            // SAFETY: openpty writes two fds into the two ints; the name, termios and winsize
            // pointers may be null.
            let ret = unsafe {
                libc::openpty(
                    &mut master,
                    &mut slave,
                    std::ptr::null_mut(),
                    std::ptr::null(),
                    std::ptr::null(),
                )
            };
            assert_eq!(ret, 0, "openpty: {}", std::io::Error::last_os_error());
            use std::os::fd::FromRawFd;
            // SAFETY: both fds were just opened by openpty and are owned by nothing else.
            let (master, slave) = unsafe {
                (
                    std::os::fd::OwnedFd::from_raw_fd(master),
                    std::os::fd::OwnedFd::from_raw_fd(slave),
                )
            };
            _master = Some(master);
            cmd.stdin(Stdio::from(slave));
        }
    }
    let mut child = cmd.spawn().expect("start coderun");
    let feeder = match (input, child.stdin.take()) {
        (Input::Piped(bytes), Some(mut stdin)) => {
            let bytes = bytes.to_vec();
            // The command may stop reading early (over the limit): a broken pipe is fine.
            Some(std::thread::spawn(move || {
                let _ = stdin.write_all(&bytes);
            }))
        }
        _ => None,
    };
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if let Some(f) = feeder {
        let _ = f.join();
    }
    let finished = Finished {
        code: status.and_then(|s| s.code()),
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    };
    assert!(
        status.is_some(),
        "coderun {args:?} did not finish within a minute (killed)\n{finished}"
    );
    finished
}

fn languages_dir() -> String {
    repo_root().join("languages").display().to_string()
}

/// `coderun run FILE --languages-dir … EXTRA…`
fn run(dir: &Path, file: &str, extra: &[&str], input: Input) -> Finished {
    let langs = languages_dir();
    let mut args = vec!["run", file, "--languages-dir", &langs];
    args.extend_from_slice(extra);
    coderun(dir, &args, input, &[])
}

const SUM: &str = "a, b = map(int, input().split())\nprint(a + b)\n";
const COUNT: &str = "import sys\nprint(len(sys.stdin.read()))\n";

#[test]
fn piped_stdin_reaches_the_program() {
    let dir = program("sum.py", SUM);
    let r = run(dir.path(), "sum.py", &[], Input::Piped(b"5 6\n"));
    assert_eq!((r.code, r.stdout.as_str()), (Some(0), "11\n"), "{r}");
}

#[test]
fn stdin_dash_is_standard_input_and_a_file_still_works() {
    let dir = program("sum.py", SUM);
    let r = run(
        dir.path(),
        "sum.py",
        &["--stdin", "-"],
        Input::Piped(b"7 8"),
    );
    assert_eq!((r.code, r.stdout.as_str()), (Some(0), "15\n"), "{r}");
    std::fs::write(dir.path().join("in.txt"), "1 2\n").expect("write stdin file");
    // A file wins over a pipe.
    let r = run(
        dir.path(),
        "sum.py",
        &["--stdin", "in.txt"],
        Input::Piped(b"7 8"),
    );
    assert_eq!((r.code, r.stdout.as_str()), (Some(0), "3\n"), "{r}");
}

/// Exactly the limit arrives whole; one byte more is refused with a message naming the
/// limit, by pipe, by `--stdin -` and by file.
#[test]
fn stdin_is_capped_at_the_engine_limit_with_a_clear_error() {
    let dir = program("count.py", COUNT);
    let limit = 1 << 20;
    let r = run(
        dir.path(),
        "count.py",
        &[],
        Input::Piped(&vec![b'a'; limit]),
    );
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (Some(0), format!("{limit}\n").as_str()),
        "{r}"
    );
    std::fs::write(dir.path().join("big.txt"), vec![b'a'; limit + 1]).expect("write");
    let big = vec![b'a'; limit + 1];
    for (extra, input) in [
        (vec![], Input::Piped(&big)),
        (vec!["--stdin", "-"], Input::Piped(&big)),
        (vec!["--stdin", "big.txt"], Input::Piped(b"")),
    ] {
        let r = run(dir.path(), "count.py", &extra, input);
        assert_ne!(r.code, Some(0), "{extra:?}: {r}");
        assert!(r.stdout.is_empty(), "{extra:?}: the program ran: {r}");
        assert!(
            r.stderr.contains("over the stdin limit of 1 MiB")
                && r.stderr.contains("max_stdin_bytes"),
            "{extra:?}: {r}"
        );
    }
}

/// The limit is the configured one, not a constant.
#[test]
fn the_stdin_limit_follows_the_engine_config() {
    let dir = program("count.py", COUNT);
    std::fs::write(
        dir.path().join("small.toml"),
        "[engine]\nmax_stdin_bytes = 10\n",
    )
    .expect("write config");
    let langs = languages_dir();
    let args = [
        "--config",
        "small.toml",
        "run",
        "count.py",
        "--languages-dir",
        &langs,
    ];
    let r = coderun(dir.path(), &args, Input::Piped(b"0123456789"), &[]);
    assert_eq!((r.code, r.stdout.as_str()), (Some(0), "10\n"), "{r}");
    let r = coderun(dir.path(), &args, Input::Piped(b"0123456789!"), &[]);
    assert_ne!(r.code, Some(0), "{r}");
    assert!(r.stderr.contains("stdin limit of 10 bytes"), "{r}");
}

/// A terminal is not read: the command does not wait for typing, the program sees an empty
/// stdin.
#[test]
fn a_terminal_stdin_is_left_alone() {
    let dir = program("count.py", COUNT);
    let r = run(dir.path(), "count.py", &[], Input::Terminal);
    assert_eq!((r.code, r.stdout.as_str()), (Some(0), "0\n"), "{r}");
}

/// Log lines at INFO level in `stderr` (text or JSON format).
fn info_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains(" INFO ") || l.contains("\"level\":\"INFO\""))
        .collect()
}

/// `run` and `doctor` print what the user asked for; the service's progress only with `-v`
/// or CODERUN_LOG.
#[test]
fn run_and_doctor_print_no_info_lines_unless_asked() {
    let dir = program("hello.py", "print('hello')\n");
    let quiet = run(dir.path(), "hello.py", &[], Input::Piped(b""));
    assert_eq!(
        (quiet.code, quiet.stdout.as_str()),
        (Some(0), "hello\n"),
        "{quiet}"
    );
    assert_eq!(info_lines(&quiet.stderr), Vec::<&str>::new(), "{quiet}");
    for extra in [["-v"], ["--verbose"]] {
        let loud = run(dir.path(), "hello.py", &extra, Input::Piped(b""));
        assert_eq!(loud.stdout, "hello\n", "{loud}");
        assert!(!info_lines(&loud.stderr).is_empty(), "{extra:?}: {loud}");
    }
    let langs = languages_dir();
    let by_env = coderun(
        dir.path(),
        &["run", "hello.py", "--languages-dir", &langs],
        Input::Piped(b""),
        &[("CODERUN_LOG", "info")],
    );
    assert!(!info_lines(&by_env.stderr).is_empty(), "{by_env}");

    let doctor = coderun(
        dir.path(),
        &["doctor", "--languages-dir", &langs],
        Input::Piped(b""),
        &[],
    );
    assert!(doctor.stdout.contains("sandbox self-check"), "{doctor}");
    assert_eq!(info_lines(&doctor.stderr), Vec::<&str>::new(), "{doctor}");
    let doctor = coderun(
        dir.path(),
        &["-v", "doctor", "--languages-dir", &langs],
        Input::Piped(b""),
        &[],
    );
    assert!(!info_lines(&doctor.stderr).is_empty(), "{doctor}");
}

/// `serve` logs its progress at INFO as before, without being asked.
#[test]
fn serve_logs_info_lines_by_default() {
    let dir = program("empty.toml", "");
    let mut child = Command::new(env!("CARGO_BIN_EXE_coderun"))
        .args(["--config", "empty.toml", "serve", "--listen", "127.0.0.1:0"])
        .args(["--languages-dir", &languages_dir()])
        .current_dir(dir.path())
        .env_remove("CODERUN_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start coderun serve");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let listening = loop {
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(line) => {
                let found = line.contains(" INFO ") && line.contains("coderun listening");
                seen.push(line);
                if found {
                    break true;
                }
            }
            Err(_) => break false,
        }
    };
    // SAFETY: signalling the server this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        listening,
        "no INFO 'coderun listening' line:\n{}",
        seen.join("\n")
    );
}
