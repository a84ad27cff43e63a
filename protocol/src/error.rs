//! Everything the parser can reject. The `Display` text is short enough for an ERROR frame's
//! `message` header.

use crate::Command;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("unknown command")]
    UnknownCommand,
    #[error("{command} frame must not have a body")]
    BodyNotAllowed { command: Command },
    #[error("frame not terminated by NUL after content-length bytes")]
    MissingNul,
    #[error("invalid content-length")]
    InvalidContentLength,
    #[error("frame exceeds {limit} bytes")]
    FrameTooLarge { limit: usize },
    #[error("more than {limit} headers")]
    TooManyHeaders { limit: usize },
    #[error("header line exceeds {limit} bytes")]
    HeaderLineTooLong { limit: usize },
    #[error("body exceeds {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("undefined escape sequence \\{escape}")]
    InvalidEscape { escape: char },
    #[error("header line without ':'")]
    MalformedHeader,
    #[error("header is not valid UTF-8")]
    InvalidUtf8,
    #[error("NUL byte in a header")]
    NulInHeader,
    #[error("carriage return not followed by line feed")]
    BareCarriageReturn,
}
