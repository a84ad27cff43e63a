//! One subscription as routing sees it: where to deliver and how to encode.

use std::sync::Arc;

use herald_protocol::Version;

use crate::outbox::Outbox;

/// A subscription's delivery handle. Two handles are the same subscription when session and
/// subscription id agree.
#[derive(Debug, Clone)]
pub struct Subscriber {
    pub session: u64,
    pub id: Arc<str>,
    pub version: Version,
    pub outbox: Arc<Outbox>,
}

impl Subscriber {
    pub fn new(session: u64, id: &str, version: Version, outbox: Arc<Outbox>) -> Subscriber {
        Subscriber {
            session,
            id: Arc::from(id),
            version,
            outbox,
        }
    }
}

impl PartialEq for Subscriber {
    fn eq(&self, other: &Subscriber) -> bool {
        self.session == other.session && self.id == other.id
    }
}

impl Eq for Subscriber {}

impl std::hash::Hash for Subscriber {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.session.hash(state);
        self.id.hash(state);
    }
}
