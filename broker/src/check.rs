//! What a start would find wrong with a configuration file: its own rules (`config`), then
//! the files it names, read the way the server reads them (TLS certificates and keys, the
//! JWT key, the cluster's credentials and TLS files). `config` cannot read those itself: it sits below the modules that know them
//! (`transport::tls`, `auth`). `herald config check` and the start both come through here.

use std::path::Path;

use crate::auth::load_jwt_key;
use crate::cluster::connect::{ConnectError, check as check_cluster};
use crate::config::{Config, ConfigError, Problem};
use crate::transport::tls::server_config;

/// Reads, parses and validates a configuration file, then reads the files it names.
pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
    let path = path.as_ref();
    let config = Config::load(path)?;
    files(&config).map_err(|e| e.with_origin(&path.display().to_string()))?;
    Ok(config)
}

/// Reads every file a configuration that passed [`Config::validate`] names, and lists each
/// one that cannot be used.
pub fn files(config: &Config) -> Result<(), ConfigError> {
    let mut problems = Vec::new();
    let listeners = [
        (
            "websocket.tls",
            config.websocket.enabled,
            &config.websocket.tls,
        ),
        ("tcp.tls", config.tcp.enabled, &config.tcp.tls),
    ];
    for (key, enabled, tls) in listeners {
        if enabled && tls.enabled {
            if let Err(message) = server_config(tls) {
                problems.push(Problem {
                    key: key.to_owned(),
                    message,
                });
            }
        }
    }
    if config.jwt.enabled {
        if let Err(message) = load_jwt_key(&config.jwt) {
            problems.push(Problem {
                key: "jwt.key_file".to_owned(),
                message,
            });
        }
    }
    if let Some(cluster) = &config.cluster {
        if let Err(e) = check_cluster(cluster) {
            let key = match &e {
                ConnectError::Read { key, .. } | ConnectError::Invalid { key, .. } => *key,
                ConnectError::Server { .. } | ConnectError::Client(_) => "cluster.servers",
            };
            problems.push(Problem {
                key: key.to_owned(),
                message: e.to_string(),
            });
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            origin: None,
            problems,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `herald config check` and the start (both call `load`) still refuse a file naming key
    /// files that cannot be read, now that `config` no longer reads them.
    #[test]
    fn files_a_configuration_names_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("herald.toml");
        let text = "[tcp.tls]\nenabled = true\ncert_file = \"/nonexistent/cert.pem\"\n\
                    key_file = \"/nonexistent/key.pem\"\n\
                    [cluster]\ncredentials_file = \"/nonexistent/node.creds\"\n\
                    [jwt]\nenabled = true\nalgorithm = \"RS256\"\nkey_file = \"/nonexistent/jwt.pem\"\n";
        std::fs::write(&file, text).unwrap();
        // The rules alone hold: what is wrong is only in the files.
        Config::from_toml_str(text, "text").unwrap();
        let err = load(&file).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{}: invalid configuration", file.display())),
            "{err}"
        );
        assert!(
            err.contains("tcp.tls: ") && err.contains("/nonexistent/cert.pem"),
            "{err}"
        );
        assert!(
            err.contains("jwt.key_file: cannot read /nonexistent/jwt.pem"),
            "{err}"
        );
        assert!(
            err.contains("cluster.credentials_file") && err.contains("/nonexistent/node.creds"),
            "{err}"
        );
        // A listener that is off does not need its files.
        let off = text.replace("[tcp.tls]", "[tcp]\nenabled = false\n[tcp.tls]");
        let config = Config::from_toml_str(&off, "text").unwrap();
        let err = files(&config).unwrap_err().to_string();
        assert!(!err.contains("tcp.tls"), "{err}");
    }
}
