//! Rules a parsed configuration must satisfy beyond its types.
//!
//! All rules are checked and every failure reported, so an operator fixes a file in one pass.
//! The files a configuration names are read by `check::files`, above the modules that know
//! them (config sits below almost everything and imports only the pattern language).

use super::error::Problem;
use super::{ClusterConfig, Config, QueueStoreKind, QueuesJetStreamConfig};
use crate::pattern::{Pattern, Separator as PatternSeparator};

/// Characters with a meaning in subscription patterns; a prefix containing one could never be
/// matched literally.
const PATTERN_CHARS: &[char] = &['*', '?', '{', '}', '#'];

/// Room for a MESSAGE's command and headers beyond its body.
const FRAME_HEADROOM: usize = 64 * 1024;

pub(super) fn problems(config: &Config) -> Vec<Problem> {
    let mut check = Checker::default();
    listeners(&mut check, config);
    http(&mut check, config);
    stomp(&mut check, config);
    limits(&mut check, config);
    destinations(&mut check, config);
    check.positive("outbox.max_bytes", config.outbox.max_bytes);
    check.positive("outbox.max_stall_ms", config.outbox.max_stall_ms);
    check.positive("outbox.max_pause_ms", config.outbox.max_pause_ms);
    queues(&mut check, config);
    auth(&mut check, config);
    jwt(&mut check, config);
    access(&mut check, config);
    users(&mut check, config);
    if let Some(cluster) = &config.cluster {
        self::cluster(&mut check, cluster);
    }
    check.problems
}

/// `[cluster]`: what can be told without reading files or reaching NATS (the files are read
/// when the node connects).
fn cluster(check: &mut Checker, cluster: &ClusterConfig) {
    if cluster.servers.is_empty() {
        check.fail("cluster.servers", "must list at least one NATS server URL");
    }
    for (i, url) in cluster.servers.iter().enumerate() {
        if let Err(e) = server_url(url) {
            check.fail(format!("cluster.servers[{i}]"), format!("{url:?} {e}"));
        }
    }
    if cluster.name.is_empty() || !cluster.name.bytes().all(is_name_byte) {
        check.fail(
            "cluster.name",
            format!(
                "{:?} must be one or more of A-Z a-z 0-9 _ - (it starts every NATS subject)",
                cluster.name
            ),
        );
    }
    let id = &cluster.node_id;
    if !id.is_empty() && !super::is_node_id(id) {
        check.fail(
            "cluster.node_id",
            format!(
                "{id:?} must be 1 to {} of a-z 0-9, or empty for a random id",
                super::MAX_NODE_ID_LEN
            ),
        );
    }
    credentials(check, cluster);
    let tls = &cluster.tls;
    if tls.cert_file.is_empty() != tls.key_file.is_empty() {
        let (key, other) = if tls.cert_file.is_empty() {
            ("cluster.tls.cert_file", "cluster.tls.key_file")
        } else {
            ("cluster.tls.key_file", "cluster.tls.cert_file")
        };
        check.fail(
            key,
            format!("a client certificate needs both; {other} is set"),
        );
    }
    check.positive("cluster.presence_timeout_ms", cluster.presence_timeout_ms);
    check.positive("cluster.max_pending_bytes", cluster.max_pending_bytes);
    check.positive(
        "cluster.subscription_capacity",
        cluster.subscription_capacity,
    );
    check.positive("cluster.connect_timeout_ms", cluster.connect_timeout_ms);
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// A NATS server URL: `nats://` or `tls://`, a host, no credentials (they have their own
/// keys, and URLs get logged).
fn server_url(url: &str) -> Result<(), String> {
    let Some((scheme, _)) = url.split_once("://") else {
        return Err("needs a scheme: nats://host:port or tls://host:port".to_owned());
    };
    if scheme != "nats" && scheme != "tls" {
        return Err(format!("has scheme {scheme:?}; use nats:// or tls://"));
    }
    let parsed = url
        .parse::<async_nats::ServerAddr>()
        .map_err(|e| format!("is not a URL: {e}"))?
        .into_inner();
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("names no host".to_owned());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(
            "carries credentials; use cluster.user and cluster.password (or token) instead"
                .to_owned(),
        );
    }
    Ok(())
}

/// At most one kind of credentials, each complete; an inline NKey seed must be a user seed.
fn credentials(check: &mut Checker, cluster: &ClusterConfig) {
    let kinds: Vec<&str> = [
        ("token", !cluster.token.is_empty()),
        (
            "user/password",
            !cluster.user.is_empty() || !cluster.password.is_empty(),
        ),
        ("nkey_seed", !cluster.nkey_seed.is_empty()),
        ("nkey_seed_file", !cluster.nkey_seed_file.is_empty()),
        ("credentials_file", !cluster.credentials_file.is_empty()),
    ]
    .into_iter()
    .filter_map(|(kind, set)| set.then_some(kind))
    .collect();
    if kinds.len() > 1 {
        check.fail(
            "cluster",
            format!(
                "set at most one kind of NATS credentials; found {}",
                kinds.join(", ")
            ),
        );
    }
    if cluster.user.is_empty() != cluster.password.is_empty() {
        let (key, other) = if cluster.user.is_empty() {
            ("cluster.user", "cluster.password")
        } else {
            ("cluster.password", "cluster.user")
        };
        check.fail(key, format!("must be set together with {other}"));
    }
    if !cluster.nkey_seed.is_empty() {
        // The seed is a secret: the message never repeats it.
        match nkeys::KeyPair::from_seed(&cluster.nkey_seed) {
            Ok(pair) if pair.key_pair_type() == nkeys::KeyPairType::User => {}
            Ok(_) => check.fail("cluster.nkey_seed", "is not a user seed (SU...)"),
            Err(e) => check.fail("cluster.nkey_seed", format!("is not an NKey seed: {e}")),
        }
    }
}

fn access(check: &mut Checker, config: &Config) {
    for (i, rule) in config.access.rules.iter().enumerate() {
        let key = format!("access.rules[{i}]");
        if rule.actions.is_empty() {
            check.fail(format!("{key}.actions"), "must name send and/or subscribe");
        }
        if rule.destinations.is_empty() {
            check.fail(
                format!("{key}.destinations"),
                "must name at least one pattern",
            );
        }
        for pattern in &rule.destinations {
            // Split at `/` whatever `destinations.separator` says, as `access::parse` reads rules.
            if let Err(e) = Pattern::parse(pattern, PatternSeparator::Slash) {
                check.fail(format!("{key}.destinations"), format!("{pattern:?}: {e}"));
            }
        }
        if !rule.authenticated && !rule.anonymous && rule.users.is_empty() && rule.roles.is_empty()
        {
            check.fail(
                key,
                "grants nobody: name users, roles, authenticated or anonymous",
            );
        }
    }
}

fn jwt(check: &mut Checker, config: &Config) {
    let jwt = &config.jwt;
    if !jwt.enabled {
        return;
    }
    if jwt.roles_claim.is_empty() {
        check.fail("jwt.roles_claim", "must not be empty");
    }
    match jwt.algorithm {
        super::JwtAlgorithm::Hs256 => {
            if jwt.secret.is_empty() {
                check.fail("jwt.secret", "HS256 needs a secret");
            }
        }
        algorithm => {
            if jwt.key_file.is_empty() {
                check.fail(
                    "jwt.key_file",
                    format!("{algorithm:?} needs a PEM key file"),
                );
            }
        }
    }
}

fn auth(check: &mut Checker, config: &Config) {
    let mut seen = std::collections::HashSet::new();
    for (i, user) in config.auth.users.iter().enumerate() {
        let key = format!("auth.users[{i}]");
        if user.login.is_empty() {
            check.fail(format!("{key}.login"), "must not be empty");
        } else if !seen.insert(user.login.as_str()) {
            check.fail(
                format!("{key}.login"),
                format!("{:?} is configured more than once", user.login),
            );
        }
        if let Err(e) = argon2::PasswordHash::new(&user.passcode_hash) {
            check.fail(
                format!("{key}.passcode_hash"),
                format!(
                    "not a password hash in PHC format ({e}); `herald hash-password` prints one"
                ),
            );
        }
    }
}

#[derive(Default)]
struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn fail(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            key: key.into(),
            message: message.into(),
        });
    }

    fn positive<T: PartialEq + Default>(&mut self, key: &str, value: T) {
        if value == T::default() {
            self.fail(key, "must be greater than 0");
        }
    }
}

/// A listener's TLS settings name their files; `check::files` reads them.
fn tls(check: &mut Checker, key: &str, listener_enabled: bool, tls: &super::TlsConfig) {
    if !listener_enabled || !tls.enabled {
        return;
    }
    for (name, value) in [("cert_file", &tls.cert_file), ("key_file", &tls.key_file)] {
        if value.is_empty() {
            check.fail(format!("{key}.{name}"), "TLS needs a PEM file");
        }
    }
    if tls.client_auth != super::ClientAuth::None && tls.client_ca_file.is_empty() {
        check.fail(
            format!("{key}.client_ca_file"),
            "client_auth needs the CA file client certificates are checked against",
        );
    }
}

/// `[http]`: its address must differ from the client listeners' (port 0 picks a free one).
fn http(check: &mut Checker, config: &Config) {
    let http = &config.http;
    check.positive("http.max_connections", http.max_connections);
    check.positive("http.request_timeout_ms", http.request_timeout_ms);
    let (ws, tcp) = (&config.websocket, &config.tcp);
    let clients = [
        ("websocket.bind", ws.enabled, ws.bind),
        ("tcp.bind", tcp.enabled, tcp.bind),
    ];
    for (key, enabled, bind) in clients {
        let same_port = bind.port() == http.bind.port() && http.bind.port() != 0;
        let overlap = bind.ip() == http.bind.ip()
            || bind.ip().is_unspecified()
            || http.bind.ip().is_unspecified();
        if http.enabled && enabled && same_port && overlap {
            let problem = format!("{} overlaps {key} ({bind}); use another port", http.bind);
            check.fail("http.bind", problem);
        }
    }
    api_keys(check, &http.api_keys);
}

/// `[[http.api_keys]]`: each key one secret (a short one is guessable), some action, and
/// no secret shared by two keys (which key a request used would be ambiguous).
fn api_keys(check: &mut Checker, keys: &[crate::config::ApiKeyConfig]) {
    let mut seen = std::collections::HashSet::new();
    for (i, key) in keys.iter().enumerate() {
        let at = format!("http.api_keys[{i}]");
        match (key.secret.is_empty(), key.secret_sha256.is_empty()) {
            (true, true) => check.fail(&at, "set secret or secret_sha256"),
            (false, false) => check.fail(&at, "set one of secret and secret_sha256, not both"),
            (false, true) if key.secret.len() < MIN_API_SECRET => check.fail(
                format!("{at}.secret"),
                format!("at least {MIN_API_SECRET} characters"),
            ),
            (true, false)
                if key.secret_sha256.len() != 64
                    || !key.secret_sha256.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                check.fail(format!("{at}.secret_sha256"), "64 hex digits (a SHA-256)")
            }
            _ => {}
        }
        let secret = (key.secret.as_str(), key.secret_sha256.to_ascii_lowercase());
        if !seen.insert(secret) {
            check.fail(&at, "the same secret as an earlier key");
        }
        if key.actions.is_empty() {
            check.fail(format!("{at}.actions"), "list at least one action");
        }
    }
}

/// Shortest API secret accepted: 16 characters.
const MIN_API_SECRET: usize = 16;

fn listeners(check: &mut Checker, config: &Config) {
    let (ws, tcp) = (&config.websocket, &config.tcp);
    tls(check, "websocket.tls", ws.enabled, &ws.tls);
    tls(check, "tcp.tls", tcp.enabled, &tcp.tls);
    if !ws.enabled && !tcp.enabled {
        check.fail(
            "websocket.enabled",
            "websocket and tcp are both disabled; enable at least one listener",
        );
    }
    // Port 0 asks the OS for a fresh port per listener, so equal addresses do not clash.
    if ws.enabled && tcp.enabled && ws.bind == tcp.bind && ws.bind.port() != 0 {
        check.fail(
            "tcp.bind",
            format!(
                "{} is also websocket.bind; the listeners need different addresses",
                tcp.bind
            ),
        );
    }
    if ws.enabled && ws.paths.is_empty() {
        check.fail(
            "websocket.paths",
            "must list at least one path while websocket is enabled",
        );
    }
    for (i, path) in ws.paths.iter().enumerate() {
        if !path.starts_with('/') {
            check.fail(
                format!("websocket.paths[{i}]"),
                format!("{path:?} must start with \"/\""),
            );
        }
    }
    for (i, origin) in ws.allowed_origins.iter().enumerate() {
        // Browsers send `scheme://host[:port]`, never a path or trailing slash.
        if !origin.contains("://") || origin.ends_with('/') {
            check.fail(
                format!("websocket.allowed_origins[{i}]"),
                format!("{origin:?} is not an origin like \"https://example.com\""),
            );
        }
    }
    check.positive("websocket.read_buffer_bytes", ws.read_buffer_bytes);
    // The WebSocket layer refuses to buffer a message larger than this: every frame the
    // broker accepts must fit, or it could never be delivered over WebSocket.
    let largest_out = config.limits.max_frame_bytes + FRAME_HEADROOM;
    if ws.enabled && ws.max_write_buffer_bytes < largest_out {
        check.fail(
            "websocket.max_write_buffer_bytes",
            format!(
                "must be at least limits.max_frame_bytes + 64 KiB ({largest_out}), so the largest message accepted can be sent"
            ),
        );
    }
    check.positive("websocket.max_message_bytes", ws.max_message_bytes);
    if let Some(dir) = &ws.static_dir
        && !dir.is_dir()
    {
        check.fail(
            "websocket.static_dir",
            format!("{} is not a directory", dir.display()),
        );
    }
}

fn stomp(check: &mut Checker, config: &Config) {
    let stomp = &config.stomp;
    check.positive("stomp.heartbeat_floor_ms", stomp.heartbeat_floor_ms);
    for (key, value) in [
        ("stomp.heartbeat_send_ms", stomp.heartbeat_send_ms),
        ("stomp.heartbeat_receive_ms", stomp.heartbeat_receive_ms),
    ] {
        if value != 0 && value < stomp.heartbeat_floor_ms {
            check.fail(
                key,
                format!(
                    "{value} is below stomp.heartbeat_floor_ms ({}); use 0 to disable",
                    stomp.heartbeat_floor_ms
                ),
            );
        }
    }
    // TOML can spell `nan` and `inf`; neither is a usable factor.
    if !stomp.heartbeat_tolerance.is_finite() || stomp.heartbeat_tolerance < 1.0 {
        check.fail(
            "stomp.heartbeat_tolerance",
            format!(
                "{} must be a finite number >= 1.0",
                stomp.heartbeat_tolerance
            ),
        );
    }
    check.positive("stomp.connect_timeout_ms", stomp.connect_timeout_ms);
}

fn limits(check: &mut Checker, config: &Config) {
    let limits = &config.limits;
    for (key, value) in [
        (
            "max_frame_bytes_before_connect",
            limits.max_frame_bytes_before_connect,
        ),
        ("max_frame_bytes", limits.max_frame_bytes),
        ("max_headers", limits.max_headers),
        ("max_header_line_bytes", limits.max_header_line_bytes),
        (
            "max_subscriptions_per_session",
            limits.max_subscriptions_per_session,
        ),
        (
            "max_transactions_per_session",
            limits.max_transactions_per_session,
        ),
        (
            "max_frames_per_transaction",
            limits.max_frames_per_transaction,
        ),
        (
            "max_bytes_per_transaction",
            limits.max_bytes_per_transaction,
        ),
        (
            "max_transaction_bytes_total",
            limits.max_transaction_bytes_total,
        ),
        ("max_connections", limits.max_connections),
        (
            "max_connections_per_address",
            limits.max_connections_per_address,
        ),
    ] {
        check.positive(&format!("limits.{key}"), value);
    }
    if limits.max_frame_bytes < limits.max_frame_bytes_before_connect {
        check.fail(
            "limits.max_frame_bytes",
            format!(
                "{} is below limits.max_frame_bytes_before_connect ({})",
                limits.max_frame_bytes, limits.max_frame_bytes_before_connect
            ),
        );
    }
    if limits.max_transaction_bytes_total < limits.max_bytes_per_transaction {
        check.fail(
            "limits.max_transaction_bytes_total",
            format!(
                "{} is below limits.max_bytes_per_transaction ({})",
                limits.max_transaction_bytes_total, limits.max_bytes_per_transaction
            ),
        );
    }
}

fn destinations(check: &mut Checker, config: &Config) {
    let dest = &config.destinations;
    let topics = dest
        .topic_prefixes
        .iter()
        .enumerate()
        .map(|(i, p)| (format!("destinations.topic_prefixes[{i}]"), p));
    let queues = dest
        .queue_prefixes
        .iter()
        .enumerate()
        .map(|(i, p)| (format!("destinations.queue_prefixes[{i}]"), p));
    let user = std::iter::once(("destinations.user_prefix".to_owned(), &dest.user_prefix));

    let mut seen: Vec<(String, &String)> = Vec::new();
    for (key, prefix) in topics.chain(queues).chain(user) {
        if !prefix.starts_with('/') || !prefix.ends_with('/') {
            check.fail(&key, format!("{prefix:?} must start and end with \"/\""));
        }
        if prefix.contains(PATTERN_CHARS) {
            check.fail(
                &key,
                format!("{prefix:?} must not contain any of * ? {{ }} #"),
            );
        }
        // A prefix listed twice would give one destination two kinds.
        if let Some((first, _)) = seen.iter().find(|(_, p)| *p == prefix) {
            check.fail(&key, format!("{prefix:?} is already used by {first}"));
        }
        seen.push((key, prefix));
    }
}

/// The most copies of a stream JetStream keeps.
const MAX_REPLICAS: usize = 5;

/// `[queues.jetstream]`, checked only when it is used.
fn jetstream(check: &mut Checker, js: &QueuesJetStreamConfig, queue_prefixes: &[String]) {
    // A stream name is a token of JetStream's API subjects and a directory name on the
    // servers; the cluster name rule fits both.
    if !js.stream.bytes().all(is_name_byte) || js.stream.len() > 64 {
        check.fail(
            "queues.jetstream.stream",
            format!(
                "{:?} must be empty (for <cluster.name>_queues) or at most 64 of A-Z a-z 0-9 _ -",
                js.stream
            ),
        );
    }
    if !(1..=MAX_REPLICAS).contains(&js.replicas) {
        check.fail(
            "queues.jetstream.replicas",
            format!("{} must be from 1 to {MAX_REPLICAS}", js.replicas),
        );
    }
    // JetStream counts redelivery timers in nanoseconds in an i64; below 100 ms a busy
    // consumer would see its messages come back while it still works on them.
    if !(100..=86_400_000).contains(&js.ack_wait_ms) {
        check.fail(
            "queues.jetstream.ack_wait_ms",
            format!("{} must be from 100 to 86400000 (a day)", js.ack_wait_ms),
        );
    }
    check.positive("queues.jetstream.max_deliver", js.max_deliver);
    check.positive("queues.jetstream.max_ack_pending", js.max_ack_pending);
    check.positive("queues.jetstream.request_timeout_ms", js.request_timeout_ms);
    check.positive("queues.jetstream.default_prefetch", js.default_prefetch);
    check.positive(
        "queues.jetstream.max_unconfirmed_sends",
        js.max_unconfirmed_sends,
    );
    check.positive(
        "queues.jetstream.max_unconfirmed_bytes",
        js.max_unconfirmed_bytes,
    );
    // A pull's wait travels as i64 nanoseconds; nats-server wants at least a millisecond.
    if !(10..=60_000).contains(&js.pull_wait_ms) {
        check.fail(
            "queues.jetstream.pull_wait_ms",
            format!("{} must be from 10 to 60000 (a minute)", js.pull_wait_ms),
        );
    }
    for (key, value) in [
        ("queues.jetstream.max_age_ms", js.max_age_ms),
        ("queues.jetstream.consumer_idle_ms", js.consumer_idle_ms),
        ("queues.jetstream.request_timeout_ms", js.request_timeout_ms),
    ] {
        // Durations travel to NATS as i64 nanoseconds.
        if value > i64::MAX as u64 / 1_000_000 {
            check.fail(key, format!("{value} is too large"));
        }
    }
    for (key, value) in [
        ("queues.jetstream.max_bytes", js.max_bytes),
        ("queues.jetstream.max_messages", js.max_messages),
    ] {
        if value > i64::MAX as u64 {
            check.fail(key, format!("{value} is too large"));
        }
    }
    let dead = &js.dead_letter;
    if dead.is_empty() || dead.contains(['\0', '\r', '\n']) {
        check.fail(
            "queues.jetstream.dead_letter",
            "must be \"drop\" or a queue destination (\"{queue}\" stands for the message's own), without NUL, CR or LF",
        );
    } else if dead != "drop"
        && !dead.starts_with("{queue}")
        && !queue_prefixes.iter().any(|p| dead.starts_with(p.as_str()))
    {
        check.fail(
            "queues.jetstream.dead_letter",
            format!(
                "{dead:?} must start with \"{{queue}}\" or a queue prefix ({})",
                queue_prefixes.join(", ")
            ),
        );
    }
}

fn queues(check: &mut Checker, config: &Config) {
    let queues = &config.queues;
    check.positive(
        "queues.max_messages_per_queue",
        queues.max_messages_per_queue,
    );
    check.positive("queues.max_bytes_per_queue", queues.max_bytes_per_queue);
    check.positive("queues.max_total_bytes", queues.max_total_bytes);
    check.positive("queues.max_queues", queues.max_queues);
    check.positive(
        "queues.max_queues_per_session",
        queues.max_queues_per_session,
    );
    check.positive("queues.block_timeout_ms", queues.block_timeout_ms);
    if queues.store == QueueStoreKind::Jetstream {
        if config.cluster.is_none() {
            check.fail(
                "queues.store",
                "\"jetstream\" keeps queues in NATS JetStream and needs a NATS connection: \
                 add a [cluster] section with servers, or start with `herald --cluster nats://HOST:4222`",
            );
        }
        jetstream(
            check,
            &queues.jetstream,
            &config.destinations.queue_prefixes,
        );
    }
    if queues.max_total_bytes < queues.max_bytes_per_queue {
        check.fail(
            "queues.max_total_bytes",
            format!(
                "{} is below queues.max_bytes_per_queue ({})",
                queues.max_total_bytes, queues.max_bytes_per_queue
            ),
        );
    }
}

/// `[[users.offline]]`: kept in JetStream, for a user destination of each own.
fn users(check: &mut Checker, config: &Config) {
    let offline = &config.users.offline;
    if offline.is_empty() {
        return;
    }
    if config.queues.store != QueueStoreKind::Jetstream {
        check.fail(
            "users.offline",
            "offline delivery keeps messages in NATS JetStream: it needs queues.store = \"jetstream\" \
             (and [queues.jetstream], [cluster])",
        );
    }
    let dest = &config.destinations;
    let kinds = dest.topic_prefixes.iter().chain(&dest.queue_prefixes);
    let prefix = &config.destinations.user_prefix;
    let mut seen: Vec<&str> = Vec::new();
    for (i, block) in offline.iter().enumerate() {
        let key = |field: &str| format!("users.offline[{i}].{field}");
        match block.user_destination(prefix) {
            Some(rest)
                if !rest.contains(PATTERN_CHARS)
                    && kinds.clone().any(|p| rest.starts_with(p.as_str())) =>
            {
                if seen.contains(&rest) {
                    check.fail(key("destination"), format!("{:?} is opted in twice", block.destination));
                }
                seen.push(rest);
            }
            _ => check.fail(
                key("destination"),
                format!(
                    "{:?} must be {prefix}*/ followed by a queue or topic destination without wildcards, \
                     such as {prefix}*/queue/notify",
                    block.destination
                ),
            ),
        }
        check.positive(&key("keep_ms"), block.keep_ms);
        check.positive(&key("max_per_user"), block.max_per_user);
        // Durations travel to NATS as i64 nanoseconds, counts as i64.
        if block.keep_ms > i64::MAX as u64 / 1_000_000 {
            check.fail(key("keep_ms"), format!("{} is too large", block.keep_ms));
        }
        if block.max_per_user > i64::MAX as u64 {
            check.fail(
                key("max_per_user"),
                format!("{} is too large", block.max_per_user),
            );
        }
    }
}
