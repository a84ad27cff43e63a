//! The operations listener (`[http]`) over real sockets: each metric moves as a scripted
//! scenario says it must, `/healthz` and `/readyz` (503 while draining, following the cluster
//! link), the shipped Grafana dashboard queries only exported metrics, and hostile clients
//! (huge or broken requests, slowloris, a crowd of connections) cost a bounded amount.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use common::nats::{NatsServer, free_port};
use common::{
    TIMEOUT, TestServer, Transport, access_rule, add_user, config, login_frame, send_batch,
    send_frame, within,
};
use herald::config::{AccessAction, AccessDefault, Config, OverflowPolicy};
use herald_protocol::Command;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The test configuration with the operations listener on a free loopback port.
fn with_http(mut config: Config) -> (Config, SocketAddr) {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    config.http.enabled = true;
    config.http.bind = addr;
    (config, addr)
}

/// A response: status code, head, body.
#[derive(Debug)]
struct Response {
    status: u16,
    head: String,
    body: String,
}

/// Sends `request` as is on a new connection and reads until the server closes.
async fn raw(addr: SocketAddr, request: &[u8]) -> Response {
    let mut stream = TcpStream::connect(addr)
        .await
        .expect("connect to the http port");
    stream.write_all(request).await.expect("write the request");
    let mut bytes = Vec::new();
    within(TIMEOUT, "the response", stream.read_to_end(&mut bytes))
        .await
        .expect("read the response");
    parse(&bytes)
}

fn parse(bytes: &[u8]) -> Response {
    let text = String::from_utf8_lossy(bytes);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    Response {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

async fn get(addr: SocketAddr, path: &str) -> Response {
    raw(
        addr,
        format!("GET {path} HTTP/1.1\r\nhost: ops\r\nconnection: close\r\n\r\n").as_bytes(),
    )
    .await
}

/// Each `(series, value)` as scraped in `m`.
fn assert_series(m: &HashMap<String, f64>, expected: &[(&str, f64)]) {
    for &(series, want) in expected {
        assert_eq!(value(m, series), want, "{series}");
    }
}

/// `/metrics` as series (`name{labels}` exactly as exposed) → value.
async fn scrape(addr: SocketAddr) -> HashMap<String, f64> {
    let response = get(addr, "/metrics").await;
    assert_eq!(response.status, 200, "{response:?}");
    assert!(
        response
            .head
            .contains("content-type: text/plain; version=0.0.4"),
        "{}",
        response.head
    );
    series(&response.body)
}

fn series(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').expect("series value");
            (name.to_owned(), value.parse().expect("a number"))
        })
        .collect()
}

/// The value of one series, which must exist.
fn value(metrics: &HashMap<String, f64>, series: &str) -> f64 {
    *metrics
        .get(series)
        .unwrap_or_else(|| panic!("no series {series} in {:?}", sorted(metrics)))
}

fn sorted(metrics: &HashMap<String, f64>) -> Vec<&String> {
    let mut names: Vec<&String> = metrics.keys().collect();
    names.sort();
    names
}

/// Waits until `series` reaches `expected` (metrics move after the frames that cause them).
async fn until(addr: SocketAddr, series: &str, expected: f64) -> HashMap<String, f64> {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let metrics = scrape(addr).await;
        if metrics.get(series) == Some(&expected) {
            return metrics;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{series} is {:?}, expected {expected}",
            metrics.get(series)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn metrics_follow_connect_publish_auth_failure_access_and_queues() {
    let mut config = config();
    add_user(&mut config, "alice", "secret", &[]);
    // Everything this test uses is allowed, to everyone; /topic/secret is not.
    config.access.default = AccessDefault::Deny;
    let mut rule = access_rule(
        &[AccessAction::Send, AccessAction::Subscribe],
        &["/topic/a", "/topic/nobody", "/queue/work"],
    );
    (rule.authenticated, rule.anonymous) = (true, true);
    config.access.rules.push(rule);
    let (config, http) = with_http(config);
    let server = TestServer::start(config).await;
    let before = scrape(http).await;
    assert_eq!(value(&before, "herald_connections{transport=\"tcp\"}"), 0.0);
    assert_eq!(value(&before, "herald_subscriptions"), 0.0);
    assert_eq!(
        value(&before, "herald_cluster_link_state{state=\"standalone\"}"),
        1.0
    );
    assert_eq!(value(&before, "herald_ready"), 1.0);

    // Connect over both transports, subscribe on one, publish on the other.
    let (mut publisher, _) = server.login(Transport::Tcp, "alice", "secret").await;
    let mut subscriber = server.client(Transport::Ws).await;
    subscriber.subscribe("s", "/topic/a").await;
    publisher.publish_confirmed("/topic/a", "hello").await;
    subscriber.expect_message("s", "/topic/a", "hello").await;
    let m = until(http, "herald_frames_sent_total{command=\"MESSAGE\"}", 1.0).await;
    assert_series(
        &m,
        &[
            ("herald_connections{transport=\"tcp\"}", 1.0),
            ("herald_connections{transport=\"ws\"}", 1.0),
            ("herald_sessions_opened_total{transport=\"tcp\"}", 1.0),
            ("herald_sessions_opened_total{transport=\"ws\"}", 1.0),
            ("herald_frames_received_total{command=\"CONNECT\"}", 2.0),
            ("herald_frames_received_total{command=\"SUBSCRIBE\"}", 1.0),
            ("herald_frames_received_total{command=\"SEND\"}", 1.0),
            ("herald_frames_sent_total{command=\"CONNECTED\"}", 2.0),
            ("herald_frames_sent_total{command=\"RECEIPT\"}", 2.0),
            ("herald_messages_published_total", 1.0),
            ("herald_messages_delivered_total{kind=\"topic\"}", 1.0),
            ("herald_subscriptions", 1.0),
            ("herald_destinations{kind=\"topic\"}", 1.0),
            ("herald_fanout_subscribers_count", 1.0),
            ("herald_fanout_subscribers_bucket{le=\"0\"}", 0.0),
            ("herald_fanout_subscribers_bucket{le=\"1\"}", 1.0),
        ],
    );
    // CONNECTED ×2, RECEIPT ×2, MESSAGE: five written batches at most, one at least.
    assert!(value(&m, "herald_publish_to_socket_seconds_count") >= 1.0);
    assert!(value(&m, "herald_received_bytes_total") > 100.0);
    assert!(value(&m, "herald_sent_bytes_total") > 100.0);

    // A publish nobody hears, a SEND the rules refuse, a wrong passcode.
    publisher.publish_confirmed("/topic/nobody", "x").await;
    let m = until(
        http,
        "herald_messages_dropped_total{reason=\"no_subscriber\"}",
        1.0,
    )
    .await;
    assert_eq!(value(&m, "herald_fanout_subscribers_bucket{le=\"0\"}"), 1.0);
    publisher.publish("/topic/secret", "x").await;
    publisher.expect_error_then_close("access denied").await;
    let m = until(http, "herald_access_denied_total{action=\"send\"}", 1.0).await;
    assert_eq!(
        value(
            &m,
            "herald_messages_dropped_total{reason=\"access_denied\"}"
        ),
        1.0
    );
    let mut intruder = server.open(Transport::Tcp).await;
    intruder.send(&login_frame("alice", "wrong")).await;
    intruder.expect(Command::Error).await;
    // The refused SEND and the refused login both end their session with an ERROR.
    let m = until(
        http,
        "herald_sessions_closed_total{reason=\"protocol_error\"}",
        2.0,
    )
    .await;
    assert_eq!(value(&m, "herald_auth_failures_total"), 1.0);
    assert_eq!(
        value(
            &m,
            "herald_sessions_closed_total{reason=\"protocol_error\"}"
        ),
        2.0
    );
    assert_eq!(
        value(&m, "herald_frames_sent_total{command=\"ERROR\"}"),
        2.0
    );
    let m = until(http, "herald_connections{transport=\"tcp\"}", 0.0).await;
    assert_eq!(value(&m, "herald_connections{transport=\"ws\"}"), 1.0);

    // A queue: a message waits, is delivered unacknowledged, NACKed and redelivered.
    let mut producer = server.client(Transport::Tcp).await;
    producer.publish_confirmed("/queue/work", "job").await;
    let m = until(http, "herald_queue_messages", 1.0).await;
    assert_eq!(value(&m, "herald_destinations{kind=\"queue\"}"), 1.0);
    let mut worker = server.client(Transport::Tcp).await;
    worker
        .subscribe_with("w", "/queue/work", &[("ack", "client-individual")])
        .await;
    let job = worker.expect_body("job").await;
    let m = until(http, "herald_queue_unacked", 1.0).await;
    assert_eq!(value(&m, "herald_queue_messages"), 0.0);
    assert_eq!(
        value(&m, "herald_messages_delivered_total{kind=\"queue\"}"),
        1.0
    );
    worker.settle(Command::Nack, &job).await;
    let again = worker.expect_body("job").await;
    assert_eq!(again.headers.get("redelivered"), Some("true"));
    until(http, "herald_queue_redeliveries_total", 1.0).await;
    worker.settle_confirmed(Command::Ack, &again).await;
    let m = until(http, "herald_queue_acks_total", 1.0).await;
    assert_eq!(value(&m, "herald_queue_unacked"), 0.0);
    assert_eq!(value(&m, "herald_subscriptions"), 2.0);
    drop((subscriber, worker));
    until(http, "herald_subscriptions", 0.0).await;
}

#[tokio::test]
async fn slow_consumers_and_back_pressure_show_in_metrics() {
    let mut config = config();
    config.outbox.max_bytes = 64 * 1024;
    config.outbox.max_pause_ms = 300;
    config.outbox.max_stall_ms = 60_000;
    config.outbox.overflow = OverflowPolicy::Close;
    let (config, http) = with_http(config);
    let server = TestServer::start(config).await;
    // A subscriber that never reads, one that does, and a publisher in rounds of 48 KiB
    // until the stuck one has been closed (as in tests/backpressure.rs).
    let mut stuck = server.open_with_recv_buffer(Transport::Tcp, 4096).await;
    stuck.connect().await;
    stuck.subscribe("stuck", "/topic/flow").await;
    let mut reader = server.client(Transport::Tcp).await;
    reader.subscribe("r", "/topic/flow").await;
    let mut publisher = server.client(Transport::Tcp).await;
    let mut seq = 0;
    loop {
        let m = scrape(http).await;
        if value(&m, "herald_backpressure_timeouts_total") > 0.0 {
            assert!(value(&m, "herald_backpressure_pauses_total") >= 1.0);
            break;
        }
        assert!(seq < 100_000, "the stuck subscriber was never closed");
        let bodies: Vec<String> = (seq..seq + 48)
            .map(|n| format!("{n:08}{}", "m".repeat(1015)))
            .collect();
        publisher
            .send_bytes(&send_batch("/topic/flow", bodies.iter().cloned()))
            .await;
        publisher
            .send_with_receipt(send_frame("/topic/flow-round", ""))
            .await;
        for body in &bodies {
            reader.expect_message("r", "/topic/flow", body).await;
        }
        seq += 48;
    }
    // Its session ends once its last write does: when it goes away.
    drop(stuck);
    until(
        http,
        "herald_sessions_closed_total{reason=\"slow_consumer\"}",
        1.0,
    )
    .await;
    // The fan-out histogram saw two subscribers per publish.
    let m = scrape(http).await;
    assert!(value(&m, "herald_fanout_subscribers_bucket{le=\"2\"}") >= 48.0);
    // What the stuck subscriber's outbox held when it was closed is counted as lost.
    assert!(
        value(
            &m,
            "herald_messages_dropped_total{reason=\"slow_consumer\"}"
        ) >= 1.0,
        "{m:?}"
    );
}

#[tokio::test]
async fn a_heartbeat_timeout_is_counted() {
    let mut config = config();
    config.stomp.heartbeat_floor_ms = 100;
    config.stomp.heartbeat_tolerance = 2.0;
    let (config, http) = with_http(config);
    let server = TestServer::start(config).await;
    let mut silent = server.open(Transport::Tcp).await;
    silent
        .connect_with(common::connect_frame("1.2").header("heart-beat", "100,0"))
        .await;
    // The client promised a beat every 100 ms and sends none: closed after 200 ms.
    let m = until(http, "herald_heartbeat_timeouts_total", 1.0).await;
    assert_eq!(
        value(
            &m,
            "herald_sessions_closed_total{reason=\"heartbeat_timeout\"}"
        ),
        1.0
    );
    drop(silent);
}

#[tokio::test]
async fn healthz_answers_and_unknown_routes_and_methods_are_refused() {
    let (config, http) = with_http(config());
    let _server = TestServer::start(config).await;
    let health = get(http, "/healthz").await;
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    let ready = get(http, "/readyz").await;
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready\n"));
    assert_eq!(get(http, "/nothing").await.status, 404);
    assert_eq!(get(http, "/metrics/../healthz").await.status, 404);
    let post = raw(
        http,
        b"POST /metrics HTTP/1.1\r\nhost: ops\r\ncontent-length: 3\r\nconnection: close\r\n\r\nabc",
    )
    .await;
    assert_eq!(post.status, 405);
    // Keep-alive: two requests on one connection.
    let both = raw(
        http,
        b"GET /healthz HTTP/1.1\r\nhost: ops\r\n\r\nGET /healthz HTTP/1.1\r\nhost: ops\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(both.body.matches("ok\n").count(), 2, "{both:?}");
}

#[tokio::test]
async fn the_listener_is_off_by_default() {
    let mut config = config();
    config.http.bind = "127.0.0.1:0".parse().unwrap();
    let server = herald::Server::bind(config).await.unwrap();
    assert_eq!(server.http_addr(), None);
    let (mut config, _) = with_http(common::config());
    config.http.bind = "127.0.0.1:0".parse().unwrap();
    let server = herald::Server::bind(config).await.unwrap();
    assert!(server.http_addr().is_some());
}

#[tokio::test]
async fn readyz_is_503_while_the_node_drains() {
    let mut config = config();
    config.shutdown.drain_ms = 30_000;
    config.outbox.max_stall_ms = 60_000;
    let (config, http) = with_http(config);
    let mut server = TestServer::start(config).await;
    // A subscriber that reads nothing, with a backlog bigger than its socket takes: its
    // last write holds the drain open until it goes away.
    let mut stuck = server.open_with_recv_buffer(Transport::Tcp, 4096).await;
    stuck.connect().await;
    stuck.subscribe("s", "/topic/drain").await;
    let mut publisher = server.client(Transport::Tcp).await;
    let bodies = (0..64).map(|n| format!("{n:04}{}", "d".repeat(4092)));
    publisher
        .send_bytes(&send_batch("/topic/drain", bodies))
        .await;
    publisher
        .send_with_receipt(send_frame("/topic/other", ""))
        .await;
    assert_eq!(get(http, "/readyz").await.status, 200);

    let serving = server.stop();
    let draining = get_until(http, "/readyz", 503).await;
    assert_eq!(draining.body, "not ready: draining\n");
    assert_eq!(get(http, "/healthz").await.status, 200);
    assert_eq!(value(&scrape(http).await, "herald_ready"), 0.0);
    // New client connections are refused meanwhile.
    assert!(TcpStream::connect(server.tcp_addr).await.is_err());
    drop((stuck, publisher));
    within(TIMEOUT, "the drain to end", serving).await.unwrap();
    assert!(
        TcpStream::connect(http).await.is_err(),
        "the http port closes last"
    );
}

/// Long enough for NATS's reconnect backoff (up to 4 s) on a busy machine; never reached
/// when it works.
const PATIENCE: Duration = Duration::from_secs(20);

/// GETs `path` until it answers `status`.
async fn get_until(addr: SocketAddr, path: &str, status: u16) -> Response {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let response = get(addr, path).await;
        if response.status == status {
            return response;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path}: {response:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn readyz_follows_the_cluster_link_when_clustered() {
    // NATS not there yet: the node serves local clients but is not ready.
    let mut nats = NatsServer::unstarted();
    let mut config = config();
    config.cluster = Some(herald::config::ClusterConfig {
        servers: vec![nats.url()],
        ..Default::default()
    });
    let (config, http) = with_http(config);
    let _server = TestServer::start(config.clone()).await;
    let down = get_until(http, "/readyz", 503).await;
    assert_eq!(down.body, "not ready: cluster link down\n");
    let m = scrape(http).await;
    assert_eq!(
        value(&m, "herald_cluster_link_state{state=\"disconnected\"}"),
        1.0
    );

    // The same, told not to care about the link.
    let mut relaxed = config.clone();
    relaxed.cluster.as_mut().unwrap().ready_requires_link = false;
    let (relaxed, relaxed_http) = with_http(relaxed);
    let _relaxed = TestServer::start(relaxed).await;
    assert_eq!(get(relaxed_http, "/readyz").await.status, 200);

    // NATS comes up: the first node connects and becomes ready.
    nats.restart().await;
    get_until(http, "/readyz", 200).await;
    let m = until(http, "herald_cluster_link_state{state=\"connected\"}", 1.0).await;
    assert_eq!(
        value(&m, "herald_cluster_link_state{state=\"disconnected\"}"),
        0.0
    );
}

/// Every metric the shipped Grafana dashboard queries is exported (by name, histograms by
/// their `_bucket`, `_sum`, `_count` series).
#[tokio::test]
async fn the_grafana_dashboard_queries_exported_metrics() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/grafana/herald.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).expect("valid JSON");
    let mut queries = Vec::new();
    collect_exprs(&dashboard, &mut queries);
    assert!(queries.len() >= 8, "{queries:?}");
    let (config, http) = with_http(config());
    let _server = TestServer::start(config).await;
    let exported: Vec<String> = scrape(http)
        .await
        .into_keys()
        .map(|series| series.split('{').next().unwrap().to_owned())
        .collect();
    for query in &queries {
        let names = metric_names(query);
        assert!(!names.is_empty(), "no herald_ metric in {query}");
        for name in names {
            assert!(
                exported.contains(&name),
                "{name} (in {query}) is not exported"
            );
        }
    }
}

fn collect_exprs(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr", serde_json::Value::String(expr)) => out.push(expr.clone()),
                    _ => collect_exprs(value, out),
                }
            }
        }
        serde_json::Value::Array(values) => values.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}

/// The `herald_…` identifiers in a PromQL expression.
fn metric_names(query: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = query;
    while let Some(at) = rest.find("herald_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

// ---- attacks ----

#[tokio::test]
async fn huge_and_broken_requests_are_refused() {
    let (config, http) = with_http(config());
    let _server = TestServer::start(config).await;
    let huge_header = format!(
        "GET /metrics HTTP/1.1\r\nhost: ops\r\nx-junk: {}\r\n\r\n",
        "j".repeat(64 * 1024)
    );
    assert_eq!(raw(http, huge_header.as_bytes()).await.status, 431);
    let long_path = format!(
        "GET /{} HTTP/1.1\r\nhost: ops\r\n\r\n",
        "p".repeat(64 * 1024)
    );
    assert!(matches!(
        raw(http, long_path.as_bytes()).await.status,
        414 | 431
    ));
    assert_eq!(
        raw(http, b"\x16\x03\x01\x02\x00garbage\r\n\r\n")
            .await
            .status,
        400
    );
    let version = raw(http, b"GET /healthz HTTP/9.9\r\n\r\n").await.status;
    assert!(matches!(version, 400 | 505), "{version}");
    // A body nobody asked for, announced huge, is not read into memory.
    let body = raw(
        http,
        b"GET /healthz HTTP/1.1\r\nhost: ops\r\ncontent-length: 99999999999\r\nconnection: close\r\n\r\nxx",
    )
    .await;
    assert_eq!(body.status, 200);
    // Still serving.
    assert_eq!(get(http, "/healthz").await.status, 200);
}

#[tokio::test]
async fn slowloris_and_idle_connections_are_closed_after_the_request_timeout() {
    let mut config = config();
    config.http.request_timeout_ms = 300;
    let (config, http) = with_http(config);
    let _server = TestServer::start(config).await;
    // Half a request head, then silence; and a connection that never says anything.
    let mut slow = TcpStream::connect(http).await.unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nhost: o")
        .await
        .unwrap();
    let mut idle = TcpStream::connect(http).await.unwrap();
    for stream in [&mut slow, &mut idle] {
        let mut buf = Vec::new();
        within(
            TIMEOUT,
            "the server to close a slow connection",
            stream.read_to_end(&mut buf),
        )
        .await
        .ok();
    }
}

#[tokio::test]
async fn connections_past_the_bound_are_closed_and_places_come_back() {
    let mut config = config();
    config.http.max_connections = 4;
    config.http.request_timeout_ms = 2_000;
    let (config, http) = with_http(config);
    let _server = TestServer::start(config).await;
    // Four idle connections take every place: a fifth is closed unanswered, until the
    // request timeout frees the places.
    let mut holders = Vec::new();
    for _ in 0..4 {
        holders.push(TcpStream::connect(http).await.unwrap());
    }
    assert!(
        !try_get(http).await,
        "a connection past the bound was served"
    );
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while !try_get(http).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the places never came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A crowd at once: each is served or closed, none hangs, and the port still answers.
    let crowd: Vec<_> = (0..64)
        .map(|_| tokio::spawn(async move { try_get(http).await }))
        .collect();
    let mut served = 0;
    for task in crowd {
        if within(TIMEOUT * 2, "a crowd request", task).await.unwrap() {
            served += 1;
        }
    }
    assert!(served >= 1, "nobody in the crowd was served");
    // Every place comes back (a crowd connection's place is given back just after its close).
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while !try_get(http).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the port stopped answering"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(holders);
}

/// A GET that may be refused: `true` if it got 200.
async fn try_get(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return false;
    };
    let request = b"GET /healthz HTTP/1.1\r\nhost: ops\r\nconnection: close\r\n\r\n";
    if stream.write_all(request).await.is_err() {
        return false;
    }
    let mut bytes = Vec::new();
    match stream.read_to_end(&mut bytes).await {
        Ok(_) if !bytes.is_empty() => parse(&bytes).status == 200,
        _ => false,
    }
}

/// The real binary: SIGTERM turns `/readyz` to 503 for the whole drain, then the process
/// exits 0 and the operations port closes.
#[tokio::test]
async fn sigterm_makes_the_real_binary_unready_until_it_exits() {
    let (tcp, http) = (free_port(), free_port());
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["--no-ws", "--log-level", "warn"])
        .args(["--tcp-bind", &format!("127.0.0.1:{tcp}")])
        .args(["--http-bind", &format!("127.0.0.1:{http}")])
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn herald");
    let http: SocketAddr = format!("127.0.0.1:{http}").parse().unwrap();
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while TcpStream::connect(http).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "herald never listened"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(get_until(http, "/readyz", 200).await.body, "ready\n");
    // A subscriber that reads nothing under a backlog holds the drain open (10 s default).
    let tcp: SocketAddr = format!("127.0.0.1:{tcp}").parse().unwrap();
    let mut stuck = common::Client::tcp(tcp, Some(4096)).await;
    stuck.connect().await;
    stuck.subscribe("s", "/topic/drain").await;
    let mut publisher = common::Client::tcp(tcp, None).await;
    publisher.connect().await;
    let bodies = (0..64).map(|n| format!("{n:04}{}", "d".repeat(4092)));
    publisher
        .send_bytes(&send_batch("/topic/drain", bodies))
        .await;
    publisher
        .send_with_receipt(send_frame("/topic/other", ""))
        .await;

    let pid = child.id().expect("herald runs").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let draining = get_until(http, "/readyz", 503).await;
    assert_eq!(draining.body, "not ready: draining\n");
    drop((stuck, publisher));
    let status = within(TIMEOUT, "herald to exit", child.wait())
        .await
        .unwrap();
    assert!(status.success(), "{status}");
    assert!(TcpStream::connect(http).await.is_err());
}
