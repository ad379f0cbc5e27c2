//! Behaviour shared by every language: names and aliases, timeouts, stdin handling, limits at
//! their exact boundaries.

use crate::common::*;
use crate::{assert_ok, job, parallel, text};

fn hello(language: &str) -> &'static str {
    match language {
        "python" => "print('hi')",
        "typescript" => "console.log('hi')",
        "rust" => "fn main() { println!(\"hi\"); }",
        other => panic!("no hello for {other}"),
    }
}

#[test]
fn languages_answer_to_aliases_case_insensitively() {
    let s = shared();
    let cases = [
        ("PY", "python"),
        ("Python3", "python"),
        ("py", "python"),
        ("Python", "python"),
        (" python ", "python"),
        ("ts", "typescript"),
        ("TS", "typescript"),
        ("TypeScript", "typescript"),
        ("rs", "rust"),
        ("RUST", "rust"),
    ];
    parallel(
        cases
            .iter()
            .map(|&(asked, canonical)| {
                job(asked, move || {
                    let r = s.run(json!({"code": hello(canonical), "language": asked}));
                    assert_ok(&r, canonical, "hi\n");
                })
            })
            .collect(),
    );
}

#[test]
fn timeout_accepts_fractions_of_a_second() {
    let s = shared();
    parallel(vec![
        job("fast program within 0.5 s", move || {
            let r = s.run(json!({"code": "print('quick')", "language": "python", "timeout": 0.5}));
            assert_ok(&r, "python", "quick\n");
        }),
        job("slow program over 0.5 s", move || {
            let r = s.run(json!({
                "code": "import time\nprint('start', flush=True)\ntime.sleep(5)\nprint('never')",
                "language": "python",
                "timeout": 0.5,
            }));
            assert_eq!(r["status"], "timeout", "{r:#}");
            assert_eq!(r["success"], false);
            assert_eq!(
                r["stdout"], "start\n",
                "output before the kill is kept: {r:#}"
            );
            assert_eq!(r["error"], "Time limit exceeded (0.5 s)");
            let wall = r["wall_time"].as_f64().unwrap();
            assert!((0.45..2.0).contains(&wall), "wall_time {wall}: {r:#}");
        }),
    ]);
}

#[test]
fn largest_accepted_inputs_run() {
    let s = shared();
    parallel(vec![
        job("code of exactly 64 KiB", move || {
            let mut code = String::from("print('big')\n");
            code.push_str(&"#".repeat((64 << 10) - code.len()));
            assert_eq!(code.len(), 64 << 10);
            let r = s.run(json!({"code": code, "language": "python"}));
            assert_ok(&r, "python", "big\n");
        }),
        job("stdin of exactly 1 MiB arrives whole", move || {
            let mut stdin = "a".repeat((1 << 20) - 3);
            stdin.push_str("xyz");
            let r = s.run(json!({
                "code": "import sys, hashlib\nd = sys.stdin.buffer.read()\nprint(len(d), d[-3:].decode(), hashlib.sha256(d).hexdigest()[:12])",
                "language": "python",
                "stdin": stdin,
            }));
            assert_eq!(r["status"], "ok", "{r:#}");
            let out = text(&r, "stdout");
            assert!(out.starts_with("1048576 xyz "), "{r:#}");
        }),
        job("every limit at its maximum", move || {
            let r = s.run(json!({
                "code": "print('max')",
                "language": "python",
                "timeout": 30,
                "memory_mb": 1024,
                "max_processes": 256,
                "max_output_bytes": 16 << 20,
            }));
            assert_ok(&r, "python", "max\n");
        }),
        job("16 files and 64 args", move || {
            let files: Vec<Value> = (0..16)
                .map(|i| json!({"name": format!("f{i:02}.txt"), "content": format!("{i}")}))
                .collect();
            let args: Vec<String> = (0..64).map(|i| i.to_string()).collect();
            let r = s.run(json!({
                "code": "import sys, glob\nprint(len(sys.argv) - 1, sys.argv[-1])\nprint(sum(int(open(f).read()) for f in sorted(glob.glob('f*.txt'))))",
                "language": "python",
                "files": files,
                "args": args,
            }));
            assert_ok(&r, "python", "64 63\n120\n");
        }),
    ]);
}

// Found by this suite and fixed (regression test): a program that reads stdin when the request has no `stdin` (or `"stdin": ""`) never
// sees end-of-file: it blocks until the time limit and comes back as status "timeout". With any
// non-empty stdin it gets EOF after the data. (crates/sandbox-linux/src/helper.rs `supervise`:
// when stdin_data is empty, `let mut stdin_w = if stdin_data.is_empty() { None } ...` shadows
// the `stdin_w` parameter instead of dropping it, so the write end stays open until the run
// ends.)
#[test]
fn reading_stdin_without_stdin_gets_eof_at_once() {
    let s = shared();
    let programs = [
        ("python", "import sys\nprint(repr(sys.stdin.read()))", "''\n"),
        (
            "typescript",
            "console.log(JSON.stringify(require('fs').readFileSync(0, 'utf8')));",
            "\"\"\n",
        ),
        (
            "rust",
            "use std::io::Read;\nfn main() {\n    let mut s = String::new();\n    std::io::stdin().read_to_string(&mut s).unwrap();\n    println!(\"{:?}\", s);\n}\n",
            "\"\"\n",
        ),
    ];
    let mut jobs = Vec::new();
    for (language, code, expected) in programs {
        let stdins: &[Option<&str>] = if language == "python" {
            &[None, Some("")]
        } else {
            &[None]
        };
        for &stdin in stdins {
            let name = format!("{language} stdin={stdin:?}");
            jobs.push(job(&name, move || {
                let mut body = json!({"code": code, "language": language, "timeout": 2});
                if let Some(v) = stdin {
                    body["stdin"] = json!(v);
                }
                let r = s.run(body);
                assert_ok(&r, language, expected);
            }));
        }
    }
    parallel(jobs);
}

#[test]
fn background_processes_do_not_outlive_the_run() {
    let s = shared();
    let py_marker = nonce();
    let ts_marker = nonce();
    let programs = [
        (
            "python",
            format!(
                "import subprocess\nsubprocess.Popen(['/bin/sh', '-c', 'sleep 30; : {py_marker}'], start_new_session=True)\nprint('left')"
            ),
            py_marker.clone(),
        ),
        (
            "typescript",
            format!(
                "import {{ spawn }} from 'child_process';\nconst p = spawn('/bin/sh', ['-c', 'sleep 30; : {ts_marker}'], {{ detached: true, stdio: 'ignore' }});\np.unref();\nconsole.log('left');"
            ),
            ts_marker.clone(),
        ),
    ];
    parallel(
        programs
            .into_iter()
            .map(|(language, code, marker)| {
                job(language, move || {
                    let r = s.run(json!({"code": code, "language": language}));
                    assert_ok(&r, language, "left\n");
                    let left = processes_containing(&marker);
                    assert!(left.is_empty(), "processes survived the run: {left:?}");
                })
            })
            .collect(),
    );
}

#[test]
fn runs_are_isolated_from_each_other() {
    let s = shared();
    let markers: Vec<String> = (0..4).map(|_| nonce()).collect();
    parallel(
        markers
            .iter()
            .map(|m| {
                let m = m.clone();
                job(&m.clone(), move || {
                    let r = s.run(json!({
                        "code": format!("import os, time\nopen('{m}.txt', 'w').write('x')\ntime.sleep(0.3)\nprint(sorted(os.listdir('.')))\nprint(sorted(f for f in os.listdir('/tmp')))"),
                        "language": "python",
                    }));
                    assert_ok(&r, "python", &format!("['main.py', '{m}.txt']\n[]\n"));
                })
            })
            .collect(),
    );
    // A later run starts from a fresh work dir.
    let r = s.run(json!({
        "code": "import os\nprint(sorted(os.listdir('.')))",
        "language": "python",
    }));
    assert_ok(&r, "python", "['main.py']\n");
}
