//! `coderun transpile-ts`: the TypeScript compile step. It runs *inside* a compile box (uid
//! 1000, seccomp, the compile limits), so a hostile program that crashes the parser only kills
//! that box, never the server. Every `.ts`/`.mts`/`.cts` file under the work dir is transpiled
//! to CommonJS on a thread with a large stack, after a nesting-depth pre-scan. Each output file
//! ends with an inline source map naming its `.ts` file (the run box keeps the `.ts` files next to
//! the `.js` ones and runs `node --enable-source-maps`, so stack traces name TypeScript lines).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// Stack of the transpiling thread: far beyond what the depth pre-scan lets through.
const STACK_BYTES: usize = 256 << 20;
const MAX_DEPTH: usize = 1000;

/// Where the compile box shows the checker (see languages/typescript.toml).
const TYPESCRIPT_DIR: &str = "/opt/coderun/typescript";

/// The TypeScript toolchain as a version line: the type checker's version when it is
/// installed, and the node the programs run on, e.g. `TypeScript 7.0.0-dev.20250101.1 (node
/// 20.20.2)`; without the checker, `TypeScript (transpile only, no type checker; node 20.20.2)`.
pub fn version_line(node: &Path) -> anyhow::Result<String> {
    let out = std::process::Command::new(node)
        .arg("--version")
        .output()
        .with_context(|| format!("cannot run {}", node.display()))?;
    anyhow::ensure!(out.status.success(), "{} --version failed", node.display());
    let node_version = String::from_utf8_lossy(&out.stdout)
        .trim()
        .trim_start_matches('v')
        .to_string();
    let package = Path::new(TYPESCRIPT_DIR).join("@typescript/native-preview/package.json");
    let checker = std::fs::read(package)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["version"].as_str().map(str::to_string));
    Ok(match checker {
        Some(v) => format!("TypeScript {v} (node {node_version})"),
        None => format!("TypeScript (transpile only, no type checker; node {node_version})"),
    })
}

pub fn main(bundle: &Path, typecheck: bool, wait_fd: Option<i32>) -> anyhow::Result<i32> {
    if let Some(fd) = wait_fd {
        receive_files(fd)?;
    }
    let mut sources = Vec::new();
    collect(Path::new("."), &mut sources)?;
    sources.sort();
    if typecheck {
        if let Some(code) = type_check(&sources)? {
            return Ok(code);
        }
    }
    let handle = std::thread::Builder::new()
        .name("transpile".into())
        .stack_size(STACK_BYTES)
        .spawn(move || {
            let mut out = BTreeMap::new();
            let mut errors = Vec::new();
            for path in sources {
                let rel = path
                    .strip_prefix(".")
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .into_owned();
                let text = match std::fs::read_to_string(&path) {
                    Ok(t) => t,
                    Err(e) => {
                        errors.push(format!("{rel}: cannot read: {e}"));
                        continue;
                    }
                };
                match coderun_typescript::check_depth(&text, MAX_DEPTH)
                    .and_then(|_| coderun_typescript::transpile(&text, &rel))
                {
                    Ok(js) => {
                        out.insert(js_name(&rel), js);
                    }
                    Err(e) => {
                        let msg = e.to_string();
                        // Syntax diagnostics already start with `file:line:col`.
                        errors.push(if msg.starts_with(&rel) {
                            msg
                        } else {
                            format!("{rel}: {msg}")
                        });
                    }
                }
            }
            (out, errors)
        })
        .context("cannot start the transpile thread")?;
    let (out, errors) = handle
        .join()
        .map_err(|_| anyhow::anyhow!("the transpiler panicked"))?;
    if !errors.is_empty() {
        for e in errors {
            eprintln!("{e}");
        }
        return Ok(1);
    }
    std::fs::write(bundle, serde_json::to_vec(&out)?)
        .with_context(|| format!("cannot write {}", bundle.display()))?;
    Ok(0)
}

/// A pooled compile box: block on `fd` until a request hands over its files (the runner
/// message `{"files": [{"path", "content", "executable"}], ...}`), write them into the work
/// dir, close the fd.
fn receive_files(fd: i32) -> anyhow::Result<()> {
    use std::io::Read;
    use std::os::fd::FromRawFd;
    #[derive(serde::Deserialize)]
    struct Message {
        files: Vec<File>,
    }
    #[derive(serde::Deserialize)]
    struct File {
        path: String,
        content: String,
    }
    // SAFETY: the box set this fd up for us (the hand-off pipe); nothing else owns it.
    let mut ctl = unsafe { std::fs::File::from_raw_fd(fd) };
    let mut text = String::new();
    ctl.read_to_string(&mut text)
        .context("reading the hand-off")?;
    drop(ctl);
    let msg: Message = serde_json::from_str(&text).context("bad hand-off")?;
    for f in msg.files {
        coderun_sandbox::validate_relative_path(&f.path).map_err(anyhow::Error::msg)?;
        let path = Path::new(&f.path);
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .and_then(|mut out| std::io::Write::write_all(&mut out, f.content.as_bytes()))
            .with_context(|| format!("writing {}", f.path))?;
    }
    Ok(())
}

/// Runs the native TypeScript checker over the sources; `Some(exit code)` when it found errors
/// or is missing.
fn type_check(sources: &[PathBuf]) -> anyhow::Result<Option<i32>> {
    let root = Path::new(TYPESCRIPT_DIR);
    let tsgo = root.join("@typescript/native-preview-linux-x64/lib/tsgo");
    if !tsgo.exists() {
        eprintln!("error: type checking is not installed on this server (run scripts/setup.sh)");
        return Ok(Some(1));
    }
    let out = std::process::Command::new(&tsgo)
        .args([
            "--noEmit", "--pretty", "false", "--target", "es2022", "--module", "commonjs",
        ])
        .args(["--esModuleInterop", "--strict", "--skipLibCheck"])
        .args(["--types", "node", "--typeRoots"])
        .arg(root.join("@types"))
        .args(sources.iter().map(|p| p.strip_prefix(".").unwrap_or(p)))
        .output()
        .context("cannot run the TypeScript checker")?;
    if out.status.success() {
        return Ok(None);
    }
    eprint!("{}", String::from_utf8_lossy(&out.stdout));
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    Ok(Some(1))
}

fn js_name(ts: &str) -> String {
    for (from, to) in [(".mts", ".mjs"), (".cts", ".cjs"), (".ts", ".js")] {
        if let Some(stem) = ts.strip_suffix(from) {
            return format!("{stem}{to}");
        }
    }
    format!("{ts}.js")
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let ft = entry.file_type()?;
        if name.starts_with('.') || name == "node_modules" {
            continue;
        }
        if ft.is_dir() {
            collect(&entry.path(), out)?;
        } else if ft.is_file()
            && !name.ends_with(".d.ts")
            && (name.ends_with(".ts") || name.ends_with(".mts") || name.ends_with(".cts"))
        {
            out.push(entry.path());
        }
    }
    Ok(())
}
