//! This node's sessions of named users, as the operator reaches them to close them
//! (`DELETE /api/v1/users/{user}/sessions`). A session joins when its CONNECT names a user and
//! leaves when it ends; a kick cancels its token (a child of the node's shutdown token, which
//! its task already watches) after leaving the reason where the session reads it.
//! Anonymous sessions never join: no user names them.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use tokio_util::sync::CancellationToken;

/// One session's end, as the operator may call it.
#[derive(Debug, Clone)]
pub struct Kick {
    token: CancellationToken,
    reason: Arc<OnceLock<String>>,
}

impl Kick {
    /// Cancelled by a kick or by the node's shutdown.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// Why the session was kicked; `None` if it was not (a shutdown cancelled the token).
    pub fn reason(&self) -> Option<&str> {
        self.reason.get().map(String::as_str)
    }
}

/// Sessions by user, each with its [`Kick`] (a map per user: one user may hold thousands of
/// sessions, a load test's for one).
#[derive(Debug, Default)]
pub struct Kicks {
    users: DashMap<String, HashMap<String, Kick>>,
}

impl Kicks {
    /// Session `session` of `user` opened: its kick, ended with `shutdown` too.
    pub fn join(&self, user: &str, session: &str, shutdown: &CancellationToken) -> Kick {
        let kick = Kick {
            token: shutdown.child_token(),
            reason: Arc::default(),
        };
        self.users
            .entry(user.to_owned())
            .or_default()
            .insert(session.to_owned(), kick.clone());
        kick
    }

    /// Session `session` of `user` ended.
    pub fn leave(&self, user: &str, session: &str) {
        if let Entry::Occupied(mut sessions) = self.users.entry(user.to_owned()) {
            sessions.get_mut().remove(session);
            if sessions.get().is_empty() {
                sessions.remove();
            }
        }
    }

    /// Closes every session of `user` on this node, telling each `reason`. Returns how many.
    pub fn kick(&self, user: &str, reason: &str) -> usize {
        let Some((_, sessions)) = self.users.remove(user) else {
            return 0;
        };
        for kick in sessions.values() {
            // Set before the cancel, so the session reads it once woken.
            let _ = kick.reason.set(reason.to_owned());
            kick.token.cancel();
        }
        sessions.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kick_reaches_every_session_of_the_user_and_only_them() {
        let (kicks, shutdown) = (Kicks::default(), CancellationToken::new());
        let a1 = kicks.join("alice", "s1", &shutdown);
        let a2 = kicks.join("alice", "s2", &shutdown);
        let b = kicks.join("bob", "s3", &shutdown);
        assert_eq!(kicks.kick("alice", "banned"), 2);
        for kick in [&a1, &a2] {
            assert!(kick.token().is_cancelled());
            assert_eq!(kick.reason(), Some("banned"));
        }
        assert!(!b.token().is_cancelled());
        assert_eq!(kicks.kick("alice", "again"), 0);
        kicks.leave("alice", "s1");
        kicks.leave("bob", "s3");
        assert_eq!(kicks.kick("bob", "gone"), 0);
        assert!(kicks.users.is_empty());
    }

    #[test]
    fn a_shutdown_cancels_without_a_reason() {
        let (kicks, shutdown) = (Kicks::default(), CancellationToken::new());
        let kick = kicks.join("alice", "s1", &shutdown);
        shutdown.cancel();
        assert!(kick.token().is_cancelled());
        assert_eq!(kick.reason(), None);
    }
}
