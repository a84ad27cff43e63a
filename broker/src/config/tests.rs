use std::collections::BTreeSet;

use super::*;

const SHIPPED: &str = include_str!("../../../config/herald.toml");
const DOCS: &str = include_str!("../../../docs/configuration.md");

/// Dotted `section.key` names of every key a full configuration has.
fn keys(table: &toml::Table) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for (section, value) in table {
        let section_table = value.as_table().expect("top level holds only sections");
        for key in section_table.keys() {
            keys.insert(format!("{section}.{key}"));
        }
    }
    keys
}

fn default_keys() -> BTreeSet<String> {
    keys(&toml::Table::try_from(Config::default()).unwrap())
}

fn parse_err(text: &str) -> String {
    Config::from_toml_str(text, "test.toml")
        .unwrap_err()
        .to_string()
}

#[test]
fn empty_file_gives_defaults() {
    assert_eq!(
        Config::from_toml_str("", "empty").unwrap(),
        Config::default()
    );
}

#[test]
fn defaults_are_valid() {
    Config::default().validate().unwrap();
}

#[test]
fn shipped_file_equals_defaults() {
    let shipped = Config::from_toml_str(SHIPPED, "config/herald.toml").unwrap();
    assert_eq!(shipped, Config::default());
}

#[test]
fn shipped_file_sets_every_key() {
    let table: toml::Table = toml::from_str(SHIPPED).unwrap();
    assert_eq!(keys(&table), default_keys());
}

#[test]
fn docs_name_every_key() {
    let missing: Vec<_> = default_keys()
        .into_iter()
        .filter(|key| !DOCS.contains(&format!("`{key}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/configuration.md lacks {missing:?}"
    );
}

#[test]
fn printed_config_parses_back() {
    let mut config = Config::default();
    config.tcp.enabled = false;
    config.destinations.separator = Separator::Dot;
    config.outbox.overflow = OverflowPolicy::DropOldest;
    let text = config.to_toml_string().unwrap();
    assert_eq!(Config::from_toml_str(&text, "printed").unwrap(), config);
}

#[test]
fn unknown_key_is_rejected_by_name() {
    let err = parse_err("[limits]\nmax_frame_byte = 10\n");
    assert!(err.starts_with("test.toml: "), "{err}");
    assert!(err.contains("unknown field `max_frame_byte`"), "{err}");
    assert!(err.contains("line 2"), "{err}");
}

#[test]
fn unknown_section_is_rejected_by_name() {
    let err = parse_err("[websockets]\nenabled = true\n");
    assert!(err.contains("unknown field `websockets`"), "{err}");
}

#[test]
fn type_error_reports_line_and_key() {
    let err = parse_err("[stomp]\n\nheartbeat_send_ms = \"ten\"\n");
    assert!(err.contains("line 3, column 21"), "{err}");
    assert!(err.contains("heartbeat_send_ms"), "{err}");
    assert!(err.contains("invalid type"), "{err}");
}

#[test]
fn bad_enum_value_is_rejected() {
    let err = parse_err("[outbox]\noverflow = \"drop_newest\"\n");
    assert!(err.contains("unknown variant `drop_newest`"), "{err}");
}

#[test]
fn bad_bind_address_is_rejected_at_parse() {
    let err = parse_err("[tcp]\nbind = \"localhost:61613\"\n");
    assert!(err.contains("line 2"), "{err}");
    assert!(err.contains("socket address"), "{err}");
}

#[test]
fn every_broken_rule_is_listed_with_its_key() {
    let err = parse_err(
        "[stomp]\nheartbeat_tolerance = 0.5\nheartbeat_send_ms = 10\n\
         [limits]\nmax_frame_bytes = 1024\nmax_headers = 0\n\
         [destinations]\ntopic_prefixes = [\"topic/\", \"/queue/\"]\n\
         [websocket]\npaths = [\"ws\"]\nallowed_origins = [\"example.com\"]\n",
    );
    assert!(err.starts_with("test.toml: invalid configuration"), "{err}");
    for key in [
        "stomp.heartbeat_tolerance:",
        "stomp.heartbeat_send_ms:",
        "limits.max_frame_bytes:",
        "limits.max_headers:",
        "destinations.topic_prefixes[0]:",
        "destinations.queue_prefixes[0]:",
        "websocket.paths[0]:",
        "websocket.allowed_origins[0]:",
    ] {
        assert!(err.contains(key), "{key} missing from {err}");
    }
}

fn problem_keys(config: &Config) -> Vec<String> {
    match config.validate() {
        Ok(()) => Vec::new(),
        Err(ConfigError::Invalid { problems, .. }) => problems.into_iter().map(|p| p.key).collect(),
        Err(other) => panic!("unexpected {other}"),
    }
}

#[test]
fn tolerance_must_be_a_finite_factor() {
    for bad in [0.99, f64::NAN, f64::INFINITY] {
        let mut config = Config::default();
        config.stomp.heartbeat_tolerance = bad;
        assert_eq!(
            problem_keys(&config),
            ["stomp.heartbeat_tolerance"],
            "{bad}"
        );
    }
    let mut config = Config::default();
    config.stomp.heartbeat_tolerance = 1.0;
    assert!(problem_keys(&config).is_empty());
}

#[test]
fn heartbeat_zero_disables_and_is_not_below_the_floor() {
    let mut config = Config::default();
    config.stomp.heartbeat_send_ms = 0;
    config.stomp.heartbeat_receive_ms = 0;
    assert!(problem_keys(&config).is_empty());
}

#[test]
fn listeners() {
    let mut config = Config::default();
    config.websocket.enabled = false;
    config.tcp.enabled = false;
    assert_eq!(problem_keys(&config), ["websocket.enabled"]);

    let mut config = Config::default();
    config.tcp.bind = config.websocket.bind;
    assert_eq!(problem_keys(&config), ["tcp.bind"]);

    // Port 0 means "any free port": both listeners may ask for it.
    let mut config = Config::default();
    config.websocket.bind = "127.0.0.1:0".parse().unwrap();
    config.tcp.bind = config.websocket.bind;
    assert!(problem_keys(&config).is_empty());

    let mut config = Config::default();
    config.websocket.paths.clear();
    assert_eq!(problem_keys(&config), ["websocket.paths"]);
    config.websocket.enabled = false;
    assert!(problem_keys(&config).is_empty());
}

#[test]
fn prefixes() {
    let mut config = Config::default();
    config.destinations.user_prefix = "/topic/".to_owned();
    config
        .destinations
        .queue_prefixes
        .push("/exchange/*/".to_owned());
    assert_eq!(
        problem_keys(&config),
        ["destinations.queue_prefixes[1]", "destinations.user_prefix"]
    );
}

#[test]
fn queue_bounds() {
    let mut config = Config::default();
    config.queues.max_messages_per_queue = 0;
    config.queues.max_total_bytes = config.queues.max_bytes_per_queue - 1;
    assert_eq!(
        problem_keys(&config),
        ["queues.max_messages_per_queue", "queues.max_total_bytes"]
    );
    let err = parse_err("[queues]\noverflow = \"pause\"\n");
    assert!(err.contains("unknown variant `pause`"), "{err}");
    let mut config = Config::default();
    config.queues.max_queues = 0;
    config.queues.block_timeout_ms = 0;
    config.limits.max_transaction_bytes_total = config.limits.max_bytes_per_transaction - 1;
    assert_eq!(
        problem_keys(&config),
        [
            "limits.max_transaction_bytes_total",
            "queues.max_queues",
            "queues.block_timeout_ms"
        ]
    );
    let config = Config::from_toml_str(
        "[queues]\noverflow = \"reject\"\nempty_queue_grace_ms = 0\n",
        "q",
    )
    .unwrap();
    assert_eq!(config.queues.overflow, QueueOverflow::Reject);
}

#[test]
fn jetstream_store_needs_a_cluster_and_sane_bounds() {
    let config = Config::from_toml_str("", "t").unwrap();
    assert_eq!(config.queues.store, QueueStoreKind::Memory);
    let err = parse_err("[queues]\nstore = \"jetstream\"\n");
    assert!(
        err.contains("queues.store") && err.contains("[cluster]") && err.contains("--cluster"),
        "{err}"
    );
    let config = Config::from_toml_str(
        "[queues]\nstore = \"jetstream\"\n[queues.jetstream]\nstorage = \"memory\"\n\
         dead_letter = \"drop\"\n[cluster]\n",
        "t",
    )
    .unwrap();
    assert_eq!(config.queues.jetstream.storage, JetStreamStorage::Memory);
    let mut config = config;
    let js = &mut config.queues.jetstream;
    js.stream = "a.b".to_owned();
    js.replicas = 6;
    js.ack_wait_ms = 99;
    js.max_deliver = 0;
    js.max_ack_pending = 0;
    js.request_timeout_ms = 0;
    js.max_bytes = u64::MAX;
    js.dead_letter = "/elsewhere/dead".to_owned();
    assert_eq!(
        problem_keys(&config),
        [
            "queues.jetstream.stream",
            "queues.jetstream.replicas",
            "queues.jetstream.ack_wait_ms",
            "queues.jetstream.max_deliver",
            "queues.jetstream.max_ack_pending",
            "queues.jetstream.request_timeout_ms",
            "queues.jetstream.max_bytes",
            "queues.jetstream.dead_letter",
        ]
    );
    // Under the memory store the section is not checked.
    config.queues.store = QueueStoreKind::Memory;
    assert!(problem_keys(&config).is_empty());
    let err = parse_err("[queues.jetstream]\nstorage = \"disk\"\n");
    assert!(err.contains("unknown variant `disk`"), "{err}");
}

#[test]
fn docs_name_every_jetstream_key() {
    let table = toml::Table::try_from(QueuesJetStreamConfig::default()).unwrap();
    let missing: Vec<_> = table
        .keys()
        .map(|key| format!("queues.jetstream.{key}"))
        .filter(|key| !DOCS.contains(&format!("`{key}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/configuration.md lacks {missing:?}"
    );
}

fn cluster_config(text: &str) -> ClusterConfig {
    Config::from_toml_str(text, "test.toml")
        .unwrap()
        .cluster
        .expect("a [cluster] section")
}

/// Dotted names of every key of a `[cluster]` section, `[cluster.tls]` included.
fn cluster_keys(section: &toml::Table) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for (key, value) in section {
        match value.as_table() {
            Some(table) => keys.extend(table.keys().map(|k| format!("cluster.{key}.{k}"))),
            None => {
                keys.insert(format!("cluster.{key}"));
            }
        }
    }
    keys
}

fn default_cluster_keys() -> BTreeSet<String> {
    cluster_keys(&toml::Table::try_from(ClusterConfig::default()).unwrap())
}

/// The commented `[cluster]` example that ends `config/herald.toml`, uncommented.
fn shipped_cluster_example() -> String {
    let start = SHIPPED
        .find("\n# [cluster]\n")
        .expect("herald.toml ends with a commented [cluster] example");
    SHIPPED[start + 1..]
        .lines()
        .map(|line| {
            line.strip_prefix("# ")
                .or_else(|| line.strip_prefix('#'))
                .expect("every line commented")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn no_cluster_section_is_a_single_node() {
    assert_eq!(Config::default().cluster, None);
    let text = Config::default().to_toml_string().unwrap();
    assert!(!text.contains("cluster"), "{text}");
}

#[test]
fn an_empty_cluster_section_takes_the_defaults() {
    let cluster = cluster_config("[cluster]\n");
    assert_eq!(cluster, ClusterConfig::default());
    assert_eq!(cluster.servers, ["nats://127.0.0.1:4222"]);
    assert_eq!(cluster.name, "herald");
    assert_eq!(cluster.node_id, "");
    assert_eq!(cluster.presence_timeout_ms, 200);
    assert_eq!(cluster.max_pending_bytes, 16 * 1024 * 1024);
    assert_eq!(cluster.subscription_capacity, 8192);
    assert_eq!(cluster.connect_timeout_ms, 5000);
    assert!(cluster.ready_requires_link);
    assert!(!cluster.tls.is_required());
}

#[test]
fn a_full_cluster_section_parses_and_prints_back() {
    let cluster = cluster_config(
        "[cluster]\nservers = [\"nats://a:4222\", \"tls://b.example:4443\"]\nname = \"blue_1-x\"\n\
         node_id = \"n0de7\"\nuser = \"herald\"\npassword = \"s3cret\"\n\
         presence_timeout_ms = 50\nmax_pending_bytes = 1024\nsubscription_capacity = 16\n\
         connect_timeout_ms = 100\nready_requires_link = false\n\
         [cluster.tls]\nca_file = \"ca.pem\"\ncert_file = \"c.pem\"\nkey_file = \"k.pem\"\n",
    );
    assert_eq!(cluster.servers, ["nats://a:4222", "tls://b.example:4443"]);
    assert_eq!(
        (cluster.user.as_str(), cluster.password.as_str()),
        ("herald", "s3cret")
    );
    assert_eq!(cluster.tls.ca_file, "ca.pem");
    assert!(cluster.tls.is_required(), "a CA file makes TLS required");
    assert!(!cluster.ready_requires_link);
    let config = Config {
        cluster: Some(cluster),
        ..Config::default()
    };
    let text = config.to_toml_string().unwrap();
    assert_eq!(Config::from_toml_str(&text, "printed").unwrap(), config);
}

#[test]
fn cluster_keys_are_checked_by_name() {
    let err = parse_err("[cluster]\nserver = [\"nats://a:4222\"]\n");
    assert!(err.contains("unknown field `server`"), "{err}");
    let err = parse_err("[cluster.tls]\nca = \"x\"\n");
    assert!(err.contains("unknown field `ca`"), "{err}");
}

fn cluster_problems(edit: impl FnOnce(&mut ClusterConfig)) -> Vec<String> {
    let mut cluster = ClusterConfig::default();
    edit(&mut cluster);
    let config = Config {
        cluster: Some(cluster),
        ..Config::default()
    };
    match config.validate() {
        Ok(()) => Vec::new(),
        Err(ConfigError::Invalid { problems, .. }) => {
            problems.into_iter().map(|p| p.to_string()).collect()
        }
        Err(other) => panic!("unexpected {other}"),
    }
}

#[test]
fn cluster_server_urls() {
    assert_eq!(
        cluster_problems(|c| c.servers.clear()),
        ["cluster.servers: must list at least one NATS server URL"]
    );
    assert_eq!(
        cluster_problems(|c| {
            c.servers = [
                "nats://a:4222",
                "tls://b",
                "a:4222",
                "http://a:4222",
                "nats://",
                "nats://u:p@a:4222",
                "nats://tok@a:4222",
                "nats://a:port",
            ]
            .map(str::to_owned)
            .to_vec()
        }),
        [
            "cluster.servers[2]: \"a:4222\" needs a scheme: nats://host:port or tls://host:port",
            "cluster.servers[3]: \"http://a:4222\" has scheme \"http\"; use nats:// or tls://",
            "cluster.servers[4]: \"nats://\" names no host",
            "cluster.servers[5]: \"nats://u:p@a:4222\" carries credentials; use cluster.user and cluster.password (or token) instead",
            "cluster.servers[6]: \"nats://tok@a:4222\" carries credentials; use cluster.user and cluster.password (or token) instead",
            "cluster.servers[7]: \"nats://a:port\" is not a URL: NATS server URL is invalid: invalid port number",
        ]
    );
}

#[test]
fn cluster_name_is_one_subject_token() {
    for good in ["herald", "Blue_cluster-2"] {
        assert!(
            cluster_problems(|c| c.name = good.to_owned()).is_empty(),
            "{good}"
        );
    }
    for bad in ["", "a.b", "a*", "a>", "a b", "é"] {
        assert_eq!(
            cluster_problems(|c| c.name = bad.to_owned()),
            [format!(
                "cluster.name: {bad:?} must be one or more of A-Z a-z 0-9 _ - (it starts every NATS subject)"
            )],
        );
    }
}

#[test]
fn cluster_node_id_is_empty_or_short_lowercase() {
    for good in ["", "a", "node7", "0123456789abcdef"] {
        assert!(
            cluster_problems(|c| c.node_id = good.to_owned()).is_empty(),
            "{good}"
        );
    }
    for bad in ["Node7", "n-1", "n.1", "0123456789abcdefg", "n 1"] {
        assert_eq!(
            cluster_problems(|c| c.node_id = bad.to_owned()),
            [format!(
                "cluster.node_id: {bad:?} must be 1 to 16 of a-z 0-9, or empty for a random id"
            )],
        );
    }
}

#[test]
fn cluster_credentials_are_one_complete_kind() {
    let seed = nkeys::KeyPair::new_user().seed().unwrap();
    assert!(cluster_problems(|c| c.token = "t".to_owned()).is_empty());
    assert!(cluster_problems(|c| c.nkey_seed = seed.clone()).is_empty());
    assert!(cluster_problems(|c| c.nkey_seed_file = "seed.nk".to_owned()).is_empty());
    assert!(cluster_problems(|c| c.credentials_file = "a.creds".to_owned()).is_empty());
    assert!(
        cluster_problems(|c| {
            c.user = "u".to_owned();
            c.password = "p".to_owned();
        })
        .is_empty()
    );
    assert_eq!(
        cluster_problems(|c| {
            c.token = "t".to_owned();
            c.user = "u".to_owned();
            c.password = "p".to_owned();
            c.nkey_seed = seed.clone();
            c.nkey_seed_file = "seed.nk".to_owned();
            c.credentials_file = "a.creds".to_owned();
        }),
        [
            "cluster: set at most one kind of NATS credentials; found token, user/password, nkey_seed, nkey_seed_file, credentials_file"
        ]
    );
    assert_eq!(
        cluster_problems(|c| c.user = "u".to_owned()),
        ["cluster.password: must be set together with cluster.user"]
    );
    assert_eq!(
        cluster_problems(|c| c.password = "p".to_owned()),
        ["cluster.user: must be set together with cluster.password"]
    );
}

#[test]
fn cluster_nkey_seed_must_be_a_user_seed_and_is_never_echoed() {
    let account = nkeys::KeyPair::new_account().seed().unwrap();
    assert_eq!(
        cluster_problems(|c| c.nkey_seed = account.clone()),
        ["cluster.nkey_seed: is not a user seed (SU...)"]
    );
    let problems = cluster_problems(|c| c.nkey_seed = "SUnotaseed".to_owned());
    assert_eq!(problems.len(), 1);
    assert!(
        problems[0].starts_with("cluster.nkey_seed: is not an NKey seed"),
        "{problems:?}"
    );
    assert!(!problems[0].contains("SUnotaseed"), "{problems:?}");
}

#[test]
fn cluster_client_certificate_needs_both_files() {
    assert_eq!(
        cluster_problems(|c| c.tls.cert_file = "c.pem".to_owned()),
        ["cluster.tls.key_file: a client certificate needs both; cluster.tls.cert_file is set"]
    );
    assert_eq!(
        cluster_problems(|c| c.tls.key_file = "k.pem".to_owned()),
        ["cluster.tls.cert_file: a client certificate needs both; cluster.tls.key_file is set"]
    );
    assert!(cluster_problems(|c| c.tls.required = true).is_empty());
}

#[test]
fn cluster_bounds_must_be_positive() {
    assert_eq!(
        cluster_problems(|c| {
            c.presence_timeout_ms = 0;
            c.max_pending_bytes = 0;
            c.subscription_capacity = 0;
            c.connect_timeout_ms = 0;
        }),
        [
            "cluster.presence_timeout_ms: must be greater than 0",
            "cluster.max_pending_bytes: must be greater than 0",
            "cluster.subscription_capacity: must be greater than 0",
            "cluster.connect_timeout_ms: must be greater than 0",
        ]
    );
}

#[test]
fn cluster_problems_are_reported_with_the_file_name() {
    let err = parse_err("[cluster]\nservers = []\nname = \"a.b\"\n");
    assert!(err.starts_with("test.toml: invalid configuration"), "{err}");
    assert!(err.contains("\n  cluster.servers: "), "{err}");
    assert!(err.contains("\n  cluster.name: "), "{err}");
}

#[test]
fn docs_name_every_cluster_key() {
    let missing: Vec<_> = default_cluster_keys()
        .into_iter()
        .filter(|key| !DOCS.contains(&format!("`{key}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/configuration.md lacks {missing:?}"
    );
}

#[test]
fn shipped_cluster_example_sets_every_key_at_its_default() {
    let example = shipped_cluster_example();
    let table: toml::Table = toml::from_str(&example).unwrap();
    let section = table["cluster"].as_table().unwrap();
    assert_eq!(cluster_keys(section), default_cluster_keys());
    assert_eq!(cluster_config(&example), ClusterConfig::default());
}

#[test]
fn static_dir_must_be_a_directory() {
    let mut config = Config::default();
    config.websocket.static_dir = Some(std::env::temp_dir());
    assert!(problem_keys(&config).is_empty());
    config.websocket.static_dir = Some("/nonexistent/herald-static".into());
    assert_eq!(problem_keys(&config), ["websocket.static_dir"]);
    config.websocket.static_dir = Some("/etc/hostname".into());
    assert_eq!(problem_keys(&config), ["websocket.static_dir"]);
}

#[test]
fn api_keys_need_one_good_secret_and_an_action() {
    use crate::config::{ApiAction, ApiKeyConfig};
    let key = |secret: &str, hash: &str, actions: &[ApiAction]| ApiKeyConfig {
        name: "k".into(),
        secret: secret.into(),
        secret_sha256: hash.into(),
        actions: actions.to_vec(),
        ..ApiKeyConfig::default()
    };
    let publish = &[ApiAction::Publish];
    let hash = "ab".repeat(32);
    let mut config = Config::default();
    config.http.api_keys = vec![
        key("0123456789abcdef", "", publish),
        key("", &hash, publish),
    ];
    assert!(problem_keys(&config).is_empty());
    config.http.api_keys = vec![
        key("", "", publish),
        key("short", "", publish),
        key("0123456789abcdef", &hash, publish),
        key("", "zz", publish),
        key("fedcba9876543210", "", &[]),
        key("", &hash.to_uppercase(), publish),
        key("", &hash, publish),
    ];
    assert_eq!(
        problem_keys(&config),
        [
            "http.api_keys[0]",
            "http.api_keys[1].secret",
            "http.api_keys[2]",
            "http.api_keys[3].secret_sha256",
            "http.api_keys[4].actions",
            "http.api_keys[6]",
        ]
    );
    let parsed = Config::from_toml_str(
        "[[http.api_keys]]\nname = \"a\"\nsecret = \"0123456789abcdef\"\nactions = [\"publish\", \"send_to_user\"]\n",
        "t",
    )
    .unwrap();
    assert_eq!(
        parsed.http.api_keys[0].actions,
        [ApiAction::Publish, ApiAction::SendToUser]
    );
    assert!(Config::from_toml_str("[[http.api_keys]]\nactions = [\"everything\"]\n", "t").is_err());
}

#[test]
fn offline_users_need_the_jetstream_store_and_an_opted_in_destination() {
    let block = "[[users.offline]]\ndestination = \"/user/*/queue/notify\"\nkeep_ms = 60000\n\
                 max_per_user = 5\n";
    let err = parse_err(block);
    assert!(
        err.contains("users.offline: offline delivery keeps messages in NATS JetStream")
            && err.contains("queues.store = \"jetstream\""),
        "{err}"
    );
    let with_store = format!("[queues]\nstore = \"jetstream\"\n[cluster]\n{block}");
    let config = Config::from_toml_str(&with_store, "t").unwrap();
    let offline = &config.users.offline[0];
    assert_eq!((offline.keep_ms, offline.max_per_user), (60_000, 5));
    assert_eq!(offline.user_destination("/user/"), Some("/queue/notify"));
    let mut config = config;
    let bad = |destination: &str| {
        let mut block = config.users.offline[0].clone();
        block.destination = destination.to_owned();
        block
    };
    let blocks = vec![
        bad("/user/*/queue/notify"),
        bad("/user/alice/queue/notify"),
        bad("/user/*/queue/a*"),
        bad("/user/*/elsewhere/x"),
        bad("/user/*/queue/notify"),
        OfflineConfig {
            keep_ms: 0,
            max_per_user: 0,
            ..bad("/user/*/topic/t")
        },
    ];
    config.users.offline = blocks;
    assert_eq!(
        problem_keys(&config),
        [
            "users.offline[1].destination",
            "users.offline[2].destination",
            "users.offline[3].destination",
            "users.offline[4].destination",
            "users.offline[5].keep_ms",
            "users.offline[5].max_per_user",
        ]
    );
}
