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
