//! The service's configuration file (TOML). Every section and key is optional; unknown keys
//! are an error that names the key.

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
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub body_limit_bytes: usize,
    /// Directory of language files; unset: `./languages`, then next to the binary's repo,
    /// then the copies built into the binary.
    pub languages_dir: Option<PathBuf>,
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

impl Config {
    pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        let cfg: Config = toml::from_str(&text)
            .with_context(|| format!("invalid config file {}", path.display()))?;
        cfg.engine
            .validate()
            .map_err(|m| anyhow::anyhow!("invalid config file {}: engine: {m}", path.display()))?;
        Ok(cfg)
    }
}
