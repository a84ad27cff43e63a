//! Herald's configuration: the `herald.toml` model, its defaults, loading and validation.
//!
//! `docs/configuration.md` is the reference for every key; `config/herald.toml` ships every key
//! at its default (a test keeps both in step with this module).

mod error;
mod node_id;
mod sections;
mod validate;

#[cfg(test)]
mod tests;

use std::path::Path;

use serde::{Deserialize, Serialize};

pub use error::{ConfigError, Problem};
pub use node_id::{MAX_NODE_ID_LEN, is_node_id};
pub use sections::{
    AccessAction, AccessConfig, AccessDefault, AccessRule, AnonymousAccess, AuthConfig,
    DestinationsConfig, HttpConfig, JwtAlgorithm, JwtConfig, LimitsConfig, LogConfig, LogFormat,
    LogLevel, OutboundMessageType, OutboxConfig, OverflowPolicy, QueueOverflow, QueueSemantics,
    QueuesConfig, Separator, ShutdownConfig, StompConfig, TcpConfig, UserConfig, WebSocketConfig,
};
pub use sections::{ApiAction, ApiKeyConfig};
pub use sections::{ClientAuth, IpNetwork, TlsConfig};
pub use sections::{ClusterConfig, ClusterTlsConfig};
pub use sections::{JetStreamStorage, QueueStoreKind, QueuesJetStreamConfig};
pub use sections::{OfflineConfig, UsersConfig};

/// The whole configuration. `Config::default()` is what an empty file gives.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub websocket: WebSocketConfig,
    pub tcp: TcpConfig,
    pub stomp: StompConfig,
    pub limits: LimitsConfig,
    pub destinations: DestinationsConfig,
    pub outbox: OutboxConfig,
    pub queues: QueuesConfig,
    pub auth: AuthConfig,
    pub jwt: JwtConfig,
    pub access: AccessConfig,
    /// `[users]`: user destinations (offline delivery).
    pub users: UsersConfig,
    pub shutdown: ShutdownConfig,
    pub log: LogConfig,
    /// `[http]`: metrics and health.
    pub http: HttpConfig,
    /// `[cluster]`; `None` (no section): a single node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterConfig>,
}

impl Config {
    /// Parses and validates TOML text. `origin` names the text in errors (usually the file name).
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|source| ConfigError::Parse {
            origin: origin.to_owned(),
            source,
        })?;
        config.validate().map_err(|e| e.with_origin(origin))?;
        Ok(config)
    }

    /// Reads, parses and validates a TOML file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml_str(&text, &path.display().to_string())
    }

    /// Checks the rules types cannot express; lists every broken one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let problems = validate::problems(self);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid {
                origin: None,
                problems,
            })
        }
    }

    /// The configuration as TOML, every key included; parses back to an equal `Config`.
    pub fn to_toml_string(&self) -> Result<String, toml::ser::Error> {
        toml::to_string_pretty(self)
    }
}
