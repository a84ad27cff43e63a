//! Protocol versions and their negotiation from `accept-version`.

use std::fmt;

/// A STOMP protocol version. Ordered, so the highest common version is a `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    V1_0,
    V1_1,
    V1_2,
}

impl Version {
    /// Every version Herald speaks, lowest first.
    pub const ALL: [Version; 3] = [Version::V1_0, Version::V1_1, Version::V1_2];

    /// The version as written in `accept-version` and `version` headers.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V1_0 => "1.0",
            Version::V1_1 => "1.1",
            Version::V1_2 => "1.2",
        }
    }

    /// Parses one version token such as `1.2`.
    pub fn from_token(token: &str) -> Option<Version> {
        match token {
            "1.0" => Some(Version::V1_0),
            "1.1" => Some(Version::V1_1),
            "1.2" => Some(Version::V1_2),
            _ => None,
        }
    }

    /// The highest version in a CONNECT frame's `accept-version` that is also in `supported`.
    /// An absent header means the client speaks 1.0 only (STOMP 1.2, "Protocol Negotiation").
    /// Unknown tokens (`2.0`) are skipped; `None` means there is no common version.
    pub fn negotiate(accept_version: Option<&str>, supported: &[Version]) -> Option<Version> {
        match accept_version {
            None => supported.contains(&Version::V1_0).then_some(Version::V1_0),
            Some(list) => list
                .split(',')
                .filter_map(|token| Version::from_token(token.trim()))
                .filter(|v| supported.contains(v))
                .max(),
        }
    }

    /// The comma-separated list for the `version` header of an ERROR that refuses a CONNECT.
    pub fn list(supported: &[Version]) -> String {
        let names: Vec<&str> = supported.iter().map(|v| v.as_str()).collect();
        names.join(",")
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_picks_highest_common_version() {
        // Spec "Protocol Negotiation": the highest version both sides accept.
        let v = Version::negotiate(Some("1.0,1.1,2.0"), &Version::ALL);
        assert_eq!(v, Some(Version::V1_1));
        assert_eq!(
            Version::negotiate(Some("1.2,1.0"), &Version::ALL),
            Some(Version::V1_2)
        );
    }

    #[test]
    fn missing_accept_version_means_1_0() {
        assert_eq!(Version::negotiate(None, &Version::ALL), Some(Version::V1_0));
        assert_eq!(Version::negotiate(None, &[Version::V1_2]), None);
    }

    #[test]
    fn no_common_version_is_none() {
        assert_eq!(Version::negotiate(Some("3.0"), &Version::ALL), None);
        assert_eq!(Version::negotiate(Some(""), &Version::ALL), None);
        assert_eq!(Version::list(&Version::ALL), "1.0,1.1,1.2");
    }
}
