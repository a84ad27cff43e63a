//! Routing: which subscriptions a destination reaches. Knows nothing of sockets or sessions:
//! subscribers are an opaque handle type chosen by the caller.

mod cache;
pub mod cluster;
pub mod durable;
pub mod kicks;
mod node;
pub mod offline;
pub mod publish;
pub mod queue;
pub mod rates;
pub mod router;
pub mod subscriber;
mod subset;
pub mod topic;
pub mod trie;
pub mod user;

// The destination and pattern languages live below routing, because access reads them too;
// these re-exports keep `routing::destination` and `routing::pattern` paths working.
pub use crate::pattern::{
    Pattern, PatternError, PatternLimits, Segment, Separator, has_wildcards, is_literal,
};
pub use crate::{destination, pattern};
pub use trie::{ShardedTrie, SubscriptionTrie};
