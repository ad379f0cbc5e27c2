//! Rust: compiled by rustc in a compile box, the binary run in a second box.

use crate::common::*;
use crate::{assert_exit, assert_ok, assert_success, job, parallel, run_code, text};

#[test]
fn rust_hello_world() {
    let r = run_code("rust", "fn main() {\n    println!(\"Hello, World!\");\n}\n");
    assert_ok(&r, "rust", "Hello, World!\n");
    assert_eq!(r["error"], Value::Null);
    assert_eq!(r["stderr"], "");
    assert!(text(&r, "version").starts_with("rustc 1.95"), "{r:#}");
    assert!(r["execution_time"].as_f64().unwrap() > 0.0, "{r:#}");
    assert!(r["compile_time"].as_f64().unwrap() > 0.0, "{r:#}");
    let compile_output = text(&r, "compile_output");
    assert!(!compile_output.contains("warning"), "{r:#}");
}

#[test]
fn rust_sees_stdin_and_args_verbatim() {
    let r = shared().run(json!({
        "language": "rs",
        "code": "use std::io::{BufRead, Read};\nfn main() {\n    let args: Vec<String> = std::env::args().skip(1).collect();\n    println!(\"{:?}\", args);\n    let stdin = std::io::stdin();\n    let mut first = String::new();\n    stdin.lock().read_line(&mut first).unwrap();\n    let mut rest = String::new();\n    stdin.lock().read_to_string(&mut rest).unwrap();\n    println!(\"{:?} {:?}\", first, rest);\n}\n",
        "args": ["a b", "--x", "ü 🎉", ""],
        "stdin": "line1\nline2\r\nü",
    }));
    assert_ok(
        &r,
        "rust",
        "[\"a b\", \"--x\", \"ü 🎉\", \"\"]\n\"line1\\n\" \"line2\\r\\nü\"\n",
    );
}

#[test]
fn rust_exit_code_and_panic() {
    parallel(vec![
        job("exit 3", || {
            let r = run_code(
                "rust",
                "fn main() {\n    println!(\"before\");\n    std::process::exit(3);\n}\n",
            );
            assert_exit(&r, 3);
            assert_eq!(r["stdout"], "before\n");
            assert_eq!(r["language"], "rust");
        }),
        job("panic", || {
            let r = run_code(
                "rust",
                "fn main() {\n    let v: Vec<i32> = Vec::new();\n    let i = std::env::args().count() + 2;\n    println!(\"{}\", v[i]);\n}\n",
            );
            assert_exit(&r, 101);
            let stderr = text(&r, "stderr");
            assert!(stderr.contains("panicked at main.rs:4:"), "{r:#}");
            assert!(
                stderr.contains("index out of bounds: the len is 0 but the index is 3"),
                "{r:#}"
            );
            assert_eq!(r["error"], r["stderr"]);
        }),
    ]);
}

#[test]
fn rust_type_error_is_a_compile_error() {
    let r = run_code(
        "rust",
        "fn main() {\n    let x: i32 = \"a\";\n    println!(\"{}\", x);\n}\n",
    );
    assert_eq!(r["status"], "compile_error", "{r:#}");
    assert_eq!(r["success"], false);
    assert_eq!(r["stdout"], "");
    assert_eq!(r["output"], "");
    assert_eq!(r["exit_code"], Value::Null);
    assert_eq!(r["language"], "rust");
    let error = text(&r, "error");
    assert!(error.contains("error[E0308]: mismatched types"), "{r:#}");
    assert!(error.contains("main.rs:2:18"), "{r:#}");
    let compile_output = text(&r, "compile_output");
    assert!(compile_output.contains("error[E0308]"), "{r:#}");
    assert!(r["compile_time"].as_f64().unwrap() > 0.0, "{r:#}");
}

#[test]
fn rust_warnings_do_not_fail_the_run() {
    let r = run_code(
        "rust",
        "fn main() {\n    let x = 1;\n    println!(\"fine\");\n}\n",
    );
    assert_ok(&r, "rust", "fine\n");
    assert_eq!(r["error"], Value::Null, "warnings are not errors: {r:#}");
    assert_eq!(r["stderr"], "");
    let compile_output = text(&r, "compile_output");
    assert!(
        compile_output.contains("warning: unused variable: `x`"),
        "{r:#}"
    );
    assert!(compile_output.contains("main.rs:2:9"), "{r:#}");
}

#[test]
fn rust_unicode_and_invalid_utf8_output() {
    parallel(vec![
        job("unicode", || {
            let r = run_code(
                "rust",
                "// ünïcödé ✓\nfn main() {\n    let s = \"héllo 世界 🎉\";\n    println!(\"{} {} {}\", s, s.chars().count(), s.len());\n}\n",
            );
            assert_ok(&r, "rust", "héllo 世界 🎉 10 18\n");
        }),
        job("invalid utf-8", || {
            let r = run_code(
                "rust",
                "use std::io::Write;\nfn main() {\n    std::io::stdout().write_all(b\"\\xff\\xfe ok\").unwrap();\n}\n",
            );
            assert_ok(&r, "rust", "\u{FFFD}\u{FFFD} ok");
        }),
    ]);
}

#[test]
fn rust_modules_from_files_and_the_work_dir() {
    let r = shared().run(json!({
        "language": "rust",
        "code": "mod util;\nfn main() {\n    std::fs::write(\"made.txt\", \"written ü\").unwrap();\n    std::fs::create_dir_all(\"out/deeper\").unwrap();\n    std::fs::write(\"out/deeper/x\", vec![b'x'; 1000]).unwrap();\n    println!(\"{} {}\", util::f(), std::fs::read_to_string(\"made.txt\").unwrap());\n    println!(\"{}\", std::fs::metadata(\"out/deeper/x\").unwrap().len());\n    println!(\"{}\", std::fs::read_to_string(\"data/input.txt\").unwrap().trim());\n    println!(\"{}\", std::env::current_dir().unwrap().display());\n}\n",
        "files": [
            {"name": "util.rs", "content": "pub fn f() -> i32 {\n    7\n}\n"},
            {"name": "data/input.txt", "content": "from a file\n"},
        ],
    }));
    assert_ok(&r, "rust", "7 written ü\n1000\nfrom a file\n/work\n");
}

#[test]
fn rust_subprocess_and_threads() {
    let r = run_code(
        "rust",
        concat!(
            "use std::process::Command;\n",
            "fn main() {\n",
            "    let o = Command::new(\"/bin/echo\").arg(\"hi\").output().unwrap();\n",
            "    print!(\"{}\", String::from_utf8_lossy(&o.stdout));\n",
            "    println!(\"{}\", o.status.success());\n",
            "    let hs: Vec<_> = (0..8).map(|i| std::thread::spawn(move || i * 10)).collect();\n",
            "    let v: Vec<i32> = hs.into_iter().map(|h| h.join().unwrap()).collect();\n",
            "    println!(\"{:?}\", v);\n",
            "}\n",
        ),
    );
    assert_success(&r, "rust");
    assert_eq!(r["stdout"], "hi\ntrue\n[0, 10, 20, 30, 40, 50, 60, 70]\n");
}

/// The compile cache: the same program twice is compiled once (the second answer says
/// `compile_cached` and carries the same warnings), and concurrent compiles of programs that
/// differ by one character never get each other's binary.
#[test]
fn rust_compile_cache_hits_and_never_serves_another_programs_binary() {
    let s = shared();
    let tag = nonce();
    let code = format!("fn main() {{ let unused = 1; println!(\"{tag}\"); }}");
    let first = s.run(json!({"code": code, "language": "rust"}));
    assert_ok(&first, "rust", &format!("{tag}\n"));
    let second = s.run(json!({"code": code, "language": "rust"}));
    assert_ok(&second, "rust", &format!("{tag}\n"));
    assert_eq!(first["compile_cached"], false, "{first:#}");
    assert_eq!(second["compile_cached"], true, "{second:#}");
    assert_eq!(first["compile_output"], second["compile_output"]);
    assert!(
        text(&second, "compile_output").contains("unused"),
        "{second:#}"
    );
    assert!(second["compile_time"].as_f64().unwrap() < first["compile_time"].as_f64().unwrap());

    // Eight programs that differ by one digit, compiled at once, twice over.
    let programs: Vec<(String, String)> = (0..8)
        .map(|i| {
            let out = format!("{tag}-{i}");
            (
                format!("fn main() {{ println!(\"{out}\"); }}"),
                format!("{out}\n"),
            )
        })
        .collect();
    for round in 0..2 {
        parallel(
            programs
                .iter()
                .cloned()
                .map(|(code, want)| {
                    job(&format!("round {round}: {want:?}"), move || {
                        let r = shared().run(json!({"code": code, "language": "rust"}));
                        assert_ok(&r, "rust", &want);
                        assert_eq!(r["compile_cached"], round == 1, "{r:#}");
                    })
                })
                .collect(),
        );
    }
    // Interpreted languages compile nothing.
    let py = s.run(json!({"code": "print(1)", "language": "python"}));
    assert_eq!(py["compile_cached"], Value::Null);
}
