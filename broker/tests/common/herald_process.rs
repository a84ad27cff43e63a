//! Herald nodes as real processes (the `herald` binary cargo built for the tests), each with
//! its own configuration file, both listeners on free loopback ports, and a `[cluster]`
//! section naming the NATS servers. Killed when dropped; a failing test prints their logs.

use std::fs::File;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald_protocol::Frame;
use tokio::sync::mpsc;

use super::{Client, Transport, login_frame};

/// How long a node may take to start listening (a debug build on a busy machine).
pub const NODE_START: Duration = Duration::from_secs(30);

/// Users every node knows, each with the password [`password_of`] gives.
pub const USERS: [&str; 3] = ["alice", "bob", "carol"];

pub fn password_of(user: &str) -> String {
    format!("{user}-secret")
}

/// One `herald` process.
#[derive(Debug)]
pub struct HeraldProcess {
    pub node_id: String,
    pub tcp_addr: SocketAddr,
    pub ws_addr: SocketAddr,
    child: Child,
    /// Every line logged so far, for failure messages.
    log: Arc<Mutex<Vec<String>>>,
    lines: mpsc::UnboundedReceiver<String>,
    _dir: tempfile::TempDir,
}

impl HeraldProcess {
    /// Starts node `node_id` of the cluster whose NATS servers are `servers` and waits for
    /// both `listening` lines. NATS need not be up: a node serves local traffic without it.
    pub async fn start(node_id: &str, servers: &[String]) -> HeraldProcess {
        HeraldProcess::start_clustered_with(node_id, servers, "").await
    }

    /// [`HeraldProcess::start`] with `config` (more TOML sections) added.
    pub async fn start_clustered_with(
        node_id: &str,
        servers: &[String],
        config: &str,
    ) -> HeraldProcess {
        let cluster = cluster_config(node_id, servers, config);
        HeraldProcess::start_with(node_id, &cluster, "info").await
    }

    /// Runs node `node_id` of the cluster whose NATS servers are `servers`, with `config`
    /// added, expecting it to stop by itself (a start it refuses); returns how it exited and
    /// everything it logged. Fails if it is still running after [`NODE_START`].
    pub async fn run_to_exit(
        node_id: &str,
        servers: &[String],
        config: &str,
    ) -> (ExitStatus, String) {
        let dir = tempfile::tempdir().expect("temporary directory for herald");
        let output = dir.path().join("output.log");
        let log = File::create(&output).unwrap();
        let mut child = command(
            dir.path(),
            &cluster_config(node_id, servers, config),
            "info",
        )
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("spawn herald");
        let Some(status) = exit_within(&mut child, NODE_START).await else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "node {node_id} still running after {NODE_START:?}:\n{}",
                std::fs::read_to_string(&output).unwrap_or_default()
            );
        };
        (status, std::fs::read_to_string(&output).unwrap())
    }

    /// Stops the node the graceful way (SIGTERM, as a service manager does) and waits for it
    /// to exit; fails if it is still running after [`NODE_START`].
    pub async fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let kill = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(kill.is_ok_and(|s| s.success()), "kill -TERM {pid}");
        exit_within(&mut self.child, NODE_START)
            .await
            .unwrap_or_else(|| {
                panic!(
                    "node {} still running {NODE_START:?} after SIGTERM:\n{}",
                    self.node_id,
                    self.log()
                )
            })
    }

    /// Starts a node with `config` added to its listeners' section, logging at `log_level`.
    pub async fn start_with(node_id: &str, config: &str, log_level: &str) -> HeraldProcess {
        let mut node = HeraldProcess::spawn_with(node_id, config, log_level);
        node.await_listening().await;
        node
    }

    /// [`HeraldProcess::start_clustered_with`] without waiting for the listeners: for a test
    /// that acts while the node starts; [`HeraldProcess::await_listening`] then finishes.
    pub fn spawn_clustered_with(node_id: &str, servers: &[String], config: &str) -> HeraldProcess {
        HeraldProcess::spawn_with(node_id, &cluster_config(node_id, servers, config), "info")
    }

    fn spawn_with(node_id: &str, config: &str, log_level: &str) -> HeraldProcess {
        let dir = tempfile::tempdir().expect("temporary directory for herald");
        let mut child = command(dir.path(), config, log_level)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn herald");

        // A thread per stream reads lines as they come, so a silent or hung node fails the
        // wait below instead of blocking the test.
        let log = Arc::new(Mutex::new(Vec::new()));
        let (lines_tx, lines) = mpsc::unbounded_channel();
        let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        for reader in [
            Box::new(stdout) as Box<dyn BufRead + Send>,
            Box::new(stderr),
        ] {
            let (log, lines_tx) = (log.clone(), lines_tx.clone());
            std::thread::spawn(move || {
                for line in reader.lines().map_while(Result::ok) {
                    log.lock().unwrap().push(line.clone());
                    let _ = lines_tx.send(line);
                }
            });
        }

        HeraldProcess {
            node_id: node_id.to_owned(),
            tcp_addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            ws_addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            child,
            log,
            lines,
            _dir: dir,
        }
    }

    /// Waits for both `listening` lines and takes the addresses from them.
    pub async fn await_listening(&mut self) {
        for _ in 0..2 {
            let line = self.wait_for_log("listening").await;
            let addr = bound_addr(&line);
            if line.contains("transport=\"tcp\"") {
                self.tcp_addr = addr;
            } else {
                self.ws_addr = addr;
            }
        }
        assert!(
            self.tcp_addr.port() != 0 && self.ws_addr.port() != 0,
            "node {} did not log both listeners:\n{}",
            self.node_id,
            self.log()
        );
    }

    /// Waits for the next log line containing `text` (lines before it are skipped).
    pub async fn wait_for_log(&mut self, text: &str) -> String {
        let deadline = tokio::time::Instant::now() + NODE_START;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) if line.contains(text) => return line,
                Ok(Some(_)) => {}
                Ok(None) => panic!(
                    "node {} ended without logging {text:?}:\n{}",
                    self.node_id,
                    self.log()
                ),
                Err(_) => panic!(
                    "node {} did not log {text:?} within {NODE_START:?}:\n{}",
                    self.node_id,
                    self.log()
                ),
            }
        }
    }

    /// Everything the node has logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// A connection on which nothing has been sent yet.
    pub async fn open(&self, transport: Transport) -> Client {
        match transport {
            Transport::Tcp => Client::tcp(self.tcp_addr, None).await,
            Transport::Ws => Client::ws(self.ws_addr, None).await,
        }
    }

    /// An anonymous STOMP 1.2 session; returns it with its CONNECTED frame.
    pub async fn client(&self, transport: Transport) -> (Client, Frame) {
        let mut client = self.open(transport).await;
        let connected = client.connect().await;
        (client, connected)
    }

    /// A session of `user` (one of [`USERS`]); returns it with its CONNECTED frame.
    pub async fn login(&self, transport: Transport, user: &str) -> (Client, Frame) {
        let mut client = self.open(transport).await;
        let connected = client
            .connect_with(login_frame(user, &password_of(user)))
            .await;
        (client, connected)
    }
}

impl Drop for HeraldProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- herald node {} log ----\n{}", self.node_id, self.log());
        }
    }
}

/// How `child` exited, if it does within `limit`.
async fn exit_within(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `[cluster]` section naming `servers` and `node_id`, followed by `config`.
fn cluster_config(node_id: &str, servers: &[String], config: &str) -> String {
    let servers: Vec<String> = servers.iter().map(|s| format!("{s:?}")).collect();
    format!(
        "[cluster]\nservers = [{}]\nnode_id = {node_id:?}\n{config}",
        servers.join(", ")
    )
}

/// The `herald` command for a node whose configuration file, written in `dir`, has `config`
/// added to its listeners' section; stdin closed, stdout and stderr left to the caller.
fn command(dir: &Path, config: &str, log_level: &str) -> Command {
    let config_file = dir.join("herald.toml");
    std::fs::write(
        &config_file,
        format!(
            "[websocket]\nbind = \"127.0.0.1:0\"\n\
             [tcp]\nbind = \"127.0.0.1:0\"\n{config}"
        ),
    )
    .unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_herald"));
    command
        .arg("--config")
        .arg(&config_file)
        .args(["--log-level", log_level]);
    for user in USERS {
        command
            .arg("--user")
            .arg(format!("{user}:{}", password_of(user)));
    }
    command.env_remove("RUST_LOG");
    // For a look inside a failing test: HERALD_TEST_NODE_LOG=herald=debug is every node's
    // RUST_LOG, which takes precedence over --log-level.
    if let Some(filter) = std::env::var_os("HERALD_TEST_NODE_LOG") {
        command.env("RUST_LOG", filter);
    }
    command.env("NO_COLOR", "1").stdin(Stdio::null());
    command
}

/// Parses `addr=127.0.0.1:PORT` out of a `listening` log line.
fn bound_addr(line: &str) -> SocketAddr {
    let start = line.find("addr=").expect("addr field") + "addr=".len();
    let end = line[start..].find(' ').map_or(line.len(), |n| start + n);
    line[start..end]
        .parse()
        .unwrap_or_else(|e| panic!("no socket address in {line:?}: {e}"))
}
