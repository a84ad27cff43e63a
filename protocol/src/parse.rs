//! The streaming frame parser.
//!
//! [`parse`] looks at the bytes received so far and reports one of: a complete frame and the
//! bytes it used, a run of heart-beat EOLs, "need more", or a [`ParseError`]. It never reads
//! past the limits it is given, so a peer cannot make it scan or allocate more than they allow.
//! Bodies are reported as a range, so a caller holding `Bytes` can slice instead of copying
//! (see [`crate::Decoder`]).

use std::ops::Range;

use nom::{
    IResult, Parser, branch::alt, bytes::complete::tag, bytes::streaming::take_until,
    character::complete::digit1, character::streaming::char, combinator::all_consuming,
    multi::many1_count, sequence::terminated,
};

use crate::{
    Command, Headers, Limits, ParseError, Version,
    escape::{Escaping, unescape_into},
    headers::HeadersBuilder,
};

/// Initial capacity for a frame's decoded header text: enough for typical frames without
/// reserving a large buffer up front for one with a big body.
const HEADER_TEXT_GUESS: usize = 256;

/// What the parser needs to know about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseOptions {
    /// Decides the header escaping (spec "Value Encoding"). Before CONNECT, pass 1.2: only
    /// CONNECT and STOMP are valid then, and they are never escaped.
    pub version: Version,
    pub limits: Limits,
}

impl Default for ParseOptions {
    fn default() -> ParseOptions {
        ParseOptions {
            version: Version::V1_2,
            limits: Limits::DEFAULT,
        }
    }
}

/// The outcome of one successful call to [`parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A complete frame.
    Frame(ParsedFrame),
    /// One or more EOLs between frames: heart-beats, which count as life.
    HeartBeat { consumed: usize },
    /// The input ends inside a frame.
    Incomplete(Incomplete),
}

/// A complete frame whose body is still a range of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedFrame {
    pub command: Command,
    /// The headers, unescaped, without `content-length`.
    pub headers: Headers,
    /// Where the body lies in the input.
    pub body: Range<usize>,
    /// Bytes of input the frame used, its NUL included.
    pub consumed: usize,
}

/// Why the parser stopped: how much input it needs before another call can succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Incomplete {
    /// Calling again with fewer bytes than this is pointless.
    pub needed: usize,
    /// Set when the headers are complete and the body (without `content-length`) runs to the
    /// first NUL: the body starts here, and no NUL occurs in the input seen so far after it.
    /// Lets a caller resume its NUL search instead of rescanning a large body.
    pub body_start: Option<usize>,
}

impl Incomplete {
    fn need(needed: usize) -> Parsed {
        Parsed::Incomplete(Incomplete {
            needed,
            body_start: None,
        })
    }
}

/// Parses the frame at the start of `input`. See the module documentation.
pub fn parse(input: &[u8], options: &ParseOptions) -> Result<Parsed, ParseError> {
    let limits = &options.limits;
    if input.is_empty() {
        return Ok(Incomplete::need(1));
    }
    if matches!(input[0], b'\n' | b'\r') {
        return heart_beats(input);
    }

    let (mut rest, command_line) = match line(input, limits)? {
        Line::Complete(rest, line) => (rest, line),
        Line::Incomplete => {
            check_frame_size(input.len(), limits)?;
            return Ok(Incomplete::need(input.len() + 1));
        }
    };
    let command = Command::from_bytes(command_line).ok_or(ParseError::UnknownCommand)?;
    let escaping = Escaping::for_frame(command.escapes_headers(options.version), options.version);
    let strict_cr = options.version == Version::V1_2;

    // Decoded text is never longer than the raw header lines, so one allocation usually fits.
    let mut headers = HeadersBuilder::with_capacity(8, rest.len().min(HEADER_TEXT_GUESS));
    let mut content_length: Option<usize> = None;
    let mut header_lines = 0;
    loop {
        let line = match line(rest, limits)? {
            Line::Complete(next, line) => {
                rest = next;
                line
            }
            Line::Incomplete => {
                check_frame_size(input.len(), limits)?;
                return Ok(Incomplete::need(input.len() + 1));
            }
        };
        if line.is_empty() {
            break;
        }
        header_lines += 1;
        if header_lines > limits.max_headers {
            return Err(ParseError::TooManyHeaders {
                limit: limits.max_headers,
            });
        }
        // One scan for all three: a NUL is never allowed in a header (a peer reading it as
        // the end of the frame would take what follows for another frame), a raw CR is
        // invalid in a 1.2 header line, and only lines with a backslash need decoding.
        let (escaping, has_cr, has_nul) = match memchr::memchr3(b'\\', b'\r', 0, line) {
            None => (Escaping::None, false, false),
            Some(_) => (
                escaping,
                memchr::memchr(b'\r', line).is_some(),
                memchr::memchr(0, line).is_some(),
            ),
        };
        if strict_cr && has_cr {
            return Err(ParseError::BareCarriageReturn);
        }
        let (raw_name, raw_value) = split_header(line)?;
        if has_nul {
            return Err(ParseError::NulInHeader);
        }
        let text = headers.text_mut();
        let start = text.len();
        unescape_into(text, raw_name, escaping)?;
        let colon = text.len();
        if &text[start..] == b"content-length" {
            // Framing, not content: consumed here, rewritten by the encoder. First one wins.
            text.truncate(start);
            if content_length.is_none() {
                content_length = Some(parse_content_length(raw_value)?);
            }
            continue;
        }
        unescape_into(text, raw_value, escaping)?;
        headers.commit_entry(start, colon);
    }

    let headers = headers.finish().ok_or(ParseError::InvalidUtf8)?;
    let body_start = input.len() - rest.len();
    let (body, consumed) = match content_length {
        Some(length) => {
            if length > limits.max_body_bytes {
                return Err(ParseError::BodyTooLarge {
                    limit: limits.max_body_bytes,
                });
            }
            if length > 0 && !command.may_have_body() {
                return Err(ParseError::BodyNotAllowed { command });
            }
            let body_end = body_start.saturating_add(length);
            let consumed = body_end.saturating_add(1);
            check_frame_size(consumed, limits)?;
            match input.get(body_end) {
                None => return Ok(Incomplete::need(consumed)),
                Some(0) => (body_start..body_end, consumed),
                Some(_) => return Err(ParseError::MissingNul),
            }
        }
        None => match memchr::memchr(0, rest) {
            Some(0) => {
                check_frame_size(body_start + 1, limits)?;
                (body_start..body_start, body_start + 1)
            }
            Some(_) if !command.may_have_body() => {
                return Err(ParseError::BodyNotAllowed { command });
            }
            Some(length) => {
                check_body_size(length, limits)?;
                check_frame_size(body_start + length + 1, limits)?;
                (body_start..body_start + length, body_start + length + 1)
            }
            None if !command.may_have_body() => {
                if !rest.is_empty() {
                    return Err(ParseError::BodyNotAllowed { command });
                }
                // Only the NUL may follow; no body to resume a search in.
                check_frame_size(input.len() + 1, limits)?;
                return Ok(Incomplete::need(input.len() + 1));
            }
            None => {
                check_body_size(rest.len(), limits)?;
                check_frame_size(input.len(), limits)?;
                return Ok(Parsed::Incomplete(Incomplete {
                    needed: input.len() + 1,
                    body_start: Some(body_start),
                }));
            }
        },
    };
    Ok(Parsed::Frame(ParsedFrame {
        command,
        headers,
        body,
        consumed,
    }))
}

/// Fails when a body of `length` bytes, or a body that has already reached `length` bytes
/// without its NUL, breaks the limit.
pub(crate) fn check_body_size(length: usize, limits: &Limits) -> Result<(), ParseError> {
    if length > limits.max_body_bytes {
        return Err(ParseError::BodyTooLarge {
            limit: limits.max_body_bytes,
        });
    }
    Ok(())
}

/// Fails when a frame of `length` bytes (or an unfinished one already that long) breaks the
/// limit.
pub(crate) fn check_frame_size(length: usize, limits: &Limits) -> Result<(), ParseError> {
    if length > limits.max_frame_bytes {
        return Err(ParseError::FrameTooLarge {
            limit: limits.max_frame_bytes,
        });
    }
    Ok(())
}

/// Heart-beats: a run of LF or CRLF before a frame (spec BNF `NUL *(EOL)` and "Heart-beating").
/// `input` starts with CR or LF.
fn heart_beats(input: &[u8]) -> Result<Parsed, ParseError> {
    let eol_run: IResult<&[u8], usize> = many1_count(alt((tag("\n"), tag("\r\n")))).parse(input);
    match eol_run {
        // A CR at the very end may be the start of the next CRLF: leave it for later.
        Ok((rest, _)) => Ok(Parsed::HeartBeat {
            consumed: input.len() - rest.len(),
        }),
        Err(_) if input == b"\r" => Ok(Incomplete::need(2)),
        Err(_) => Err(ParseError::BareCarriageReturn),
    }
}

enum Line<'a> {
    /// The rest of the input after the EOL, and the line without its EOL.
    Complete(&'a [u8], &'a [u8]),
    Incomplete,
}

/// One line ending in LF or CRLF, at most `max_header_line_bytes` long. Only that many bytes
/// are looked at, so a peer that never sends LF cannot make each call rescan its whole input.
fn line<'a>(input: &'a [u8], limits: &Limits) -> Result<Line<'a>, ParseError> {
    // Room for the longest allowed line, its CR and its LF.
    let window = limits.max_header_line_bytes.saturating_add(2);
    let bounded = &input[..input.len().min(window)];
    let parsed: IResult<&[u8], &[u8]> = terminated(take_until("\n"), char('\n')).parse(bounded);
    match parsed {
        Ok((_, raw)) => {
            let line = raw.strip_suffix(b"\r").unwrap_or(raw);
            if line.len() > limits.max_header_line_bytes {
                return Err(ParseError::HeaderLineTooLong {
                    limit: limits.max_header_line_bytes,
                });
            }
            Ok(Line::Complete(&input[raw.len() + 1..], line))
        }
        Err(_) if bounded.len() == window => Err(ParseError::HeaderLineTooLong {
            limit: limits.max_header_line_bytes,
        }),
        Err(_) => Ok(Line::Incomplete),
    }
}

/// `name:value`, split at the first colon (spec header BNF; `a:b:c` has the value `b:c`).
fn split_header(line: &[u8]) -> Result<(&[u8], &[u8]), ParseError> {
    match memchr::memchr(b':', line) {
        Some(0) | None => Err(ParseError::MalformedHeader),
        Some(at) => Ok((&line[..at], &line[at + 1..])),
    }
}

/// A non-negative decimal octet count, without sign, spaces or anything else.
fn parse_content_length(raw: &[u8]) -> Result<usize, ParseError> {
    let digits: IResult<&[u8], &[u8]> = all_consuming(digit1).parse(raw);
    let (_, digits) = digits.map_err(|_| ParseError::InvalidContentLength)?;
    std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse::<usize>().ok())
        .ok_or(ParseError::InvalidContentLength)
}
