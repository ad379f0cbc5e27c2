//! The service's configuration: a TOML file (`--config` or `CODERUN_CONFIG`), then
//! environment overrides `CODERUN_<SECTION>_<KEY>` (e.g. `CODERUN_ENGINE_MEMORY_MB=256`,
//! `CODERUN_SERVER_LISTEN=0.0.0.0:8000`), then command-line flags. Every section and key is
//! optional; an unknown key — in the file or in the environment — is an error that names it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use coderun_engine::EngineConfig;
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub engine: EngineConfig,
    pub sandbox: SandboxConfig,
    pub auth: coderun_api::guard::AuthConfig,
    pub rate_limit: coderun_api::guard::RateLimitConfig,
    pub cors: coderun_api::guard::CorsConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub body_limit_bytes: usize,
    /// On SIGTERM/SIGINT, how long in-flight runs may go on before they are killed.
    pub shutdown_grace_s: u64,
    /// Seconds a client has to send its request headers (slow clients are cut off).
    pub header_read_timeout_s: u64,
    /// Log lines as human-readable text (`pretty`) or one JSON object per line (`json`).
    pub log_format: LogFormat,
    /// Longest a request may take before a 504; 0 = the longest legitimate request
    /// (maximum run timeout + compile timeout + 120 s of queueing).
    pub request_deadline_s: u64,
    /// Directory of language files; unset: `./languages`, then next to the binary's repo,
    /// then the copies built into the binary.
    pub languages_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxConfig {
    pub state_dir: PathBuf,
    pub data_dir: PathBuf,
    /// uid slot locks; keep it the same for every instance on a host.
    pub uid_lock_dir: PathBuf,
    pub uid_base: u32,
    pub uid_slots: u32,
    /// A seccomp policy file replacing the built-in one.
    pub seccomp_policy: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            body_limit_bytes: coderun_api::DEFAULT_BODY_LIMIT,
            shutdown_grace_s: 30,
            request_deadline_s: 0,
            log_format: LogFormat::Pretty,
            header_read_timeout_s: 10,
            languages_dir: None,
        }
    }
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            state_dir: "/run/coderun".into(),
            data_dir: "/var/lib/coderun".into(),
            uid_lock_dir: "/run/coderun/uids".into(),
            uid_base: 1_500_000,
            uid_slots: 4096,
            seccomp_policy: None,
        }
    }
}

/// Sections an environment override may name.
const SECTIONS: [&str; 6] = ["server", "engine", "sandbox", "auth", "rate", "cors"];
/// `CODERUN_*` variables that are not config keys.
const NOT_KEYS: [&str; 4] = [
    "CODERUN_CONFIG",
    "CODERUN_LOG",
    "CODERUN_SOAK_RUNS",
    "CODERUN_TEST_VERBOSE",
];

impl Config {
    /// The file (if any) with the process environment's overrides applied.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        Config::load_with_env(path, std::env::vars())
    }

    pub fn load_with_env(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Config> {
        let (mut table, origin) = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?;
                let table: toml::Table = toml::from_str(&text)
                    .with_context(|| format!("invalid config file {}", path.display()))?;
                (table, format!("config file {}", path.display()))
            }
            None => (toml::Table::new(), "configuration".to_string()),
        };
        let mut overridden = Vec::new();
        for (name, value) in env {
            let Some(rest) = name.strip_prefix("CODERUN_") else {
                continue;
            };
            if NOT_KEYS.contains(&name.as_str()) || name.starts_with("CODERUN_TEST") {
                continue;
            }
            let lower = rest.to_ascii_lowercase();
            // `rate_limit` is the one section name with an underscore.
            let lower = lower.replacen("rate_limit_", "rate_", 1);
            let Some((section, key)) = lower.split_once('_') else {
                anyhow::bail!("environment variable {name}: expected CODERUN_<SECTION>_<KEY> with SECTION one of {}", SECTIONS.join(", "));
            };
            if !SECTIONS.contains(&section) {
                anyhow::bail!(
                    "environment variable {name}: unknown section {section:?}; sections: {}",
                    SECTIONS.join(", ")
                );
            }
            // A value is read as TOML when it parses (numbers, booleans, arrays), else as text.
            let parsed = format!("v = {value}")
                .parse::<toml::Table>()
                .ok()
                .and_then(|mut t| t.remove("v"))
                .unwrap_or_else(|| toml::Value::String(value.clone()));
            let section = if section == "rate" {
                "rate_limit"
            } else {
                section
            };
            let entry = table
                .entry(section.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let Some(section_table) = entry.as_table_mut() else {
                anyhow::bail!("{origin}: [{section}] is not a table");
            };
            section_table.insert(key.to_string(), parsed);
            overridden.push(name);
        }
        let origin = if overridden.is_empty() {
            origin
        } else {
            format!("{origin} with {}", overridden.join(", "))
        };
        let cfg: Config = toml::Value::Table(table)
            .try_into()
            .with_context(|| format!("invalid {origin}"))?;
        cfg.engine
            .validate()
            .map_err(|m| anyhow::anyhow!("invalid {origin}: engine: {m}"))?;
        let mut linux = coderun_sandbox_linux::LinuxConfig::with_defaults(PathBuf::new());
        linux.uid_base = cfg.sandbox.uid_base;
        linux.uid_slots = cfg.sandbox.uid_slots;
        linux
            .validate()
            .map_err(|m| anyhow::anyhow!("invalid {origin}: {m}"))?;
        coderun_api::guard::Guard::new(&cfg.auth, &cfg.rate_limit)
            .map_err(|m| anyhow::anyhow!("invalid {origin}: {m}"))?;
        coderun_api::guard::cors(&cfg.cors)
            .map_err(|m| anyhow::anyhow!("invalid {origin}: {m}"))?;
        Ok(cfg)
    }

    /// The request deadline: configured, or the longest legitimate request plus queueing.
    pub fn request_deadline(&self) -> std::time::Duration {
        let s = if self.server.request_deadline_s > 0 {
            self.server.request_deadline_s
        } else {
            (self.engine.max_wall_time_ms + self.engine.compile_wall_time_ms) / 1000 + 120
        };
        std::time::Duration::from_secs(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn environment_overrides_the_file_and_unknown_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "[engine]\nmemory_mb = 200\nqueue = 3\n").unwrap();
        let cfg = Config::load_with_env(
            Some(&file),
            env(&[
                ("CODERUN_ENGINE_MEMORY_MB", "256"),
                ("CODERUN_SERVER_LISTEN", "0.0.0.0:9000"),
                ("CODERUN_LOG", "debug"),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.engine.memory_mb, 256);
        assert_eq!(cfg.engine.queue, 3);
        assert_eq!(cfg.server.listen.to_string(), "0.0.0.0:9000");

        std::fs::write(&file, "[engine]\nmemroy_mb = 1\n").unwrap();
        let err = format!(
            "{:#}",
            Config::load_with_env(Some(&file), env(&[])).unwrap_err()
        );
        assert!(err.contains("memroy_mb"), "{err}");
        let err = format!(
            "{:#}",
            Config::load_with_env(None, env(&[("CODERUN_ENGINE_NOPE", "1")])).unwrap_err()
        );
        assert!(
            err.contains("nope") && err.contains("CODERUN_ENGINE_NOPE"),
            "{err}"
        );
        let err = format!(
            "{:#}",
            Config::load_with_env(None, env(&[("CODERUN_BOGUS_X", "1")])).unwrap_err()
        );
        assert!(err.contains("CODERUN_BOGUS_X"), "{err}");
        let err = format!(
            "{:#}",
            Config::load_with_env(None, env(&[("CODERUN_ENGINE_MEMORY_MB", "0")])).unwrap_err()
        );
        assert!(err.contains("memory_mb"), "{err}");
    }

    #[test]
    fn the_example_config_is_valid() {
        let example =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../coderun.example.toml");
        Config::load_with_env(Some(&example), env(&[])).unwrap();
    }

    #[test]
    fn the_bench_server_configs_are_valid_configs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let cache = std::path::Path::new("/tmp/a \"b\"");
        std::fs::write(&path, coderun_bench::server_config(cache, Some(0))).unwrap();
        let cfg = Config::load_with_env(Some(&path), env(&[])).unwrap();
        assert_eq!(cfg.engine.pool_size, Some(0));
        assert_eq!(cfg.engine.compile_cache_dir.as_deref(), Some(cache));
    }
}
