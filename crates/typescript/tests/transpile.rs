//! End-to-end tests: transpile TypeScript, run the output under Node.
//!
//! Every `transpile` call runs on a thread with `MIN_STACK_SIZE` (64 MiB) of
//! stack, as the crate documentation requires.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use coderun_typescript::{check_depth, transpile, TranspileError, MIN_STACK_SIZE};

/// Runs `f` on a thread with the stack size `transpile` needs.
fn on_big_stack<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    std::thread::Builder::new()
        .stack_size(MIN_STACK_SIZE)
        .spawn(f)
        .expect("spawn transpiler thread")
        .join()
        .expect("transpiler thread panicked")
}

fn ts(source: &str, filename: &str) -> Result<String, TranspileError> {
    let source = source.to_owned();
    let filename = filename.to_owned();
    on_big_stack(move || transpile(&source, &filename))
}

fn node() -> PathBuf {
    if let Some(node) = std::env::var_os("NODE") {
        return PathBuf::from(node);
    }
    let usr = Path::new("/usr/bin/node");
    if usr.exists() {
        return usr.to_owned();
    }
    PathBuf::from("node")
}

/// A fresh empty directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "coderun-ts-test-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Transpiles every `(name.ts, source)` to `name.js` in a fresh directory
/// with `{"type":"commonjs"}`, runs `node main.js args…` and returns stdout.
fn run(files: &[(&str, &str)], args: &[&str]) -> String {
    let dir = TempDir::new();
    std::fs::write(dir.0.join("package.json"), r#"{"type":"commonjs"}"#).expect("package.json");
    for (name, source) in files {
        let js = match ts(source, name) {
            Ok(js) => js,
            Err(e) => panic!("transpiling {name} failed:\n{e}"),
        };
        let out = dir.0.join(Path::new(name).with_extension("js"));
        std::fs::write(out, js).expect("write js");
    }
    let output = Command::new(node())
        .arg("main.js")
        .args(args)
        .current_dir(&dir.0)
        .output()
        .expect("run node (set NODE=/path/to/node if it is not in /usr/bin or PATH)");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        let mut listing = String::new();
        for (name, _) in files {
            let js_path = dir.0.join(Path::new(name).with_extension("js"));
            let js = std::fs::read_to_string(js_path).unwrap_or_default();
            listing.push_str(&format!("--- {name} → js ---\n{js}\n"));
        }
        panic!(
            "node failed ({}):\nstdout:\n{stdout}\nstderr:\n{}\n{listing}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    stdout
}

const UTIL_TS: &str = r#"
export function f(x: number): string {
    return "f" + x;
}
export let counter: number = 0;
export function inc(): void {
    counter++;
}
export const { a, b: [c] } = { a: 1, b: [2] };
export enum Color { Red, Green = 5, Blue }
export interface Shape { x: number }
export type Name = string;
export default class Greeter {
    constructor(private name: Name) {}
    greet(): string { return "hi " + this.name; }
}
"#;

#[test]
fn features_run_under_node() {
    let main = r#"
import fs from 'fs';
import { readFileSync } from 'node:fs';
import * as path from 'path';
import Greeter, { f, counter, inc, a, c, Color, type Shape } from './util';
import type { Name } from './util';
const os = require('os');

enum Direction { Up = 1, Down, Left = "L" }
const enum Flags { A = 1 << 1, B = A | 1 }
namespace Geometry {
    export const unit = 42;
    export function twice(): number { return unit * 2; }
    export namespace Inner { export const deep = "deep"; }
}
class Point {
    constructor(private x: number, public readonly y: number, protected z = 3) {}
    sum(): number { return this.x + this.y + this.z; }
}
const shape: Shape = { x: 1 };
const who: Name = "bob";

console.log(Direction.Up, Direction.Down, Direction[2], Direction.Left);
console.log(Flags.A, Flags.B);
console.log(Geometry.unit, Geometry.twice(), Geometry.Inner.deep);
console.log(new Point(1, 2).sum(), new Point(1, 2).y);
console.log(new Greeter(who).greet(), f(shape.x));
console.log(counter); inc(); inc(); console.log(counter);
console.log(typeof fs.readFileSync, typeof readFileSync, path.join("a", "b"), typeof os.cpus);
console.log(readFileSync === fs.readFileSync, fs === require("fs"));
console.log(a, c, Color.Green, Color[6], { f }.f === f);
console.log(JSON.stringify(process.argv.slice(2)));
"#;
    let stdout = run(&[("util.ts", UTIL_TS), ("main.ts", main)], &["x", "y z"]);
    assert_eq!(
        stdout,
        "1 2 Down L\n\
         2 3\n\
         42 84 deep\n\
         6 2\n\
         hi bob f1\n\
         0\n\
         2\n\
         function function a/b function\n\
         true true\n\
         1 2 5 Blue true\n\
         [\"x\",\"y z\"]\n"
    );
}

#[test]
fn export_and_import_forms() {
    let lib = r#"
export default function (x: number) { return x * 10; }
export const value = 7, other = 8;
export { value as renamed, other as "quoted name" };
export class K { static k = "K"; }
"#;
    let expr_default = "export default { answer: 42 } as const;\n";
    let reexport = r#"
export * from './lib';
export { default as times10 } from './lib';
export * as ns from './lib';
export { default as fsDefault, readFileSync } from 'fs';
"#;
    let cjs_style = r#"
import fs = require('fs');
function add(a: number, b: number) { return a + b; }
export = { add, hasFs: typeof fs.existsSync === "function" };
"#;
    let main = r#"
import times10, * as lib from './lib';
import obj from './expr';
import { value, renamed, K, times10 as t10, ns, fsDefault, readFileSync } from './reexport';
import legacy = require('./legacy');
import './side';
import {} from './side';

console.log(times10(2), lib.value, lib.other, lib.renamed, lib["quoted name"], lib.K.k);
console.log(obj.answer, value, renamed, K.k, t10(3), ns.value, typeof ns.default);
console.log(fsDefault === require("fs"), readFileSync === require("fs").readFileSync);
console.log(legacy.add(1, 2), legacy.hasFs);
console.log(Object.keys(lib).sort().join(","));
"#;
    let side = "console.log('side effect');\nexport {};\n";
    let stdout = run(
        &[
            ("lib.ts", lib),
            ("expr.ts", expr_default),
            ("reexport.ts", reexport),
            ("legacy.ts", cjs_style),
            ("side.ts", side),
            ("main.ts", main),
        ],
        &[],
    );
    assert_eq!(
        stdout,
        "side effect\n\
         20 7 8 7 8 K\n\
         42 7 7 K 30 7 function\n\
         true true\n\
         3 true\n\
         K,default,other,quoted name,renamed,value\n"
    );
}

#[test]
fn type_only_imports_are_removed() {
    // None of these modules exist: a leftover require would throw.
    let main = r#"
import type { A } from './missing-a';
import { type B } from './missing-b';
import { C } from './missing-c';
import * as D from './missing-d';
import { v, type E } from './types';
const x: A | B | C | D.T | E = 1 as unknown as C;
console.log("ok", x, v);
"#;
    let types = r#"
export { type E } from './missing-e';
export type { F } from './missing-f';
export type * from './missing-g';
export const v = 2;
"#;
    assert_eq!(
        run(&[("types.ts", types), ("main.ts", main)], &[]),
        "ok 1 2\n"
    );
}

#[test]
fn imports_are_live_and_calls_unbound() {
    let counter = r#"
export let count = 0;
export function bump() { count += 1; }
export function self(this: unknown) { return this === undefined; }
export const obj = { n: 1 };
"#;
    let main = r#"
import { count, bump, self, obj } from './counter';
function later() { return count; }
bump();
const { n } = obj;
console.log(count, later(), self(), n, `${count}`);
"#;
    assert_eq!(
        run(&[("counter.ts", counter), ("main.ts", main)], &[]),
        "1 1 true 1 1\n"
    );
}

#[test]
fn local_names_do_not_clash_with_generated_ones() {
    let main = r#"
import fs from 'fs';
const _fs = "mine";
function _importDefault() { return "mine too"; }
function inner() { const _fs = "shadow"; return fs === require("fs") && _fs === "shadow"; }
console.log(_fs, _importDefault(), inner());
"#;
    assert_eq!(run(&[("main.ts", main)], &[]), "mine mine too true\n");
}

#[test]
fn script_without_modules_runs() {
    let main = "#!/usr/bin/env node\nlet s: string = 'plain';\nconsole.log(s);\n";
    assert_eq!(run(&[("main.ts", main)], &[]), "plain\n");
}

#[test]
fn syntax_error_reports_file_line_and_column() {
    let source = "const a = 1;\nfunction f() {\n    let x: = 5;\n}\n";
    let err = ts(source, "main.ts").expect_err("must fail");
    let TranspileError::Syntax { diagnostics } = err else {
        panic!("expected Syntax, got {err:?}");
    };
    assert!(
        diagnostics.starts_with("main.ts:3:"),
        "diagnostics: {diagnostics}"
    );
    assert!(
        diagnostics.contains(": error: "),
        "diagnostics: {diagnostics}"
    );
    assert!(
        diagnostics.contains("let x: = 5;"),
        "diagnostics: {diagnostics}"
    );
}

#[test]
fn semantic_errors_are_syntax_errors() {
    let err = ts("let a = 1;\nlet a = 2;\n", "main.ts").expect_err("redeclaration");
    let TranspileError::Syntax { diagnostics } = err else {
        panic!("expected Syntax, got {err:?}");
    };
    assert!(
        diagnostics.starts_with("main.ts:1:5: error: Identifier `a` has already been declared"),
        "{diagnostics}"
    );
    assert!(diagnostics.contains("2 | let a = 2;"), "{diagnostics}");
}

#[test]
fn unbalanced_brackets_are_syntax_errors() {
    let err = ts("console.log((1);\n", "main.ts").expect_err("unbalanced");
    assert!(
        matches!(&err, TranspileError::Syntax { diagnostics } if diagnostics.starts_with("main.ts:1:")),
        "{err:?}"
    );
}

fn assert_too_deep(source: String) {
    let started = Instant::now();
    let checked = check_depth(&source, 1000);
    assert!(
        matches!(checked, Err(TranspileError::TooDeep { max: 1000, .. })),
        "{checked:?}"
    );
    let result = on_big_stack(move || transpile(&source, "main.ts"));
    assert!(
        matches!(result, Err(TranspileError::TooDeep { max: 1000, .. })),
        "{result:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn deep_parentheses_are_rejected() {
    let n = 30_000;
    assert_too_deep(format!("let x = {}1{};", "(".repeat(n), ")".repeat(n)));
}

#[test]
fn deep_braceless_statements_are_rejected() {
    assert_too_deep(format!("{}x++;", "for(;;)".repeat(15_000)));
    assert_too_deep(format!("{}x++;", "if (x)\n".repeat(15_000)));
    assert_too_deep(format!("if (x) {{}}{}", " else if (x) {}".repeat(15_000)));
}

#[test]
fn other_deep_shapes_are_rejected() {
    let n = 30_000;
    for source in [
        format!("let x = {}0{};", "[".repeat(n), "]".repeat(n)),
        format!("let x = {}0{};", "{a:".repeat(n), "}".repeat(n)),
        format!("{}{}", "{".repeat(n), "}".repeat(n)),
        format!("let x = {}1{};", "`${".repeat(n), "}`".repeat(n)),
        format!("let x = {}x;", "!".repeat(200_000)),
        format!("let x = 1{};", "+1".repeat(200_000)),
        format!("let x = f{};", "()".repeat(200_000)),
        format!("let x: {}B{};", "A<".repeat(n), ">".repeat(n)),
        format!("let x = {}1;", "a => ".repeat(n)),
    ] {
        assert_too_deep(source);
    }
}

#[test]
fn nesting_of_500_still_transpiles() {
    let n = 500;
    let sources = [
        format!("console.log({}1{});", "(".repeat(n), ")".repeat(n)),
        format!(
            "console.log(JSON.stringify({}{}).length);",
            "[".repeat(n),
            "]".repeat(n)
        ),
        format!(
            "let x = 0;\n{}x++;{}\nconsole.log(x);",
            "if (x >= 0) {\n".repeat(n),
            "}\n".repeat(n)
        ),
        format!(
            "let x = 0;\n{}x++;\nconsole.log(x);",
            "if (x >= 0)\n".repeat(n)
        ),
        {
            // 500 nested function declarations.
            let mut src: String = (1..=n).map(|i| format!("function f{i}() {{\n")).collect();
            src.push_str("return 1;\n");
            for i in (1..=n).rev() {
                src.push_str("}\n");
                if i > 1 {
                    src.push_str(&format!("return f{i}();\n"));
                }
            }
            src + "console.log(f1());\n"
        },
    ];
    for source in sources {
        let stdout = run(&[("main.ts", &source)], &[]);
        assert!(
            stdout == "1\n" || stdout == format!("{}\n", 2 * n),
            "{stdout}"
        );
    }
}

#[test]
fn dynamic_import_and_reexported_imports() {
    let util = r#"
import { join } from 'path';
import def from './dep';
export { join, def as depDefault };
export const viaImport = () => join("p", "q");
"#;
    let dep = "export default 'dep default';\n";
    let main = r#"
async function main() {
    const u = await import('./util');
    const fs = await import('fs');
    const name = './dep';
    const d = await import(name);
    console.log(u.join("a", "b"), u.viaImport(), u.depDefault, typeof fs.readFileSync, fs.default === require('fs'), d.default);
}
main().catch((e) => { console.error(e); process.exit(1); });
"#;
    assert_eq!(
        run(
            &[("dep.ts", dep), ("util.ts", util), ("main.ts", main)],
            &[]
        ),
        "a/b p/q dep default function true dep default\n"
    );
}

#[test]
fn merged_namespaces_share_exported_members() {
    // Each case prints what `tsc --module commonjs` output prints.
    let cases: &[(&str, &str)] = &[
        (
            "namespace A.B { export const c = 1; }\n\
             namespace A.B { export const d = c + 1; }\n\
             console.log(A.B.c, A.B.d);\n",
            "1 2\n",
        ),
        (
            "namespace N { export const a = 1 }\n\
             namespace N { export const b = a + 1 }\n\
             console.log(N.a, N.b)\n",
            "1 2\n",
        ),
        // Members of a later block, and every kind of member.
        (
            "namespace N { export function f() { return g(); } }\n\
             namespace N { export function g() { return 42; } export namespace M { export const z = 3; }\n\
               export class C { v = 1 } export enum En { X = 2 } }\n\
             namespace N { export const r = [M.z, new C().v, En.X, f(), { g }.g()]; }\n\
             namespace N.M { export const w = z + 1; }\n\
             namespace A.B { export const x = 1; }\n\
             namespace A { export const y = B.x; }\n\
             console.log(N.r.join(), N.M.w, A.y);\n",
            "3,1,2,42,42 4 1\n",
        ),
        // Namespaces merged with a function, an enum and a class.
        (
            "function f() { return f.x; }\n\
             namespace f { export const x = 1; }\n\
             namespace f { export const y = x + 1; export function g() { return y * 10 + x; } }\n\
             enum Color { Red, Green }\n\
             namespace Color { export function parse(s: string): Color { return (Color as any)[s]; } }\n\
             namespace Color { export const def = parse('Green'); }\n\
             class K { static n = 3; }\n\
             namespace K { export const m = 4; }\n\
             namespace K { export const p = m + K.n; }\n\
             enum E { A = 1, B }\n\
             enum E { C = A + 10 }\n\
             console.log(f(), f.y, f.g(), Color.def, K.p, E.C);\n",
            "1 2 21 1 7 11\n",
        ),
        // A member of the merged namespace wins over an outer binding; an
        // inner local wins over the member.
        (
            "const c = 5;\n\
             namespace N { export const c = 1; }\n\
             namespace N { export const d = c; export function f() { const c = 9; return c; } }\n\
             namespace O { const x = 2; export const y = x; }\n\
             namespace O { export const x = 7; }\n\
             console.log(N.d, N.f(), c, O.y, O.x);\n",
            "1 9 5 2 7\n",
        ),
        // Exported variables are live properties of the namespace, also when
        // assigned or destructured into.
        (
            "namespace N { export let a = 1; export function bump() { a++; } }\n\
             namespace N { export function get() { return a; } export function set(v: number) { a = v; } }\n\
             namespace N { export const { p, q: [r] } = { p: 1, q: [2] }; export let z = 0; }\n\
             namespace N { export function up() { [z] = [5]; ({ z } = { z: z + 1 }); return p + r + z; } }\n\
             N.bump(); console.log(N.a, N.get()); N.set(7); console.log(N.a, N.get());\n\
             console.log(N.up(), N.z);\n",
            "2 2\n7 7\n9 6\n",
        ),
        // The namespace's own name is shadowed: qualify through the parent
        // namespace, or through an alias declared at the top of the block.
        (
            "namespace A.B { export const c = 1; }\n\
             namespace A.B { const B = 5; export const d = c + B; }\n\
             namespace A.B { export function f(A: number, B: number) { return c + A + B; } }\n\
             namespace N { export let x = 1; }\n\
             namespace N { export function g(N: string) { const h = () => ({ x }); x++; return h().x + N; } }\n\
             console.log(A.B.d, A.B.f(10, 100), N.g('!'), N.x);\n",
            "6 111 2! 2\n",
        ),
    ];
    for (source, expected) in cases {
        assert_eq!(run(&[("main.ts", source)], &[]), *expected, "{source}");
    }
}

#[test]
fn merged_namespaces_across_module_syntax() {
    let main = r#"
import { join } from 'path';
export namespace N { export const a = 1; }
export namespace N { export const b = join(String(a), "x"); export type T = number; }
namespace N { export const t: T = 3; }
console.log(N.a, N.b, N.t);
"#;
    assert_eq!(run(&[("main.ts", main)], &[]), "1 1/x 3\n");
}

/// Transpiles `files` (paths may have directories) and runs
/// `node --enable-source-maps main.js`; returns (success, stdout, stderr).
fn run_with_source_maps(files: &[(&str, &str)]) -> (bool, String, String) {
    let dir = TempDir::new();
    std::fs::write(dir.0.join("package.json"), r#"{"type":"commonjs"}"#).expect("package.json");
    for (name, source) in files {
        let js = match ts(source, name) {
            Ok(js) => js,
            Err(e) => panic!("transpiling {name} failed:\n{e}"),
        };
        let ts_path = dir.0.join(name);
        std::fs::create_dir_all(ts_path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&ts_path, source).expect("write ts");
        std::fs::write(ts_path.with_extension("js"), js).expect("write js");
    }
    let output = Command::new(node())
        .args(["--enable-source-maps", "main.js"])
        .current_dir(&dir.0)
        .output()
        .expect("run node");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn output_has_an_inline_source_map() {
    let js = ts("let x: number = 1;\nconsole.log(x);\n", "sub/util.ts").expect("transpile");
    let last = js.lines().last().expect("lines");
    let prefix = "//# sourceMappingURL=data:application/json;charset=utf-8;base64,";
    assert!(last.starts_with(prefix), "{js}");
    // Decode with node rather than pulling in a base64 crate.
    let decoded = Command::new(node())
        .args([
            "-e",
            "process.stdout.write(Buffer.from(process.argv[1], 'base64').toString())",
        ])
        .arg(&last[prefix.len()..])
        .output()
        .expect("run node");
    let map = String::from_utf8_lossy(&decoded.stdout);
    assert!(map.contains(r#""sources":["util.ts"]"#), "{map}");
    assert!(!map.contains("sourcesContent"), "{map}");
}

#[test]
fn stack_traces_name_typescript_files_and_lines() {
    // Blank lines, types and imports shift the generated lines; the frames
    // must still point at the TypeScript source.
    let (ok, stdout, stderr) = run_with_source_maps(&[(
        "main.ts",
        "const a: number = 1;\nconsole.log(a);\n\n\nthrow new Error('boom');\n",
    )]);
    assert!(!ok);
    assert_eq!(stdout, "1\n");
    assert!(stderr.contains("Error: boom"), "{stderr}");
    assert!(stderr.contains("main.ts:5"), "{stderr}");
    assert!(!stderr.contains("main.js"), "{stderr}");

    let util = "export type T = string;\n\
                export let counter = 0;\n\
                \n\
                export function f(n: number): number {\n\
                \x20 counter++;\n\
                \x20 if (n > 1) {\n\
                \x20   throw new Error(`boom ${n}`);\n\
                \x20 }\n\
                \x20 return n;\n\
                }\n";
    let main = "import { f } from './lib/util';\n\
                import * as path from 'path';\n\
                \n\
                interface X { a: number }\n\
                \n\
                function g(n: number): number {\n\
                \x20 return f(n) + path.sep.length;\n\
                }\n\
                console.log(g(1));\n\
                g(2);\n";
    let (ok, stdout, stderr) = run_with_source_maps(&[("lib/util.ts", util), ("main.ts", main)]);
    assert!(!ok);
    assert_eq!(stdout, "2\n");
    assert!(stderr.contains("Error: boom 2"), "{stderr}");
    assert!(stderr.contains("at f ("), "{stderr}");
    assert!(stderr.contains("lib/util.ts:7:"), "{stderr}");
    assert!(stderr.contains("main.ts:7:"), "{stderr}");
    assert!(stderr.contains("main.ts:10:"), "{stderr}");
}
