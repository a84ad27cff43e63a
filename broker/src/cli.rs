//! Command line: `herald [OPTIONS]` runs the server, `herald config print|check` inspects
//! configuration, `herald presence` asks a cluster who is online. Flags override values from
//! the file; see `apply_overrides`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{
    ApiAction, ApiKeyConfig, ClusterConfig, Config, ConfigError, LogLevel, Problem, UserConfig,
};

/// Herald, a STOMP message broker over WebSocket and TCP.
#[derive(Debug, Parser)]
#[command(name = "herald", version, about)]
// Server flags belong to the run case; `config print` takes its own copy, so
// `herald --no-ws config print` is rejected instead of silently ignoring `--no-ws`.
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(flatten)]
    pub settings: Settings,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Inspect configuration without starting the server.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Read a password from stdin and print its argon2 hash, for `auth.users[].passcode_hash`.
    HashPassword,
    /// Ask a running cluster which users are online: one `USER SESSIONS` line each.
    Presence(PresenceArgs),
}

/// `herald presence`: how to reach the cluster, and whom to ask about.
#[derive(Debug, Clone, Args)]
pub struct PresenceArgs {
    /// Configuration file whose `[cluster]` section says how to reach NATS (servers,
    /// credentials, TLS, name).
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// NATS server URLs (comma-separated), instead of the file's `cluster.servers`.
    #[arg(long, value_name = "URL,...", value_delimiter = ',')]
    pub cluster: Vec<String>,
    /// The cluster's name (its subject prefix), instead of the file's `cluster.name`.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Only this user.
    pub user: Option<String>,
}

impl PresenceArgs {
    /// The `[cluster]` section to ask through: the file's, with the flags applied; `None`
    /// when neither gives one.
    pub fn cluster(&self) -> Result<Option<ClusterConfig>, ConfigError> {
        let settings = Settings {
            config: self.config.clone(),
            overrides: Overrides {
                cluster: self.cluster.clone(),
                ..Overrides::default()
            },
        };
        let mut cluster = settings.load()?.cluster;
        if let (Some(cluster), Some(name)) = (cluster.as_mut(), &self.name) {
            cluster.name.clone_from(name);
        }
        Ok(cluster)
    }
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration (defaults, file, then flags) as TOML.
    Print(Settings),
    /// Validate a configuration file: prints `FILE: ok`, or the error and exits with 2.
    Check {
        /// The file to check.
        file: PathBuf,
    },
}

/// Where the configuration comes from: an optional file, then flag overrides.
#[derive(Debug, Clone, Default, Args)]
pub struct Settings {
    /// Configuration file (TOML); without it the built-in defaults are used.
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub overrides: Overrides,
}

impl Settings {
    /// The effective configuration: defaults, then the file if given, then the overrides,
    /// validated as a whole.
    pub fn load(&self) -> Result<Config, ConfigError> {
        let mut config = match &self.config {
            Some(path) => crate::check::load(path)?,
            None => Config::default(),
        };
        apply_overrides(&mut config, &self.overrides)?;
        // Overrides can break rules the file satisfied (e.g. both listeners disabled).
        config
            .validate()
            .map_err(|e| e.with_origin("command line"))?;
        Ok(config)
    }
}

/// Flags that override single configuration keys.
#[derive(Debug, Clone, Default, Args)]
pub struct Overrides {
    /// Overrides websocket.bind.
    #[arg(long, value_name = "ADDR")]
    pub ws_bind: Option<SocketAddr>,
    /// Overrides tcp.bind.
    #[arg(long, value_name = "ADDR")]
    pub tcp_bind: Option<SocketAddr>,
    /// Serves metrics and health on ADDR: sets http.bind and http.enabled = true.
    #[arg(long, value_name = "ADDR")]
    pub http_bind: Option<SocketAddr>,
    /// Adds an HTTP API key allowed every action (http.api_keys) and turns the operations
    /// listener on, for trials; repeatable. Visible to other local users in the process
    /// list: a configuration file (secret_sha256) is the way for production.
    #[arg(long = "api-key", value_name = "SECRET")]
    pub api_keys: Vec<String>,
    /// Sets websocket.enabled = false.
    #[arg(long)]
    pub no_ws: bool,
    /// Sets tcp.enabled = false.
    #[arg(long)]
    pub no_tcp: bool,
    /// Overrides log.level (RUST_LOG still wins over both).
    #[arg(long, value_name = "LEVEL", ignore_case = true)]
    pub log_level: Option<LogLevel>,
    /// Adds a user to auth.users, for trials and tests; repeatable.
    #[arg(long = "user", value_name = "NAME:PASSWORD", value_parser = parse_user)]
    pub users: Vec<StaticUser>,
    /// Sets cluster.servers (comma-separated NATS URLs), adding a [cluster] section with
    /// defaults if there is none.
    #[arg(long, value_name = "URL,...", value_delimiter = ',')]
    pub cluster: Vec<String>,
}

/// A `--user NAME:PASSWORD`.
#[derive(Debug, Clone)]
pub struct StaticUser {
    pub name: String,
    pub password: String,
}

fn parse_user(text: &str) -> Result<StaticUser, String> {
    match text.split_once(':') {
        Some((name, password)) if !name.is_empty() => Ok(StaticUser {
            name: name.to_owned(),
            password: password.to_owned(),
        }),
        _ => Err("expected NAME:PASSWORD".to_owned()),
    }
}

/// Applies every flag override to `config`. The single place flags meet file values.
pub fn apply_overrides(config: &mut Config, overrides: &Overrides) -> Result<(), ConfigError> {
    if let Some(addr) = overrides.ws_bind {
        config.websocket.bind = addr;
    }
    if let Some(addr) = overrides.tcp_bind {
        config.tcp.bind = addr;
    }
    if let Some(addr) = overrides.http_bind {
        config.http.bind = addr;
        config.http.enabled = true;
    }
    for (i, secret) in overrides.api_keys.iter().enumerate() {
        config.http.enabled = true;
        config.http.api_keys.push(ApiKeyConfig {
            name: format!("--api-key {}", i + 1),
            secret: secret.clone(),
            actions: ApiAction::ALL.to_vec(),
            ..ApiKeyConfig::default()
        });
    }
    if overrides.no_ws {
        config.websocket.enabled = false;
    }
    if overrides.no_tcp {
        config.tcp.enabled = false;
    }
    if let Some(level) = overrides.log_level {
        config.log.level = level;
    }
    if !overrides.cluster.is_empty() {
        let cluster = config.cluster.get_or_insert_with(ClusterConfig::default);
        cluster.servers.clone_from(&overrides.cluster);
    }
    for user in &overrides.users {
        config.auth.users.retain(|u| u.login != user.name);
        config.auth.users.push(UserConfig {
            login: user.name.clone(),
            passcode_hash: crate::auth::hash_password(&user.password).map_err(|e| {
                ConfigError::Invalid {
                    origin: Some("command line".to_owned()),
                    problems: vec![Problem {
                        key: "--user".to_owned(),
                        message: format!("cannot hash the password of {}: {e}", user.name),
                    }],
                }
            })?,
            roles: Vec::new(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_override_file_values() {
        let cli = Cli::try_parse_from([
            "herald",
            "--ws-bind",
            "127.0.0.1:1",
            "--tcp-bind",
            "127.0.0.1:2",
            "--no-tcp",
            "--log-level",
            "DEBUG",
        ])
        .unwrap();
        let config = cli.settings.load().unwrap();
        assert_eq!(config.websocket.bind, "127.0.0.1:1".parse().unwrap());
        assert_eq!(config.tcp.bind, "127.0.0.1:2".parse().unwrap());
        assert!(config.websocket.enabled);
        assert!(!config.tcp.enabled);
        assert_eq!(config.log.level, LogLevel::Debug);
    }

    #[test]
    fn api_key_adds_a_key_for_every_action_and_turns_the_listener_on() {
        let cli = Cli::try_parse_from(["herald", "--api-key", "0123456789abcdef-trial"]).unwrap();
        let config = cli.settings.load().unwrap();
        assert!(config.http.enabled);
        let [key] = config.http.api_keys.as_slice() else {
            panic!("{:?}", config.http.api_keys)
        };
        assert_eq!(key.secret, "0123456789abcdef-trial");
        assert_eq!(key.actions, ApiAction::ALL);
        let short = Cli::try_parse_from(["herald", "--api-key", "short"]).unwrap();
        let err = short.settings.load().unwrap_err().to_string();
        assert!(err.contains("http.api_keys[0].secret"), "{err}");
    }

    #[test]
    fn http_bind_turns_the_operations_listener_on() {
        let config = Cli::try_parse_from(["herald"])
            .unwrap()
            .settings
            .load()
            .unwrap();
        assert!(!config.http.enabled);
        let cli = Cli::try_parse_from(["herald", "--http-bind", "127.0.0.1:9100"]).unwrap();
        let config = cli.settings.load().unwrap();
        assert!(config.http.enabled);
        assert_eq!(config.http.bind, "127.0.0.1:9100".parse().unwrap());
        let clash = Cli::try_parse_from(["herald", "--http-bind", "0.0.0.0:61613"]).unwrap();
        let err = clash.settings.load().unwrap_err().to_string();
        assert!(err.contains("http.bind"), "{err}");
    }

    #[tokio::test]
    async fn user_flags_add_hashed_users() {
        let cli =
            Cli::try_parse_from(["herald", "--user", "alice:secret", "--user", "bob:a:b"]).unwrap();
        let config = cli.settings.load().unwrap();
        let auth = crate::auth::Authenticator::new(&config.auth, &config.jwt);
        assert_eq!(auth.verify("alice", "secret").await.unwrap().name, "alice");
        assert_eq!(auth.verify("bob", "a:b").await.unwrap().name, "bob");
        assert!(Cli::try_parse_from(["herald", "--user", "nopassword"]).is_err());
    }

    #[test]
    fn overrides_are_validated() {
        let cli = Cli::try_parse_from(["herald", "--no-ws", "--no-tcp"]).unwrap();
        let err = cli.settings.load().unwrap_err().to_string();
        assert!(
            err.starts_with("command line: invalid configuration"),
            "{err}"
        );
        assert!(err.contains("websocket.enabled"), "{err}");
    }

    #[test]
    fn cluster_flag_sets_the_servers_of_a_default_section() {
        let cli =
            Cli::try_parse_from(["herald", "--cluster", "nats://a:4222,tls://b:4443"]).unwrap();
        let cluster = cli.settings.load().unwrap().cluster.unwrap();
        assert_eq!(cluster.servers, ["nats://a:4222", "tls://b:4443"]);
        assert_eq!(
            cluster,
            ClusterConfig {
                servers: cluster.servers.clone(),
                ..ClusterConfig::default()
            }
        );
        assert_eq!(
            Cli::try_parse_from(["herald"])
                .unwrap()
                .settings
                .load()
                .unwrap()
                .cluster,
            None
        );
    }

    #[test]
    fn cluster_flag_keeps_the_rest_of_the_file_section() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("herald.toml");
        std::fs::write(
            &file,
            "[cluster]\nservers = [\"nats://old:4222\"]\nname = \"blue\"\n",
        )
        .unwrap();
        let cli = Cli::try_parse_from([
            "herald",
            "--config",
            file.to_str().unwrap(),
            "--cluster",
            "nats://new:4222",
            "--cluster",
            "nats://other:4222",
        ])
        .unwrap();
        let cluster = cli.settings.load().unwrap().cluster.unwrap();
        assert_eq!(cluster.servers, ["nats://new:4222", "nats://other:4222"]);
        assert_eq!(cluster.name, "blue");
    }

    #[test]
    fn cluster_flag_urls_are_validated() {
        let cli = Cli::try_parse_from(["herald", "--cluster", "nats://a:4222,http://b"]).unwrap();
        let err = cli.settings.load().unwrap_err().to_string();
        assert!(
            err.starts_with("command line: invalid configuration"),
            "{err}"
        );
        assert!(
            err.contains("cluster.servers[1]: \"http://b\" has scheme \"http\""),
            "{err}"
        );
    }

    #[test]
    fn server_flags_do_not_mix_with_subcommands() {
        assert!(Cli::try_parse_from(["herald", "--no-ws", "config", "print"]).is_err());
        let cli = Cli::try_parse_from(["herald", "config", "print", "--no-ws"]).unwrap();
        match cli.command {
            Some(Command::Config(ConfigCommand::Print(settings))) => {
                assert!(settings.overrides.no_ws);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
