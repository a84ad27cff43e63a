//! The NATS connection of a clustered node, built from `[cluster]`.
//!
//! Everything a retry cannot fix is found here, before the client starts: a server URL that
//! does not parse, a credentials or TLS file that cannot be read or makes no sense. What a
//! retry can fix is left to the client, which never gives up: a node whose NATS is down (at
//! start or later) keeps serving its local sessions and reconnects by itself, with a growing
//! delay between attempts (see [`reconnect_delay`]). Refused credentials are retried the
//! same way (credentials can be fixed on the NATS side without restarting Herald), logged as
//! errors and counted in `cluster_auth_errors`.
//!
//! The client's events are logged and counted in [`Stats`]; repeated failures are logged
//! when their count reaches a power of two, so an outage or a flood of dropped messages
//! cannot flood the log.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_nats::{Client, ClientError, ConnectErrorKind, ConnectOptions, Event, ServerAddr};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{ClientConfig, RootCertStore, crypto};
use tracing::{debug, error, info, warn};

use crate::config::{ClusterConfig, ClusterTlsConfig};
use crate::metrics::Stats;

/// The longest wait between two attempts to reach NATS.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(4);

/// Why the NATS client could not be set up. Each names the configuration key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cluster.servers[{index}]: {url:?}: {message}")]
    Server {
        index: usize,
        url: String,
        message: String,
    },
    #[error("{key}: cannot read {path}: {source}")]
    Read {
        key: &'static str,
        path: String,
        source: io::Error,
    },
    /// A file (or an inline seed) that was read but is not usable.
    #[error("{key}: {message}")]
    Invalid { key: &'static str, message: String },
    /// Any other refusal of the NATS client to start.
    #[error("cannot start the NATS client: {0}")]
    Client(#[from] async_nats::ConnectError),
}

/// How often the client pings its NATS server.
const PING_INTERVAL: Duration = Duration::from_secs(10);

/// Starts the NATS client of node `node_id` (named `herald <node_id>` on the servers).
///
/// Returns as soon as the client runs, connected or not: it connects in the background,
/// reconnects forever and restores its subscriptions after each reconnect. `Err` only for a
/// configuration no retry could make work (see [`ConnectError`]).
pub async fn connect(
    config: &ClusterConfig,
    node_id: &str,
    stats: Arc<Stats>,
) -> Result<Client, ConnectError> {
    let servers = servers(config)?;
    let options = tls(credentials(ConnectOptions::new(), config)?, &config.tls)?;
    let events = Arc::new(Events::new(stats));
    let options = options
        // The publishing node delivers to its own subscribers itself.
        .no_echo()
        .retry_on_initial_connect()
        .max_reconnects(None)
        .reconnect_delay_callback(reconnect_delay)
        .subscription_capacity(config.subscription_capacity)
        .connection_timeout(Duration::from_millis(config.connect_timeout_ms))
        // A connection that died without closing (a partition) is noticed after two unanswered
        // pings: about 20 s instead of async-nats's default 2 minutes, during which messages
        // for other nodes would be lost while the link still looked up.
        .ping_interval(PING_INTERVAL)
        .name(format!("herald {node_id}"))
        .event_callback(move |event| {
            events.record(event);
            std::future::ready(())
        });
    Ok(options.connect(servers).await?)
}

/// Reads and checks what [`connect`] would (server URLs, credentials and TLS files) without
/// connecting: for `herald config check` and the start.
pub fn check(config: &ClusterConfig) -> Result<(), ConnectError> {
    servers(config)?;
    tls(credentials(ConnectOptions::new(), config)?, &config.tls).map(drop)
}

/// The delay before attempt number `attempts` (counted from 1 since the link was last up,
/// one per server tried): none for the first, then 100 ms doubling up to
/// [`MAX_RECONNECT_DELAY`], so a node never spins against a NATS that refuses it.
pub fn reconnect_delay(attempts: usize) -> Duration {
    match attempts {
        0 | 1 => Duration::ZERO,
        n => {
            let doublings = u32::try_from(n - 2).unwrap_or(u32::MAX).min(16);
            (Duration::from_millis(100) * 2u32.pow(doublings)).min(MAX_RECONNECT_DELAY)
        }
    }
}

fn servers(config: &ClusterConfig) -> Result<Vec<ServerAddr>, ConnectError> {
    config
        .servers
        .iter()
        .enumerate()
        .map(|(index, url)| {
            url.parse().map_err(|e: io::Error| ConnectError::Server {
                index,
                url: url.clone(),
                message: e.to_string(),
            })
        })
        .collect()
}

/// Adds the one kind of credentials configured, reading and checking its file now (small
/// files, read once at start: blocking reads are fine).
fn credentials(
    options: ConnectOptions,
    config: &ClusterConfig,
) -> Result<ConnectOptions, ConnectError> {
    if !config.token.is_empty() {
        return Ok(options.token(config.token.clone()));
    }
    if !config.user.is_empty() {
        return Ok(options.user_and_password(config.user.clone(), config.password.clone()));
    }
    if !config.nkey_seed.is_empty() {
        let seed = user_seed(&config.nkey_seed).map_err(|e| invalid("cluster.nkey_seed", e))?;
        return Ok(options.nkey(seed));
    }
    if !config.nkey_seed_file.is_empty() {
        let key = "cluster.nkey_seed_file";
        let path = &config.nkey_seed_file;
        let text = std::fs::read_to_string(path).map_err(|source| read_error(key, path, source))?;
        let seed = user_seed(text.trim()).map_err(|e| invalid(key, format!("{path}: {e}")))?;
        return Ok(options.nkey(seed));
    }
    if !config.credentials_file.is_empty() {
        let key = "cluster.credentials_file";
        let path = &config.credentials_file;
        let text = std::fs::read_to_string(path).map_err(|source| read_error(key, path, source))?;
        return options
            .credentials(&text)
            .map_err(|e| invalid(key, format!("{path}: not a NATS .creds file: {e}")));
    }
    Ok(options)
}

/// Checks an NKey seed; the error never repeats the seed (a secret).
fn user_seed(seed: &str) -> Result<String, String> {
    match nkeys::KeyPair::from_seed(seed) {
        Ok(pair) if pair.key_pair_type() == nkeys::KeyPairType::User => Ok(seed.to_owned()),
        Ok(_) => Err("is not a user seed (SU...)".to_owned()),
        Err(e) => Err(format!("is not an NKey seed: {e}")),
    }
}

/// TLS settings. The files are read and checked here (the key must match the certificate);
/// the client reads them again at every TLS connection, so a renewed certificate is used from
/// the next reconnect on.
fn tls(options: ConnectOptions, tls: &ClusterTlsConfig) -> Result<ConnectOptions, ConnectError> {
    let mut options = options.require_tls(tls.is_required());
    let mut roots = RootCertStore::empty();
    if !tls.ca_file.is_empty() {
        for ca in certificates("cluster.tls.ca_file", &tls.ca_file)? {
            roots
                .add(ca)
                .map_err(|e| invalid("cluster.tls.ca_file", format!("{}: {e}", tls.ca_file)))?;
        }
        options = options.add_root_certificates(tls.ca_file.clone().into());
    }
    if !tls.cert_file.is_empty() {
        let chain = certificates("cluster.tls.cert_file", &tls.cert_file)?;
        let key = PrivateKeyDer::from_pem_file(&tls.key_file)
            .map_err(|e| pem_error("cluster.tls.key_file", &tls.key_file, e))?;
        // Built only to check the pair: ring is the one provider compiled in.
        ClientConfig::builder_with_provider(Arc::new(crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .and_then(|builder| {
                builder
                    .with_root_certificates(roots)
                    .with_client_auth_cert(chain, key)
            })
            .map_err(|e| {
                invalid(
                    "cluster.tls.key_file",
                    format!("{} with {}: {e}", tls.key_file, tls.cert_file),
                )
            })?;
        options = options
            .add_client_certificate(tls.cert_file.clone().into(), tls.key_file.clone().into());
    }
    Ok(options)
}

/// The certificates of a PEM file, at least one.
fn certificates(
    key: &'static str,
    path: &str,
) -> Result<Vec<CertificateDer<'static>>, ConnectError> {
    let certificates = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| pem_error(key, path, e))?;
    if certificates.is_empty() {
        return Err(invalid(key, format!("{path}: no certificate in it")));
    }
    Ok(certificates)
}

fn pem_error(
    key: &'static str,
    path: &str,
    error: tokio_rustls::rustls::pki_types::pem::Error,
) -> ConnectError {
    match error {
        tokio_rustls::rustls::pki_types::pem::Error::Io(source) => read_error(key, path, source),
        other => invalid(key, format!("{path}: {other}")),
    }
}

fn read_error(key: &'static str, path: &str, source: io::Error) -> ConnectError {
    ConnectError::Read {
        key,
        path: path.to_owned(),
        source,
    }
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConnectError {
    ConnectError::Invalid {
        key,
        message: message.into(),
    }
}

/// What the client's events do to the logs and the counters. The client hands them over
/// one at a time, in order, from one task.
#[derive(Debug)]
struct Events {
    stats: Arc<Stats>,
    /// Whether the link was ever up: a later `Connected` is a reconnect.
    was_up: AtomicBool,
    /// Failed attempts since the link was last up.
    failures: AtomicU64,
}

impl Events {
    fn new(stats: Arc<Stats>) -> Events {
        stats.cluster_link_up.store(0, Ordering::Relaxed);
        Events {
            stats,
            was_up: AtomicBool::new(false),
            failures: AtomicU64::new(0),
        }
    }

    fn record(&self, event: Event) {
        let stats = &self.stats;
        match event {
            Event::Connected => {
                stats.cluster_link_up.store(1, Ordering::Relaxed);
                let failed = self.failures.swap(0, Ordering::Relaxed);
                if self.was_up.swap(true, Ordering::Relaxed) {
                    stats.cluster_reconnects.fetch_add(1, Ordering::Relaxed);
                    info!(failed_attempts = failed, "NATS link up again");
                } else {
                    info!(failed_attempts = failed, "NATS link up");
                }
            }
            Event::Disconnected => {
                stats.cluster_link_up.store(0, Ordering::Relaxed);
                stats.cluster_disconnects.fetch_add(1, Ordering::Relaxed);
                warn!(
                    "NATS link down: local traffic goes on, other nodes are out of reach; reconnecting"
                );
            }
            Event::Closed => {
                stats.cluster_link_up.store(0, Ordering::Relaxed);
                info!("NATS link closed");
            }
            Event::ClientError(error) => self.failed(&error),
            Event::SlowConsumer(subscription) => {
                let total = stats.cluster_slow_consumer.fetch_add(1, Ordering::Relaxed) + 1;
                if total.is_power_of_two() {
                    warn!(
                        subscription,
                        dropped_total = total,
                        "messages from NATS dropped: this node reads them too slowly (cluster.subscription_capacity)"
                    );
                }
            }
            Event::ServerError(error) => warn!(%error, "NATS server reported an error"),
            Event::LameDuckMode => {
                warn!("NATS server entering lame duck mode: this node will move to another")
            }
            Event::Draining => debug!("NATS link draining"),
        }
    }

    /// An attempt to reach NATS failed (the client says only what kind of failure).
    fn failed(&self, error: &ClientError) {
        let stats = &self.stats;
        stats.cluster_connect_errors.fetch_add(1, Ordering::Relaxed);
        let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        let what = match error {
            ClientError::Other(what) => what.as_str(),
            ClientError::MaxReconnects => "gave up reconnecting",
            ClientError::ServerNotInPool => "server not in the pool",
        };
        let refused = what == ConnectErrorKind::AuthorizationViolation.to_string()
            || what == ConnectErrorKind::Authentication.to_string();
        if refused {
            stats.cluster_auth_errors.fetch_add(1, Ordering::Relaxed);
        }
        if !failures.is_power_of_two() {
            debug!(error = what, failures, "NATS connection attempt failed");
        } else if refused {
            error!(
                error = what,
                failures,
                "NATS refused this node's credentials: check the [cluster] credentials; retrying"
            );
        } else {
            warn!(
                error = what,
                failures, "cannot reach NATS: local traffic goes on; retrying"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_delay_grows_from_zero_to_a_cap() {
        let delays: Vec<u128> = (1..=9).map(|n| reconnect_delay(n).as_millis()).collect();
        assert_eq!(delays, [0, 100, 200, 400, 800, 1600, 3200, 4000, 4000]);
        assert_eq!(reconnect_delay(usize::MAX), MAX_RECONNECT_DELAY);
    }

    fn cluster() -> ClusterConfig {
        ClusterConfig::default()
    }

    /// What `check` says, after checking that `connect` says the same.
    async fn error_of(config: ClusterConfig) -> String {
        let checked = check(&config).expect_err("check must refuse").to_string();
        let connected = connect(&config, "n1", Arc::new(Stats::default()))
            .await
            .expect_err("connect must refuse")
            .to_string();
        assert_eq!(checked, connected);
        checked
    }

    #[test]
    fn usable_files_pass_the_check() {
        let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls/");
        let dir = tempfile::tempdir().unwrap();
        let seed_file = dir.path().join("seed.nk");
        std::fs::write(
            &seed_file,
            nkeys::KeyPair::new_user().seed().unwrap() + "\n",
        )
        .unwrap();
        let mut config = cluster();
        config.nkey_seed_file = seed_file.display().to_string();
        config.tls.ca_file = format!("{fixtures}ca.pem");
        config.tls.cert_file = format!("{fixtures}client.pem");
        config.tls.key_file = format!("{fixtures}client-key.pem");
        check(&config).unwrap();
        check(&cluster()).unwrap();
    }

    #[tokio::test]
    async fn unusable_files_and_seeds_are_errors_naming_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing").display().to_string();
        let garbage = dir.path().join("garbage");
        std::fs::write(&garbage, "not a pem, not a seed\n").unwrap();
        let garbage = garbage.display().to_string();

        let mut config = cluster();
        config.nkey_seed_file = missing.clone();
        let err = error_of(config).await;
        assert!(
            err.starts_with(&format!("cluster.nkey_seed_file: cannot read {missing}: ")),
            "{err}"
        );

        let mut config = cluster();
        config.nkey_seed_file = garbage.clone();
        let err = error_of(config).await;
        assert!(
            err.starts_with(&format!(
                "cluster.nkey_seed_file: {garbage}: is not an NKey seed"
            )),
            "{err}"
        );

        let mut config = cluster();
        config.nkey_seed = nkeys::KeyPair::new_account().seed().unwrap();
        assert_eq!(
            error_of(config).await,
            "cluster.nkey_seed: is not a user seed (SU...)"
        );

        let mut config = cluster();
        config.credentials_file = garbage.clone();
        let err = error_of(config).await;
        assert!(
            err.starts_with(&format!(
                "cluster.credentials_file: {garbage}: not a NATS .creds file"
            )),
            "{err}"
        );

        let mut config = cluster();
        config.credentials_file = missing.clone();
        let err = error_of(config).await;
        assert!(
            err.starts_with("cluster.credentials_file: cannot read"),
            "{err}"
        );

        let mut config = cluster();
        config.tls.ca_file = missing.clone();
        let err = error_of(config).await;
        assert!(err.starts_with("cluster.tls.ca_file: cannot read"), "{err}");

        let mut config = cluster();
        config.tls.ca_file = garbage.clone();
        assert_eq!(
            error_of(config).await,
            format!("cluster.tls.ca_file: {garbage}: no certificate in it")
        );

        let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls/");
        let mut config = cluster();
        config.tls.cert_file = format!("{fixtures}client.pem");
        config.tls.key_file = missing;
        let err = error_of(config).await;
        assert!(
            err.starts_with("cluster.tls.key_file: cannot read"),
            "{err}"
        );

        // A key that belongs to another certificate.
        let mut config = cluster();
        config.tls.cert_file = format!("{fixtures}client.pem");
        config.tls.key_file = format!("{fixtures}server-key.pem");
        let err = error_of(config).await;
        assert!(err.starts_with("cluster.tls.key_file: "), "{err}");
        assert!(err.contains("with "), "{err}");

        let mut config = cluster();
        config.servers = vec!["nats://ok:4222".to_owned(), "http://x".to_owned()];
        let err = error_of(config).await;
        assert!(
            err.starts_with("cluster.servers[1]: \"http://x\": invalid scheme"),
            "{err}"
        );
    }
}
