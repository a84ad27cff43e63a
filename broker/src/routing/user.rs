//! User destinations (semantics.md section 4, Spring semantics).
//!
//! - SUBSCRIBE `/user/queue/x` subscribes a session to its own resolved destination
//!   `/queue/x-user<sessionId>`, a point-to-point queue; its MESSAGEs show `/user/queue/x`.
//! - SEND `/user/<name>/queue/x` delivers to the resolved destination of every session of user
//!   `<name>` subscribed to `/user/queue/x`; `<name>` may also be a session id (one session).
//!
//! This module knows sessions only by their ids. The [`UserDirectory`] trait is what routing
//! needs of a directory; [`LocalUsers`] knows this node's sessions. Other nodes' sessions are
//! reached through the cluster link (one subject per user), not through a shared directory.

use std::collections::{HashMap, HashSet};
use std::fmt;

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

use super::cluster::Presence;
use crate::config::is_node_id;

/// What separates a destination from the session id in a resolved name.
pub const USER_SUFFIX: &str = "-user";

/// Called with a user name and `true` when the node gets its first session of that user, or
/// `false` when it loses its last; called under the directory's lock for that user, so calls
/// for one user arrive in order.
pub type UserInterest<'a> = &'a dyn Fn(&str, bool);

/// Who is connected as whom, and which user destinations each session subscribes to.
pub trait UserDirectory: Send + Sync + fmt::Debug {
    /// A session was accepted, as `user` (`None`: anonymous).
    fn open(&self, session: &str, user: Option<&str>, interest: UserInterest<'_>);
    /// A session ended; forgets it and its subscriptions.
    fn close(&self, session: &str, interest: UserInterest<'_>);
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
    /// Sessions per user (only `user`, if given).
    fn presence(&self, user: Option<&str>) -> Presence;
}

/// The sessions of this node. Sharded maps: sessions of different users rarely share a lock.
/// Locks never nest: a `sessions` guard is dropped before `users` is touched, and a `users`
/// guard is held only while looking sessions up.
#[derive(Debug, Default)]
pub struct LocalUsers {
    sessions: DashMap<String, SessionEntry>,
    users: DashMap<String, HashSet<String>>,
}

#[derive(Debug, Default)]
struct SessionEntry {
    user: Option<String>,
    subscribed: HashMap<String, usize>,
}

impl UserDirectory for LocalUsers {
    fn open(&self, session: &str, user: Option<&str>, interest: UserInterest<'_>) {
        self.sessions.insert(
            session.to_owned(),
            SessionEntry {
                user: user.map(str::to_owned),
                subscribed: HashMap::new(),
            },
        );
        if let Some(user) = user {
            let mut sessions = self.users.entry(user.to_owned()).or_default();
            if sessions.is_empty() {
                interest(user, true);
            }
            sessions.insert(session.to_owned());
        }
    }

    fn close(&self, session: &str, interest: UserInterest<'_>) {
        let Some((_, entry)) = self.sessions.remove(session) else {
            return;
        };
        let Some(user) = entry.user else {
            return;
        };
        if let Entry::Occupied(mut sessions) = self.users.entry(user) {
            sessions.get_mut().remove(session);
            if sessions.get().is_empty() {
                interest(sessions.key(), false);
                sessions.remove();
            }
        }
    }

    fn subscribe(&self, session: &str, destination: &str) {
        if let Some(mut entry) = self.sessions.get_mut(session) {
            *entry.subscribed.entry(destination.to_owned()).or_default() += 1;
        }
    }

    fn unsubscribe(&self, session: &str, destination: &str) {
        if let Some(mut entry) = self.sessions.get_mut(session) {
            if let Some(count) = entry.subscribed.get_mut(destination) {
                *count -= 1;
                if *count == 0 {
                    entry.subscribed.remove(destination);
                }
            }
        }
    }

    fn targets(&self, name: &str, destination: &str) -> Vec<String> {
        let subscribed = |session: &str| {
            self.sessions
                .get(session)
                .is_some_and(|e| e.subscribed.contains_key(destination))
        };
        if self.sessions.contains_key(name) {
            return if subscribed(name) {
                vec![name.to_owned()]
            } else {
                Vec::new()
            };
        }
        self.users.get(name).map_or_else(Vec::new, |sessions| {
            sessions.iter().filter(|s| subscribed(s)).cloned().collect()
        })
    }

    fn is_live(&self, session: &str) -> bool {
        self.sessions.contains_key(session)
    }

    fn presence(&self, user: Option<&str>) -> Presence {
        match user {
            Some(user) => self
                .users
                .get(user)
                .map(|sessions| (user.to_owned(), sessions.len()))
                .into_iter()
                .collect(),
            None => self
                .users
                .iter()
                .map(|entry| (entry.key().clone(), entry.value().len()))
                .collect(),
        }
    }
}

/// Whether `id` has the form of a Herald session id: the node id, `-`, and sixteen lowercase
/// hex digits (64 random bits; see `Node::next_session`).
pub fn is_session_id(id: &str) -> bool {
    session_node(id).is_some()
}

/// The node id a session id starts with: the node that holds the session.
pub fn session_node(id: &str) -> Option<&str> {
    let (node, random) = id.split_once('-')?;
    let random_ok = random.len() == 16
        && random
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    (random_ok && is_node_id(node)).then_some(node)
}

/// The Herald session whose resolved destination `destination` is (`/queue/x-user<id>`).
pub fn resolved_session(destination: &str) -> Option<&str> {
    let at = destination.rfind(USER_SUFFIX)?;
    let id = &destination[at + USER_SUFFIX.len()..];
    is_session_id(id).then_some(id)
}

/// The user destination a SEND to a resolved name stands for: `/queue/x-user<id>` is
/// `/user/<id>/queue/x` (with `user_prefix` `/user/`), so the rules for the one apply to the
/// other.
pub fn unresolve(user_prefix: &str, destination: &str) -> Option<String> {
    let id = resolved_session(destination)?;
    let base = &destination[..destination.len() - id.len() - USER_SUFFIX.len()];
    Some(format!("{}/{id}{base}", user_prefix.trim_end_matches('/')))
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

    const ID: &str = "0a1b2c3d-00f1e2d3c4b5a697";

    #[test]
    fn session_ids_and_resolved_names() {
        assert!(is_session_id(ID));
        assert!(!is_session_id("0A1B2C3D-00F1E2D3C4B5A697"));
        assert!(is_session_id("node7-00f1e2d3c4b5a697"));
        assert_eq!(session_node("node7-00f1e2d3c4b5a697"), Some("node7"));
        assert!(!is_session_id("-00f1e2d3c4b5a697"));
        assert!(!is_session_id("abcdefghijklmnopq-00f1e2d3c4b5a697"));
        assert!(!is_session_id("0a1b2c3d-"));
        // The sequential form of earlier versions is an ordinary name now.
        assert!(!is_session_id("0a1b2c3d-17"));
        assert!(!is_session_id("alice"));
        let resolved = resolve("/queue/x", ID);
        assert_eq!(resolved, format!("/queue/x-user{ID}"));
        assert_eq!(resolved_session(&resolved), Some(ID));
        assert_eq!(resolved_session("/queue/x-userbob"), None);
        assert_eq!(resolved_session("/queue/x"), None);
    }

    #[test]
    fn a_resolved_name_stands_for_the_user_destination_of_its_session() {
        let resolved = resolve("/queue/inbox", ID);
        let user = format!("/user/{ID}/queue/inbox");
        assert_eq!(unresolve("/user/", &resolved), Some(user.clone()));
        assert_eq!(unresolve("/user", &resolved), Some(user));
        assert_eq!(
            unresolve("/u/", &resolve("/topic/a/b", ID)),
            Some(format!("/u/{ID}/topic/a/b"))
        );
        assert_eq!(unresolve("/user/", "/queue/inbox-userbob"), None);
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
        let none = &|_: &str, _: bool| {};
        users.open("s-1", Some("alice"), none);
        users.open("s-2", Some("alice"), none);
        users.open("s-3", None, none);
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
        users.close("s-2", none);
        assert!(users.targets("alice", "/queue/x").is_empty());
        assert!(!users.is_live("s-2"));
        assert!(users.is_live("s-3"));
    }

    #[test]
    fn interest_follows_a_users_first_and_last_session() {
        let users = LocalUsers::default();
        let seen = std::sync::Mutex::new(Vec::new());
        let record = &|user: &str, on: bool| seen.lock().unwrap().push((user.to_owned(), on));
        users.open("s-1", Some("alice"), record);
        users.open("s-2", Some("alice"), record);
        users.open("s-3", None, record);
        users.open("s-4", Some("bob"), record);
        assert_eq!(
            users.presence(None),
            Presence::from([("alice".to_owned(), 2), ("bob".to_owned(), 1)])
        );
        assert_eq!(
            users.presence(Some("alice")),
            Presence::from([("alice".to_owned(), 2)])
        );
        assert!(users.presence(Some("carol")).is_empty());
        users.close("s-1", record);
        users.close("s-3", record);
        users.close("s-2", record);
        users.close("s-2", record);
        assert_eq!(
            *seen.lock().unwrap(),
            [
                ("alice".to_owned(), true),
                ("bob".to_owned(), true),
                ("alice".to_owned(), false)
            ]
        );
        assert_eq!(users.presence(None).len(), 1);
    }
}
