//! Routing: which subscriptions a destination reaches. Knows nothing of sockets or sessions:
//! subscribers are an opaque handle type chosen by the caller.

mod cache;
pub mod cluster;
pub mod destination;
mod node;
pub mod pattern;
pub mod publish;
pub mod queue;
mod subset;
pub mod topic;
pub mod trie;
pub mod user;

pub use pattern::{
    Pattern, PatternError, PatternLimits, Segment, Separator, has_wildcards, is_literal,
};
pub use trie::{ShardedTrie, SubscriptionTrie};
