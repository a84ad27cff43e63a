//! One struct per `[section]` of `herald.toml`, with the embedded defaults.
//!
//! Every struct is `#[serde(default, deny_unknown_fields)]`: a missing key takes its default,
//! a misspelt key is an error rather than a silently ignored setting.
//! Durations are integer milliseconds (`_ms`), sizes integer bytes (`_bytes`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// `[websocket]`: STOMP over WebSocket (and, later, HTTP) listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebSocketConfig {
    pub enabled: bool,
    pub bind: SocketAddr,
    /// HTTP paths on which the WebSocket upgrade is accepted.
    pub paths: Vec<String>,
    /// Accepted `Origin` header values; empty means any origin.
    pub allowed_origins: Vec<String>,
    pub read_buffer_bytes: usize,
    pub max_write_buffer_bytes: usize,
    pub max_message_bytes: usize,
    pub outbound_message_type: OutboundMessageType,
    /// Reverse proxies whose `X-Forwarded-For` names the client (addresses or CIDR blocks).
    pub trusted_proxies: Vec<IpNetwork>,
    /// Directory whose files are served to plain GET requests off `paths` (a page and the
    /// socket it opens then share an origin); unset serves nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub static_dir: Option<std::path::PathBuf>,
    /// `[websocket.tls]`: `wss://` instead of `ws://`.
    pub tls: TlsConfig,
}

impl Default for WebSocketConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            bind: any_v4(15674),
            paths: vec!["/ws".to_owned()],
            allowed_origins: Vec::new(),
            // tungstenite's default is 128 KiB allocated per connection for its whole life;
            // 2 KiB keeps an idle subscribed connection under 8 KB (docs/performance.md).
            read_buffer_bytes: 2 * KIB,
            // One largest MESSAGE (frame limit plus headers) and the write buffer in front:
            // the WebSocket layer refuses a message that does not fit whole. A bound, not an
            // allocation.
            max_write_buffer_bytes: 4 * MIB + 128 * KIB,
            // One maximal STOMP frame plus room for its command and headers.
            max_message_bytes: 4 * MIB + 64 * KIB,
            outbound_message_type: OutboundMessageType::Auto,
            trusted_proxies: Vec::new(),
            tls: TlsConfig::default(),
            static_dir: None,
        }
    }
}

/// WebSocket message type used for outbound frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboundMessageType {
    /// Text when the frame is valid UTF-8, binary otherwise.
    #[default]
    Auto,
    Text,
    Binary,
}

/// `[tcp]`: STOMP over plain TCP listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TcpConfig {
    pub enabled: bool,
    pub bind: SocketAddr,
    /// Load balancers that open every connection with a PROXY protocol header (v1 or v2)
    /// naming the client (addresses or CIDR blocks).
    pub trusted_proxies: Vec<IpNetwork>,
    /// `[tcp.tls]`: `stomp+ssl` instead of plain STOMP.
    pub tls: TlsConfig,
}

impl Default for TcpConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            bind: any_v4(61613),
            trusted_proxies: Vec::new(),
            tls: TlsConfig::default(),
        }
    }
}

/// `[websocket.tls]` and `[tcp.tls]`: TLS on one listener. The files are read at start and
/// again on SIGHUP.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    pub enabled: bool,
    /// PEM file: the server certificate first, then its intermediates.
    pub cert_file: String,
    /// PEM file: the certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: String,
    /// Whether clients must present a certificate signed by `client_ca_file`.
    pub client_auth: ClientAuth,
    /// PEM file with the CA certificates client certificates must chain to.
    pub client_ca_file: String,
}

/// `tls.client_auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// No client certificate is asked for.
    #[default]
    None,
    /// A client certificate is asked for and verified if sent; clients without one connect.
    Optional,
    /// A client without a valid certificate fails the handshake.
    Required,
}

/// An address or a CIDR block (`10.0.0.0/8`, `::1`), written as a string in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IpNetwork {
    address: IpAddr,
    prefix: u8,
}

impl IpNetwork {
    /// Whether `ip` lies in this block; IPv4-mapped IPv6 addresses count as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.address, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

/// Whether the first `bits` bits of `a` and `b` are equal.
fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let bits = usize::from(bits);
    let (whole, rest) = (bits / 8, bits % 8);
    if a[..whole] != b[..whole] {
        return false;
    }
    rest == 0 || (a[whole] ^ b[whole]) >> (8 - rest) == 0
}

impl FromStr for IpNetwork {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = address
            .parse()
            .map_err(|_| format!("{text:?} is not an IP address or CIDR block"))?;
        let address = address.to_canonical();
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to {max}"))?,
        };
        Ok(IpNetwork { address, prefix })
    }
}

impl TryFrom<String> for IpNetwork {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl From<IpNetwork> for String {
    fn from(network: IpNetwork) -> String {
        network.to_string()
    }
}

impl fmt::Display for IpNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

/// `[stomp]`: session timing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StompConfig {
    /// The server's send offer (first number of CONNECTED `heart-beat`) when the client asks
    /// to receive none; otherwise the offer follows the client (0 = never send).
    pub heartbeat_send_ms: u64,
    /// The server's receive offer (second number of CONNECTED `heart-beat`) when the client
    /// promises none; otherwise the offer follows the client (0 = never expect any).
    pub heartbeat_receive_ms: u64,
    /// The shortest heart-beat interval the server offers, whatever the client asks.
    pub heartbeat_floor_ms: u64,
    /// Read timeout = negotiated receive interval × this factor.
    pub heartbeat_tolerance: f64,
    pub connect_timeout_ms: u64,
}

impl Default for StompConfig {
    fn default() -> Self {
        Self {
            heartbeat_send_ms: 10_000,
            heartbeat_receive_ms: 10_000,
            heartbeat_floor_ms: 1_000,
            heartbeat_tolerance: 2.0,
            connect_timeout_ms: 10_000,
        }
    }
}

/// `[limits]`: per-frame, per-session and per-node bounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    pub max_frame_bytes_before_connect: usize,
    pub max_frame_bytes: usize,
    pub max_headers: usize,
    pub max_header_line_bytes: usize,
    pub max_subscriptions_per_session: usize,
    pub max_transactions_per_session: usize,
    pub max_frames_per_transaction: usize,
    /// Most bytes (bodies, headers and per-frame overhead) one transaction holds.
    pub max_bytes_per_transaction: usize,
    /// Most bytes all open transactions of the node hold together.
    pub max_transaction_bytes_total: usize,
    pub max_connections: usize,
    pub max_connections_per_address: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_frame_bytes_before_connect: 64 * KIB,
            max_frame_bytes: 4 * MIB,
            max_headers: 64,
            max_header_line_bytes: 8 * KIB,
            max_subscriptions_per_session: 1024,
            max_transactions_per_session: 16,
            max_frames_per_transaction: 1000,
            max_bytes_per_transaction: 8 * MIB,
            max_transaction_bytes_total: 64 * MIB,
            max_connections: 100_000,
            max_connections_per_address: 20_000,
        }
    }
}

/// `[destinations]`: how destination names map to kinds and how patterns split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DestinationsConfig {
    pub separator: Separator,
    pub topic_prefixes: Vec<String>,
    pub queue_prefixes: Vec<String>,
    pub user_prefix: String,
    pub queue_semantics: QueueSemantics,
    pub route_cache_entries: usize,
}

impl Default for DestinationsConfig {
    fn default() -> Self {
        Self {
            separator: Separator::Slash,
            topic_prefixes: vec!["/topic/".to_owned()],
            queue_prefixes: vec!["/queue/".to_owned()],
            user_prefix: "/user/".to_owned(),
            queue_semantics: QueueSemantics::PointToPoint,
            route_cache_entries: 65_536,
        }
    }
}

/// Segment separator for subscription patterns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Separator {
    /// `/`, like Spring's AntPathMatcher.
    #[default]
    #[serde(rename = "/")]
    Slash,
    /// `.`, like RabbitMQ routing keys.
    #[serde(rename = ".")]
    Dot,
}

/// What queue-kind destinations do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueSemantics {
    /// Each message goes to exactly one subscription, round-robin.
    #[default]
    PointToPoint,
    /// Every subscription gets a copy (Spring simple-broker behaviour).
    Broadcast,
}

/// `[outbox]`: bounds on a session's outbound queue (slow consumers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutboxConfig {
    /// High-water mark of a session's queued messages: publishers pause above it.
    pub max_bytes: usize,
    pub max_stall_ms: u64,
    /// Longest a publisher pauses for one subscriber's outbox to fall below `max_bytes`;
    /// a subscriber still above it then is closed as a slow consumer.
    pub max_pause_ms: u64,
    pub overflow: OverflowPolicy,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            max_bytes: 512 * KIB,
            max_stall_ms: 10_000,
            max_pause_ms: 5_000,
            overflow: OverflowPolicy::Close,
        }
    }
}

/// What happens when a session's outbox is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverflowPolicy {
    /// Close the session with a slow-consumer reason.
    #[default]
    Close,
    /// Drop the oldest queued messages to make room.
    DropOldest,
}

/// `[queues]`: point-to-point queue bounds and lifetime.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueuesConfig {
    /// Most messages one queue holds, unacknowledged ones included.
    pub max_messages_per_queue: usize,
    /// Most bytes one queue holds, unacknowledged messages included.
    pub max_bytes_per_queue: usize,
    /// Most bytes all queues of the node hold together.
    pub max_total_bytes: usize,
    /// What a SEND to a full queue does.
    pub overflow: QueueOverflow,
    /// Under `overflow = "block"`: how long a producer waits for room before its SEND is
    /// refused with an ERROR.
    pub block_timeout_ms: u64,
    /// How long an empty queue without subscribers is kept before it is deleted.
    pub empty_queue_grace_ms: u64,
    /// Most named queues on the node.
    pub max_queues: usize,
    /// Most queues one session may have created (by SEND or SUBSCRIBE) that still exist.
    pub max_queues_per_session: usize,
    /// Where queued messages are kept: this node's memory, or NATS JetStream.
    pub store: QueueStoreKind,
    /// `[queues.jetstream]`: the stream and consumers under `store = "jetstream"`.
    pub jetstream: QueuesJetStreamConfig,
}

impl Default for QueuesConfig {
    fn default() -> Self {
        Self {
            max_messages_per_queue: 10_000,
            max_bytes_per_queue: 16 * MIB,
            max_total_bytes: 256 * MIB,
            overflow: QueueOverflow::Block,
            block_timeout_ms: 30_000,
            empty_queue_grace_ms: 60_000,
            max_queues: 100_000,
            max_queues_per_session: 1024,
            store: QueueStoreKind::Memory,
            jetstream: QueuesJetStreamConfig::default(),
        }
    }
}

/// `queues.store`: where queued messages are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueStoreKind {
    /// In this node's memory: lost on restart, not shared with other nodes.
    #[default]
    Memory,
    /// In a NATS JetStream stream over the `[cluster]` connection: stored before RECEIPT,
    /// shared by every node.
    Jetstream,
}

/// `[queues.jetstream]`: the stream holding every queue and the consumers reading it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueuesJetStreamConfig {
    /// The stream's name; empty: `<cluster.name>_queues`.
    pub stream: String,
    /// Copies of each message among the NATS servers of a JetStream cluster (1 to 5).
    pub replicas: usize,
    /// Where the NATS servers keep the stream.
    pub storage: JetStreamStorage,
    /// Messages older than this are deleted, consumed or not; 0: no limit.
    pub max_age_ms: u64,
    /// Most bytes the stream holds; a SEND past it is refused; 0: no limit.
    pub max_bytes: u64,
    /// Most messages the stream holds; a SEND past it is refused; 0: no limit.
    pub max_messages: u64,
    /// How long a delivered message may stay unacknowledged before it is delivered again.
    pub ack_wait_ms: u64,
    /// Deliveries of one message before it is dead-lettered.
    pub max_deliver: u32,
    /// Where a message goes after `max_deliver` deliveries: a queue destination, `{queue}`
    /// standing for the message's own, or `drop`.
    pub dead_letter: String,
    /// Most messages of one queue delivered and not yet acknowledged, over all nodes.
    pub max_ack_pending: usize,
    /// A queue's consumer unused this long is deleted by NATS (its messages stay); 0: never.
    pub consumer_idle_ms: u64,
    /// How long a request to JetStream (a publish's acknowledgement among them) may take.
    pub request_timeout_ms: u64,
    /// How long a starting node keeps asking a JetStream that does not answer yet (NATS not
    /// up, or its servers electing a leader) before it gives up.
    pub start_wait_ms: u64,
    /// Unacknowledged messages at most for a client-ack subscription without
    /// `prefetch-count` (and messages handed over at a time to an auto-ack one).
    pub default_prefetch: usize,
    /// How long one pull waits for messages before the node asks again.
    pub pull_wait_ms: u64,
    /// SENDs per session the store has not confirmed yet, at most: past it the session is
    /// not read until the store catches up.
    pub max_unconfirmed_sends: usize,
    /// Body bytes of those SENDs per session, at most (one SEND always goes).
    pub max_unconfirmed_bytes: usize,
}

impl Default for QueuesJetStreamConfig {
    fn default() -> Self {
        Self {
            stream: String::new(),
            replicas: 1,
            storage: JetStreamStorage::File,
            max_age_ms: 0,
            max_bytes: 0,
            max_messages: 0,
            ack_wait_ms: 30_000,
            max_deliver: 5,
            dead_letter: "{queue}.dlq".to_owned(),
            max_ack_pending: 10_000,
            consumer_idle_ms: 3_600_000,
            request_timeout_ms: 5_000,
            start_wait_ms: 30_000,
            default_prefetch: 100,
            pull_wait_ms: 2_000,
            max_unconfirmed_sends: 256,
            max_unconfirmed_bytes: 1024 * 1024,
        }
    }
}

/// `queues.jetstream.storage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JetStreamStorage {
    /// On the NATS servers' disks: survives their restart.
    #[default]
    File,
    /// In the NATS servers' memory: lost when they restart.
    Memory,
}

/// What happens to a SEND when its queue is at a bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueOverflow {
    /// Stop reading the producer's connection until there is room; refuse its SEND with an
    /// ERROR after `block_timeout_ms` (RabbitMQ's flow control).
    #[default]
    Block,
    /// Drop the oldest waiting messages to make room (RabbitMQ's `drop-head`).
    DropOldest,
    /// Refuse the SEND: ERROR to the sender, then close.
    Reject,
}

/// `[auth]`: identity settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    pub anonymous: AnonymousAccess,
    /// How long a failed CONNECT keeps its address's login turn (see `throttle.rs`), so
    /// that guessing passwords is slow.
    pub failure_delay_ms: u64,
    /// Most password hashes verified at once (on the blocking pool); 0: one per CPU.
    pub max_parallel_password_checks: usize,
    /// `[[auth.users]]`: users who log in with `login`/`passcode`.
    pub users: Vec<UserConfig>,
}

impl Default for AuthConfig {
    fn default() -> AuthConfig {
        AuthConfig {
            anonymous: AnonymousAccess::default(),
            failure_delay_ms: 1000,
            max_parallel_password_checks: 0,
            users: Vec::new(),
        }
    }
}

/// One `[[auth.users]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// The CONNECT `login`, and the session's user name.
    pub login: String,
    /// An argon2 hash in PHC format (`herald hash-password` prints one).
    pub passcode_hash: String,
    /// Roles, for authorization rules.
    #[serde(default)]
    pub roles: Vec<String>,
}

/// `[access]`: authorization rules (see `crate::access`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccessConfig {
    /// What a frame no rule covers gets.
    pub default: AccessDefault,
    /// `[[access.rules]]`.
    pub rules: Vec<AccessRule>,
}

/// `access.default`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessDefault {
    #[default]
    Allow,
    Deny,
}

/// What a rule grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessAction {
    Send,
    Subscribe,
}

/// One `[[access.rules]]` entry: `actions` on `destinations`, granted to whoever is named.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessRule {
    pub actions: Vec<AccessAction>,
    /// Destination patterns (Herald pattern syntax, split at `/`).
    pub destinations: Vec<String>,
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    /// Every authenticated session.
    #[serde(default)]
    pub authenticated: bool,
    /// Every anonymous session.
    #[serde(default)]
    pub anonymous: bool,
}

/// `[jwt]`: JSON Web Tokens as credentials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwtConfig {
    /// Accept tokens at all.
    pub enabled: bool,
    pub algorithm: JwtAlgorithm,
    /// The shared secret for HS256.
    pub secret: String,
    /// A PEM file with the public key for RS256 or ES256.
    pub key_file: String,
    /// Required `iss`; empty: not checked.
    pub issuer: String,
    /// Required `aud` (one of the token's); empty: not checked.
    pub audience: String,
    /// Clock skew allowed on `exp` and `nbf` at CONNECT.
    pub leeway_ms: u64,
    /// The claim holding the user's roles (a string array, or one string).
    pub roles_claim: String,
}

impl Default for JwtConfig {
    fn default() -> JwtConfig {
        JwtConfig {
            enabled: false,
            algorithm: JwtAlgorithm::Hs256,
            secret: String::new(),
            key_file: String::new(),
            issuer: String::new(),
            audience: String::new(),
            leeway_ms: 30_000,
            roles_claim: "roles".to_owned(),
        }
    }
}

/// Token signature algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum JwtAlgorithm {
    #[default]
    #[serde(rename = "HS256")]
    Hs256,
    #[serde(rename = "RS256")]
    Rs256,
    #[serde(rename = "ES256")]
    Es256,
}

/// Which connections may CONNECT without credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnonymousAccess {
    Never,
    /// Only connections from loopback addresses.
    #[default]
    Loopback,
    Always,
}

/// `[shutdown]`: graceful stop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShutdownConfig {
    pub drain_ms: u64,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self { drain_ms: 10_000 }
    }
}

/// `[http]`: the operations listener (`/metrics`, `/healthz`, `/readyz`), apart from the
/// client listeners. Off unless enabled: several nodes on one host (trials, tests) would
/// otherwise fight over one port; production configurations turn it on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    pub enabled: bool,
    /// Loopback by default: metrics and health are for the local scraper and load balancer
    /// agent, not the internet.
    pub bind: SocketAddr,
    /// Connections served at once; more are closed as they arrive.
    pub max_connections: usize,
    /// How long a client has to send a request's head, also the longest an idle keep-alive
    /// connection is kept.
    pub request_timeout_ms: u64,
    /// `[[http.api_keys]]`: bearer tokens of the HTTP API (`/api/v1`); none: the API is off.
    pub api_keys: Vec<ApiKeyConfig>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            bind: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 15692)),
            max_connections: 64,
            request_timeout_ms: 10_000,
            api_keys: Vec::new(),
        }
    }
}

/// One `[[http.api_keys]]` entry: a bearer token of the HTTP API and what it may do.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// Names the key in logs (never the secret).
    pub name: String,
    /// The token itself. Exactly one of `secret` and `secret_sha256` is set.
    pub secret: String,
    /// The token's SHA-256, 64 hex digits, so the file need not hold the token.
    pub secret_sha256: String,
    /// What the key may do.
    pub actions: Vec<ApiAction>,
    /// The access rules judge the key's sends as this user (empty: as an anonymous session).
    pub user: String,
    /// The roles the access rules see for the key.
    pub roles: Vec<String>,
}

/// What an API key may do; each route needs one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiAction {
    /// `POST /publish`.
    Publish,
    /// `POST /broadcast`.
    Broadcast,
    /// `POST /users/{user}/send`.
    SendToUser,
    /// `GET /users/{user}` and `GET /presence`.
    Presence,
    /// `DELETE /users/{user}/sessions`.
    Disconnect,
    /// `GET /stats`.
    Stats,
}

impl ApiAction {
    pub const ALL: [ApiAction; 6] = [
        ApiAction::Publish,
        ApiAction::Broadcast,
        ApiAction::SendToUser,
        ApiAction::Presence,
        ApiAction::Disconnect,
        ApiAction::Stats,
    ];
}

/// `[log]`: process logging. `RUST_LOG`, when set, overrides `level`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub level: LogLevel,
    pub format: LogFormat,
}

/// Log verbosity. Finer filters (per module) go through `RUST_LOG`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    Off,
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    /// The name used in the config file, the CLI and `RUST_LOG`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Error => "error",
            Self::Warn => "warn",
            Self::Info => "info",
            Self::Debug => "debug",
            Self::Trace => "trace",
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[cluster]`: this node as one of several joined over NATS. Absent (the default), the node
/// runs alone and needs no NATS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// NATS server URLs (`nats://host:4222`, `tls://host:4222`); several for failover.
    pub servers: Vec<String>,
    /// The subject prefix, so that two clusters can share one NATS.
    pub name: String,
    /// This node's id (session ids start with it); empty: random at each start.
    pub node_id: String,
    /// Credentials: at most one kind of token, user and password, NKey seed, `.creds` file.
    pub token: String,
    pub user: String,
    pub password: String,
    pub nkey_seed: String,
    /// A file holding the NKey seed, instead of `nkey_seed`.
    pub nkey_seed_file: String,
    /// A NATS `.creds` file (user JWT and NKey seed).
    pub credentials_file: String,
    /// `[cluster.tls]`.
    pub tls: ClusterTlsConfig,
    /// How long a presence question waits for other nodes' answers.
    pub presence_timeout_ms: u64,
    /// Most bytes of messages waiting to go out to NATS; also, separately, of messages read
    /// from NATS and not yet delivered.
    pub max_pending_bytes: usize,
    /// Messages one NATS subscription holds before NATS reports this node a slow consumer.
    pub subscription_capacity: usize,
    /// Longest one attempt to reach a NATS server may take.
    pub connect_timeout_ms: u64,
    /// Whether the node reports itself ready only while its NATS link is up.
    pub ready_requires_link: bool,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            servers: vec!["nats://127.0.0.1:4222".to_owned()],
            name: "herald".to_owned(),
            node_id: String::new(),
            token: String::new(),
            user: String::new(),
            password: String::new(),
            nkey_seed: String::new(),
            nkey_seed_file: String::new(),
            credentials_file: String::new(),
            tls: ClusterTlsConfig::default(),
            presence_timeout_ms: 200,
            max_pending_bytes: 16 * MIB,
            subscription_capacity: 8192,
            connect_timeout_ms: 5_000,
            ready_requires_link: true,
        }
    }
}

/// `[cluster.tls]`: TLS to the NATS servers. Setting `ca_file` or `cert_file` makes TLS
/// required, like `required = true` or a `tls://` URL.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterTlsConfig {
    /// PEM file with the CA certificates the servers' certificates must chain to; empty: the
    /// system's roots.
    pub ca_file: String,
    /// PEM file: the client certificate this node presents, with `key_file`.
    pub cert_file: String,
    pub key_file: String,
    /// Refuse to talk to a server without TLS.
    pub required: bool,
}

impl ClusterTlsConfig {
    /// Whether the connection must use TLS whatever the server URLs say.
    pub fn is_required(&self) -> bool {
        self.required || !self.ca_file.is_empty() || !self.cert_file.is_empty()
    }
}

fn any_v4(port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port))
}

/// `[users]`: user destinations (`/user/<name>/…`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UsersConfig {
    /// `[[users.offline]]`: user destinations whose messages are kept for a user with no
    /// session subscribed to them, and delivered at the user's next subscription.
    pub offline: Vec<OfflineConfig>,
}

/// One `[[users.offline]]` block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OfflineConfig {
    /// The SEND destination it opts in, the user name as `*`: `/user/*/queue/notify`.
    pub destination: String,
    /// Stored messages older than this are never delivered.
    pub keep_ms: u64,
    /// Most messages kept per user; past it the oldest is dropped.
    pub max_per_user: u64,
}

impl Default for OfflineConfig {
    fn default() -> Self {
        Self {
            destination: String::new(),
            keep_ms: 86_400_000,
            max_per_user: 100,
        }
    }
}

impl OfflineConfig {
    /// The user destination it stands for (`/queue/notify` for `/user/*/queue/notify`),
    /// if `destination` is `<user_prefix>*<destination>`.
    pub fn user_destination<'a>(&'a self, user_prefix: &str) -> Option<&'a str> {
        self.destination
            .strip_prefix(user_prefix)?
            .strip_prefix('*')
            .filter(|rest| rest.starts_with('/'))
    }
}
