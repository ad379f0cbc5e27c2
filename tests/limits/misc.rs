//! Stdin at its limit, crashes by signal, and the per-process rlimits.

use crate::common::*;
use crate::*;

/// Echoes every line of stdin as it reads it, then reports length and Adler-32 on stderr.
const PY_ECHO: &str = r#"
import sys, zlib
n, a = 0, 1
for line in sys.stdin.buffer:
    n += len(line)
    a = zlib.adler32(line, a)
    sys.stdout.buffer.write(line)
sys.stdout.flush()
print("LEN %d ADLER %08x" % (n, a), file=sys.stderr)
"#;

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + u32::from(x)) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}

/// 1 MiB of distinct ASCII lines.
fn mib_of_lines() -> String {
    let mut s = String::with_capacity(MIB);
    let mut i = 0;
    while s.len() < MIB - 100 {
        s.push_str(&format!("{i:07} abcdefghijklmnopqrstuvwxyz0123456789\n"));
        i += 1;
    }
    s.push_str(&"z".repeat(MIB - s.len() - 1));
    s.push('\n');
    assert_eq!(s.len(), MIB);
    s
}

#[test]
fn one_mib_of_stdin_is_read_whole_while_echoing_it() {
    let input = mib_of_lines();
    let expect = format!(
        "LEN {} ADLER {:08x}\n",
        input.len(),
        adler32(input.as_bytes())
    );
    let s = shared();
    let r = run_all(
        s,
        vec![
            json!({"language": "python", "code": PY_ECHO, "stdin": input,
                   "max_output_bytes": 2 * MIB, "timeout": 10}),
            // A program that never reads its stdin is not stuck on it either.
            json!({"language": "python", "code": "print('ignored stdin')", "stdin": input,
                   "timeout": 10}),
            json!({"language": "python", "code": PY_ECHO, "stdin": "one\ntwo\n"}),
        ],
    );
    assert_ok(&r[0]);
    assert_eq!(stderr(&r[0]), expect, "{}", brief(&r[0]));
    assert!(stdout(&r[0]) == input, "echo differs: {}", brief(&r[0]));
    assert!(f64_of(&r[0], "wall_time") < 5.0, "{}", brief(&r[0]));

    assert_ok(&r[1]);
    assert_eq!(stdout(&r[1]), "ignored stdin\n");

    assert_ok(&r[2]);
    assert_eq!(stdout(&r[2]), "one\ntwo\n");

    // One byte more than the stdin limit is refused before anything runs.
    let (code, body) = s.execute(&json!({"language": "python", "code": "print(1)",
                                         "stdin": format!("{input}x")}));
    assert_eq!(code, 422, "{}", brief(&body));
    assert!(body.to_string().contains("stdin"), "{}", brief(&body));
    assert_eq!(
        stderr(&r[2]),
        format!("LEN 8 ADLER {:08x}\n", adler32(b"one\ntwo\n"))
    );
}

#[test]
fn null_pointer_read_is_a_sigsegv_runtime_error() {
    let s = shared();
    let r = run_all(
        s,
        vec![
            py("import ctypes\nctypes.string_at(0)\nprint('survived')"),
            py("import ctypes\nprint(ctypes.string_at(ctypes.create_string_buffer(b'fine')))"),
        ],
    );
    assert_eq!(status(&r[0]), "runtime_error", "{}", brief(&r[0]));
    assert_eq!(r[0]["success"], false);
    assert_eq!(r[0]["signal"], "SIGSEGV", "{}", brief(&r[0]));
    assert_eq!(r[0]["exit_code"], Value::Null);
    assert_eq!(stdout(&r[0]), "");
    assert_ok(&r[1]);
    assert_eq!(stdout(&r[1]), "b'fine'\n");
}

#[test]
fn rlimits_no_core_dumps_file_size_and_open_files() {
    let code = r#"
import resource
core = resource.getrlimit(resource.RLIMIT_CORE)
try:
    resource.setrlimit(resource.RLIMIT_CORE, (1 << 20, 1 << 20))
    raised = "raised"
except (ValueError, OSError):
    raised = "refused"
print("core", core, raised)
print("fsize", resource.getrlimit(resource.RLIMIT_FSIZE))
print("nofile", resource.getrlimit(resource.RLIMIT_NOFILE))
"#;
    let r = shared().run(py(code));
    assert_ok(&r);
    assert_eq!(
        stdout(&r),
        "core (0, 0) refused\nfsize (67108864, 67108864)\nnofile (256, 256)\n",
        "{}",
        brief(&r)
    );
}

#[test]
fn open_files_limit_gives_emfile() {
    let code = r#"
import os, sys
fds = []
try:
    for _ in range(int(sys.argv[1])):
        fds.append(os.open("/dev/null", os.O_RDONLY))
    print("OK", len(fds))
except OSError as e:
    print("ERR", e.errno, len(fds))
"#;
    let s = shared();
    let r = run_all(
        s,
        vec![
            json!({"language": "python", "code": code, "args": ["1000"]}),
            json!({"language": "python", "code": code, "args": ["100"]}),
        ],
    );
    assert_ok(&r[0]);
    let out = stdout(&r[0]);
    assert!(out.starts_with("ERR 24 "), "{}", brief(&r[0]));
    let n: u32 = out.trim().rsplit(' ').next().unwrap().parse().unwrap();
    assert!((200..256).contains(&n), "{n} fds before EMFILE");
    assert_eq!(stdout(&r[1]), "OK 100\n", "{}", brief(&r[1]));
}
