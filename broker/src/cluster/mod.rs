//! The NATS cluster: this node joined to others (see docs/cluster.md).
//!
//! Above routing: routing knows only its [`ClusterLink`](crate::routing::cluster::ClusterLink)
//! seam, which [`NatsLink`] implements over the connection [`connect`] makes.

pub mod connect;
mod disconnect;
mod escape;
mod inlets;
mod interest;
mod link;
mod order;
pub mod presence;
mod scatter;
pub mod subject;
pub(crate) mod wire;

pub use link::{Inbound, LinkCounters, LinkSettings, NatsLink, Renew};
pub use presence::ask_presence;
