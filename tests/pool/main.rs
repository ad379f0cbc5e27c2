//! Pool suite: warm single-use boxes behave exactly like fresh ones. A differential corpus
//! runs on a server without pools and on one with them, and every answer must match; then the
//! pool is exhausted and must refill, and a disabled pool must never be used.

#[path = "../common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;

/// Waits until every pool of `s` is full (each holds `size` ready boxes).
fn wait_pools_full(s: &Server, size: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, health) = s.get("/health");
        let pools = health["pools"].as_object().cloned().unwrap_or_default();
        if !pools.is_empty() && pools.values().all(|v| v.as_u64() == Some(size)) {
            return;
        }
        assert!(Instant::now() < deadline, "pools never filled: {health}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// (name, request) pairs covering what must not change when a box is pooled.
fn corpus() -> Vec<(&'static str, Value)> {
    let py = |code: &str| json!({"language": "python", "code": code});
    let ts = |code: &str| json!({"language": "typescript", "code": code});
    let rs = |code: &str| json!({"language": "rust", "code": code});
    vec![
        ("py hello", py("print('hello')")),
        ("py name argv file path", json!({"language": "python", "args": ["a", "b c"],
            "code": "import sys, os\nprint(__name__, sys.argv, __file__, sys.path[0], os.getcwd())"})),
        ("py traceback", py("def f():\n    raise ValueError('bad')\n\nf()\n")),
        ("py syntax error", py("def f(:\n    pass\n")),
        ("py exit code", py("import sys\nprint('out')\nsys.exit(7)")),
        ("py stdin", json!({"language": "python", "stdin": "line1\nline2\n",
            "code": "import sys\nprint(sys.stdin.read().upper(), end='')"})),
        ("py sibling import", json!({"language": "python",
            "files": [{"name": "util.py", "content": "X = 41\n"}, {"name": "pkg/__init__.py", "content": ""},
                      {"name": "pkg/m.py", "content": "def g():\n    return 1\n"}],
            "code": "import util\nfrom pkg.m import g\nprint(util.X + g(), util.__file__)"})),
        ("py signal", py("import os, signal\nos.kill(os.getpid(), signal.SIGTERM)")),
        ("py keyboard interrupt", py("raise KeyboardInterrupt")),
        ("py uncaught in thread", py("import threading\nt = threading.Thread(target=lambda: 1/0)\nt.start(); t.join()\nprint('after')")),
        ("py main guard", py("if __name__ == '__main__':\n    print('main')\nelse:\n    print('not main')")),
        ("py timeout", json!({"language": "python", "code": "while True: pass", "timeout": 1})),
        ("py memory", py("b = bytearray(400 * 1024 * 1024)")),
        ("py output limit", json!({"language": "python", "code": "print('x' * 5000)", "max_output_bytes": 4096})),
        // The runner ends the interpreter itself (see runners/python.py): what a normal
        // shutdown shows must still show, in the same order.
        ("py exit paths", py(concat!(
            "import atexit, logging, sys, threading, time, weakref\n",
            "class D:\n    def __del__(self):\n        print('del', self.n)\n",
            "class C: pass\n",
            "_a = D(); _a.n = 'underscore'\n",
            "b = D(); b.n = 'global'\n",
            "c = C(); c.self = c; c.d = D(); c.d.n = 'cycle'; del c\n",
            "f = open('/dev/stdout', 'w'); f.write('unflushed global file\\n')\n",
            "atexit.register(print, 'atexit 1'); atexit.register(print, 'atexit 2')\n",
            "weakref.finalize(b, print, 'finalize')\n",
            "logging.basicConfig(stream=sys.stdout, format='%(message)s'); logging.warning('log')\n",
            "def late():\n    time.sleep(0.2); print('thread done')\n",
            "threading.Thread(target=late).start()\n",
            "print('main done')\n",
        ))),
        ("py exit(256)", py("print('x'); exit(256)")),
        ("py exit with message", py("import sys; sys.exit('bye')")),
        ("py exit(None) and bool", py("import sys; print(1); sys.exit(True)")),
        ("py atexit raises", py("import atexit\natexit.register(lambda: 1/0)\nprint('ok')")),
        ("py broken stdout at exit", py(concat!(
            "import sys\n",
            "class W:\n    def write(self, s): return len(s)\n    def flush(self): raise OSError('no')\n",
            "sys.stdout = W()\n",
        ))),
        ("py fds", py("import os\nprint(sorted(os.listdir('/proc/self/fd'))[:3], len(os.listdir('/proc/self/fd')))")),
        // Rust's compile and run boxes are parked: set up ahead of time, the command and
        // files (the source, then the binary) handed over and executed.
        ("rs hello", rs("fn main() { println!(\"hello\"); }")),
        ("rs argv, cwd, env, fds", json!({"language": "rust", "args": ["a b", "c"],
            "code": concat!(
                "fn main() {\n",
                "    let fds = std::fs::read_dir(\"/proc/self/fd\").unwrap().count();\n",
                "    let env: Vec<String> = std::env::vars().map(|(k, _)| k).collect();\n",
                "    println!(\"{:?} {:?} {fds} {env:?}\", std::env::args().collect::<Vec<_>>(), std::env::current_dir().unwrap());\n",
                "    let cmdline = std::fs::read(\"/proc/self/cmdline\").unwrap();\n",
                "    println!(\"{:?} {:?}\", String::from_utf8_lossy(&cmdline), std::fs::read_link(\"/proc/self/exe\").unwrap());\n",
                "}\n")})),
        ("rs files beside the binary", json!({"language": "rust",
            "files": [{"name": "data/in.txt", "content": "42\n"}],
            "code": "fn main() { print!(\"{}\", std::fs::read_to_string(\"data/in.txt\").unwrap()); }"})),
        ("rs panic", rs("fn main() { let v: Vec<u8> = Vec::new(); println!(\"before\"); let _ = v[3]; }")),
        ("rs exit code", rs("fn main() { println!(\"out\"); std::process::exit(9); }")),
        ("rs stdin", json!({"language": "rust", "stdin": "abc\n",
            "code": "use std::io::Read;\nfn main() { let mut s = String::new(); std::io::stdin().read_to_string(&mut s).unwrap(); print!(\"{}\", s.to_uppercase()); }"})),
        ("rs timeout", json!({"language": "rust", "timeout": 1, "code": "fn main() { loop { std::hint::spin_loop(); } }"})),
        ("rs memory", rs("fn main() { let v = vec![1u8; 400 << 20]; println!(\"{}\", v.iter().map(|&b| b as u64).sum::<u64>()); }")),
        ("rs compile error", rs("fn main() { let x: i32 = \"a\"; }")),
        ("ts hello", ts("console.log('hello')")),
        ("ts argv and main", json!({"language": "typescript", "args": ["x", "y"],
            "code": "console.log(process.argv.slice(2), require.main === module, __filename)"})),
        ("ts sibling import", json!({"language": "typescript",
            "files": [{"name": "util.ts", "content": "export function f(n: number) { return n * 2 }"}],
            "code": "import { f } from './util';\nimport fs from 'fs';\nconsole.log(f(21), typeof fs.readFileSync)"})),
        // What is open at start (node's own fds are numbered from 4 in a pooled box, whose
        // fd 3 carried the hand-off: kinds are compared, not numbers).
        ("ts fds at start", ts(concat!(
            "import fs from 'fs';\n",
            "const fds = fs.readdirSync('/proc/self/fd').map((fd) => {\n",
            "  try { return fs.readlinkSync('/proc/self/fd/' + fd).replace(/[0-9]+/g, 'N'); }\n",
            "  catch { return '(the dir listing)'; }\n",
            "});\n",
            "console.log(fds.sort().join('\\n'));\n",
        ))),
        ("ts stdio streams", ts(concat!(
            "const { execSync } = require('child_process');\n",
            "console.log(process.stdout.isTTY, process.stdout.constructor.name, (process.stdout as any)._type);\n",
            "console.error(process.stderr.constructor.name, (process.stderr as any)._type);\n",
            "process.stdout.write(execSync('echo child', { stdio: ['ignore', 'pipe', 'inherit'] }));\n",
        ))),
        ("ts throw", ts("function f(): never { throw new Error('boom') }\nf();")),
        ("ts exit code", ts("console.log('a');\nprocess.exit(3);")),
        ("ts stdin", json!({"language": "typescript", "stdin": "abc",
            "code": "import fs from 'fs';\nconsole.log(fs.readFileSync(0, 'utf8').toUpperCase())"})),
        ("ts timeout", json!({"language": "typescript", "code": "for(;;){}", "timeout": 1})),
        ("ts syntax error", ts("let x = ;")),
        ("ts execArgv, worker and fork", ts(concat!(
            "import { Worker, isMainThread, parentPort } from 'worker_threads';\n",
            "import { fork } from 'child_process';\n",
            "if (!isMainThread) { parentPort!.postMessage('worker ok'); }\n",
            "else if (process.argv[2] === 'child') { console.log('child ok'); }\n",
            "else {\n",
            "  console.log(process.execArgv);\n",
            "  const w = new Worker(__filename);\n",
            "  w.on('message', (m: string) => { console.log(m); fork(__filename, ['child']); });\n",
            "}\n",
        ))),
    ]
}

/// The fields that describe what the program did (timings and memory differ run to run, and
/// so do object addresses in messages: `0x7f03149ec2c0` becomes `0x…`).
fn observable(r: &Value) -> Value {
    json!({
        "status": r["status"], "success": r["success"], "stdout": r["stdout"],
        "stderr": mask_addresses(r["stderr"].as_str().unwrap_or("")),
        "exit_code": r["exit_code"], "signal": r["signal"],
        "error": r["error"].as_str().map(mask_addresses), "truncated": r["truncated"],
    })
}

fn mask_addresses(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("0x") {
        out.push_str(&rest[..i + 2]);
        rest = &rest[i + 2..];
        let hex = rest
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap_or(rest.len());
        if hex > 0 {
            out.push('…');
        }
        rest = &rest[hex..];
    }
    out.push_str(rest);
    out
}

#[test]
fn pooled_and_fresh_boxes_give_identical_results() {
    // No compile cache: every compile runs, in a parked compile box on the pooled server.
    let fresh = Server::start_with("[engine]\npool_size = 0\ncompile_cache_mb = 0\n", &[]);
    let pooled = Server::start_with("[engine]\npool_size = 2\ncompile_cache_mb = 0\n", &[]);
    let (_, h) = fresh.get("/health");
    assert_eq!(h["pools"], json!({}), "pool_size 0 creates no pools: {h}");
    let mut differences = Vec::new();
    for (name, req) in corpus() {
        wait_pools_full(&pooled, 2);
        let a = fresh.run(req.clone());
        let b = pooled.run(req.clone());
        assert_eq!(a["pooled"], false, "{name}: {a}");
        if b["status"] != "compile_error" {
            assert_eq!(
                b["pooled"], true,
                "{name}: the pooled server did not use its pool: {b}"
            );
        }
        if observable(&a) != observable(&b) {
            differences.push(format!(
                "{name}:\n  fresh:  {}\n  pooled: {}",
                observable(&a),
                observable(&b)
            ));
        }
    }
    assert!(
        differences.is_empty(),
        "pooled runs differ:\n{}",
        differences.join("\n")
    );
}

/// Exhausting the pool never fails a request (they run fresh), and the pool fills again.
#[test]
fn an_exhausted_pool_refills_and_requests_still_succeed() {
    let s = Server::start_with("[engine]\npool_size = 2\nconcurrency = 6\n", &[]);
    wait_pools_full(&s, 2);
    let results: Vec<Value> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..6)
            .map(|i| {
                let s = &s;
                scope.spawn(move || {
                    s.run(json!({"language": "python", "code": format!("print({i})")}))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("request"))
            .collect()
    });
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r["output"], format!("{i}\n"), "{r}");
    }
    let pooled = results.iter().filter(|r| r["pooled"] == true).count();
    assert!(pooled >= 1, "some requests should use the pool");
    assert!(
        pooled <= 2,
        "no more pooled runs than ready boxes: {pooled}"
    );
    wait_pools_full(&s, 2);
    let again = s.run(json!({"language": "python", "code": "print('again')"}));
    assert_eq!(again["pooled"], true, "{again}");
}

/// A request whose fixed limits differ from the pool's (memory here) runs fresh.
#[test]
fn requests_with_other_box_limits_run_fresh() {
    let s = Server::start_with("[engine]\npool_size = 1\n", &[]);
    wait_pools_full(&s, 1);
    let r = s.run(json!({"language": "python", "code": "print(1)", "memory_mb": 256}));
    assert_eq!(r["pooled"], false, "{r}");
    let r = s.run(json!({"language": "python", "code": "print(1)", "timeout": 2}));
    assert_eq!(r["pooled"], true, "wall time is set at hand-off: {r}");
}

/// Operators' view: a warm Python box waiting for its program shows a short command line in
/// `ps` (the runner's own), not its argv room; and a program's command line longer than the
/// room runs fresh, so its `/proc/self/cmdline` is whole.
#[test]
fn warm_boxes_are_readable_in_ps_and_long_command_lines_run_fresh() {
    let s = Server::start_with("[engine]\npool_size = 2\ncompile_cache_mb = 0\n", &[]);
    wait_pools_full(&s, 2);
    // The warm runtimes are this server's descendants (helper -> init -> runtime). A runner
    // writes its short line as its first act, a moment after the box reports ready.
    let warm_cmdlines = || -> Vec<Vec<u8>> {
        descendants_of(s.pid)
            .into_iter()
            .map(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default())
            .filter(|c| String::from_utf8_lossy(c).contains("runner/python.py"))
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let warm = warm_cmdlines();
        let short = |c: &Vec<u8>| {
            c.len() < 200
                && String::from_utf8_lossy(c)
                    .trim_end_matches('\0')
                    .ends_with("runner/python.py")
        };
        if warm.len() == 2 && warm.iter().all(short) {
            break;
        }
        let shown: Vec<String> = warm
            .iter()
            .map(|c| {
                format!(
                    "{} bytes: {:?}",
                    c.len(),
                    String::from_utf8_lossy(&c[..c.len().min(120)])
                )
            })
            .collect();
        assert!(Instant::now() < deadline, "warm Python runtimes: {shown:?}");
        std::thread::sleep(Duration::from_millis(50));
    }

    let long = "x".repeat(3000);
    let r = s.run(json!({"language": "python", "args": [long, long],
        "code": "print(len(open('/proc/self/cmdline', 'rb').read()))"}));
    assert_eq!(r["pooled"], false, "{r}");
    let shown: usize = r["stdout"]
        .as_str()
        .unwrap_or("")
        .trim()
        .parse()
        .expect("a length");
    assert!(shown > 6000, "cmdline cut short: {shown}");
    let short = s.run(json!({"language": "python", "args": ["a"], "code": "print(1)"}));
    assert_eq!(short["pooled"], true, "{short}");
}
