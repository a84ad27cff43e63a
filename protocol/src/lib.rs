//! STOMP 1.0, 1.1 and 1.2 frames for Herald, with no I/O.
//!
//! - [`Frame`], [`Command`] and [`Headers`] model a frame; `content-length` is framing, not
//!   content: the parser consumes it and the encoder writes it, so it never appears in
//!   [`Frame::headers`].
//! - [`parse`] is a streaming parser over a growing byte buffer; [`Decoder`] wraps it for a
//!   `BytesMut` read buffer and hands out bodies as zero-copy slices.
//! - [`encode`] writes a frame; [`MessageTemplate`] encodes a MESSAGE once per publish and
//!   splices in only the per-subscription headers.
//! - [`heartbeat`] holds the heart-beat negotiation arithmetic.

mod decoder;
mod encode;
mod error;
mod escape;
mod frame;
mod headers;
pub mod heartbeat;
mod limits;
mod message;
mod parse;
mod version;

pub use decoder::{Decoded, Decoder};
pub use encode::{encode, encode_to_bytes};
pub use error::ParseError;
pub use frame::{Command, Frame};
pub use headers::Headers;
pub use limits::Limits;
pub use message::MessageTemplate;
pub use parse::{Incomplete, ParseOptions, Parsed, ParsedFrame, parse};
pub use version::Version;
