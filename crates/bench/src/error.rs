//! What can stop a benchmark run, one variant per step that can fail.

use std::path::PathBuf;

use coderun_engine::language::LanguageError;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("--runs must be at least 1")]
    NoRuns,
    #[error(
        "no languages dir with language files (looked in {looked}); run from the repository root or pass --languages-dir"
    )]
    NoLanguagesDir { looked: String },
    #[error(transparent)]
    Language(#[from] LanguageError),
    #[error("no language to measure: {reason}")]
    NothingToMeasure { reason: String },
    /// A file or directory of the benchmark's own (its temp dir, the binary's copy).
    #[error("{what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot build the HTTP client")]
    HttpClient(#[source] reqwest::Error),
    /// A server the benchmark started, or the one given with --url.
    #[error("server {tag}: {message}")]
    Server { tag: String, message: String },
    /// A hello world that did not come back as one: a latency of something else is no latency.
    #[error("{phase} {case:?} failed: {error}")]
    Case {
        phase: &'static str,
        case: String,
        error: String,
    },
}

impl BenchError {
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        BenchError::Io {
            what,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn server(tag: &str, message: impl Into<String>) -> Self {
        BenchError::Server {
            tag: tag.to_string(),
            message: message.into(),
        }
    }
}
