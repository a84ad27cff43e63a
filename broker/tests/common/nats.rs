//! Real `nats-server` processes for cluster tests: one server, or a three-server NATS cluster,
//! on free loopback ports with their own temporary directories, killed when dropped.
//!
//! The binary is the Debian package's (`scripts/test.sh` installs it when missing); set
//! `NATS_SERVER_BIN` to use another.

use std::collections::HashSet;
use std::fs::File;
use std::hash::{BuildHasher, RandomState};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// How long a server may take to accept connections, or a cluster to form its routes. Generous:
/// the machine may be busy building and running other tests.
pub const NATS_START: Duration = Duration::from_secs(30);

/// Ports this test process has handed out, so two of its tests never pick the same one (a
/// stopped server keeps its port for its restart).
static TAKEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A loopback port nothing listens on, below the kernel's ephemeral range when there is room
/// there: ports from that range come back from `bind(0)` and as the local end of outgoing
/// connections, so one could be taken while a server is down waiting for its restart.
pub fn free_port() -> u16 {
    let (low, _) = ephemeral_range();
    let mut taken = TAKEN.lock().unwrap();
    let taken = taken.get_or_insert_with(HashSet::new);
    let random = RandomState::new();
    let mut attempt = 0u64;
    loop {
        attempt += 1;
        let port = if low > 11_000 {
            let span = u64::from(low) - 10_000;
            (10_000 + random.hash_one(attempt) % span) as u16
        } else {
            TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        if !taken.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            taken.insert(port);
            return port;
        }
        assert!(attempt < 10_000, "no free loopback port found");
    }
}

fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| {
            let mut parts = text.split_whitespace().map(|p| p.parse().ok());
            Some((parts.next()??, parts.next()??))
        })
        .unwrap_or((32_768, 60_999))
}

/// The `nats-server` binary: `NATS_SERVER_BIN`, else the first on `PATH`, else the Debian
/// package's path.
pub fn nats_server_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("NATS_SERVER_BIN") {
        return path.into();
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .chain(["/usr/sbin".into(), "/usr/bin".into()])
        .map(|dir| dir.join("nats-server"))
        .find(|path| path.is_file());
    on_path.unwrap_or_else(|| {
        panic!("nats-server not found: `apt-get install nats-server` (scripts/test.sh does it)")
    })
}

/// What a server is started with besides its client port.
#[derive(Debug, Clone, Default)]
pub struct NatsOptions {
    /// JetStream on, storing under the server's temporary directory.
    pub jetstream: bool,
    /// The HTTP monitoring port (`/varz`, `/connz`, `/routez`), when wanted.
    pub monitor: bool,
    /// Cluster membership: `(cluster name, this server's route port, the other servers' route
    /// ports)`.
    pub cluster: Option<(String, u16, Vec<u16>)>,
}

/// One `nats-server` process on `127.0.0.1:port`; killed on drop.
#[derive(Debug)]
pub struct NatsServer {
    pub port: u16,
    /// The monitoring port, when started with [`NatsOptions::monitor`].
    pub monitor_port: Option<u16>,
    /// Its server name, when it is a cluster member.
    pub name: Option<String>,
    args: Vec<String>,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Starts so far; each writes its own log file.
    runs: usize,
}

impl NatsServer {
    /// A plain server (no JetStream, no monitoring), accepting connections.
    pub async fn start() -> NatsServer {
        NatsServer::start_with(NatsOptions::default()).await
    }

    pub async fn start_with(options: NatsOptions) -> NatsServer {
        let mut server = NatsServer::new(free_port(), &options);
        server.restart().await;
        server
    }

    /// A plain server with its port chosen, not started yet: [`NatsServer::restart`] starts it.
    /// For nodes that start while NATS is down.
    pub fn unstarted() -> NatsServer {
        NatsServer::unstarted_with(&NatsOptions::default())
    }

    /// [`NatsServer::unstarted`] with `options`.
    pub fn unstarted_with(options: &NatsOptions) -> NatsServer {
        NatsServer::new(free_port(), options)
    }

    fn new(port: u16, options: &NatsOptions) -> NatsServer {
        let dir = tempfile::tempdir().expect("temporary directory for nats-server");
        let mut args: Vec<String> = vec!["-a".into(), "127.0.0.1".into()];
        args.extend(["-p".into(), port.to_string()]);
        if options.jetstream {
            args.extend(["-js".into(), "-sd".into()]);
            args.push(dir.path().join("jetstream").display().to_string());
        }
        let monitor_port = options.monitor.then(free_port);
        if let Some(monitor) = monitor_port {
            args.extend(["-m".into(), monitor.to_string()]);
        }
        let name = options
            .cluster
            .as_ref()
            .map(|(cluster, route_port, _)| format!("{cluster}-{route_port}"));
        if let (Some((cluster, route_port, others)), Some(name)) = (&options.cluster, &name) {
            args.extend(["--cluster_name".into(), cluster.clone()]);
            // JetStream in a cluster needs every server named.
            args.extend(["--name".into(), name.clone()]);
            args.extend(["--cluster".into(), format!("nats://127.0.0.1:{route_port}")]);
            let routes: Vec<String> = others
                .iter()
                .map(|p| format!("nats://127.0.0.1:{p}"))
                .collect();
            args.extend(["--routes".into(), routes.join(",")]);
        }
        NatsServer {
            port,
            monitor_port,
            name,
            args,
            dir,
            child: None,
            runs: 0,
        }
    }

    /// The client URL, `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the server at once (SIGKILL: no goodbye to its clients), keeping its port.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server (again) on the same ports and waits until it accepts connections.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "restart of a running nats-server");
        self.runs += 1;
        let log = File::create(self.log_path()).unwrap();
        let child = Command::new(nats_server_bin())
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run nats-server: {e}"));
        self.child = Some(child);
        self.await_accepting().await;
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join(format!("nats-{}.log", self.runs))
    }

    /// The server's log of its current (or last) run.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Polls with a short, growing backoff until a connection gets the server's `INFO` line;
    /// fails at once if the process exits.
    async fn await_accepting(&mut self) {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = tokio::time::Instant::now() + NATS_START;
        let mut backoff = Duration::from_millis(5);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                panic!(
                    "nats-server on port {} exited ({status}) before accepting:\n{}",
                    self.port,
                    self.log()
                );
            }
            if greets(addr).await {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "nats-server on port {} did not accept within {NATS_START:?}:\n{}",
                    self.port,
                    self.log()
                );
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(200));
        }
    }

    /// GET of a monitoring endpoint (`/varz`, `/connz`, `/routez`) as JSON.
    pub async fn monitor(&self, endpoint: &str) -> serde_json::Value {
        let port = self
            .monitor_port
            .expect("nats-server started without monitoring");
        http_get_json(SocketAddr::from(([127, 0, 0, 1], port)), endpoint).await
    }

    /// How many clients are connected to this server now.
    pub async fn client_connections(&self) -> u64 {
        self.monitor("/connz")
            .await
            .get("num_connections")
            .and_then(serde_json::Value::as_u64)
            .expect("connz has num_connections")
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if std::thread::panicking() && self.child.is_some() {
            eprintln!("---- nats-server :{} log ----\n{}", self.port, self.log());
        }
        self.kill();
    }
}

/// Whether a NATS server answers on `addr`: it sends `INFO {...}` first on every connection.
async fn greets(addr: SocketAddr) -> bool {
    let attempt = async {
        let stream = TcpStream::connect(addr).await.ok()?;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).await.ok()?;
        Some(line.starts_with("INFO "))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), attempt).await,
        Ok(Some(true))
    )
}

/// A minimal HTTP/1.0 GET (the monitoring endpoints answer and close), body parsed as JSON.
async fn http_get_json(addr: SocketAddr, path: &str) -> serde_json::Value {
    let request = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
            .await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(5), request)
        .await
        .unwrap_or_else(|_| panic!("GET {path} from {addr} timed out"))
        .unwrap_or_else(|e| panic!("GET {path} from {addr}: {e}"));
    let text = String::from_utf8_lossy(&response);
    let body = text
        .split_once("\r\n\r\n")
        .map_or_else(|| panic!("no HTTP body in {text:?}"), |(_, body)| body);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body:?}"))
}

/// Three `nats-server`s forming one NATS cluster, each with its own client, route and
/// monitoring port.
#[derive(Debug)]
pub struct NatsCluster {
    pub servers: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts three servers routed to each other and waits until every one has routes to
    /// both others.
    pub async fn start() -> NatsCluster {
        NatsCluster::start_with(false).await
    }

    /// [`NatsCluster::start`], with JetStream on every server if `jetstream`.
    pub async fn start_with(jetstream: bool) -> NatsCluster {
        const SIZE: u64 = 3;
        let name = format!("herald-test-{}", free_port());
        let route_ports: Vec<u16> = (0..SIZE).map(|_| free_port()).collect();
        let mut servers = Vec::new();
        for (i, &route_port) in route_ports.iter().enumerate() {
            let others = route_ports
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .map(|(_, &p)| p)
                .collect();
            let options = NatsOptions {
                jetstream,
                monitor: true,
                cluster: Some((name.clone(), route_port, others)),
            };
            servers.push(NatsServer::start_with(options).await);
        }
        let cluster = NatsCluster { servers };
        cluster.await_routes(SIZE - 1).await;
        cluster
    }

    /// Every server's client URL, for `[cluster] servers`.
    pub fn urls(&self) -> Vec<String> {
        self.servers.iter().map(NatsServer::url).collect()
    }

    /// Kills server `i` (SIGKILL); the others stay up.
    pub fn kill(&mut self, i: usize) {
        self.servers[i].kill();
    }

    /// Polls `/routez` of every running server until each reports `routes` routes.
    pub async fn await_routes(&self, routes: u64) {
        let deadline = tokio::time::Instant::now() + NATS_START;
        for server in self.servers.iter().filter(|s| s.is_running()) {
            loop {
                let routez = server.monitor("/routez").await;
                let now = routez.get("num_routes").and_then(serde_json::Value::as_u64);
                if now == Some(routes) {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "nats-server :{} has {now:?} routes, not {routes}, after {NATS_START:?}:\n{}",
                    server.port,
                    server.log()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}
