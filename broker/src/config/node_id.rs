//! The rule for node ids, shared by the configuration check and routing (a node id starts
//! every session id and is a NATS subject token).

/// The longest node id.
pub const MAX_NODE_ID_LEN: usize = 16;

/// Whether `id` can be a node id: 1 to [`MAX_NODE_ID_LEN`] of `a-z 0-9`.
pub fn is_node_id(id: &str) -> bool {
    (1..=MAX_NODE_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
}
