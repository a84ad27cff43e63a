//! The HTTP API (`/api/v1` on the operations listener) over real sockets: every route with
//! good input and each kind of bad input, a publish reaching STOMP subscribers on another
//! node of a two-node cluster, `docs/api/openapi.yaml` against the route table, and hostile
//! clients (deep JSON, broken UTF-8, base64 garbage, header injection, parallel requests).

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;

use common::nats::{NatsServer, free_port};
use common::{TIMEOUT, TestServer, Transport, access_rule, add_user, config, within};
use herald::config::{AccessAction, AccessDefault, ApiAction, ApiKeyConfig, ClusterConfig, Config};
use herald_protocol::Command;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const ADMIN: &str = "admin-key-0123456789";
const STATS_ONLY: &str = "stats-key-0123456789";
const PASSWORD: &str = "pw";

/// The test configuration with the operations listener on a free port, a key allowed every
/// action, a key allowed only `stats`, and users alice and bob.
fn api_config() -> (Config, SocketAddr) {
    let mut config = config();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    config.http.enabled = true;
    config.http.bind = addr;
    config.http.api_keys = vec![
        key("admin", ADMIN, &ApiAction::ALL),
        key("stats", STATS_ONLY, &[ApiAction::Stats]),
    ];
    config.auth.failure_delay_ms = 1;
    add_user(&mut config, "alice", PASSWORD, &[]);
    add_user(&mut config, "bob", PASSWORD, &[]);
    (config, addr)
}

fn key(name: &str, secret: &str, actions: &[ApiAction]) -> ApiKeyConfig {
    ApiKeyConfig {
        name: name.into(),
        secret: secret.into(),
        actions: actions.to_vec(),
        ..ApiKeyConfig::default()
    }
}

#[derive(Debug)]
struct Response {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Response {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    /// The status, and the `error` code of a JSON error body.
    fn error(&self) -> (u16, String) {
        let code = self.json()["error"].as_str().unwrap_or_default().to_owned();
        (self.status, code)
    }
}

/// A kept-alive HTTP/1.1 connection.
struct Http {
    stream: BufReader<TcpStream>,
}

impl Http {
    async fn connect(addr: SocketAddr) -> Http {
        let stream = TcpStream::connect(addr)
            .await
            .expect("connect to the http port");
        Http {
            stream: BufReader::new(stream),
        }
    }

    /// Sends a request (with `key` as bearer token) and reads its response.
    async fn request(
        &mut self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: &[u8],
    ) -> Response {
        let auth = key.map_or(String::new(), |k| format!("authorization: Bearer {k}\r\n"));
        let head = format!(
            "{method} {path} HTTP/1.1\r\nhost: ops\r\n{auth}content-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        let stream = self.stream.get_mut();
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(body).await.unwrap();
        within(TIMEOUT, "the response", self.read()).await
    }

    async fn read(&mut self) -> Response {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            let n = self
                .stream
                .read_line(&mut line)
                .await
                .expect("read the head");
            assert!(n > 0, "connection closed mid-response: {head:?}");
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status");
        let length: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length: ")
                    .map(str::to_owned)
            })
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        self.stream
            .read_exact(&mut body)
            .await
            .expect("read the body");
        Response { status, head, body }
    }
}

/// One request on a new connection.
async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: &Value,
) -> Response {
    let body = match body {
        Value::Null => Vec::new(),
        body => serde_json::to_vec(body).unwrap(),
    };
    Http::connect(addr)
        .await
        .request(method, path, key, &body)
        .await
}

async fn raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: &[u8],
) -> Response {
    Http::connect(addr)
        .await
        .request(method, path, key, body)
        .await
}

fn body_text(frame: &herald_protocol::Frame) -> &str {
    std::str::from_utf8(&frame.body).expect("UTF-8 body")
}

#[tokio::test]
async fn every_route_does_its_job() {
    let (config, http) = api_config();
    let server = TestServer::start(config).await;
    let (mut alice, _) = server.login(Transport::Ws, "alice", PASSWORD).await;
    alice.subscribe("news", "/topic/news").await;
    alice.subscribe("inbox", "/user/queue/inbox").await;
    let (mut worker, _) = server.login(Transport::Tcp, "bob", PASSWORD).await;
    worker.subscribe("work", "/queue/work").await;

    // POST /publish: a text body with headers, then a binary one.
    let published = call(
        http,
        "POST",
        "/api/v1/publish",
        Some(ADMIN),
        &json!({
            "destination": "/topic/news",
            "body": "hello",
            "headers": {"content-type": "text/plain", "x-trace": "t1"},
        }),
    )
    .await;
    assert_eq!(published.status, 200, "{published:?}");
    assert!(
        published.head.contains("content-type: application/json"),
        "{}",
        published.head
    );
    assert_eq!(
        published.json(),
        json!({"destination": "/topic/news", "matched": 1, "forwarded": false})
    );
    let message = alice.expect(Command::Message).await;
    assert_eq!(body_text(&message), "hello");
    assert_eq!(message.headers.get("x-trace"), Some("t1"));
    assert_eq!(message.headers.get("destination"), Some("/topic/news"));
    let binary = call(
        http,
        "POST",
        "/api/v1/publish",
        Some(ADMIN),
        &json!({
            "destination": "/topic/news", "body_base64": "AAEC/w==",
        }),
    )
    .await;
    assert_eq!(binary.json()["matched"], 1);
    assert_eq!(
        &alice.expect(Command::Message).await.body[..],
        [0, 1, 2, 255]
    );

    // A queue: one consumer gets it.
    let queued = call(
        http,
        "POST",
        "/api/v1/publish",
        Some(ADMIN),
        &json!({
            "destination": "/queue/work", "body": "job",
        }),
    )
    .await;
    assert_eq!(queued.json()["matched"], 1);
    assert_eq!(body_text(&worker.expect(Command::Message).await), "job");

    // Nobody subscribed: accepted, nothing matched.
    let unheard = call(
        http,
        "POST",
        "/api/v1/publish",
        Some(ADMIN),
        &json!({
            "destination": "/topic/nobody", "body": "x",
        }),
    )
    .await;
    assert_eq!(unheard.json()["matched"], 0);

    // POST /users/{user}/send, in both destination forms.
    for destination in ["/queue/inbox", "/user/queue/inbox"] {
        let sent = call(
            http,
            "POST",
            "/api/v1/users/alice/send",
            Some(ADMIN),
            &json!({
                "destination": destination, "body": "for alice",
            }),
        )
        .await;
        assert_eq!(sent.status, 200, "{sent:?}");
        assert_eq!(sent.json()["matched"], 1);
        assert_eq!(sent.json()["destination"], "/user/alice/queue/inbox");
        let message = alice.expect(Command::Message).await;
        assert_eq!(body_text(&message), "for alice");
        assert_eq!(
            message.headers.get("destination"),
            Some("/user/queue/inbox")
        );
    }

    // POST /broadcast.
    let broadcast = call(
        http,
        "POST",
        "/api/v1/broadcast",
        Some(ADMIN),
        &json!({
            "destinations": ["/topic/news", "/topic/nobody", "/queue/work"], "body": "all",
        }),
    )
    .await;
    assert_eq!(broadcast.status, 200, "{broadcast:?}");
    let answer = broadcast.json();
    assert_eq!(answer["matched"], 2);
    let each: Vec<i64> = answer["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["matched"].as_i64().unwrap())
        .collect();
    assert_eq!(each, [1, 0, 1]);
    assert_eq!(body_text(&alice.expect(Command::Message).await), "all");
    assert_eq!(body_text(&worker.expect(Command::Message).await), "all");

    // GET /users/{user}, GET /presence, GET /stats.
    let user = call(
        http,
        "GET",
        "/api/v1/users/alice",
        Some(ADMIN),
        &Value::Null,
    )
    .await;
    assert_eq!(user.status, 200, "{user:?}");
    assert_eq!(
        user.json(),
        json!({"user": "alice", "sessions": 1, "local_sessions": 1, "nodes_answered": 0})
    );
    let presence = call(http, "GET", "/api/v1/presence", Some(ADMIN), &Value::Null).await;
    assert_eq!(
        presence.json(),
        json!({"users": {"alice": 1, "bob": 1}, "nodes_answered": 0})
    );
    let stats = call(http, "GET", "/api/v1/stats", Some(STATS_ONLY), &Value::Null).await;
    assert_eq!(stats.status, 200, "{stats:?}");
    let stats = stats.json();
    assert_eq!(stats["connections"], 2);
    assert_eq!(stats["users_online"], 2);
    assert_eq!(stats["cluster_link"], "standalone");
    assert!(
        stats["messages_published"].as_u64().unwrap() >= 4,
        "{stats}"
    );

    // DELETE /users/{user}/sessions: alice gets ERROR with the reason, and is gone.
    let kicked = call(
        http,
        "DELETE",
        "/api/v1/users/alice/sessions",
        Some(ADMIN),
        &json!({
            "reason": "account suspended",
        }),
    )
    .await;
    assert_eq!(kicked.status, 200, "{kicked:?}");
    assert_eq!(kicked.json()["disconnected"], 1);
    let error = alice.expect_error_then_close("disconnected").await;
    assert_eq!(body_text(&error), "account suspended");
    server.close_counted("kicked").await;
    let gone = call(
        http,
        "GET",
        "/api/v1/users/alice",
        Some(ADMIN),
        &Value::Null,
    )
    .await;
    assert_eq!(gone.error(), (404, "not_found".into()));
    // Bob was not touched; without a body the reason is the default.
    worker.publish("/queue/work", "still here").await;
    assert_eq!(
        body_text(&worker.expect(Command::Message).await),
        "still here"
    );
    let kicked = call(
        http,
        "DELETE",
        "/api/v1/users/bob/sessions",
        Some(ADMIN),
        &Value::Null,
    )
    .await;
    assert_eq!(kicked.json()["disconnected"], 1);
    let error = worker.expect_error_then_close("disconnected").await;
    assert_eq!(body_text(&error), "disconnected by the operator");
}

#[tokio::test]
async fn each_kind_of_bad_input_gets_its_status() {
    let (mut config, http) = api_config();
    // Only alice may send to /topic/secret/**; the admin key's sends are judged as an
    // anonymous session's.
    let mut secret = access_rule(&[AccessAction::Send], &["/topic/secret/**"]);
    secret.users = vec!["alice".into()];
    config.access.rules = vec![secret];
    config.access.default = AccessDefault::Allow;
    let mut as_alice = key("as-alice", "alice-key-0123456789", &[ApiAction::Publish]);
    as_alice.user = "alice".into();
    config.http.api_keys.push(as_alice);
    let max_frame = config.limits.max_frame_bytes;
    let server = TestServer::start(config).await;
    let publish = |body: Value| async move {
        call(http, "POST", "/api/v1/publish", Some(ADMIN), &body)
            .await
            .error()
    };
    let good = json!({"destination": "/topic/a", "body": "x"});

    // Keys.
    let none = call(http, "POST", "/api/v1/publish", None, &good).await;
    assert_eq!(none.error(), (401, "unauthorized".into()));
    assert!(
        none.head.contains("www-authenticate: Bearer"),
        "{}",
        none.head
    );
    for wrong in [
        "admin-key-012345678",
        "admin-key-01234567890",
        "ADMIN-KEY-0123456789",
    ] {
        let refused = call(http, "POST", "/api/v1/publish", Some(wrong), &good).await;
        assert_eq!(refused.error(), (401, "unauthorized".into()), "{wrong}");
    }
    let basic = raw(http, "GET", "/api/v1/stats", None, b"").await;
    assert_eq!(basic.status, 401);
    let forbidden = call(http, "POST", "/api/v1/publish", Some(STATS_ONLY), &good).await;
    assert_eq!(forbidden.error(), (403, "forbidden".into()));

    // Routes and methods.
    for path in [
        "/api/v1/nothing",
        "/api/v1/users/alice/x",
        "/api/v1/publish/x",
    ] {
        let unknown = call(http, "GET", path, Some(ADMIN), &Value::Null).await;
        assert_eq!(unknown.error(), (404, "not_found".into()), "{path}");
    }
    for path in ["/api/v1", "/api/v1/", "/api/v2/publish"] {
        let unknown = call(http, "GET", path, Some(ADMIN), &Value::Null).await;
        assert_eq!(unknown.status, 404, "{path}");
    }
    let wrong_method = call(http, "GET", "/api/v1/publish", Some(ADMIN), &Value::Null).await;
    assert_eq!(wrong_method.error(), (405, "method_not_allowed".into()));

    // Bodies.
    let bad_json = raw(
        http,
        "POST",
        "/api/v1/publish",
        Some(ADMIN),
        b"{\"destination\":",
    )
    .await;
    assert_eq!(bad_json.error(), (400, "bad_request".into()));
    let not_utf8 = raw(
        http,
        "POST",
        "/api/v1/publish",
        Some(ADMIN),
        b"{\"destination\":\"/topic/\xff\"}",
    )
    .await;
    assert_eq!(not_utf8.error(), (400, "bad_request".into()));
    let deep = format!("{}{}", "{\"a\":[".repeat(50_000), "]}".repeat(50_000));
    let deep = raw(
        http,
        "POST",
        "/api/v1/publish",
        Some(ADMIN),
        deep.as_bytes(),
    )
    .await;
    assert_eq!(deep.error(), (400, "bad_request".into()));
    assert_eq!(
        publish(json!({"destination": "/topic/a", "bodyy": "x"}))
            .await
            .0,
        400
    );
    assert_eq!(
        publish(json!({"destinations": ["/topic/a"], "body": "x"}))
            .await
            .0,
        400
    );
    assert_eq!(
        publish(json!({"destination": "/topic/a", "body": "x", "body_base64": "eA=="}))
            .await
            .0,
        400
    );
    assert_eq!(
        publish(json!({"destination": "/topic/a", "body_base64": "%%%garbage"}))
            .await
            .0,
        400
    );
    assert_eq!(
        publish(json!({"destination": "/topic/a", "body_base64": "eA="}))
            .await
            .0,
        400
    );
    for (name, value) in [
        ("x-a", "1\nmessage-id:forged"),
        ("x-a", "1\r"),
        ("x-a", "1\u{0}2"),
        ("x\na", "1"),
        ("x:a", "1"),
        ("message-id", "forged"),
        ("Destination", "/topic/b"),
        ("subscription", "s"),
    ] {
        let injected = publish(json!({"destination": "/topic/a", "headers": {name: value}})).await;
        assert_eq!(injected, (400, "bad_request".into()), "{name:?}: {value:?}");
    }

    // Sizes: a body over the frame limit, and a request body over its bound (refused before
    // it is read whole, on its content-length).
    let large = publish(json!({"destination": "/topic/a", "body": "x".repeat(max_frame)})).await;
    assert_eq!(large, (413, "too_large".into()));
    let huge = declared(http, max_frame * 2, &[]).await;
    assert_eq!(huge.error(), (413, "too_large".into()));
    let too_many: serde_json::Map<String, Value> =
        (0..100).map(|i| (format!("h{i}"), json!("v"))).collect();
    assert_eq!(
        publish(json!({"destination": "/topic/a", "headers": too_many}))
            .await
            .0,
        413
    );

    // Destinations.
    for outside in [
        "/elsewhere/a",
        "topic/a",
        "",
        "/topic/a/*",
        "/queue/*",
        "/user/queue/x",
    ] {
        let refused = publish(json!({"destination": outside, "body": "x"})).await;
        assert_eq!(refused, (422, "invalid_destination".into()), "{outside:?}");
    }
    let broadcast = call(
        http,
        "POST",
        "/api/v1/broadcast",
        Some(ADMIN),
        &json!({
            "destinations": ["/topic/a", "/nowhere"], "body": "x",
        }),
    )
    .await;
    assert_eq!(broadcast.error(), (422, "invalid_destination".into()));
    let empty = call(
        http,
        "POST",
        "/api/v1/broadcast",
        Some(ADMIN),
        &json!({"destinations": []}),
    )
    .await;
    assert_eq!(empty.status, 400);
    let many: Vec<String> = (0..1001).map(|i| format!("/topic/t{i}")).collect();
    let many = call(
        http,
        "POST",
        "/api/v1/broadcast",
        Some(ADMIN),
        &json!({"destinations": many}),
    )
    .await;
    assert_eq!(many.status, 400);
    let twice = raw(
        http,
        "POST",
        "/api/v1/publish",
        Some(ADMIN),
        br#"{"destination":"/topic/a","destination":"/topic/b"}"#,
    )
    .await;
    assert_eq!(twice.error(), (400, "bad_request".into()));
    let plans = json!({"destination": "/topic/secret/plans", "body": "x"});
    let denied = publish(plans.clone()).await;
    assert_eq!(denied, (403, "access_denied".into()));
    let as_alice = call(
        http,
        "POST",
        "/api/v1/publish",
        Some("alice-key-0123456789"),
        &plans,
    )
    .await;
    assert_eq!(as_alice.status, 200, "{as_alice:?}");
    assert_eq!(
        publish(json!({"destination": "/topic/public", "body": "x"}))
            .await
            .0,
        200
    );
    let not_user = call(
        http,
        "POST",
        "/api/v1/users/alice/send",
        Some(ADMIN),
        &json!({
            "destination": "/elsewhere/x", "body": "x",
        }),
    )
    .await;
    assert_eq!(not_user.status, 422, "{not_user:?}");

    // Users.
    for path in ["/api/v1/users/nobody", "/api/v1/users/nobody/sessions"] {
        let method = if path.ends_with("sessions") {
            "DELETE"
        } else {
            "GET"
        };
        let unknown = call(http, method, path, Some(ADMIN), &Value::Null).await;
        assert_eq!(
            unknown.error(),
            (404, "not_found".into()),
            "{method} {path}"
        );
    }
    for user in ["%00", "a%0Ab", "%FF"] {
        let bad = call(
            http,
            "GET",
            &format!("/api/v1/users/{user}"),
            Some(ADMIN),
            &Value::Null,
        )
        .await;
        assert_eq!(bad.status, 400, "{user}: {bad:?}");
    }
    let long_reason = json!({"reason": "x".repeat(600)});
    let refused = call(
        http,
        "DELETE",
        "/api/v1/users/alice/sessions",
        Some(ADMIN),
        &long_reason,
    )
    .await;
    assert_eq!(refused.status, 400);

    // The broker is fine after all that.
    let (mut alice, _) = server.login(Transport::Tcp, "alice", PASSWORD).await;
    alice.subscribe("a", "/topic/a").await;
    assert_eq!(publish(good.clone()).await.0, 200);
    assert_eq!(body_text(&alice.expect(Command::Message).await), "x");
}

/// A publish whose head declares `length` body bytes, of which only `sent` are sent: the
/// answer must come without the rest.
async fn declared(addr: SocketAddr, length: usize, sent: &[u8]) -> Response {
    let mut connection = Http::connect(addr).await;
    let head = format!(
        "POST /api/v1/publish HTTP/1.1\r\nhost: ops\r\nauthorization: Bearer {ADMIN}\r\ncontent-length: {length}\r\n\r\n"
    );
    let stream = connection.stream.get_mut();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(sent).await.unwrap();
    within(TIMEOUT, "the response", connection.read()).await
}

/// A body that stops arriving is answered 408 after `http.request_timeout_ms`, and one
/// that keeps coming past its bound 413 as soon as it passes it.
#[tokio::test]
async fn slow_and_endless_bodies_are_cut_short() {
    let (mut config, http) = api_config();
    config.http.request_timeout_ms = 300;
    config.limits.max_frame_bytes = 64 * 1024;
    let _server = TestServer::start(config).await;
    let slow = declared(http, 100, b"{\"destination\":").await;
    assert_eq!(slow.error(), (408, "timeout".into()));
    // Chunked, so no length is declared: the bound is met while reading.
    let mut connection = Http::connect(http).await;
    let head = format!(
        "POST /api/v1/publish HTTP/1.1\r\nhost: ops\r\nauthorization: Bearer {ADMIN}\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    let stream = connection.stream.get_mut();
    stream.write_all(head.as_bytes()).await.unwrap();
    // One byte over the bound (the frame limit, a third more for base64, 64 KiB), all of
    // which the server reads: it closes with nothing unread, so the answer is not lost to
    // a reset.
    let mut left = 64 * 1024 + 64 * 1024 / 3 + 64 * 1024 + 1;
    while left > 0 {
        let size = left.min(0x4000);
        let chunk = format!("{size:x}\r\n{}\r\n", " ".repeat(size));
        stream.write_all(chunk.as_bytes()).await.unwrap();
        left -= size;
    }
    let endless = within(TIMEOUT, "the response", connection.read()).await;
    assert_eq!(endless.error(), (413, "too_large".into()));
}

/// A subscriber that stops reading holds API publishers back as it holds STOMP ones: the
/// answer waits up to `outbox.max_pause_ms`, then the subscriber is closed as a slow consumer
/// and the publishes go on; a reading subscriber of the same topic gets every message.
#[tokio::test]
async fn a_subscriber_that_stops_reading_is_closed_not_waited_for() {
    let (mut config, http) = api_config();
    config.outbox.max_bytes = 64 * 1024;
    config.outbox.max_pause_ms = 200;
    // The stuck session's last write (its ERROR) is given this long before it counts as closed.
    config.outbox.max_stall_ms = 300;
    let server = TestServer::start(config).await;
    let mut stuck = server.open_with_recv_buffer(Transport::Tcp, 4096).await;
    stuck
        .connect_with(common::login_frame("bob", PASSWORD))
        .await;
    stuck.subscribe("s", "/topic/firehose").await;
    let (mut reader, _) = server.login(Transport::Tcp, "alice", PASSWORD).await;
    reader.subscribe("r", "/topic/firehose").await;
    // Enough to fill the kernel's socket buffers towards the stuck subscriber (megabytes on
    // loopback), then its outbox: the API stops counting it once it is closed.
    let body = "x".repeat(128 * 1024);
    let mut connection = Http::connect(http).await;
    let mut closed_after = None;
    for i in 0..400 {
        let request = json!({"destination": "/topic/firehose", "body": format!("{i} {body}")});
        let request = serde_json::to_vec(&request).unwrap();
        let reading = async {
            // Alice reads while the request waits, or her outbox fills too.
            loop {
                let message = reader.expect(Command::Message).await;
                if body_text(&message).starts_with(&format!("{i} ")) {
                    return;
                }
            }
        };
        let (answer, ()) = tokio::join!(
            connection.request("POST", "/api/v1/publish", Some(ADMIN), &request),
            reading
        );
        assert_eq!(answer.status, 200, "{answer:?}");
        if answer.json()["matched"] == 1 {
            closed_after = Some(i);
            break;
        }
    }
    assert!(
        closed_after.is_some(),
        "the stuck subscriber was never closed"
    );
    server.close_counted("slow_consumer").await;
}

/// A queue at its bound makes the request wait, as a STOMP producer waits under policy
/// `block`: 503 `queue_full` after `queues.block_timeout_ms`, 200 once a consumer made room.
#[tokio::test]
async fn a_full_queue_holds_the_request_then_refuses_it() {
    let (mut config, http) = api_config();
    config.queues.max_messages_per_queue = 1;
    config.queues.block_timeout_ms = 2_000;
    let server = TestServer::start(config).await;
    let job = |body: &str| json!({"destination": "/queue/jobs", "body": body});
    let first = call(http, "POST", "/api/v1/publish", Some(ADMIN), &job("1")).await;
    assert_eq!(first.json()["matched"], 1);
    let refused = call(http, "POST", "/api/v1/publish", Some(ADMIN), &job("2")).await;
    assert_eq!(refused.error(), (503, "queue_full".into()));
    let waiting =
        tokio::spawn(
            async move { call(http, "POST", "/api/v1/publish", Some(ADMIN), &job("3")).await },
        );
    let (mut worker, _) = server.login(Transport::Tcp, "bob", PASSWORD).await;
    worker.subscribe("jobs", "/queue/jobs").await;
    assert_eq!(body_text(&worker.expect(Command::Message).await), "1");
    assert_eq!(body_text(&worker.expect(Command::Message).await), "3");
    let taken = waiting.await.unwrap();
    assert_eq!(taken.status, 200, "{taken:?}");
    assert_eq!(taken.json()["matched"], 1);
}

#[tokio::test]
async fn without_a_key_the_api_is_off() {
    let (mut config, http) = api_config();
    config.http.api_keys.clear();
    let _server = TestServer::start(config).await;
    let off = call(
        http,
        "POST",
        "/api/v1/publish",
        Some(ADMIN),
        &json!({"destination": "/topic/a"}),
    )
    .await;
    assert_eq!(off.error(), (404, "not_found".into()));
    let metrics = raw(http, "GET", "/metrics", None, b"").await;
    assert_eq!(metrics.status, 200);
}

/// Many clients at once, each on one kept-alive connection: every request answered, every
/// message delivered once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_requests_on_kept_alive_connections() {
    const CLIENTS: usize = 16;
    const EACH: usize = 50;
    let (config, http) = api_config();
    let server = TestServer::start(config).await;
    let (mut alice, _) = server.login(Transport::Tcp, "alice", PASSWORD).await;
    alice.subscribe("p", "/topic/parallel").await;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            tokio::spawn(async move {
                let mut connection = Http::connect(http).await;
                for i in 0..EACH {
                    let body =
                        json!({"destination": "/topic/parallel", "body": format!("{c}-{i}")});
                    let body = serde_json::to_vec(&body).unwrap();
                    let response = connection
                        .request("POST", "/api/v1/publish", Some(ADMIN), &body)
                        .await;
                    assert_eq!(response.status, 200, "{response:?}");
                }
            })
        })
        .collect();
    for client in clients {
        client.await.unwrap();
    }
    let mut seen = BTreeSet::new();
    for _ in 0..CLIENTS * EACH {
        let message = alice.expect(Command::Message).await;
        assert!(
            seen.insert(body_text(&message).to_owned()),
            "twice: {message:?}"
        );
    }
    alice
        .expect_silence(std::time::Duration::from_millis(100))
        .await;
}

/// A publish and a user send through node A's API reach STOMP subscribers on node B.
#[tokio::test]
async fn an_api_publish_reaches_subscribers_on_another_node() {
    let nats = NatsServer::start().await;
    let node = |id: &str| {
        let (mut config, http) = api_config();
        config.cluster = Some(ClusterConfig {
            servers: vec![nats.url()],
            node_id: id.to_owned(),
            ..ClusterConfig::default()
        });
        (config, http)
    };
    let (config_a, http_a) = node("na");
    let (config_b, _) = node("nb");
    let (a, b) = tokio::join!(TestServer::start(config_a), TestServer::start(config_b));
    let (mut alice, _) = b.login(Transport::Ws, "alice", PASSWORD).await;
    alice.subscribe("news", "/topic/news").await;
    alice.subscribe("inbox", "/user/queue/inbox").await;
    for server in [&a, &b] {
        let link = server.node.cluster.as_ref().expect("clustered");
        within(TIMEOUT * 3, "the NATS subscriptions", link.settled()).await;
    }
    let published = call(
        http_a,
        "POST",
        "/api/v1/publish",
        Some(ADMIN),
        &json!({
            "destination": "/topic/news", "body": "across", "headers": {"x-from": "api"},
        }),
    )
    .await;
    assert_eq!(
        published.json(),
        json!({"destination": "/topic/news", "matched": 0, "forwarded": true})
    );
    let message = alice.expect(Command::Message).await;
    assert_eq!(body_text(&message), "across");
    assert_eq!(message.headers.get("x-from"), Some("api"));
    let sent = call(
        http_a,
        "POST",
        "/api/v1/users/alice/send",
        Some(ADMIN),
        &json!({
            "destination": "/queue/inbox", "body": "to alice on nb",
        }),
    )
    .await;
    assert_eq!(sent.json()["forwarded"], true);
    assert_eq!(
        body_text(&alice.expect(Command::Message).await),
        "to alice on nb"
    );
    // Presence and a disconnect are cluster-wide.
    let user = call(
        http_a,
        "GET",
        "/api/v1/users/alice",
        Some(ADMIN),
        &Value::Null,
    )
    .await;
    assert_eq!(
        user.json(),
        json!({"user": "alice", "sessions": 1, "local_sessions": 0, "nodes_answered": 1})
    );
    let kicked = call(
        http_a,
        "DELETE",
        "/api/v1/users/alice/sessions",
        Some(ADMIN),
        &Value::Null,
    )
    .await;
    assert_eq!(kicked.status, 200, "{kicked:?}");
    assert_eq!(
        kicked.json(),
        json!({"user": "alice", "disconnected": 1, "on_this_node": 0, "on_other_nodes": 1,
               "nodes_answered": 1})
    );
    // alice's session on node nb is told why, then closed.
    let error = alice.expect(Command::Error).await;
    assert_eq!(error.headers.get("message"), Some("disconnected"));
    alice.expect_closed().await;
    let again = call(
        http_a,
        "DELETE",
        "/api/v1/users/alice/sessions",
        Some(ADMIN),
        &Value::Null,
    )
    .await;
    assert_eq!(again.status, 404, "{again:?}");
}

/// `docs/api/openapi.yaml` describes exactly the routes of `ROUTES`, the table the router is
/// built from: each path and method, with the action the key needs.
#[test]
fn the_openapi_document_matches_the_route_table() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/api/openapi.yaml"
    ))
    .expect("docs/api/openapi.yaml");
    let documented = openapi_operations(&text);
    let routed: BTreeSet<(String, String, String)> = herald::ops::api::ROUTES
        .iter()
        .map(|r| {
            let action = serde_json::to_value(r.action).unwrap();
            (
                r.path.to_owned(),
                r.method.to_lowercase(),
                action.as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(documented, routed);
}

/// (path, method, x-herald-action) of each operation under `paths:`, read from the
/// document's indentation (two spaces a level), so the test needs no YAML parser.
fn openapi_operations(text: &str) -> BTreeSet<(String, String, String)> {
    let mut operations = BTreeSet::new();
    let (mut in_paths, mut path, mut method) = (false, None::<String>, None::<String>);
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        match indent {
            0 => in_paths = trimmed == "paths:",
            2 if in_paths => {
                path = Some(trimmed.trim_end_matches(':').trim_matches('"').to_owned());
                method = None;
            }
            4 if in_paths => method = Some(trimmed.trim_end_matches(':').to_owned()),
            6 if in_paths => {
                if let (Some(action), Some(path), Some(method)) =
                    (trimmed.strip_prefix("x-herald-action: "), &path, &method)
                {
                    operations.insert((path.clone(), method.clone(), action.to_owned()));
                }
            }
            _ => {}
        }
    }
    assert!(!operations.is_empty(), "no operations found under paths:");
    operations
}
