//! A frame decoder for a connection's read buffer: parses, then hands the body out as a
//! zero-copy slice of the bytes read.

use bytes::{Buf, Bytes, BytesMut};

use crate::{
    Frame, ParseError, ParseOptions, Parsed,
    parse::{check_body_size, check_frame_size, parse},
};

/// What [`Decoder::decode`] took off the front of the buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    Frame(Frame),
    /// One or more EOLs between frames; they count as life for heart-beating.
    HeartBeat,
}

/// Decodes frames from a growing `BytesMut`. It remembers how much input the parser needs
/// next, and how far a NUL-terminated body has been searched, so a large frame arriving in
/// many small reads is scanned once, not once per read.
#[derive(Debug, Clone)]
pub struct Decoder {
    options: ParseOptions,
    needed: usize,
    nul_search: Option<NulSearch>,
}

#[derive(Debug, Clone, Copy)]
struct NulSearch {
    body_start: usize,
    searched_to: usize,
}

impl Decoder {
    pub fn new(options: ParseOptions) -> Decoder {
        Decoder {
            options,
            needed: 0,
            nul_search: None,
        }
    }

    pub fn options(&self) -> &ParseOptions {
        &self.options
    }

    /// Changes version or limits, e.g. once CONNECT has been accepted. Applies from the next
    /// frame on; a frame half-read keeps being parsed from scratch with the new options.
    pub fn set_options(&mut self, options: ParseOptions) {
        self.options = options;
        self.needed = 0;
        self.nul_search = None;
    }

    /// Takes the next frame or heart-beat off the front of `buf`; `Ok(None)` means more bytes
    /// are needed. After an error the connection must be closed: the stream is out of sync.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Decoded>, ParseError> {
        if buf.len() < self.needed {
            return Ok(None);
        }
        if let Some(search) = &mut self.nul_search {
            if memchr::memchr(0, &buf[search.searched_to..]).is_none() {
                check_body_size(buf.len() - search.body_start, &self.options.limits)?;
                check_frame_size(buf.len(), &self.options.limits)?;
                search.searched_to = buf.len();
                self.needed = buf.len() + 1;
                return Ok(None);
            }
        }
        match parse(buf, &self.options)? {
            Parsed::Frame(parsed) => {
                self.needed = 0;
                self.nul_search = None;
                let body = if parsed.body.is_empty() {
                    buf.advance(parsed.consumed);
                    Bytes::new()
                } else {
                    buf.split_to(parsed.consumed).freeze().slice(parsed.body)
                };
                Ok(Some(Decoded::Frame(Frame {
                    command: parsed.command,
                    headers: parsed.headers,
                    body,
                })))
            }
            Parsed::HeartBeat { consumed } => {
                // A lone CR left `needed` at 2; the next frame or heart-beat may be 1 byte.
                self.needed = 0;
                buf.advance(consumed);
                Ok(Some(Decoded::HeartBeat))
            }
            Parsed::Incomplete(incomplete) => {
                self.needed = incomplete.needed;
                self.nul_search = incomplete.body_start.map(|body_start| NulSearch {
                    body_start,
                    searched_to: buf.len(),
                });
                Ok(None)
            }
        }
    }
}
