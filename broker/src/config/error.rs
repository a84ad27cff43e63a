//! Errors from reading, parsing and validating a configuration.

use std::fmt;
use std::path::PathBuf;

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The text is not valid TOML or does not fit the schema (unknown key, wrong type).
    /// The toml error already shows line, column and the offending key.
    #[error("{origin}: {source}")]
    Parse {
        origin: String,
        source: toml::de::Error,
    },
    /// The values parsed but break a rule; every broken rule is listed.
    #[error("{}", InvalidDisplay { origin: origin.as_deref(), problems })]
    Invalid {
        /// Where the values came from (a file name), when known.
        origin: Option<String>,
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    /// Attaches the source name to a validation error that does not have one yet.
    pub(crate) fn with_origin(self, name: &str) -> Self {
        match self {
            Self::Invalid {
                origin: None,
                problems,
            } => Self::Invalid {
                origin: Some(name.to_owned()),
                problems,
            },
            other => other,
        }
    }
}

/// One broken rule: the dotted key (`websocket.bind`) and what is wrong with its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

struct InvalidDisplay<'a> {
    origin: Option<&'a str>,
    problems: &'a [Problem],
}

impl fmt::Display for InvalidDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(origin) = self.origin {
            write!(f, "{origin}: ")?;
        }
        f.write_str("invalid configuration")?;
        for problem in self.problems {
            write!(f, "\n  {problem}")?;
        }
        Ok(())
    }
}
