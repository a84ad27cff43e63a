//! User destinations (SEMANTICS.md section 4, Spring semantics).
//!
//! - SUBSCRIBE `/user/queue/x` subscribes a session to its own resolved destination
//!   `/queue/x-user<sessionId>`, a point-to-point queue; its MESSAGEs show `/user/queue/x`.
//! - SEND `/user/<name>/queue/x` delivers to the resolved destination of every session of user
//!   `<name>` subscribed to `/user/queue/x`; `<name>` may also be a session id (one session).
//!
//! This module knows sessions only by their ids. The [`UserDirectory`] trait is the seam a
//! cluster extends: [`LocalUsers`] knows this node's sessions; a clustered directory would
//! add the sessions other nodes announce.

use std::collections::{HashMap, HashSet};
use std::fmt;

use parking_lot::RwLock;

/// What separates a destination from the session id in a resolved name.
pub const USER_SUFFIX: &str = "-user";

/// Who is connected as whom, and which user destinations each session subscribes to.
pub trait UserDirectory: Send + Sync + fmt::Debug {
    /// A session was accepted, as `user` (`None`: anonymous).
    fn open(&self, session: &str, user: Option<&str>);
    /// A session ended; forgets it and its subscriptions.
    fn close(&self, session: &str);
    /// The session subscribed to the user destination `destination` (`/queue/x` for
    /// `/user/queue/x`); subscriptions are counted, so two of one name need two unsubscribes.
    fn subscribe(&self, session: &str, destination: &str);
    fn unsubscribe(&self, session: &str, destination: &str);
    /// The sessions a SEND to `/user/<name><destination>` reaches: the session `name` if it is
    /// a session id, else every session of user `name`; only those subscribed to
    /// `destination`.
    fn targets(&self, name: &str, destination: &str) -> Vec<String>;
    /// Whether `session` is a live session.
    fn is_live(&self, session: &str) -> bool;
}

/// The sessions of this node.
#[derive(Debug, Default)]
pub struct LocalUsers {
    inner: RwLock<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    sessions: HashMap<String, SessionEntry>,
    users: HashMap<String, HashSet<String>>,
}

#[derive(Debug, Default)]
struct SessionEntry {
    user: Option<String>,
    subscribed: HashMap<String, usize>,
}

impl UserDirectory for LocalUsers {
    fn open(&self, session: &str, user: Option<&str>) {
        let mut inner = self.inner.write();
        if let Some(user) = user {
            inner
                .users
                .entry(user.to_owned())
                .or_default()
                .insert(session.to_owned());
        }
        inner.sessions.insert(
            session.to_owned(),
            SessionEntry {
                user: user.map(str::to_owned),
                subscribed: HashMap::new(),
            },
        );
    }

    fn close(&self, session: &str) {
        let mut inner = self.inner.write();
        let Some(entry) = inner.sessions.remove(session) else {
            return;
        };
        if let Some(user) = entry.user {
            if let Some(sessions) = inner.users.get_mut(&user) {
                sessions.remove(session);
                if sessions.is_empty() {
                    inner.users.remove(&user);
                }
            }
        }
    }

    fn subscribe(&self, session: &str, destination: &str) {
        if let Some(entry) = self.inner.write().sessions.get_mut(session) {
            *entry.subscribed.entry(destination.to_owned()).or_default() += 1;
        }
    }

    fn unsubscribe(&self, session: &str, destination: &str) {
        if let Some(entry) = self.inner.write().sessions.get_mut(session) {
            if let Some(count) = entry.subscribed.get_mut(destination) {
                *count -= 1;
                if *count == 0 {
                    entry.subscribed.remove(destination);
                }
            }
        }
    }

    fn targets(&self, name: &str, destination: &str) -> Vec<String> {
        let inner = self.inner.read();
        let subscribed = |session: &str| {
            inner
                .sessions
                .get(session)
                .is_some_and(|e| e.subscribed.contains_key(destination))
        };
        if inner.sessions.contains_key(name) {
            return if subscribed(name) {
                vec![name.to_owned()]
            } else {
                Vec::new()
            };
        }
        inner.users.get(name).map_or_else(Vec::new, |sessions| {
            sessions.iter().filter(|s| subscribed(s)).cloned().collect()
        })
    }

    fn is_live(&self, session: &str) -> bool {
        self.inner.read().sessions.contains_key(session)
    }
}

/// Whether `id` has the form of a Herald session id: eight lowercase hex digits (the node),
/// `-`, and a decimal number (see `Node::next_session`).
pub fn is_session_id(id: &str) -> bool {
    let Some((node, n)) = id.split_once('-') else {
        return false;
    };
    node.len() == 8
        && node
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && !n.is_empty()
        && n.bytes().all(|b| b.is_ascii_digit())
}

/// The Herald session whose resolved destination `destination` is (`/queue/x-user<id>`).
pub fn resolved_session(destination: &str) -> Option<&str> {
    let at = destination.rfind(USER_SUFFIX)?;
    let id = &destination[at + USER_SUFFIX.len()..];
    is_session_id(id).then_some(id)
}

/// The resolved destination of `destination` (`/queue/x`) for `session`.
pub fn resolve(destination: &str, session: &str) -> String {
    format!("{destination}{USER_SUFFIX}{session}")
}

/// What follows the user prefix, as a destination: `/user/queue/x` → `/queue/x`.
pub fn strip_prefix<'a>(prefix: &str, destination: &'a str) -> Option<&'a str> {
    let rest = destination.strip_prefix(prefix)?;
    // The prefix is `/user/` by default; keep the slash that starts the rest.
    let start = destination.len() - rest.len();
    let rest = if rest.starts_with('/') {
        rest
    } else {
        &destination[start.checked_sub(1)?..]
    };
    rest.starts_with('/').then_some(rest)
}

/// A SEND target after the user prefix: `alice/queue/x` (or `/alice/queue/x`) → the user
/// name, `%2F` decoded to `/`, and `/queue/x`.
pub fn parse_target(rest: &str) -> Option<(String, &str)> {
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    let slash = rest.find('/')?;
    let (name, destination) = rest.split_at(slash);
    if name.is_empty() || destination.len() < 2 {
        return None;
    }
    Some((decode_name(name), destination))
}

/// `%2F` (either case) stands for `/` in a user name.
fn decode_name(name: &str) -> String {
    name.replace("%2F", "/").replace("%2f", "/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_and_resolved_names() {
        assert!(is_session_id("0a1b2c3d-17"));
        assert!(!is_session_id("0A1B2C3D-17"));
        assert!(!is_session_id("0a1b2c3-17"));
        assert!(!is_session_id("0a1b2c3d-"));
        assert!(!is_session_id("alice"));
        assert_eq!(
            resolved_session("/queue/x-user0a1b2c3d-17"),
            Some("0a1b2c3d-17")
        );
        assert_eq!(resolved_session("/queue/x-userbob"), None);
        assert_eq!(resolved_session("/queue/x"), None);
        assert_eq!(resolve("/queue/x", "0a1b2c3d-1"), "/queue/x-user0a1b2c3d-1");
    }

    #[test]
    fn prefixes_and_targets() {
        assert_eq!(strip_prefix("/user/", "/user/queue/x"), Some("/queue/x"));
        assert_eq!(strip_prefix("/user", "/user/queue/x"), Some("/queue/x"));
        assert_eq!(strip_prefix("/user/", "/queue/x"), None);
        assert_eq!(
            parse_target("/alice/queue/x"),
            Some(("alice".to_owned(), "/queue/x"))
        );
        assert_eq!(
            parse_target("/org%2Falice/queue/x"),
            Some(("org/alice".to_owned(), "/queue/x"))
        );
        assert_eq!(parse_target("/alice"), None);
        assert_eq!(parse_target("//queue/x"), None);
    }

    #[test]
    fn directory_targets_subscribed_sessions() {
        let users = LocalUsers::default();
        users.open("s-1", Some("alice"));
        users.open("s-2", Some("alice"));
        users.open("s-3", None);
        users.subscribe("s-1", "/queue/x");
        users.subscribe("s-3", "/queue/x");
        assert_eq!(users.targets("alice", "/queue/x"), ["s-1"]);
        users.subscribe("s-2", "/queue/x");
        let mut both = users.targets("alice", "/queue/x");
        both.sort();
        assert_eq!(both, ["s-1", "s-2"]);
        assert_eq!(users.targets("s-3", "/queue/x"), ["s-3"]);
        assert_eq!(users.targets("s-2", "/queue/x"), ["s-2"]);
        assert!(users.targets("bob", "/queue/x").is_empty());
        users.unsubscribe("s-1", "/queue/x");
        users.close("s-2");
        assert!(users.targets("alice", "/queue/x").is_empty());
        assert!(!users.is_live("s-2"));
        assert!(users.is_live("s-3"));
    }
}
