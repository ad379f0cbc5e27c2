//! The baselines: each language's hello world run on the host without a box, with the same
//! binary and flags as its `languages/*.toml` (its `/opt/coderun/<runtime>` paths mapped back
//! to where the runtime is on the host), and the floor: the cheapest way to start the runtime
//! (`python3 -I -S -c`, `node -e`, plain `rustc` + run).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context};
use coderun_engine::LanguageFile;

use super::{log, Lang, Outcome};

/// Environment of the bare processes: like a box's, never the benchmark's own.
pub const BARE_ENV: [(&str, &str); 3] = [
    ("PATH", "/usr/local/bin:/usr/bin:/bin"),
    ("LANG", "C.UTF-8"),
    ("TMPDIR", "/tmp"),
];

/// Box paths (`mount_at`) and the host paths shown there.
#[derive(Debug, Default)]
pub struct Mounts(Vec<(String, String)>);

impl Mounts {
    pub fn new(pairs: impl IntoIterator<Item = (String, String)>) -> Mounts {
        Mounts(pairs.into_iter().collect())
    }

    /// One box path mapped to the host (the longest matching mount wins); others unchanged.
    pub fn map(&self, arg: &str) -> String {
        self.0
            .iter()
            .filter(|(target, _)| {
                arg == target
                    || arg
                        .strip_prefix(target.as_str())
                        .is_some_and(|r| r.starts_with('/'))
            })
            .max_by_key(|(target, _)| target.len())
            .map_or_else(
                || arg.to_string(),
                |(target, host)| format!("{host}{}", &arg[target.len()..]),
            )
    }

    /// A language file's command for the host: `{args}` and `{flags}` dropped (a hello world
    /// has none), `{source}` replaced by `source`, box paths mapped.
    pub fn argv(&self, command: &[String], source: &[&str]) -> Vec<String> {
        let mut out = Vec::new();
        for a in command {
            match a.as_str() {
                "{args}" | "{flags}" => {}
                "{source}" => out.extend(source.iter().map(|s| s.to_string())),
                _ => out.push(self.map(a)),
            }
        }
        out
    }

    /// A language file's environment with box paths mapped, `:`-separated lists included.
    pub fn env(&self, env: &BTreeMap<String, String>) -> Vec<(String, String)> {
        env.iter()
            .map(|(k, v)| {
                let mapped: Vec<String> = v.split(':').map(|p| self.map(p)).collect();
                (k.clone(), mapped.join(":"))
            })
            .collect()
    }
}

/// Where each runtime of these language files is on the host, found as the server finds it:
/// `locate` run on the host (its output made canonical), or `path` against the languages
/// dir's parent.
pub fn locate_runtimes(langs: &[&LanguageFile]) -> anyhow::Result<Mounts> {
    let mut found: BTreeMap<String, String> = BTreeMap::new();
    for lang in langs {
        for (name, rt) in &lang.runtimes {
            let target = rt.mount_at.to_string_lossy().into_owned();
            if found.contains_key(&target) {
                continue;
            }
            let host = match (&rt.path, rt.locate.split_first()) {
                (Some(p), _) => lang.base_dir.join(p),
                (None, Some((cmd, args))) => {
                    let out = Command::new(cmd)
                        .args(args)
                        .stdin(Stdio::null())
                        .output()
                        .with_context(|| format!("runtime {name}: cannot run {cmd}"))?;
                    if !out.status.success() {
                        bail!(
                            "runtime {name}: `{}` failed: {}",
                            rt.locate.join(" "),
                            String::from_utf8_lossy(&out.stderr).trim()
                        );
                    }
                    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
                    std::fs::canonicalize(&text)
                        .with_context(|| format!("runtime {name}: {text}"))?
                }
                (None, None) => continue,
            };
            found.insert(target, host.to_string_lossy().into_owned());
        }
    }
    Ok(Mounts::new(found))
}

/// A process to start: argv, environment (on top of nothing), working dir.
pub struct Cmd {
    pub argv: Vec<String>,
    env: Vec<(String, String)>,
    cwd: Option<PathBuf>,
}

impl Cmd {
    fn new(argv: Vec<String>, extra_env: Vec<(String, String)>, cwd: Option<PathBuf>) -> Cmd {
        let mut env: Vec<(String, String)> = BARE_ENV
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.extend(extra_env);
        Cmd { argv, env, cwd }
    }

    /// Runs to completion; Ok with stdout when it exited 0.
    fn run(&self, cwd: Option<&Path>) -> Result<Vec<u8>, String> {
        let Some((prog, args)) = self.argv.split_first() else {
            return Err("empty command".into());
        };
        let mut c = Command::new(prog);
        c.args(args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        if let Some(d) = cwd.or(self.cwd.as_deref()) {
            c.current_dir(d);
        }
        let out = c.output().map_err(|e| format!("spawn: {:?}", e.kind()))?;
        match out.status.code() {
            Some(0) => Ok(out.stdout),
            Some(code) => Err(format!("exit {code}")),
            None => Err("killed by a signal".into()),
        }
    }

    /// The command as a label: the program's file name and its flags.
    fn shown(&self, drop_last: usize) -> String {
        let n = self.argv.len().saturating_sub(drop_last);
        self.argv
            .iter()
            .take(n)
            .enumerate()
            .map(|(i, a)| {
                if i == 0 {
                    Path::new(a)
                        .file_name()
                        .map_or(a.clone(), |f| f.to_string_lossy().into_owned())
                } else {
                    a.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn first(argv: &[String], what: &str) -> anyhow::Result<String> {
    argv.first()
        .cloned()
        .with_context(|| format!("{what} is empty"))
}

fn expect(lang: Lang, out: Result<Vec<u8>, String>) -> Outcome {
    let stdout = out?;
    if stdout == lang.expected().as_bytes() {
        Ok(())
    } else {
        Err("wrong output".into())
    }
}

/// The bare runtimes and the floors, ready to run.
pub struct Bare {
    work: PathBuf,
    python: Cmd,
    python_floor: Cmd,
    typescript: Cmd,
    typescript_floor: Cmd,
    rust_compile: Cmd,
    rust_output: String,
    rust_floor_compile: Cmd,
    bin_true: Cmd,
}

impl Bare {
    /// Reads python, typescript and rust from `langdir`; `coderun` (the benchmark's copy of
    /// the binary) transpiles the TypeScript hello world, so node runs exactly what it runs
    /// in a box.
    pub fn new(langdir: &Path, work: &Path, coderun: &Path) -> anyhow::Result<Bare> {
        let load = |name: &str| -> anyhow::Result<LanguageFile> {
            let path = langdir.join(format!("{name}.toml"));
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Ok(LanguageFile::parse(&text, &path)?)
        };
        let (py, ts, rs) = (load("python")?, load("typescript")?, load("rust")?);
        let mounts = locate_runtimes(&[&py, &ts, &rs])?;

        // Python: the real binary (not a symlink), the run flags, -c instead of a file.
        let mut argv = mounts.argv(&py.run.command, &["-c", Lang::Python.hello()]);
        if let Some(first) = argv.first_mut() {
            if let Ok(real) = std::fs::canonicalize(&*first) {
                *first = real.to_string_lossy().into_owned();
            }
        }
        let python_bin = first(&argv, "python.toml's run.command")?;
        let python_floor = Cmd::new(
            vec![
                python_bin,
                "-I".into(),
                "-S".into(),
                "-c".into(),
                Lang::Python.hello().into(),
            ],
            Vec::new(),
            None,
        );
        let python = Cmd::new(argv, mounts.env(&py.run.env), None);

        // TypeScript: node on the file coderun's transpiler writes, beside extra_files.
        let ts_dir = work.join("ts");
        std::fs::create_dir_all(&ts_dir)?;
        for (name, content) in &ts.extra_files {
            std::fs::write(ts_dir.join(name), content)?;
        }
        std::fs::write(ts_dir.join("main.js"), transpile(work, coderun)?)?;
        let typescript = Cmd::new(
            mounts.argv(&ts.run.command, &[]),
            mounts.env(&ts.run.env),
            Some(ts_dir),
        );
        let typescript_floor = Cmd::new(
            vec![
                first(&typescript.argv, "typescript.toml's run.command")?,
                "-e".into(),
                "const who = \"World\"; console.log(`Hello, ${who}!`);".into(),
            ],
            Vec::new(),
            None,
        );

        // Rust: rustc with the compile step's flags, then the binary; the floor is plain rustc.
        let Some(compile) = &rs.compile else {
            bail!("languages/rust.toml has no [compile] step");
        };
        let rust_compile = Cmd::new(
            mounts.argv(&compile.command, &["main.rs"]),
            mounts.env(&compile.env),
            None,
        );
        let rust_floor_compile = Cmd::new(
            vec![
                first(&rust_compile.argv, "rust.toml's compile.command")?,
                "main.rs".into(),
                "-o".into(),
                "plain".into(),
            ],
            Vec::new(),
            None,
        );
        Ok(Bare {
            work: work.to_path_buf(),
            python,
            python_floor,
            typescript,
            typescript_floor,
            rust_compile,
            rust_output: compile.output.clone(),
            rust_floor_compile,
            bin_true: Cmd::new(vec!["/bin/true".into()], Vec::new(), None),
        })
    }

    /// The label of a language's bare row and of its floor row.
    pub fn labels(&self, lang: Lang) -> (String, String) {
        match lang {
            Lang::Python => (
                format!(
                    "bare: {} (coderun's binary and flags)",
                    self.python.shown(1)
                ),
                format!("floor: {}", self.python_floor.shown(1)),
            ),
            Lang::TypeScript => (
                format!("bare: {} (the transpiled file)", self.typescript.shown(0)),
                "floor: node -e".into(),
            ),
            Lang::Rust => (
                "bare: rustc (rust.toml flags) + run".into(),
                "floor: rustc main.rs + run".into(),
            ),
            Lang::True => ("bare: /bin/true".into(), String::new()),
        }
    }

    /// The same binary and flags as coderun; `worker` keeps concurrent Rust compiles apart.
    pub fn bare(&self, lang: Lang, worker: usize) -> Outcome {
        match lang {
            Lang::Python => expect(lang, self.python.run(None)),
            Lang::TypeScript => expect(lang, self.typescript.run(None)),
            Lang::Rust => {
                let dir = self.rust_dir(worker)?;
                self.rust_compile.run(Some(&dir))?;
                expect(lang, self.run_binary(&dir, &self.rust_output))
            }
            Lang::True => expect(lang, self.bin_true.run(None)),
        }
    }

    /// The cheapest start of the runtime.
    pub fn floor(&self, lang: Lang, worker: usize) -> Outcome {
        match lang {
            Lang::Python => expect(lang, self.python_floor.run(None)),
            Lang::TypeScript => expect(lang, self.typescript_floor.run(None)),
            Lang::Rust => {
                let dir = self.rust_dir(worker)?;
                self.rust_floor_compile.run(Some(&dir))?;
                expect(lang, self.run_binary(&dir, "plain"))
            }
            Lang::True => self.bare(lang, worker),
        }
    }

    fn run_binary(&self, dir: &Path, name: &str) -> Result<Vec<u8>, String> {
        Cmd::new(
            vec![dir.join(name).to_string_lossy().into_owned()],
            Vec::new(),
            None,
        )
        .run(Some(dir))
    }

    /// A dir per worker thread with main.rs, so concurrent compiles do not share files.
    fn rust_dir(&self, worker: usize) -> Result<PathBuf, String> {
        let dir = self.work.join(format!("rust-{worker}"));
        let main = dir.join("main.rs");
        if !main.exists() {
            std::fs::create_dir_all(&dir)
                .and_then(|()| std::fs::write(&main, Lang::Rust.hello()))
                .map_err(|e| format!("cannot write {}: {e}", main.display()))?;
        }
        Ok(dir)
    }
}

/// The JavaScript coderun gives node for the TypeScript hello world: its own transpiler, run
/// on the host in a scratch dir.
fn transpile(work: &Path, coderun: &Path) -> anyhow::Result<String> {
    let dir = work.join("transpile");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("main.ts"), Lang::TypeScript.hello())?;
    let status = Command::new(coderun)
        .args(["transpile-ts", "--bundle", "out.json"])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let js = std::fs::read_to_string(dir.join("out.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v.get("main.js")?.as_str().map(str::to_string));
    match (status, js) {
        (Ok(s), Some(js)) if s.success() => Ok(js),
        _ => {
            log("note: coderun transpile-ts failed; bare node runs hand-written JavaScript");
            Ok("\"use strict\";\nconst who = \"World\";\nconsole.log(`Hello, ${who}!`);\n".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PYTHON: &str = r#"
name = "python"
display_name = "Python"
source_file = "main.py"
version_command = ["/opt/coderun/python/bin/python3", "--version"]

[runtimes.python]
locate = ["python3", "-c", "import sys; print(sys.base_prefix)"]
mount_at = "/opt/coderun/python"

[run]
command = ["/opt/coderun/python/bin/python3", "-E", "-s", "-u", "-B", "{source}", "{args}"]
runtimes = ["python"]
env = { LD_LIBRARY_PATH = "/opt/coderun/python/lib", PATH = "/opt/coderun/python/bin:/usr/bin" }
"#;

    #[test]
    fn a_language_files_command_maps_back_to_the_host() {
        let lang = LanguageFile::parse(PYTHON, Path::new("/repo/languages/python.toml"))
            .expect("valid language file");
        let mounts = Mounts::new([
            ("/opt/coderun/python".into(), "/usr/local/py".into()),
            ("/opt/coderun/pythonic".into(), "/elsewhere".into()),
        ]);
        assert_eq!(
            mounts.argv(&lang.run.command, &["-c", "print(1)"]),
            [
                "/usr/local/py/bin/python3",
                "-E",
                "-s",
                "-u",
                "-B",
                "-c",
                "print(1)"
            ]
        );
        assert_eq!(
            mounts.env(&lang.run.env),
            [
                (
                    "LD_LIBRARY_PATH".to_string(),
                    "/usr/local/py/lib".to_string()
                ),
                ("PATH".to_string(), "/usr/local/py/bin:/usr/bin".to_string()),
            ]
        );
        // Only whole path components match; the longest mount wins; other paths stay.
        assert_eq!(mounts.map("/opt/coderun/python3"), "/opt/coderun/python3");
        assert_eq!(mounts.map("/opt/coderun/pythonic/x"), "/elsewhere/x");
        assert_eq!(mounts.map("/opt/coderun/python"), "/usr/local/py");
        assert_eq!(mounts.map("/work/main"), "/work/main");
    }

    #[test]
    fn the_shipped_language_files_map_to_real_host_commands() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../languages");
        let load = |n: &str| {
            let p = dir.join(format!("{n}.toml"));
            let text = std::fs::read_to_string(&p).expect("language file");
            LanguageFile::parse(&text, &p).expect("valid language file")
        };
        let rust = load("rust");
        let mounts = Mounts::new([("/opt/coderun/rust".into(), "/sysroot".into())]);
        let compile = rust.compile.as_ref().expect("rust compiles");
        let argv = mounts.argv(&compile.command, &["main.rs"]);
        assert_eq!(argv.first().map(String::as_str), Some("/sysroot/bin/rustc"));
        assert_eq!(argv.last().map(String::as_str), Some("main.rs"));
        assert!(argv
            .iter()
            .all(|a| !a.starts_with("/opt/coderun/") && !a.contains('{')));
    }
}
