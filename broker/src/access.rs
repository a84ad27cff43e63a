//! Authorization (SEMANTICS.md section 5): rules from `[access]` granting `send` and
//! `subscribe` on destination patterns to users, roles, authenticated or anonymous sessions.
//!
//! Every rule whose action and patterns cover a frame must grant it; a frame no rule covers
//! gets `access.default` (allow, unless configured otherwise). For a pattern subscription, a
//! rule covers it when their patterns may overlap.

use crate::config::{AccessAction, AccessConfig, AccessDefault, AccessRule};
use crate::routing::{Pattern, Separator, has_wildcards};

/// Who is asking.
#[derive(Debug, Clone, Copy)]
pub struct Principal<'a> {
    /// `None`: anonymous.
    pub user: Option<&'a str>,
    pub roles: &'a [String],
}

/// The compiled `[access]` rules.
#[derive(Debug)]
pub struct Access {
    default_allows: bool,
    rules: Vec<Rule>,
}

#[derive(Debug)]
struct Rule {
    config: AccessRule,
    patterns: Vec<Pattern>,
}

impl Access {
    /// Rules whose patterns do not parse are left out (validation reports them).
    pub fn new(config: &AccessConfig) -> Access {
        Access {
            default_allows: config.default == AccessDefault::Allow,
            rules: config
                .rules
                .iter()
                .map(|rule| Rule {
                    config: rule.clone(),
                    patterns: rule
                        .destinations
                        .iter()
                        .filter_map(|p| parse(p).ok())
                        .collect(),
                })
                .collect(),
        }
    }

    /// Whether no rule can ever deny (the default configuration): nothing to check.
    pub fn allows_everything(&self) -> bool {
        self.default_allows && self.rules.is_empty()
    }

    /// Whether `principal` may do `action` on `destination` (as the client wrote it).
    pub fn allows(
        &self,
        action: AccessAction,
        destination: &str,
        principal: Principal<'_>,
    ) -> bool {
        let as_pattern = has_wildcards(destination)
            .then(|| parse(destination).ok())
            .flatten();
        let mut covered = false;
        for rule in &self.rules {
            if !rule.config.actions.contains(&action) {
                continue;
            }
            let covers = rule.patterns.iter().any(|p| {
                p.matches_linear(destination)
                    || as_pattern
                        .as_ref()
                        .is_some_and(|sub| sub.matches_linear(p.as_str()))
            });
            if covers {
                covered = true;
                if !grants(&rule.config, principal) {
                    return false;
                }
            }
        }
        covered || self.default_allows
    }
}

fn grants(rule: &AccessRule, principal: Principal<'_>) -> bool {
    match principal.user {
        None => rule.anonymous,
        Some(user) => {
            rule.authenticated
                || rule.users.iter().any(|u| u == user)
                || rule.roles.iter().any(|r| principal.roles.contains(r))
        }
    }
}

/// Rule patterns are split at `/`, whatever `destinations.separator` says.
pub fn parse(pattern: &str) -> Result<Pattern, crate::routing::PatternError> {
    Pattern::parse(pattern, Separator::Slash)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(actions: &[AccessAction], destinations: &[&str]) -> AccessRule {
        AccessRule {
            actions: actions.to_vec(),
            destinations: destinations.iter().map(|d| (*d).to_owned()).collect(),
            users: Vec::new(),
            roles: Vec::new(),
            authenticated: false,
            anonymous: false,
        }
    }

    const ANON: Principal<'static> = Principal {
        user: None,
        roles: &[],
    };

    #[test]
    fn covering_rules_must_all_grant() {
        let mut publishers = rule(&[AccessAction::Send], &["/topic/**"]);
        publishers.roles = vec!["publisher".into()];
        let mut readers = rule(&[AccessAction::Subscribe], &["/topic/secret/**"]);
        readers.users = vec!["alice".into()];
        let access = Access::new(&AccessConfig {
            default: AccessDefault::Allow,
            rules: vec![publishers, readers],
        });
        let roles = ["publisher".to_owned()];
        let publisher = Principal {
            user: Some("pat"),
            roles: &roles,
        };
        let alice = Principal {
            user: Some("alice"),
            roles: &[],
        };
        assert!(access.allows(AccessAction::Send, "/topic/a", publisher));
        assert!(!access.allows(AccessAction::Send, "/topic/a", alice));
        assert!(!access.allows(AccessAction::Send, "/topic/a", ANON));
        assert!(access.allows(AccessAction::Send, "/queue/a", ANON));
        assert!(access.allows(AccessAction::Subscribe, "/topic/secret/x", alice));
        assert!(!access.allows(AccessAction::Subscribe, "/topic/secret/x", publisher));
        // A pattern that overlaps the secret topics is covered by their rule.
        assert!(!access.allows(AccessAction::Subscribe, "/topic/**", publisher));
        assert!(access.allows(AccessAction::Subscribe, "/topic/public/*", publisher));
    }

    #[test]
    fn default_deny_needs_a_grant() {
        let mut anyone = rule(&[AccessAction::Subscribe], &["/topic/**"]);
        anyone.anonymous = true;
        anyone.authenticated = true;
        let access = Access::new(&AccessConfig {
            default: AccessDefault::Deny,
            rules: vec![anyone],
        });
        assert!(access.allows(AccessAction::Subscribe, "/topic/a", ANON));
        assert!(!access.allows(AccessAction::Send, "/topic/a", ANON));
        assert!(!access.allows(AccessAction::Subscribe, "/queue/a", ANON));
    }
}
