//! Authorization (semantics.md section 5): rules from `[access]` granting `send` and
//! `subscribe` on destination patterns to users, roles, authenticated or anonymous sessions.
//!
//! A destination is allowed when every rule whose action and patterns cover it grants it, and
//! a destination no rule covers gets `access.default` (allow, unless configured otherwise).
//! A pattern (a pattern SUBSCRIBE) is allowed only if every destination it can match is: the
//! product of the pattern's DFA with the rules' is searched for a destination that is not
//! (`pattern::overlap`). A pattern that cannot be compared is refused.

use crate::config::{
    AccessAction, AccessConfig, AccessDefault, AccessRule, DestinationsConfig,
    Separator as ConfigSeparator,
};
use crate::destination::Destinations;
use crate::pattern::overlap::{Language, Undecidable};
use crate::pattern::{Pattern, PatternError, Separator, has_wildcards};

/// Who is asking.
#[derive(Debug, Clone, Copy)]
pub struct Principal<'a> {
    /// `None`: anonymous.
    pub user: Option<&'a str>,
    pub roles: &'a [String],
}

/// How the topic router reads a pattern subscription: the destination after the first
/// broadcast prefix it starts with, split at the configured separator (rules are always split
/// at `/`, so both are needed to compare them).
#[derive(Debug, Clone, Copy)]
pub struct Routing<'a> {
    pub prefixes: &'a [String],
    pub separator: Separator,
}

impl<'a> Routing<'a> {
    pub fn new(destinations: &'a Destinations, config: &DestinationsConfig) -> Routing<'a> {
        Routing {
            prefixes: destinations.broadcast_prefixes(),
            separator: match config.separator {
                ConfigSeparator::Slash => Separator::Slash,
                ConfigSeparator::Dot => Separator::Dot,
            },
        }
    }

    /// The destinations a subscription to `pattern` can receive.
    fn language(&self, pattern: &str) -> Result<Language, Undecidable> {
        let (prefix, parsed) = match self
            .prefixes
            .iter()
            .find(|p| pattern.starts_with(p.as_str()))
        {
            Some(prefix) => (
                prefix.as_str(),
                Pattern::parse(&pattern[prefix.len()..], self.separator),
            ),
            // Not a topic (patterns are refused there anyway): read as a rule would be.
            None => ("", parse(pattern)),
        };
        // A pattern that does not parse is refused by routing; nothing to compare.
        let parsed = parsed.map_err(|_| Undecidable::TooLarge)?;
        Language::of(prefix, &parsed)
    }
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
    /// The same patterns as DFAs, for pattern subscriptions.
    languages: Vec<Result<Language, Undecidable>>,
}

impl Access {
    /// Rules whose patterns do not parse are left out (validation reports them).
    pub fn new(config: &AccessConfig) -> Access {
        Access {
            default_allows: config.default == AccessDefault::Allow,
            rules: config
                .rules
                .iter()
                .map(|rule| {
                    let patterns: Vec<Pattern> = rule
                        .destinations
                        .iter()
                        .filter_map(|p| parse(p).ok())
                        .collect();
                    Rule {
                        config: rule.clone(),
                        languages: patterns.iter().map(|p| Language::of("", p)).collect(),
                        patterns,
                    }
                })
                .collect(),
        }
    }

    /// Whether no rule can ever deny (the default configuration): nothing to check.
    pub fn allows_everything(&self) -> bool {
        self.default_allows && self.rules.is_empty()
    }

    /// Whether `principal` may do `action` on `destination` (as the client wrote it); a
    /// pattern is read as `routing` reads it.
    pub fn allows(
        &self,
        action: AccessAction,
        destination: &str,
        principal: Principal<'_>,
        routing: Routing<'_>,
    ) -> bool {
        if has_wildcards(destination) {
            return self
                .allows_pattern(action, destination, principal, routing)
                .is_ok_and(|allowed| allowed);
        }
        let mut covered = false;
        for rule in self.rules_for(action) {
            if rule.patterns.iter().any(|p| p.matches_linear(destination)) {
                covered = true;
                if !grants(&rule.config, principal) {
                    return false;
                }
            }
        }
        covered || self.default_allows
    }

    /// Whether every destination `pattern` can match is allowed: searches for one that is
    /// not. A destination is refused when a rule that does not grant it covers it, or, under
    /// `default = "deny"`, when no granting rule does (one covered only by rules that do not
    /// grant is refused by the first test already). So each non-granting rule is searched on
    /// its own, which keeps the products small, and the granting ones only together, and only
    /// under `deny`.
    fn allows_pattern(
        &self,
        action: AccessAction,
        pattern: &str,
        principal: Principal<'_>,
        routing: Routing<'_>,
    ) -> Result<bool, Undecidable> {
        if self.default_allows && self.rules_for(action).next().is_none() {
            return Ok(true);
        }
        let subject = routing.language(pattern)?;
        let mut granting = Vec::new();
        for rule in self.rules_for(action) {
            let grant = grants(&rule.config, principal);
            for language in &rule.languages {
                let language = language.as_ref().map_err(Clone::clone)?;
                if grant {
                    granting.push(language);
                } else if subject.overlaps(language)? {
                    return Ok(false);
                }
            }
        }
        if self.default_allows {
            return Ok(true);
        }
        let outside = subject.find(&granting, |covered| !covered.contains(&true))?;
        Ok(outside.is_none())
    }

    fn rules_for(&self, action: AccessAction) -> impl Iterator<Item = &Rule> {
        self.rules
            .iter()
            .filter(move |rule| rule.config.actions.contains(&action))
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
pub fn parse(pattern: &str) -> Result<Pattern, PatternError> {
    Pattern::parse(pattern, Separator::Slash)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::overlap::tests::{REACHING_SECRET, destinations};
    use proptest::prelude::*;

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
    const BOB: Principal<'static> = Principal {
        user: Some("bob"),
        roles: &[],
    };

    /// Allow by default, but subscribing to `/topic/secret/**` only for role `admin`.
    fn secret_for_admins() -> Access {
        let mut admins = rule(&[AccessAction::Subscribe], &["/topic/secret/**"]);
        admins.roles = vec!["admin".into()];
        Access::new(&AccessConfig {
            default: AccessDefault::Allow,
            rules: vec![admins],
        })
    }

    fn topics() -> Vec<String> {
        vec!["/topic/".to_owned()]
    }

    fn slash(prefixes: &[String]) -> Routing<'_> {
        Routing {
            prefixes,
            separator: Separator::Slash,
        }
    }

    impl Access {
        fn subscribe(&self, destination: &str, principal: Principal<'_>) -> bool {
            let prefixes = topics();
            self.allows(
                AccessAction::Subscribe,
                destination,
                principal,
                slash(&prefixes),
            )
        }

        fn send(&self, destination: &str, principal: Principal<'_>) -> bool {
            let prefixes = topics();
            self.allows(AccessAction::Send, destination, principal, slash(&prefixes))
        }
    }

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
        assert!(access.send("/topic/a", publisher));
        assert!(!access.send("/topic/a", alice));
        assert!(!access.send("/topic/a", ANON));
        assert!(access.send("/queue/a", ANON));
        assert!(access.subscribe("/topic/secret/x", alice));
        assert!(!access.subscribe("/topic/secret/x", publisher));
        // A pattern that overlaps the secret topics is covered by their rule.
        assert!(!access.subscribe("/topic/**", publisher));
        assert!(access.subscribe("/topic/public/*", publisher));
        assert!(access.subscribe("/topic/**", alice));
    }

    /// Issue 12, item 3: patterns that do not contain the rule's text but reach its topics.
    #[test]
    fn a_pattern_is_refused_when_any_destination_it_matches_is() {
        let access = secret_for_admins();
        for pattern in REACHING_SECRET {
            assert!(!access.subscribe(pattern, BOB), "{pattern}");
        }
        for pattern in ["/topic/public/*", "/topic/{a:p.*}/x", "/topic/secret?/x"] {
            assert!(access.subscribe(pattern, BOB), "{pattern}");
        }
        // Regex anchors cannot be compared: refused where rules apply.
        assert!(!access.subscribe("/topic/{a:^p}/x", BOB));
        assert!(access.send("/topic/{a:^p}/x", BOB), "no rule for send");
    }

    #[test]
    fn under_default_deny_a_pattern_must_lie_within_the_grants() {
        let mut news = rule(
            &[AccessAction::Subscribe],
            &["/topic/news/**", "/topic/{x:[a-m].*}"],
        );
        news.authenticated = true;
        let mut sports = rule(
            &[AccessAction::Subscribe],
            &["/topic/{x:(?s)[n-z].*}", "/topic/"],
        );
        sports.authenticated = true;
        let access = Access::new(&AccessConfig {
            default: AccessDefault::Deny,
            rules: vec![news, sports],
        });
        assert!(access.subscribe("/topic/news/*", BOB));
        assert!(!access.subscribe("/topic/news/*", ANON));
        // `[a-m].*` leaves out a newline after the first letter, and everything not
        // starting with a letter: not every one-segment topic is granted.
        assert!(!access.subscribe("/topic/*", BOB));
        assert!(access.subscribe("/topic/{x:[a-m][a-z]*}", BOB));
        assert!(access.subscribe("/topic/{x:[n-z].*}", BOB));
        assert!(!access.subscribe("/topic/*/*", BOB));
    }

    #[test]
    fn the_routing_separator_decides_what_a_pattern_reaches() {
        let access = secret_for_admins();
        let prefixes = topics();
        let dot = Routing {
            prefixes: &prefixes,
            separator: Separator::Dot,
        };
        let subscribe = |d: &str| access.allows(AccessAction::Subscribe, d, BOB, dot);
        // With `.`, `*` is one token, which may hold `/`: `/topic/secret/x` is one.
        assert!(!subscribe("/topic/*"));
        assert!(subscribe("/topic/public.*"));
        assert!(!subscribe("/topic/s*"));
    }

    fn segment() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "a", "b", "", "*", "**", "?", "a*", "{x}", "{x:[ab]}", "a.b", "a.*", "{r:a|b.}",
        ])
    }

    fn suffix() -> impl Strategy<Value = String> {
        prop::collection::vec(segment(), 1..4).prop_map(|segments| segments.join("/"))
    }

    fn rules() -> impl Strategy<Value = Vec<AccessRule>> {
        let one = (prop::collection::vec(suffix(), 1..3), any::<bool>()).prop_map(|(p, bob)| {
            let patterns: Vec<String> = p.iter().map(|s| format!("/topic/{s}")).collect();
            let patterns: Vec<&str> = patterns.iter().map(String::as_str).collect();
            let mut rule = rule(&[AccessAction::Subscribe], &patterns);
            rule.users = vec![if bob { "bob" } else { "alice" }.to_owned()];
            rule
        });
        prop::collection::vec(one, 1..4)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// An allowed pattern only reaches allowed destinations: brute force over every
        /// destination it matches (as the router matches it) up to a length.
        #[test]
        fn an_allowed_pattern_reaches_only_allowed_destinations(
            rules in rules(),
            deny: bool,
            subscription in suffix(),
            dot_sep: bool,
        ) {
            let access = Access::new(&AccessConfig {
                default: if deny { AccessDefault::Deny } else { AccessDefault::Allow },
                rules,
            });
            let separator = if dot_sep { Separator::Dot } else { Separator::Slash };
            let prefixes = topics();
            let routing = Routing { prefixes: &prefixes, separator };
            let pattern = Pattern::parse(&subscription, separator).unwrap();
            let subscription = format!("/topic/{subscription}");
            prop_assume!(has_wildcards(&subscription));
            if access.allows(AccessAction::Subscribe, &subscription, BOB, routing) {
                for suffix in destinations(4) {
                    if pattern.matches(&suffix) {
                        let destination = format!("/topic/{suffix}");
                        prop_assert!(
                            access.subscribe(&destination, BOB),
                            "{} allowed, but it reaches {:?}", subscription, destination
                        );
                    }
                }
            }
        }
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
        assert!(access.subscribe("/topic/a", ANON));
        assert!(access.subscribe("/topic/**", ANON));
        assert!(!access.send("/topic/a", ANON));
        assert!(!access.subscribe("/queue/a", ANON));
    }
}
