//! Languages as data: one TOML file per language under `languages/`.
//!
//! A file says how to find the runtime on the host, where it appears in the box, how to
//! compile (optional) and how to run, and may set its own default limits. Adding a language is
//! adding a file; nothing else in the code names a language.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::LimitOverrides;

/// One `languages/*.toml` file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LanguageFile {
    /// Canonical name used in requests (`python`).
    pub name: String,
    /// Human name (`Python`).
    pub display_name: String,
    /// Other names accepted in requests, matched case-insensitively.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// File extensions `coderun run FILE` maps to this language.
    #[serde(default)]
    pub extensions: Vec<String>,
    /// Name of the main source file in the work dir.
    pub source_file: String,
    /// Extra files always written beside the source (e.g. a `package.json`).
    #[serde(default)]
    pub extra_files: BTreeMap<String, String>,
    /// Host runtimes this language needs, by name.
    #[serde(default)]
    pub runtimes: BTreeMap<String, RuntimeDef>,
    /// The command printing the runtime's version, run inside the sandbox.
    pub version_command: Vec<String>,
    pub compile: Option<CompileDef>,
    pub run: RunDef,
    /// Default limits of this language (between the request and the server defaults).
    #[serde(default)]
    pub limits: LimitOverrides,
    /// Directory relative runtime paths are resolved against: the parent of the languages
    /// dir (the repository or install root).
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// How to find a runtime on the host and what of it to show in the box.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeDef {
    /// Either `locate` (a host command printing the install prefix) or `path`.
    #[serde(default)]
    pub locate: Vec<String>,
    /// A host path; relative paths are resolved against the languages dir's parent.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// A missing optional runtime is simply not mounted (the feature needing it reports
    /// that it is not installed) instead of making the language unavailable.
    #[serde(default)]
    pub optional: bool,
    /// Absolute path inside the box.
    pub mount_at: PathBuf,
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompileDef {
    /// `{source}` is replaced by the source file name; `{flags}` by the request's
    /// language-specific flags (e.g. `--typecheck`).
    pub command: Vec<String>,
    /// Runtimes mounted for the compile step.
    #[serde(default)]
    pub runtimes: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The file the compiler leaves in the work dir.
    pub output: String,
    /// `binary`: an executable copied into the run box as `output`.
    /// `bundle`: a JSON object `{ "relative/path": "text" }` of files for the run box.
    #[serde(default)]
    pub output_kind: OutputKind,
    /// Flags added to the command when a request sets `typecheck: true`.
    #[serde(default)]
    pub typecheck_flags: Vec<String>,
    /// Warm compile boxes (used by requests without flags only).
    pub pool: Option<PoolDef>,
}

/// Warm boxes for a step: set up ahead of time by the backend (how is the backend's
/// business), each used once. The sizes default to the engine's `pool_min`, `pool_max` and
/// `pool_idle_s`; a table with nothing in it keeps the defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolDef {
    /// Boxes kept ready while the step is quiet.
    pub min: Option<usize>,
    /// How far the pool grows once requests drain it.
    pub max: Option<usize>,
    /// Seconds without a request before a grown pool shrinks back to `min`.
    pub idle_s: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputKind {
    #[default]
    Binary,
    Bundle,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunDef {
    /// `{source}` is replaced by the source file name; `{args}` expands to the request's args.
    pub command: Vec<String>,
    #[serde(default)]
    pub runtimes: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub pool: Option<PoolDef>,
}

#[derive(Debug, thiserror::Error)]
pub enum LanguageError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid language file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl LanguageFile {
    pub fn parse(text: &str, path: &Path) -> Result<LanguageFile, LanguageError> {
        let lang: LanguageFile = toml::from_str(text).map_err(|e| LanguageError::Invalid {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        lang.check(path)?;
        let mut lang = lang;
        lang.base_dir = path
            .parent()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        Ok(lang)
    }

    fn check(&self, path: &Path) -> Result<(), LanguageError> {
        let bad = |message: String| LanguageError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        {
            return Err(bad(format!("name {:?} must be lowercase ascii", self.name)));
        }
        coderun_sandbox::validate_relative_path(&self.source_file)
            .map_err(|m| bad(format!("source_file: {m}")))?;
        if self.run.command.is_empty() || !self.run.command[0].starts_with('/') {
            return Err(bad(
                "run.command must start with an absolute path inside the box".into(),
            ));
        }
        let mut used: Vec<&String> = self.run.runtimes.iter().collect();
        let pools = self
            .run
            .pool
            .iter()
            .chain(self.compile.iter().flat_map(|c| c.pool.iter()));
        for pool in pools {
            if let (Some(min), Some(max)) = (pool.min, pool.max) {
                if min > max {
                    return Err(bad(format!("pool.min = {min} must be <= pool.max = {max}")));
                }
            }
        }
        if let Some(c) = &self.compile {
            if c.command.is_empty() || !c.command[0].starts_with('/') {
                return Err(bad(
                    "compile.command must start with an absolute path inside the box".into(),
                ));
            }
            coderun_sandbox::validate_relative_path(&c.output)
                .map_err(|m| bad(format!("compile.output: {m}")))?;
            used.extend(c.runtimes.iter());
        }
        for name in used {
            if !self.runtimes.contains_key(name) && name != crate::SELF_RUNTIME {
                return Err(bad(format!(
                    "runtime {name:?} is used but not defined in [runtimes]"
                )));
            }
        }
        for (name, rt) in &self.runtimes {
            if rt.locate.is_empty() == rt.path.is_none() {
                return Err(bad(format!(
                    "runtimes.{name}: give exactly one of `locate` or `path`"
                )));
            }
            if !rt.mount_at.is_absolute() {
                return Err(bad(format!("runtimes.{name}.mount_at must be absolute")));
            }
        }
        Ok(())
    }

    /// Whether `name` (already lowercased) names this language.
    pub fn answers_to(&self, name: &str) -> bool {
        self.name == name || self.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
    }
}

/// Loads every `*.toml` in `dir`, sorted by name.
pub fn load_dir(dir: &Path) -> Result<Vec<LanguageFile>, LanguageError> {
    let read = |e| LanguageError::Read {
        path: dir.to_path_buf(),
        source: e,
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(read)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    let mut langs: Vec<LanguageFile> = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).map_err(|e| LanguageError::Read {
            path: path.clone(),
            source: e,
        })?;
        let lang = LanguageFile::parse(&text, &path)?;
        if let Some(other) = langs.iter().find(|l| {
            l.answers_to(&lang.name)
                || lang
                    .aliases
                    .iter()
                    .any(|a| l.answers_to(&a.to_ascii_lowercase()))
        }) {
            return Err(LanguageError::Invalid {
                path,
                message: format!("name or alias clashes with language {:?}", other.name),
            });
        }
        langs.push(lang);
    }
    Ok(langs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../languages")
    }

    #[test]
    fn shipped_languages_parse() {
        let langs = load_dir(&shipped_dir()).unwrap();
        let names: Vec<&str> = langs.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["python", "rust", "typescript"]);
        assert!(langs[0].answers_to("py") && langs[0].answers_to("python3"));
        assert!(langs[1].answers_to("rs") && langs[2].answers_to("ts"));
    }

    #[test]
    fn bad_files_are_rejected_with_the_reason() {
        let p = Path::new("x.toml");
        let base = r#"
name = "x"
display_name = "X"
source_file = "main.x"
version_command = ["/bin/x", "--version"]
[run]
command = ["/bin/x", "{source}"]
"#;
        assert!(LanguageFile::parse(base, p).is_ok());
        let unknown = format!("{base}\nbogus = 1\n");
        let err =
            LanguageFile::parse(&unknown.replace("[run]", "bogus_top = 1\n[run]"), p).unwrap_err();
        assert!(err.to_string().contains("bogus"), "{err}");
        let relative = base.replace("[\"/bin/x\", \"{source}\"]", "[\"x\"]");
        assert!(LanguageFile::parse(&relative, p)
            .unwrap_err()
            .to_string()
            .contains("absolute"));
        let missing_rt = format!("{base}runtimes = [\"nope\"]\n");
        assert!(LanguageFile::parse(&missing_rt, p)
            .unwrap_err()
            .to_string()
            .contains("nope"));
        let escape = base.replace("main.x", "../main.x");
        assert!(LanguageFile::parse(&escape, p).is_err());
    }
}
