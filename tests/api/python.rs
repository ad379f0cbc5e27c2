//! Python: real CPython 3.11 in the box.

use crate::common::*;
use crate::{assert_exit, assert_ok, assert_success, job, parallel, run_code, text};

#[test]
fn python_hello_world_has_the_original_shape() {
    let s = shared();
    let r = s.run(json!({"code": "print(\"Hello, World!\")", "language": "python"}));
    // The original fields.
    assert_eq!(r["output"], "Hello, World!\n");
    assert_eq!(r["error"], Value::Null);
    assert_eq!(r["success"], true);
    let exec = r["execution_time"].as_f64().unwrap();
    assert!(exec > 0.0 && exec < 10.0, "{r:#}");
    // The added ones.
    assert_ok(&r, "python", "Hello, World!\n");
    assert_eq!(r["stderr"], "");
    assert_eq!(r["wall_time"], r["execution_time"]);
    assert!(r["cpu_time"].as_f64().unwrap() > 0.0, "{r:#}");
    assert!(r["memory_kb"].as_u64().unwrap() > 0, "{r:#}");
    assert!(text(&r, "version").starts_with("Python 3.11"), "{r:#}");
    // Python is not compiled.
    assert_eq!(r["compile_output"], Value::Null);
    assert_eq!(r["compile_time"], Value::Null);
}

#[test]
fn python_sees_stdin_and_args_verbatim() {
    let r = shared().run(json!({
        "language": "python",
        "code": "import json, sys\nprint(json.dumps(sys.argv))\nprint(input())\nprint(json.dumps(sys.stdin.read()))",
        "args": ["a b", "--x", "ü 🎉", "", "-c"],
        "stdin": "first line\nsecond\r\nthird ü\tend",
    }));
    assert_success(&r, "python");
    let lines: Vec<&str> = text(&r, "stdout").lines().collect();
    assert_eq!(lines.len(), 3, "{r:#}");
    let argv: Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(argv, json!(["main.py", "a b", "--x", "ü 🎉", "", "-c"]));
    assert_eq!(lines[1], "first line");
    let rest: Value = serde_json::from_str(lines[2]).unwrap();
    assert_eq!(rest, "second\r\nthird ü\tend");
}

#[test]
fn python_exit_code_is_a_runtime_error() {
    let r = run_code(
        "python",
        "import sys\nprint('before')\nsys.stdout.flush()\nsys.exit(3)",
    );
    assert_exit(&r, 3);
    assert_eq!(r["stdout"], "before\n");
    assert_eq!(r["output"], "before\n");
    assert_eq!(r["language"], "python");
}

#[test]
fn python_exception_gives_a_traceback_naming_main_py() {
    let r = run_code(
        "python",
        "def f():\n    raise ValueError('bad value')\n\nf()\n",
    );
    assert_exit(&r, 1);
    let stderr = text(&r, "stderr");
    assert!(
        stderr.starts_with("Traceback (most recent call last):"),
        "{r:#}"
    );
    assert!(
        stderr.contains("File \"/work/main.py\", line 4, in <module>"),
        "{r:#}"
    );
    assert!(
        stderr.contains("File \"/work/main.py\", line 2, in f"),
        "{r:#}"
    );
    assert!(
        stderr.trim_end().ends_with("ValueError: bad value"),
        "{r:#}"
    );
    // The original `error` field carries the traceback.
    assert_eq!(r["error"], r["stderr"]);
    assert_eq!(r["stdout"], "");
}

#[test]
fn python_syntax_error_is_a_runtime_error_with_traceback() {
    let r = run_code("python", "print('ok')\nx = (\n");
    // Python compiles when it runs: a SyntaxError is the interpreter exiting with 1.
    assert_exit(&r, 1);
    let stderr = text(&r, "stderr");
    assert!(stderr.contains("File \"/work/main.py\", line 2"), "{r:#}");
    assert!(
        stderr.contains("SyntaxError: '(' was never closed"),
        "{r:#}"
    );
    assert_eq!(r["stdout"], "", "nothing runs before a SyntaxError");
    assert_eq!(r["compile_output"], Value::Null);
    assert_eq!(r["error"], r["stderr"]);
}

#[test]
fn python_unicode_in_code_and_output() {
    let r = run_code(
        "python",
        "s = 'héllo 世界 🎉'\nprint(s, len(s), len(s.encode()))\n# commentaire: ünïcödé ✓\n",
    );
    assert_ok(&r, "python", "héllo 世界 🎉 10 18\n");
}

#[test]
fn python_invalid_utf8_output_is_returned_lossily() {
    let r = run_code(
        "python",
        "import sys\nsys.stdout.buffer.write(b'\\xff\\xfe ok')\nsys.stderr.buffer.write(b'err \\xc3')\n",
    );
    assert_eq!(r["status"], "ok", "{r:#}");
    assert_eq!(r["stdout"], "\u{FFFD}\u{FFFD} ok");
    assert_eq!(r["output"], "\u{FFFD}\u{FFFD} ok");
    assert_eq!(r["stderr"], "err \u{FFFD}");
}

#[test]
fn python_files_sibling_modules_packages_and_work_dir() {
    let r = shared().run(json!({
        "language": "python",
        "code": "import os, util\nfrom pkg.mod import g\nfrom pkg import VERSION\nprint(util.f(1), g(), VERSION)\nprint(open('sub/dir/data.txt', encoding='utf-8').read())\nwith open('made.txt', 'w', encoding='utf-8') as fh:\n    fh.write('written ü')\nos.makedirs('out/deeper')\nwith open('out/deeper/x', 'w') as fh:\n    fh.write('x' * 1000)\nprint(open('made.txt', encoding='utf-8').read(), os.path.getsize('out/deeper/x'))\nprint(os.getcwd(), __file__)\nprint(sorted(n for n in os.listdir('.') if n != '__pycache__'))",
        "files": [
            {"name": "util.py", "content": "def f(x):\n    return x + 41\n"},
            {"name": "pkg/__init__.py", "content": "VERSION = '1.2'\n"},
            {"name": "pkg/mod.py", "content": "def g():\n    return 'nested'\n"},
            {"name": "sub/dir/data.txt", "content": "deep data ü 🎉"},
        ],
    }));
    assert_ok(
        &r,
        "python",
        "42 nested 1.2\ndeep data ü 🎉\nwritten ü 1000\n/work /work/main.py\n['made.txt', 'main.py', 'out', 'pkg', 'sub', 'util.py']\n",
    );
}

#[test]
fn python_subprocess_threads_and_multiprocessing() {
    let s = shared();
    parallel(vec![
        job("subprocess", || {
            let r = run_code(
                "python",
                "import subprocess\np = subprocess.run(['/bin/echo', 'hi'], capture_output=True, text=True)\nprint(repr(p.stdout), p.returncode)\nprint(subprocess.run('echo $((6*7))', shell=True, capture_output=True, text=True).stdout.strip())",
            );
            assert_ok(&r, "python", "'hi\\n' 0\n42\n");
        }),
        job("threading", || {
            let r = run_code(
                "python",
                "import threading\nres = []\nlock = threading.Lock()\ndef work(i):\n    with lock:\n        res.append(i * i)\nts = [threading.Thread(target=work, args=(i,)) for i in range(8)]\nfor t in ts: t.start()\nfor t in ts: t.join()\nprint(sorted(res))",
            );
            assert_ok(&r, "python", "[0, 1, 4, 9, 16, 25, 36, 49]\n");
        }),
        job("multiprocessing", move || {
            let r = s.run(json!({
                "language": "python",
                "code": "from multiprocessing import Pool\nimport os\ndef sq(x):\n    return (x * x, os.getpid())\nif __name__ == '__main__':\n    with Pool(2) as p:\n        out = p.map(sq, range(6))\n    print([v for v, _ in out])\n    print(all(pid != os.getpid() for _, pid in out))",
                "timeout": 20,
            }));
            assert_ok(&r, "python", "[0, 1, 4, 9, 16, 25]\nTrue\n");
        }),
    ]);
}

#[test]
fn python_killed_by_a_signal_reports_the_signal() {
    let r = run_code(
        "python",
        "import os, signal\nprint('x', flush=True)\nos.kill(os.getpid(), signal.SIGKILL)",
    );
    assert_eq!(r["status"], "runtime_error", "{r:#}");
    assert_eq!(r["success"], false);
    assert_eq!(r["signal"], "SIGKILL");
    assert_eq!(r["exit_code"], Value::Null);
    assert_eq!(r["stdout"], "x\n");
}

#[test]
fn python_stderr_of_a_successful_run_is_kept_apart() {
    let r = run_code(
        "python",
        "import sys\nprint('out')\nprint('warn', file=sys.stderr)",
    );
    assert_ok(&r, "python", "out\n");
    assert_eq!(r["stderr"], "warn\n");
}

// Found by this suite and fixed (regression test): languages/python.toml runs `python3 -E -s main.py` and sets PYTHONUNBUFFERED=1 and
// PYTHONDONTWRITEBYTECODE=1 in the run env, but `-E` makes Python ignore every PYTHON*
// variable. So stdout is block-buffered into the pipe: what a program printed before it is
// killed (time limit, memory limit, signal) is lost, here `print('start')` then a timeout
// returns stdout "" instead of "start\n"; and importing a sibling module writes __pycache__/
// into the work dir.
#[test]
fn python_output_is_unbuffered_and_writes_no_bytecode() {
    let s = shared();
    parallel(vec![
        job("output before a timeout is kept", move || {
            let r = s.run(json!({
                "code": "import time\nprint('start')\ntime.sleep(5)",
                "language": "python",
                "timeout": 1,
            }));
            assert_eq!(r["status"], "timeout", "{r:#}");
            assert_eq!(r["stdout"], "start\n", "{r:#}");
        }),
        job("no __pycache__", move || {
            let r = s.run(json!({
                "code": "import sys, os, util\nprint(sys.flags.dont_write_bytecode, os.path.exists('__pycache__'))",
                "language": "python",
                "files": [{"name": "util.py", "content": "X = 1\n"}],
            }));
            assert_ok(&r, "python", "1 False\n");
        }),
    ]);
}
