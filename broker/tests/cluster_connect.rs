//! The NATS connection of a clustered node (`herald::cluster::connect`) against real
//! `nats-server` processes on free loopback ports: every kind of credentials (a `.creds` file
//! in operator mode included), TLS with a client certificate, a server list with a dead
//! server, NATS down at start and restarted, a full subscription, and refused credentials
//! (logged, counted, retried with backoff rather than in a hot loop).

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::nats::{NATS_START, NatsServer, free_port, nats_server_bin};
use common::{TIMEOUT, eventually, within};
use futures_util::StreamExt;
use herald::cluster::connect::{connect, reconnect_delay};
use herald::config::{ClusterConfig, ClusterTlsConfig};
use herald::metrics::Stats;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const NODE: &str = "n1";

/// A `nats-server` started from a configuration file (for authorization and TLS, which the
/// shared helper's flags do not cover); its log is kept for assertions. Killed on drop.
struct ConfiguredNats {
    port: u16,
    log: Arc<Mutex<String>>,
    _child: Child,
    _dir: tempfile::TempDir,
}

impl ConfiguredNats {
    /// Starts a server with `settings` (nats-server configuration syntax) and waits for its
    /// "Server is ready" line.
    async fn start(settings: &str) -> ConfiguredNats {
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("nats.conf");
        std::fs::write(&file, format!("listen: 127.0.0.1:{port}\n{settings}\n")).unwrap();
        let mut child = Command::new(nats_server_bin())
            .arg("-c")
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("run nats-server");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let log = Arc::new(Mutex::new(String::new()));
        let ready = async {
            while let Some(line) = lines.next_line().await.unwrap() {
                let is_ready = line.contains("Server is ready");
                log.lock().unwrap().push_str(&(line + "\n"));
                if is_ready {
                    return;
                }
            }
            panic!("nats-server exited:\n{}", log.lock().unwrap());
        };
        within(NATS_START, "nats-server ready", ready).await;
        // Keep reading, so the server never blocks on a full pipe.
        let kept = Arc::clone(&log);
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                kept.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        ConfiguredNats {
            port,
            log,
            _child: child,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

fn cluster(servers: Vec<String>) -> ClusterConfig {
    ClusterConfig {
        servers,
        ..ClusterConfig::default()
    }
}

fn count(counter: &std::sync::atomic::AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

fn link_up(stats: &Stats) -> bool {
    stats.cluster_link_up.load(Ordering::Relaxed) == 1
}

/// Connects node [`NODE`] and waits until its link is up (a flush completes only over a
/// live connection).
async fn connected(config: &ClusterConfig) -> (async_nats::Client, Arc<Stats>) {
    let stats = Arc::new(Stats::default());
    let client = connect(config, NODE, Arc::clone(&stats))
        .await
        .expect("connect");
    within(TIMEOUT, "the NATS link", client.flush())
        .await
        .expect("flush");
    // The flush completes before the client's event task has counted the connect.
    eventually("link_up gauge", TIMEOUT, || link_up(&stats)).await;
    (client, stats)
}

/// Waits until the server has handled everything `client` sent before (a flush only writes
/// it out): the server answers a request nobody listens to with "no responders", in order.
async fn settled(client: &async_nats::Client) {
    let answer = within(TIMEOUT, "no responders", client.request("none", "".into())).await;
    let error = answer.expect_err("nobody answers");
    assert_eq!(error.kind(), async_nats::RequestErrorKind::NoResponders);
}

/// A message published by `from` reaches a subscriber on `to`.
async fn round_trip(from: &async_nats::Client, to: &async_nats::Client, subject: &str) {
    let mut subscription = to.subscribe(subject.to_owned()).await.unwrap();
    settled(to).await;
    from.publish(subject.to_owned(), "hello".into())
        .await
        .unwrap();
    from.flush().await.unwrap();
    let message = within(TIMEOUT, "the message", subscription.next())
        .await
        .unwrap();
    assert_eq!(&message.payload[..], b"hello");
}

#[tokio::test]
async fn token_connects_named_after_the_node_without_echo() {
    let nats = ConfiguredNats::start("trace: true\nauthorization { token: \"s3cret\" }").await;
    let mut config = cluster(vec![nats.url()]);
    config.token = "s3cret".to_owned();
    let (node, stats) = connected(&config).await;
    assert_eq!(count(&stats.cluster_connect_errors), 0);

    // The server saw the node's name and that it wants no echo of its own messages.
    eventually("CONNECT in the server's trace", TIMEOUT, || {
        nats.log().contains("\"name\":\"herald n1\"")
    })
    .await;
    let log = nats.log();
    let connect_line = log
        .lines()
        .find(|l| l.contains("\"name\":\"herald n1\""))
        .unwrap();
    assert!(connect_line.contains("\"echo\":false"), "{connect_line}");

    // A peer sees the node's publish; the node's own subscription does not: the peer's
    // marker, published after the peer got the node's message, arrives first.
    let peer = async_nats::ConnectOptions::with_token("s3cret".to_owned())
        .connect(nats.url())
        .await
        .unwrap();
    let mut own = node.subscribe("t.a").await.unwrap();
    round_trip(&node, &peer, "t.a").await;
    peer.publish("t.a", "marker".into()).await.unwrap();
    peer.flush().await.unwrap();
    let first = within(TIMEOUT, "the marker", own.next()).await.unwrap();
    assert_eq!(&first.payload[..], b"marker");
}

#[tokio::test]
async fn user_and_password_connect() {
    let nats =
        ConfiguredNats::start("authorization { users = [ { user: herald, password: \"pa55\" } ] }")
            .await;
    let mut config = cluster(vec![nats.url()]);
    config.user = "herald".to_owned();
    config.password = "pa55".to_owned();
    let (node, _stats) = connected(&config).await;
    let peer = async_nats::ConnectOptions::with_user_and_password("herald".into(), "pa55".into())
        .connect(nats.url())
        .await
        .unwrap();
    round_trip(&peer, &node, "t.b").await;
}

/// A `tracing` writer into a shared buffer, to read what the node logged.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Refused credentials: the node keeps running without a link, logs the refusal as an error,
/// counts every attempt, and waits longer and longer between attempts (decision: NATS can be
/// fixed without restarting Herald, so the node keeps trying, but never in a hot loop).
// The test's runtime has one thread, so the client's event task logs into this subscriber.
#[tokio::test(flavor = "current_thread")]
async fn a_wrong_password_is_logged_counted_and_retried_with_backoff() {
    let nats = ConfiguredNats::start(
        "authorization { users = [ { user: herald, password: \"right\" } ] }",
    )
    .await;
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _logging = tracing::subscriber::set_default(subscriber);

    let mut config = cluster(vec![nats.url()]);
    config.user = "herald".to_owned();
    config.password = "wrong".to_owned();
    let stats = Arc::new(Stats::default());
    let start = tokio::time::Instant::now();
    let _node = connect(&config, NODE, Arc::clone(&stats))
        .await
        .expect("a node with refused credentials still starts");
    let attempts = 4;
    eventually("four refused attempts", Duration::from_secs(30), || {
        count(&stats.cluster_auth_errors) >= attempts
    })
    .await;
    // Attempts 2 to 4 each waited their delay first: 100 + 200 + 400 ms at least.
    let waited: Duration = (2..=attempts as usize).map(reconnect_delay).sum();
    assert!(
        start.elapsed() >= waited,
        "{attempts} attempts in {:?}",
        start.elapsed()
    );
    assert!(!link_up(&stats));
    assert_eq!(count(&stats.cluster_reconnects), 0);

    let log = captured.text();
    let refusals = stats.cluster_auth_errors.load(Ordering::Relaxed);
    assert!(count(&stats.cluster_connect_errors) >= refusals);
    let logged = log
        .lines()
        .filter(|l| l.contains("NATS refused this node's credentials"))
        .collect::<Vec<_>>();
    assert!(!logged.is_empty(), "{log}");
    assert!(logged[0].contains("ERROR"), "{}", logged[0]);
    assert!(
        logged[0].contains("authorization violation"),
        "{}",
        logged[0]
    );
    // Logged at the 1st, 2nd, 4th... refusal, not at each.
    assert!(
        logged.len() as u32 <= refusals.ilog2() + 1,
        "{} lines for {refusals} refusals",
        logged.len()
    );
    assert!(
        !log.contains("wrong"),
        "the password never reaches the log:\n{log}"
    );
}

#[tokio::test]
async fn nkey_seed_inline_and_from_a_file() {
    let user = nkeys::KeyPair::new_user();
    let nats = ConfiguredNats::start(&format!(
        "authorization {{ users = [ {{ nkey: {} }} ] }}",
        user.public_key()
    ))
    .await;
    let seed = user.seed().unwrap();

    let mut config = cluster(vec![nats.url()]);
    config.nkey_seed = seed.clone();
    let (first, _stats) = connected(&config).await;

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("herald.nk");
    std::fs::write(&file, format!("{seed}\n")).unwrap();
    let mut config = cluster(vec![nats.url()]);
    config.nkey_seed_file = file.display().to_string();
    let (second, _stats) = connected(&config).await;
    round_trip(&first, &second, "t.c").await;
}

/// A NATS JWT as `nsc` issues them: claims `nats` about `subject`, signed by `issuer`.
fn nats_jwt(issuer: &nkeys::KeyPair, subject: &str, nats: serde_json::Value) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = URL_SAFE_NO_PAD.encode(r#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let claims = serde_json::json!({
        "jti": subject,
        "iat": 1_700_000_000,
        "iss": issuer.public_key(),
        "name": "herald-test",
        "sub": subject,
        "nats": nats,
    });
    let signed = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims.to_string()));
    let signature = URL_SAFE_NO_PAD.encode(issuer.sign(signed.as_bytes()).unwrap());
    format!("{signed}.{signature}")
}

/// A `.creds` file for user `user`, issued by `account`, in the format `nsc` writes.
fn creds_file(dir: &std::path::Path, account: &nkeys::KeyPair, user: &nkeys::KeyPair) -> String {
    let user_claims = serde_json::json!({
        "type": "user", "version": 2, "pub": {}, "sub": {},
        "subs": -1, "data": -1, "payload": -1,
    });
    let jwt = nats_jwt(account, &user.public_key(), user_claims);
    let seed = user.seed().unwrap();
    let text = format!(
        "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n\
         ************************* IMPORTANT *************************\n\
         NKEY Seed printed below can be used to sign and prove identity.\n\n\
         -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
    );
    let path = dir.join(format!("{}.creds", &user.public_key()[..8]));
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// Decentralized authentication: a server trusting one operator and its account, and a node
/// logging in with a user's `.creds` file; a user of an account the server does not know is
/// refused and counted as an authentication error.
#[tokio::test]
async fn credentials_file_of_a_trusted_account() {
    let operator = nkeys::KeyPair::new_operator();
    let account = nkeys::KeyPair::new_account();
    let operator_jwt = nats_jwt(
        &operator,
        &operator.public_key(),
        serde_json::json!({ "type": "operator", "version": 2 }),
    );
    let limits = serde_json::json!({
        "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
        "wildcards": true, "conn": -1, "leaf": -1,
    });
    let account_jwt = nats_jwt(
        &operator,
        &account.public_key(),
        serde_json::json!({ "type": "account", "version": 2, "limits": limits }),
    );
    let nats = ConfiguredNats::start(&format!(
        "operator: {operator_jwt}\nresolver: MEMORY\nresolver_preload: {{ {}: {account_jwt} }}",
        account.public_key()
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();

    let mut nodes = Vec::new();
    for _ in 0..2 {
        let mut config = cluster(vec![nats.url()]);
        config.credentials_file = creds_file(dir.path(), &account, &nkeys::KeyPair::new_user());
        nodes.push(connected(&config).await);
    }
    let ((a, _), (b, _)) = (&nodes[0], &nodes[1]);
    round_trip(a, b, "t.g").await;

    let stranger = nkeys::KeyPair::new_account();
    let mut config = cluster(vec![nats.url()]);
    config.credentials_file = creds_file(dir.path(), &stranger, &nkeys::KeyPair::new_user());
    let stats = Arc::new(Stats::default());
    let _refused = connect(&config, NODE, Arc::clone(&stats)).await.unwrap();
    eventually("a refusal", Duration::from_secs(30), || {
        count(&stats.cluster_auth_errors) >= 1
    })
    .await;
    assert!(!link_up(&stats));
}

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
        .display()
        .to_string()
}

/// A server that requires TLS and a client certificate signed by the test CA.
async fn tls_nats() -> ConfiguredNats {
    ConfiguredNats::start(&format!(
        "tls {{ cert_file: \"{}\", key_file: \"{}\", ca_file: \"{}\", verify: true, timeout: 5 }}",
        fixture("server.pem"),
        fixture("server-key.pem"),
        fixture("ca.pem"),
    ))
    .await
}

fn client_tls() -> ClusterTlsConfig {
    ClusterTlsConfig {
        ca_file: fixture("ca.pem"),
        cert_file: fixture("client.pem"),
        key_file: fixture("client-key.pem"),
        required: false,
    }
}

#[tokio::test]
async fn tls_with_a_ca_and_a_client_certificate() {
    let nats = tls_nats().await;
    // A tls:// URL, and a nats:// URL that the CA file makes TLS.
    let mut nodes = Vec::new();
    for url in [
        format!("tls://127.0.0.1:{}", nats.port),
        format!("nats://localhost:{}", nats.port),
    ] {
        let mut config = cluster(vec![url]);
        config.tls = client_tls();
        nodes.push(connected(&config).await);
    }
    let ((a, _), (b, _)) = (&nodes[0], &nodes[1]);
    round_trip(a, b, "t.d").await;
}

#[tokio::test]
async fn tls_without_the_client_certificate_is_refused_and_counted() {
    let nats = tls_nats().await;
    let mut config = cluster(vec![format!("tls://127.0.0.1:{}", nats.port)]);
    config.tls = ClusterTlsConfig {
        cert_file: String::new(),
        key_file: String::new(),
        ..client_tls()
    };
    let stats = Arc::new(Stats::default());
    let _node = connect(&config, NODE, Arc::clone(&stats)).await.unwrap();
    eventually("two failed attempts", Duration::from_secs(30), || {
        count(&stats.cluster_connect_errors) >= 2
    })
    .await;
    assert!(!link_up(&stats));
    assert_eq!(count(&stats.cluster_auth_errors), 0);
}

#[tokio::test]
async fn a_dead_server_in_the_list_is_skipped() {
    let dead = NatsServer::unstarted();
    let live = NatsServer::start().await;
    let config = cluster(vec![dead.url(), live.url(), dead.url()]);
    let (node, _stats) = connected(&config).await;
    assert_eq!(node.server_info().port, live.port);
}

/// NATS down when the node starts: `connect` returns at once, the link comes up when NATS
/// does, goes down with it, and comes back with the subscriptions made before.
#[tokio::test]
async fn nats_down_at_start_then_killed_and_restarted() {
    let mut nats = NatsServer::unstarted();
    let config = cluster(vec![nats.url()]);
    let stats = Arc::new(Stats::default());
    let node = connect(&config, NODE, Arc::clone(&stats))
        .await
        .expect("a node starts while NATS is down");
    let mut subscription = node.subscribe("t.e").await.unwrap();
    eventually("a failed attempt", Duration::from_secs(30), || {
        count(&stats.cluster_connect_errors) >= 1
    })
    .await;
    assert!(!link_up(&stats));

    nats.restart().await;
    within(Duration::from_secs(30), "the first connect", node.flush())
        .await
        .unwrap();
    eventually("link up", TIMEOUT, || link_up(&stats)).await;
    assert_eq!(count(&stats.cluster_reconnects), 0);
    settled(&node).await;
    let peer = async_nats::connect(nats.url()).await.unwrap();
    peer.publish("t.e", "one".into()).await.unwrap();
    peer.flush().await.unwrap();
    let one = within(TIMEOUT, "a message", subscription.next())
        .await
        .unwrap();
    assert_eq!(&one.payload[..], b"one");

    nats.kill();
    eventually("link down", TIMEOUT, || {
        !link_up(&stats) && count(&stats.cluster_disconnects) == 1
    })
    .await;
    nats.restart().await;
    eventually("link up again", Duration::from_secs(30), || {
        link_up(&stats) && count(&stats.cluster_reconnects) == 1
    })
    .await;
    // The subscription made before the outage was restored on the new connection.
    settled(&node).await;
    let peer = async_nats::connect(nats.url()).await.unwrap();
    peer.publish("t.e", "two".into()).await.unwrap();
    peer.flush().await.unwrap();
    let two = within(TIMEOUT, "a message", subscription.next())
        .await
        .unwrap();
    assert_eq!(&two.payload[..], b"two");
}

/// A subscription whose channel is full drops what NATS sends it, and each drop is counted
/// (`cluster.subscription_capacity` is the bound; nothing between NATS and the node grows).
#[tokio::test]
async fn a_full_subscription_drops_and_counts() {
    let nats = NatsServer::start().await;
    let mut config = cluster(vec![nats.url()]);
    config.subscription_capacity = 4;
    let (node, stats) = connected(&config).await;
    let mut subscription = node.subscribe("t.f").await.unwrap();
    settled(&node).await;
    let peer = async_nats::connect(nats.url()).await.unwrap();
    for i in 0..20 {
        peer.publish("t.f", i.to_string().into()).await.unwrap();
    }
    peer.flush().await.unwrap();
    eventually("16 drops counted", TIMEOUT, || {
        count(&stats.cluster_slow_consumer) == 16
    })
    .await;
    // The first four were kept, in order.
    for i in 0..4 {
        let message = within(TIMEOUT, "a kept message", subscription.next())
            .await
            .unwrap();
        assert_eq!(message.payload, i.to_string());
    }
    assert!(link_up(&stats), "a slow consumer keeps its link");
}

/// `herald config check` on files with a `[cluster]` section.
#[test]
fn config_check_of_a_cluster_section() {
    let dir = tempfile::tempdir().unwrap();
    let check = |name: &str, text: &str| {
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
            .args(["config", "check"])
            .arg(&file)
            .output()
            .unwrap()
    };
    let good = check(
        "good.toml",
        "[cluster]\nservers = [\"nats://a:4222\", \"tls://b:4443\"]\nnode_id = \"a1\"\n\
         token = \"t\"\n",
    );
    assert!(good.status.success(), "{good:?}");
    assert!(String::from_utf8_lossy(&good.stdout).ends_with("good.toml: ok\n"));

    let bad = check(
        "bad.toml",
        "[cluster]\nname = \"a.b\"\nnode_id = \"A1\"\ntoken = \"t\"\nuser = \"u\"\n",
    );
    assert_eq!(bad.status.code(), Some(2));
    let stderr = String::from_utf8(bad.stderr).unwrap();
    for key in [
        "cluster.name: ",
        "cluster.node_id: ",
        "cluster: set at most one kind of NATS credentials; found token, user/password",
        "cluster.password: must be set together with cluster.user",
    ] {
        assert!(stderr.contains(key), "{key} missing from {stderr}");
    }
}

/// `herald --cluster` on the real binary: `config print` shows the section it makes.
#[test]
fn cluster_flag_of_the_binary() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args([
            "config",
            "print",
            "--cluster",
            "nats://a:4222,nats://b:4222",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let printed = String::from_utf8(output.stdout).unwrap();
    let config = herald::Config::from_toml_str(&printed, "stdout").unwrap();
    let cluster = config.cluster.expect("a [cluster] section");
    assert_eq!(cluster.servers, ["nats://a:4222", "nats://b:4222"]);
    assert_eq!(cluster.name, "herald");

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["config", "print", "--cluster", "localhost:4222"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("cluster.servers[0]: \"localhost:4222\" needs a scheme"),
        "{stderr}"
    );
}
