//! 1. The server's environment never reaches a program, at run time or at compile time, and a
//!    compile cannot read host files (Judge0 #564: the submission's environment held the
//!    service's secrets, and `include_str!`-style compile-time reads reach host files).
//!
//! The server under test ([`secret_server`]) carries `CODERUN_TEST_SECRET` in its environment.
//! The programs dump everything they can read (their environment, every readable
//! `/proc/*/environ` and `/proc/*/cmdline`) and the HOST checks that the secret appears nowhere
//! in the whole response; the dump must contain what the program's own environment and
//! command line are known to hold (the positive control that the dump really covers them).

use crate::common::*;
use crate::*;

/// Prints its environment, then every readable /proc/*/environ and /proc/*/cmdline.
const PY_DUMP: &str = r#"
import json, os
dump = {"environ": dict(os.environ), "proc": {}, "unreadable": []}
for pid in sorted(p for p in os.listdir("/proc") if p.isdigit()):
    for what in ("environ", "cmdline"):
        path = "/proc/%s/%s" % (pid, what)
        try:
            dump["proc"][path] = open(path, "rb").read().decode("latin-1")
        except OSError as e:
            dump["unreadable"].append("%s errno %d" % (path, e.errno))
print(json.dumps(dump))
"#;

/// The same dump from node.
const TS_DUMP: &str = r#"
import * as fs from "fs";
const dump: { environ: Record<string, string | undefined>; proc: Record<string, string>; unreadable: string[] } =
  { environ: { ...process.env }, proc: {}, unreadable: [] };
for (const pid of fs.readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
  for (const what of ["environ", "cmdline"]) {
    const path = `/proc/${pid}/${what}`;
    try { dump.proc[path] = fs.readFileSync(path).toString("latin1"); }
    catch (e: any) { dump.unreadable.push(`${path} ${e.code}`); }
  }
}
console.log(JSON.stringify(dump));
"#;

/// Compile time: what rustc's environment holds (`option_env!`, `env!`) and what
/// `include_str!` of the program's own source reads (the positive control); run time: the
/// same dump as the Python one.
const RS_DUMP: &str = r#"
const COMPILE_SECRET: Option<&str> = option_env!("CODERUN_TEST_SECRET");
const COMPILE_HOME: &str = env!("HOME");
const COMPILE_PATH: Option<&str> = option_env!("PATH");
const OWN_SOURCE: &str = include_str!("main.rs");
const RUSTC_ENVIRON: &[u8] = include_bytes!("/proc/self/environ");

fn esc(s: &str) -> String {
    let mut o = String::new();
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o
}

fn main() {
    let mut fields = Vec::new();
    fields.push(format!("\"compile_secret_is_none\":{}", COMPILE_SECRET.is_none()));
    fields.push(format!("\"compile_home\":\"{}\"", esc(COMPILE_HOME)));
    fields.push(format!("\"compile_path\":\"{}\"", esc(COMPILE_PATH.unwrap_or("<unset>"))));
    fields.push(format!("\"own_source_read\":{}", OWN_SOURCE.contains("fn esc(")));
    fields.push(format!(
        "\"rustc_environ\":\"{}\"",
        esc(&String::from_utf8_lossy(RUSTC_ENVIRON).replace('\0', "\n"))
    ));
    let env: Vec<String> = std::env::vars_os()
        .map(|(k, v)| format!("\"{}={}\"", esc(&k.to_string_lossy()), esc(&v.to_string_lossy())))
        .collect();
    fields.push(format!("\"environ\":[{}]", env.join(",")));
    let mut proc = Vec::new();
    let mut unreadable = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        for what in ["environ", "cmdline"] {
            let path = format!("/proc/{name}/{what}");
            match std::fs::read(&path) {
                Ok(b) => proc.push(format!("\"{}\":\"{}\"", path, esc(&String::from_utf8_lossy(&b)))),
                Err(e) => unreadable.push(format!("\"{path} {e}\"")),
            }
        }
    }
    fields.push(format!("\"proc\":{{{}}}", proc.join(",")));
    fields.push(format!("\"unreadable\":[{}]", unreadable.join(",")));
    println!("{{{}}}", fields.join(","));
}
"#;

/// Host side: the server really holds the secret (else the test proves nothing), and no part
/// of the response carries it.
fn assert_no_secret(s: &Server, r: &Value) {
    let environ = std::fs::read(format!("/proc/{}/environ", s.pid)).expect("server environ");
    assert!(
        String::from_utf8_lossy(&environ).contains(secret()),
        "the server under test does not hold the secret in its environment"
    );
    assert!(
        !r.to_string().contains(secret()),
        "the server's secret leaked into the response: {}",
        brief(r)
    );
}

/// The dump covered the program's own environment and command line (positive control).
fn assert_dump_covers_self(dump: &Value, marker: &str) {
    let proc = dump["proc"]
        .as_object()
        .unwrap_or_else(|| panic!("no proc dump: {dump}"));
    assert!(
        proc.iter().any(
            |(k, v)| k.ends_with("/environ") && v.as_str().unwrap_or("").contains("HOME=/work")
        ),
        "no readable /proc/*/environ holds the program's own HOME=/work: {dump}"
    );
    assert!(
        proc.iter()
            .any(|(k, v)| k.ends_with("/cmdline") && v.as_str().unwrap_or("").contains(marker)),
        "no readable /proc/*/cmdline holds the program's own argument {marker}: {dump}"
    );
}

/// Judge0 #564 (secrets in the submission's environment): Python's `os.environ`, and every
/// /proc/*/environ and /proc/*/cmdline readable in the box, hold nothing of the server's
/// environment.
#[test]
fn python_sees_none_of_the_servers_environment() {
    let s = secret_server();
    assert_confined(s);
    let marker = format!("arg-{}", nonce());
    let r = s.run(with(py(PY_DUMP), json!({"args": [marker]})));
    let dump = probe(&r);
    assert_no_secret(s, &r);
    assert_dump_covers_self(&dump, &marker);
    let environ = dump["environ"].as_object().expect("environ");
    assert_eq!(environ.get("HOME"), Some(&json!("/work")), "{dump}");
    for key in environ.keys() {
        assert!(
            ["PATH", "HOME", "LANG", "TMPDIR", "LD_LIBRARY_PATH"].contains(&key.as_str()),
            "unexpected variable {key} in the box's environment: {dump}"
        );
    }
}

/// Judge0 #564, node: `process.env` and /proc hold nothing of the server's environment.
#[test]
fn typescript_sees_none_of_the_servers_environment() {
    let s = secret_server();
    assert_confined(s);
    let marker = format!("arg-{}", nonce());
    let r = s.run(with(ts(TS_DUMP), json!({"args": [marker]})));
    let dump = probe(&r);
    assert_no_secret(s, &r);
    // A pooled node keeps its own start-up command line (its args are exact in
    // process.argv only), so the own-cmdline control looks for the main file instead.
    assert_dump_covers_self(&dump, "main.js");
    assert_eq!(dump["environ"]["HOME"], "/work", "{dump}");
}

/// Judge0 #564 at compile time: rustc runs in a box whose environment is the box's, so
/// `option_env!("CODERUN_TEST_SECRET")` is None, `env!("HOME")` is `/work`, not the
/// server's `/root`, and rustc's whole environment (`include_bytes!("/proc/self/environ")`)
/// holds no secret; `include_str!("main.rs")` (own source) compiles. At run time
/// `std::env::vars` and /proc hold no secret either.
#[test]
fn rust_sees_none_of_the_servers_environment_at_compile_or_run_time() {
    let s = secret_server();
    assert_confined(s);
    let marker = format!("arg-{}", nonce());
    let r = s.run(with(rs(RS_DUMP), json!({"args": [marker]})));
    let dump = probe(&r);
    assert_no_secret(s, &r);
    assert_dump_covers_self(&dump, &marker);
    assert_eq!(dump["compile_secret_is_none"], true, "{dump}");
    assert_eq!(dump["compile_home"], "/work", "{dump}");
    assert_eq!(dump["own_source_read"], true, "{dump}");
    // rustc's own environment, read at compile time from the compile box's /proc.
    let rustc_environ = dump["rustc_environ"].as_str().unwrap_or("");
    assert!(
        rustc_environ.lines().any(|l| l == "HOME=/work"),
        "positive control: rustc's environment was not read: {dump}"
    );
    let path = dump["compile_path"].as_str().unwrap_or("");
    assert!(
        !path.contains("/root") && !path.contains(".cargo") && !path.contains(".pyenv"),
        "rustc's PATH shows host paths: {path}"
    );
    let environ = dump["environ"].as_array().expect("environ");
    assert!(
        environ.contains(&json!("HOME=/work")),
        "run-time environment: {dump}"
    );
}

/// Compile-time host file read (`include_str!("/etc/shadow")`): the compile box has no
/// /etc/shadow, so the program is a compile error, and nothing of the host's shadow file
/// appears in the response; the positive control `include_str!("main.rs")` compiles and runs.
#[test]
fn rust_include_str_of_a_host_file_fails_to_compile() {
    let s = secret_server();
    assert_confined(s);
    let host_shadow = std::fs::read_to_string("/etc/shadow").expect("host /etc/shadow");
    let shadow = "const S: &str = include_str!(\"/etc/shadow\");\n\
                  fn main() { println!(\"{}\", S.len()); }\n";
    let own = "const S: &str = include_str!(\"main.rs\");\n\
               fn main() { println!(\"{}\", S.contains(\"include_str\")); }\n";
    let r = run_all(s, vec![rs(shadow), rs(own)]);
    assert_eq!(status(&r[0]), "compile_error", "{}", brief(&r[0]));
    assert_eq!(r[0]["success"], false, "{}", brief(&r[0]));
    assert_eq!(r[0]["stdout"], "", "{}", brief(&r[0]));
    let text = r[0].to_string();
    assert!(
        text.contains("/etc/shadow"),
        "the compile error should name the missing file: {}",
        brief(&r[0])
    );
    for line in host_shadow.lines().filter(|l| l.len() > 8) {
        assert!(
            !text.contains(line),
            "a line of the host's /etc/shadow leaked: {line}"
        );
    }
    assert_no_secret(s, &r[0]);
    assert_ok(&r[1]);
    assert_eq!(stdout(&r[1]), "true\n", "{}", brief(&r[1]));
}
