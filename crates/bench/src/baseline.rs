//! The baselines: each language's hello world run on the host without a box, with the same
//! binary and flags as its language file (the box paths, `/opt/coderun/<runtime>`, mapped
//! back to where each runtime is on the host, `/work` to a scratch dir), and the floor: the
//! cheapest way to start the runtime (from the bench data, e.g. `python3 -I -S -c`).
//!
//! A compiled language's bare row runs its compile step once ahead and times only the run
//! step (node on the transpiled files), unless its bench data says to compile every time
//! (`rustc` + run: the compiler is the runtime a client would start).

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};

use coderun_engine::language::OutputKind;
use coderun_engine::LanguageFile;

use crate::langs::Lang;
use crate::Outcome;

/// Environment of the bare processes: like a box's, never the benchmark's own.
pub const BARE_ENV: [(&str, &str); 3] = [
    ("PATH", "/usr/local/bin:/usr/bin:/bin"),
    ("LANG", "C.UTF-8"),
    ("TMPDIR", "/tmp"),
];

/// In a command, the scratch dir it runs in (a box's `/work`).
const DIR: &str = "{dir}";

/// Box paths (`mount_at`) and the host paths shown there.
#[derive(Debug, Default, Clone)]
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

/// Where each runtime of a language file is on the host, found as the server finds it:
/// `locate` run on the host (its output made canonical), or `path` against the languages
/// dir's parent. A missing optional runtime is left out, as the server leaves it out.
pub fn locate_runtimes(lang: &LanguageFile) -> Result<Vec<(String, String)>, String> {
    let mut found = Vec::new();
    for (name, rt) in &lang.runtimes {
        let host = match (&rt.path, rt.locate.split_first()) {
            (Some(p), _) => Ok(lang.base_dir.join(p)),
            (None, Some((cmd, args))) => {
                locate(cmd, args).map_err(|e| format!("runtime {name}: {e}"))
            }
            (None, None) => continue,
        };
        match host {
            Ok(host) => found.push((
                rt.mount_at.to_string_lossy().into_owned(),
                host.to_string_lossy().into_owned(),
            )),
            Err(_) if rt.optional => {}
            Err(e) => return Err(e),
        }
    }
    Ok(found)
}

fn locate(cmd: &str, args: &[String]) -> Result<PathBuf, String> {
    let out = Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {cmd}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`{cmd} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    std::fs::canonicalize(&text).map_err(|e| format!("{text}: {e}"))
}

/// A process to start: argv and environment (on top of nothing); `{dir}` in either is the
/// dir it runs in.
pub struct Cmd {
    pub argv: Vec<String>,
    env: Vec<(String, String)>,
}

impl Cmd {
    fn new(mut argv: Vec<String>, extra_env: Vec<(String, String)>) -> Cmd {
        // The real binary, not a symlink to it (`python3.11`, not `python3`).
        if let Some(first) = argv.first_mut().filter(|a| a.starts_with('/')) {
            if let Ok(real) = std::fs::canonicalize(&*first) {
                *first = real.to_string_lossy().into_owned();
            }
        }
        let mut env: Vec<(String, String)> = BARE_ENV
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.extend(extra_env);
        Cmd { argv, env }
    }

    /// Runs to completion in `dir`; Ok with stdout when it exited 0.
    fn run(&self, dir: &Path) -> Result<Vec<u8>, String> {
        let d = dir.to_string_lossy();
        let fill = |s: &String| s.replace(DIR, &d);
        let Some((prog, args)) = self.argv.split_first() else {
            return Err("empty command".into());
        };
        let out = Command::new(fill(prog))
            .args(args.iter().map(fill))
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, fill(v))))
            .stdin(Stdio::null())
            .current_dir(dir)
            .output()
            .map_err(|e| format!("spawn: {:?}", e.kind()))?;
        match out.status.code() {
            Some(0) => Ok(out.stdout),
            Some(code) => Err(format!("exit {code}")),
            None => Err("killed by a signal".into()),
        }
    }

    /// The command as a label: the program's file name and its arguments.
    fn shown(&self) -> String {
        self.argv
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let a = a.strip_prefix("{dir}/").unwrap_or(a);
                if i == 0 {
                    file_name(a)
                } else {
                    a.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn file_name(path: &str) -> String {
    Path::new(path)
        .file_name()
        .map_or(path.to_string(), |f| f.to_string_lossy().into_owned())
}

/// A relative path with no `..`: a file name a language file or a compiler's bundle may use.
fn is_plain_relative(name: &str) -> bool {
    let p = Path::new(name);
    !name.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)))
}

/// A language's hello world, ready to run bare.
struct Baseline {
    expected: &'static str,
    /// Where files go: `<work>/bare-<name>` (ready once), `-<worker>` dirs beside it.
    root: PathBuf,
    source_file: String,
    hello: &'static str,
    extra_files: BTreeMap<String, String>,
    /// The compile step, run before each run step when `compile_each_time`.
    compile: Option<(Cmd, OutputKind, String)>,
    compile_each_time: bool,
    run: Cmd,
    label: String,
    /// The floor's commands and label, for languages with bench data.
    floor: Option<(Vec<Cmd>, String)>,
}

impl Baseline {
    fn new(lang: &Lang, work: &Path, coderun: &Path) -> Result<Baseline, String> {
        let file = &lang.file;
        let mut mounts = locate_runtimes(file)?;
        // The coderun binary (a compile step may be coderun itself) and the work dir.
        if let Some(bin) = coderun.parent() {
            mounts.push((
                "/opt/coderun/bin".into(),
                bin.to_string_lossy().into_owned(),
            ));
        }
        mounts.push(("/work".into(), DIR.into()));
        let mounts = Mounts::new(mounts);
        let source = file.source_file.as_str();
        let run = Cmd::new(
            mounts.argv(&file.run.command, &[source]),
            mounts.env(&file.run.env),
        );
        let compile = file.compile.as_ref().map(|c| {
            (
                Cmd::new(mounts.argv(&c.command, &[source]), mounts.env(&c.env)),
                c.output_kind,
                c.output.clone(),
            )
        });
        let compile_each_time = lang.data.is_some_and(|d| d.bare_compiles_each_time);
        let label = match (&compile, compile_each_time) {
            _ if lang.is_box => "bare: /bin/true".to_string(),
            (None, _) => format!("bare: {} (coderun's binary and flags)", run.shown()),
            (Some(_), false) => format!(
                "bare: {} (the compile step's output, compiled once ahead)",
                run.shown()
            ),
            (Some((c, _, _)), true) => format!(
                "bare: {} ({}.toml flags) + run",
                c.argv.first().map_or("?".into(), |p| file_name(p)),
                file.name
            ),
        };
        let program = |cmd: Option<&Cmd>| {
            cmd.and_then(|c| c.argv.first())
                .cloned()
                .unwrap_or_default()
        };
        let (run_prog, compile_prog) = (
            program(Some(&run)),
            program(compile.as_ref().map(|(c, _, _)| c)),
        );
        let floor = lang.data.map(|d| {
            let fill = |s: &str| {
                s.replace("{run}", &run_prog)
                    .replace("{compile}", &compile_prog)
                    .replace("{source}", source)
            };
            let commands = d
                .floor
                .commands
                .iter()
                .map(|argv| Cmd::new(argv.iter().map(|a| fill(a)).collect(), Vec::new()))
                .collect();
            let label = d
                .floor
                .label
                .replace("{run}", &file_name(&run_prog))
                .replace("{compile}", &file_name(&compile_prog));
            (commands, format!("floor: {label}"))
        });
        for name in file.extra_files.keys() {
            if !is_plain_relative(name) {
                return Err(format!("extra file {name:?} is not a relative path"));
            }
        }
        let b = Baseline {
            expected: lang.expected(),
            root: work.join(format!("bare-{}", file.name)),
            source_file: file.source_file.clone(),
            hello: lang.hello(),
            extra_files: file.extra_files.clone(),
            compile,
            compile_each_time,
            run,
            label,
            floor,
        };
        // Ready once: the files, and the compile step's output unless it runs every time.
        b.prepare(&b.root)?;
        if !b.compile_each_time {
            b.compile_in(&b.root)
                .map_err(|e| format!("the compile step on the host: {e}"))?;
        }
        Ok(b)
    }

    /// The source and the extra files in `dir` (once).
    fn prepare(&self, dir: &Path) -> Result<(), String> {
        let main = dir.join(&self.source_file);
        if main.exists() {
            return Ok(());
        }
        let files = self
            .extra_files
            .iter()
            .map(|(n, c)| (n.as_str(), c.as_str()))
            .chain([(self.source_file.as_str(), self.hello)]);
        for (name, content) in files {
            write_file(&dir.join(name), content)?;
        }
        Ok(())
    }

    /// Runs the compile step in `dir` and leaves its output there as the run step expects
    /// it: a binary as is, a bundle unpacked into its files.
    fn compile_in(&self, dir: &Path) -> Result<(), String> {
        let Some((cmd, kind, output)) = &self.compile else {
            return Ok(());
        };
        cmd.run(dir)?;
        if *kind == OutputKind::Bundle {
            let path = dir.join(output);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let files: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&text).map_err(|e| format!("bundle {output}: {e}"))?;
            for (name, content) in files {
                let Some(content) = content.as_str().filter(|_| is_plain_relative(&name)) else {
                    return Err(format!("bundle {output}: bad entry {name:?}"));
                };
                write_file(&dir.join(&name), content)?;
            }
        }
        Ok(())
    }

    fn expect(&self, out: Result<Vec<u8>, String>) -> Result<(), String> {
        if out? == self.expected.as_bytes() {
            Ok(())
        } else {
            Err("wrong output".into())
        }
    }

    /// A dir per worker thread, so concurrent compiles do not share files.
    fn worker_dir(&self, kind: &str, worker: usize) -> Result<PathBuf, String> {
        let dir = self.root.with_file_name(format!(
            "{}-{kind}-{worker}",
            self.root
                .file_name()
                .map_or("bare".into(), |n| n.to_string_lossy())
        ));
        self.prepare(&dir)?;
        Ok(dir)
    }

    fn bare(&self, worker: usize) -> Result<(), String> {
        if !self.compile_each_time {
            return self.expect(self.run.run(&self.root));
        }
        let dir = self.worker_dir("each", worker)?;
        self.compile_in(&dir)?;
        self.expect(self.run.run(&dir))
    }

    fn floor(&self, worker: usize) -> Result<(), String> {
        let Some((commands, _)) = &self.floor else {
            return self.bare(worker);
        };
        let dir = self.worker_dir("floor", worker)?;
        let mut last = Ok(Vec::new());
        for cmd in commands {
            last = Ok(cmd.run(&dir)?);
        }
        self.expect(last)
    }
}

fn write_file(path: &Path, content: &str) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    std::fs::write(path, content).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The bare runtimes and the floors of the languages measured, ready to run.
pub struct Bare {
    langs: BTreeMap<String, Baseline>,
}

impl Bare {
    /// Prepares each language's baseline; `coderun` (the benchmark's copy of the binary) is
    /// what a compile step that runs coderun itself (the TypeScript transpiler) runs. A
    /// language whose baseline cannot be set up is returned with the reason, not measured.
    pub fn new(langs: &[&Lang], work: &Path, coderun: &Path) -> (Bare, Vec<(String, String)>) {
        let mut ready = BTreeMap::new();
        let mut failed = Vec::new();
        for lang in langs {
            match Baseline::new(lang, work, coderun) {
                Ok(b) => {
                    ready.insert(lang.name().to_string(), b);
                }
                Err(e) => failed.push((lang.name().to_string(), format!("bare baseline: {e}"))),
            }
        }
        (Bare { langs: ready }, failed)
    }

    fn get(&self, lang: &str) -> Result<&Baseline, String> {
        self.langs
            .get(lang)
            .ok_or_else(|| format!("no baseline for {lang}"))
    }

    /// The label of a language's bare row and of its floor row (None without a floor).
    pub fn labels(&self, lang: &str) -> (String, Option<String>) {
        match self.langs.get(lang) {
            Some(b) => (b.label.clone(), b.floor.as_ref().map(|(_, l)| l.clone())),
            None => (format!("bare: {lang}"), None),
        }
    }

    /// The same binary and flags as coderun; `worker` keeps concurrent compiles apart.
    pub fn bare(&self, lang: &str, worker: usize) -> Outcome {
        self.get(lang)?.bare(worker).map(|()| None)
    }

    /// The cheapest start of the runtime.
    pub fn floor(&self, lang: &str, worker: usize) -> Outcome {
        self.get(lang)?.floor(worker).map(|()| None)
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

    /// A shell "language" whose hello world is a shell script.
    const SHELL: crate::langs::BenchData = crate::langs::BenchData {
        name: "sh",
        hello: "echo Hello, World!",
        comment: "#",
        bare_compiles_each_time: false,
        floor: crate::langs::Floor {
            label: "{run} -c",
            commands: &[&["{run}", "-c", "cat {source} >/dev/null; echo Hello, World!"]],
        },
    };

    fn shell_lang(toml: &str, each_time: bool) -> Lang {
        static EACH_TIME: crate::langs::BenchData = crate::langs::BenchData {
            bare_compiles_each_time: true,
            ..SHELL
        };
        Lang {
            file: LanguageFile::parse(toml, Path::new("/repo/languages/sh.toml"))
                .expect("valid language file"),
            data: Some(if each_time { &EACH_TIME } else { &SHELL }),
            is_box: false,
        }
    }

    const HEADER: &str = "name = \"sh\"\ndisplay_name = \"sh\"\nsource_file = \"main.sh\"\nversion_command = [\"/bin/sh\"]\n";

    #[test]
    fn a_bundle_is_compiled_once_and_unpacked_for_the_run_step() {
        let work = tempfile::tempdir().expect("temp dir");
        let toml = format!(
            r#"{HEADER}
[compile]
command = ["/bin/sh", "-c", '''printf '{{"lib/run.sh": "%s"}}' "$(cat main.sh)" > out.json''']
output = "out.json"
output_kind = "bundle"
[run]
command = ["/bin/sh", "lib/run.sh", "{{args}}"]
"#
        );
        let lang = shell_lang(&toml, false);
        let (bare, failed) = Bare::new(&[&lang], work.path(), Path::new("/nowhere/coderun"));
        assert!(failed.is_empty(), "{failed:?}");
        assert!(work.path().join("bare-sh/lib/run.sh").is_file());
        bare.bare("sh", 0)
            .expect("the unpacked script prints the hello world");
        bare.floor("sh", 1)
            .expect("the floor prints the hello world");
        let (label, floor) = bare.labels("sh");
        // (/bin/sh is shown as the binary it links to, e.g. dash.)
        assert!(
            label.ends_with(" lib/run.sh (the compile step's output, compiled once ahead)"),
            "{label}"
        );
        assert!(floor.is_some_and(|f| f.starts_with("floor: ") && f.ends_with(" -c")));
    }

    #[test]
    fn a_binary_compiled_each_time_runs_from_the_work_dir() {
        let work = tempfile::tempdir().expect("temp dir");
        let toml = format!(
            "{HEADER}[compile]\ncommand = [\"/bin/cp\", \"{{source}}\", \"prog\"]\noutput = \"prog\"\n[run]\ncommand = [\"/bin/sh\", \"/work/prog\"]\n"
        );
        let lang = shell_lang(&toml, true);
        let (bare, failed) = Bare::new(&[&lang], work.path(), Path::new("/nowhere/coderun"));
        assert!(failed.is_empty(), "{failed:?}");
        bare.bare("sh", 3)
            .expect("compiled and run in the worker's dir");
        assert!(work.path().join("bare-sh-each-3/prog").is_file());
        assert_eq!(bare.labels("sh").0, "bare: cp (sh.toml flags) + run");
        // A wrong output is an error, not a run.
        std::fs::write(work.path().join("bare-sh-each-3/main.sh"), "echo other").expect("write");
        assert_eq!(bare.bare("sh", 3), Err("wrong output".to_string()));
    }

    #[test]
    fn a_language_whose_compile_step_fails_is_not_measured() {
        let work = tempfile::tempdir().expect("temp dir");
        let toml = format!(
            "{HEADER}[compile]\ncommand = [\"/bin/false\"]\noutput = \"x\"\n[run]\ncommand = [\"/bin/sh\", \"x\"]\n"
        );
        let lang = shell_lang(&toml, false);
        let (bare, failed) = Bare::new(&[&lang], work.path(), Path::new("/nowhere/coderun"));
        assert_eq!(failed.len(), 1);
        assert!(failed[0].1.contains("compile step"), "{}", failed[0].1);
        assert!(bare.bare("sh", 0).is_err());
    }

    #[test]
    fn the_python_baseline_runs_on_this_host() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../languages");
        let files = coderun_engine::language::load_dir(&dir).expect("the shipped language files");
        let selection = crate::langs::select(files);
        let python: Vec<&Lang> = selection
            .langs
            .iter()
            .filter(|l| l.name() == "python")
            .collect();
        let work = tempfile::tempdir().expect("temp dir");
        let (bare, failed) = Bare::new(&python, work.path(), Path::new("/nowhere/coderun"));
        assert!(failed.is_empty(), "{failed:?}");
        bare.bare("python", 0)
            .expect("bare python prints the hello world");
        bare.floor("python", 0)
            .expect("the floor prints the hello world");
        let (label, floor) = bare.labels("python");
        assert!(label.contains(" -E -s -u -B main.py"), "{label}");
        assert!(floor.is_some_and(|f| f.ends_with(" -I -S -c")));
    }
}
