//! A minimal RFC 6455 WebSocket client, just what the load tool needs: the opening handshake,
//! server frames unframed straight into the connection's STOMP buffer, and masked client
//! frames. No extensions, no UTF-8 validation of text messages (the STOMP decoder checks what
//! it needs), no allocation per message.

use std::fmt;

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// The sub-protocol offered, and required in the server's answer.
pub const SUBPROTOCOL: &str = "v12.stomp";
/// Bound on the server's handshake response, status line and headers.
const MAX_RESPONSE_HEAD: usize = 8 * 1024;
/// Bound on one data message, all its fragments together.
pub const MAX_MESSAGE: u64 = 16 * 1024 * 1024;
/// Bound on a control frame's payload (RFC 6455 5.5).
const MAX_CONTROL: u64 = 125;
/// Smallest reservation when the data buffer is full: lets it reclaim its own allocation once
/// earlier frames are consumed, instead of allocating per message.
const MIN_RESERVE: usize = 1024;
/// Longest frame header: 2 bytes, a 64-bit length and a mask key.
pub const MAX_HEADER: usize = 14;

pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// Close status 1000, "normal closure", as a close frame's payload.
pub const CLOSE_NORMAL: [u8; 2] = 1000u16.to_be_bytes();

/// A protocol violation by the server; the connection cannot go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsError {
    /// Server frames must not be masked (RFC 6455 5.1).
    MaskedFrame,
    /// A reserved bit set without a negotiated extension.
    ReservedBits(u8),
    UnknownOpcode(u8),
    /// A control frame with FIN clear or more than 125 bytes of payload.
    BadControlFrame,
    /// A continuation frame outside a fragmented message.
    UnexpectedContinuation,
    /// A new text or binary frame inside a fragmented message.
    UnfinishedMessage,
    /// The most significant bit of a 64-bit length set.
    BadLength,
    /// A message over [`MAX_MESSAGE`].
    MessageTooLarge,
}

impl fmt::Display for WsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WsError::MaskedFrame => write!(f, "masked frame from the server"),
            WsError::ReservedBits(bits) => write!(f, "reserved bits {bits:#x} set"),
            WsError::UnknownOpcode(op) => write!(f, "unknown opcode {op:#x}"),
            WsError::BadControlFrame => write!(f, "fragmented or oversized control frame"),
            WsError::UnexpectedContinuation => write!(f, "continuation frame without a message"),
            WsError::UnfinishedMessage => write!(f, "new message before the last one finished"),
            WsError::BadLength => write!(f, "payload length with its top bit set"),
            WsError::MessageTooLarge => write!(f, "message over {MAX_MESSAGE} bytes"),
        }
    }
}

/// A frame header (RFC 6455 5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub fin: bool,
    /// RSV1..3 as the low three bits.
    pub rsv: u8,
    pub opcode: u8,
    pub mask: Option<[u8; 4]>,
    pub len: u64,
    /// Bytes the header takes, mask key included.
    pub header_len: usize,
}

/// The frame header at the start of `input`; `None` until all of it is there.
pub fn parse_header(input: &[u8]) -> Result<Option<Header>, WsError> {
    let [b0, b1, ..] = *input else {
        return Ok(None);
    };
    let (len, mut at) = match b1 & 0x7f {
        126 => match input.get(2..4) {
            Some(&[hi, lo]) => (u64::from(u16::from_be_bytes([hi, lo])), 4),
            _ => return Ok(None),
        },
        127 => match input.get(2..10) {
            Some(bytes) => {
                let mut be = [0u8; 8];
                be.copy_from_slice(bytes);
                let len = u64::from_be_bytes(be);
                if len >> 63 != 0 {
                    return Err(WsError::BadLength);
                }
                (len, 10)
            }
            None => return Ok(None),
        },
        len => (u64::from(len), 2),
    };
    let mask = if b1 & 0x80 != 0 {
        match input.get(at..at + 4) {
            Some(&[k0, k1, k2, k3]) => {
                at += 4;
                Some([k0, k1, k2, k3])
            }
            _ => return Ok(None),
        }
    } else {
        None
    };
    Ok(Some(Header {
        fin: b0 & 0x80 != 0,
        rsv: (b0 >> 4) & 0x7,
        opcode: b0 & 0x0f,
        mask,
        len,
        header_len: at,
    }))
}

/// Appends a frame header with the shortest length encoding.
pub fn write_header(out: &mut BytesMut, fin: bool, opcode: u8, len: u64, mask: Option<[u8; 4]>) {
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    out.put_u8(if fin { 0x80 } else { 0 } | (opcode & 0x0f));
    if len < 126 {
        out.put_u8(mask_bit | len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        out.put_u8(mask_bit | 126);
        out.put_u16(len);
    } else {
        out.put_u8(mask_bit | 127);
        out.put_u64(len);
    }
    if let Some(key) = mask {
        out.put_slice(&key);
    }
}

/// XORs `data` with `key` (RFC 6455 5.3), `data` starting at the first payload byte; 8 bytes
/// at a time.
pub fn apply_mask(data: &mut [u8], key: [u8; 4]) {
    let [k0, k1, k2, k3] = key;
    let wide = u64::from_ne_bytes([k0, k1, k2, k3, k0, k1, k2, k3]);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(word) ^ wide).to_ne_bytes());
    }
    // The remainder starts at a multiple of 8, so the key starts over with its first byte.
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= key[i & 3];
    }
}

/// Appends one complete client frame (FIN set) carrying `payload`, masked with `key`.
pub fn encode_client_frame(out: &mut BytesMut, opcode: u8, payload: &[u8], key: [u8; 4]) {
    out.reserve(MAX_HEADER + payload.len());
    write_header(out, true, opcode, payload.len() as u64, Some(key));
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], key);
}

/// Mask keys: xorshift64, seeded per connection. RFC 6455 wants keys an intermediary cannot
/// predict; for a load tool on loopback cheap and varied is enough.
#[derive(Debug, Clone)]
pub struct MaskRng(u64);

impl MaskRng {
    /// Any seed works; nearby seeds (time, connection index) give unrelated sequences.
    pub fn new(seed: u64) -> MaskRng {
        // splitmix64 finaliser, so that seeds differing in a few bits start far apart.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        MaskRng(if z == 0 { 1 } else { z })
    }

    pub fn next_key(&mut self) -> [u8; 4] {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        ((x >> 32) as u32).to_ne_bytes()
    }
}

/// What [`Unframer::unframe`] stopped at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `raw` holds no complete frame header (or control frame) any more: read more.
    NeedMore,
    /// A ping with its payload, to be answered with a pong carrying the same.
    Ping(Vec<u8>),
    Pong,
    /// The server's close frame: the end of the stream.
    Close,
}

/// Server frames to data: takes frames off a raw read buffer and appends the payloads of text,
/// binary and continuation frames to the data buffer as they arrive (a frame need not be
/// complete), so a connection holds no more than one read buffer of framed bytes.
#[derive(Debug, Default, Clone)]
pub struct Unframer {
    /// Payload bytes of the current data frame not yet received.
    remaining: u64,
    /// A data frame without FIN has been seen: continuations are expected.
    in_message: bool,
    /// Payload length of the message so far, fragments included.
    message_len: u64,
}

impl Unframer {
    /// Consumes what it can of `raw`, appending data payloads to `data`; returns at the first
    /// control frame or once `raw` is used up (or holds only part of a header or control
    /// frame, which stays in `raw`).
    pub fn unframe(&mut self, raw: &mut BytesMut, data: &mut BytesMut) -> Result<Event, WsError> {
        // Room for every payload byte `raw` may hold, reserved once.
        if data.capacity() - data.len() < raw.len() {
            data.reserve(raw.len().max(MIN_RESERVE));
        }
        let (event, used) = self.unframe_from(raw, data)?;
        raw.advance(used);
        Ok(event)
    }

    /// [`Unframer::unframe`] on a slice: the event and the bytes of `raw` used.
    fn unframe_from(&mut self, raw: &[u8], data: &mut BytesMut) -> Result<(Event, usize), WsError> {
        let mut at = 0;
        loop {
            let input = &raw[at..];
            if self.remaining > 0 {
                if input.is_empty() {
                    return Ok((Event::NeedMore, at));
                }
                let n = input
                    .len()
                    .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                data.extend_from_slice(&input[..n]);
                at += n;
                self.remaining -= n as u64;
                continue;
            }
            let Some(header) = parse_header(input)? else {
                return Ok((Event::NeedMore, at));
            };
            if header.mask.is_some() {
                return Err(WsError::MaskedFrame);
            }
            if header.rsv != 0 {
                return Err(WsError::ReservedBits(header.rsv));
            }
            match header.opcode {
                OP_CONTINUATION if !self.in_message => return Err(WsError::UnexpectedContinuation),
                OP_TEXT | OP_BINARY if self.in_message => return Err(WsError::UnfinishedMessage),
                OP_CONTINUATION | OP_TEXT | OP_BINARY => {
                    self.message_len += header.len;
                    if self.message_len > MAX_MESSAGE {
                        return Err(WsError::MessageTooLarge);
                    }
                    self.in_message = !header.fin;
                    if header.fin {
                        self.message_len = 0;
                    }
                    at += header.header_len;
                    self.remaining = header.len;
                }
                OP_CLOSE | OP_PING | OP_PONG => {
                    if !header.fin || header.len > MAX_CONTROL {
                        return Err(WsError::BadControlFrame);
                    }
                    let end = header.header_len + header.len as usize;
                    if input.len() < end {
                        return Ok((Event::NeedMore, at));
                    }
                    let event = match header.opcode {
                        OP_PING => Event::Ping(input[header.header_len..end].to_vec()),
                        OP_PONG => Event::Pong,
                        _ => Event::Close,
                    };
                    return Ok((event, at + end));
                }
                op => return Err(WsError::UnknownOpcode(op)),
            }
        }
    }
}

/// The opening handshake (RFC 6455 4.1) on a connected stream, offering [`SUBPROTOCOL`].
/// `host` is the Host header's value, `path` the request target. Whatever the server sent
/// after its response's header block is left in `raw`: the start of the frame stream.
pub async fn handshake<S>(
    stream: &mut S,
    host: &str,
    path: &str,
    raw: &mut BytesMut,
) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let key = generate_key();
    let request = format!(
        "GET {path} HTTP/1.1\r\n\
         Host: {host}\r\n\
         Upgrade: websocket\r\n\
         Connection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\n\
         Sec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: {SUBPROTOCOL}\r\n\
         \r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("websocket handshake: write: {e}"))?;
    let head_len = loop {
        if let Some(at) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if raw.len() >= MAX_RESPONSE_HEAD {
            return Err(format!(
                "websocket handshake: response head over {MAX_RESPONSE_HEAD} bytes"
            ));
        }
        raw.reserve(1024);
        let n = stream
            .read_buf(raw)
            .await
            .map_err(|e| format!("websocket handshake: read: {e}"))?;
        if n == 0 {
            return Err("websocket handshake: closed before the response".to_owned());
        }
    };
    check_response(&raw[..head_len], &derive_accept_key(key.as_bytes()))
        .map_err(|e| format!("websocket handshake: {e}"))?;
    raw.advance(head_len);
    Ok(())
}

/// Checks the server's response head (status line and headers, through the blank line): 101,
/// `Upgrade: websocket`, `Connection: Upgrade`, the expected `Sec-WebSocket-Accept` and our
/// sub-protocol.
fn check_response(head: &[u8], accept: &str) -> Result<(), String> {
    let head = std::str::from_utf8(head).map_err(|_| "response head is not UTF-8".to_owned())?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    let status = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(format!("not an HTTP response: {status_line:?}"));
    }
    if status != "101" {
        return Err(format!(
            "HTTP status {}",
            &status_line[version.len()..].trim()
        ));
    }
    let (mut upgrade, mut connection, mut accepted, mut protocol) = (false, false, false, None);
    for line in lines.take_while(|line| !line.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("bad header line {line:?}"));
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("upgrade") {
            upgrade = value.eq_ignore_ascii_case("websocket");
        } else if name.eq_ignore_ascii_case("connection") {
            connection = value
                .split(',')
                .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
        } else if name.eq_ignore_ascii_case("sec-websocket-accept") {
            accepted = value == accept;
        } else if name.eq_ignore_ascii_case("sec-websocket-protocol") {
            protocol = Some(value);
        }
    }
    if !upgrade {
        return Err("no \"Upgrade: websocket\" in the response".to_owned());
    }
    if !connection {
        return Err("no \"Connection: Upgrade\" in the response".to_owned());
    }
    if !accepted {
        return Err("missing or wrong Sec-WebSocket-Accept".to_owned());
    }
    match protocol {
        Some(SUBPROTOCOL) => Ok(()),
        Some(other) => Err(format!("server chose sub-protocol {other:?}")),
        None => Err(format!("server did not accept sub-protocol {SUBPROTOCOL}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_of(len: u64, mask: Option<[u8; 4]>) -> (BytesMut, Header) {
        let mut out = BytesMut::new();
        write_header(&mut out, true, OP_BINARY, len, mask);
        let header = parse_header(&out).unwrap().expect("complete header");
        (out, header)
    }

    #[test]
    fn frame_headers_round_trip_at_the_length_boundaries() {
        for (len, size) in [(0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)] {
            for mask in [None, Some([1, 2, 3, 4])] {
                let (bytes, header) = header_of(len, mask);
                let size = size + if mask.is_some() { 4 } else { 0 };
                assert_eq!(bytes.len(), size, "length {len}");
                assert_eq!(
                    header,
                    Header {
                        fin: true,
                        rsv: 0,
                        opcode: OP_BINARY,
                        mask,
                        len,
                        header_len: size
                    }
                );
                // Every strict prefix is incomplete, not an error.
                for cut in 0..size {
                    assert_eq!(parse_header(&bytes[..cut]), Ok(None), "{len} cut at {cut}");
                }
            }
        }
        // The encodings on the wire, spelled out.
        assert_eq!(&header_of(125, None).0[..], &[0x82, 125]);
        assert_eq!(&header_of(126, None).0[..], &[0x82, 126, 0, 126]);
        assert_eq!(&header_of(65535, None).0[..], &[0x82, 126, 0xff, 0xff]);
        assert_eq!(
            &header_of(65536, None).0[..],
            &[0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]
        );
        assert_eq!(
            parse_header(&[0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0]),
            Err(WsError::BadLength)
        );
    }

    #[test]
    fn masking_round_trips_and_matches_the_bytewise_definition() {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        for len in [0, 1, 3, 4, 7, 8, 9, 15, 16, 17, 100, 1000] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let mut masked = payload.clone();
            apply_mask(&mut masked, key);
            let bytewise: Vec<u8> = payload
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ key[i % 4])
                .collect();
            assert_eq!(masked, bytewise, "length {len}");
            apply_mask(&mut masked, key);
            assert_eq!(masked, payload, "length {len}");
        }
        // RFC 6455 5.7: a masked "Hello".
        let mut out = BytesMut::new();
        encode_client_frame(&mut out, OP_TEXT, b"Hello", [0x37, 0xfa, 0x21, 0x3d]);
        assert_eq!(
            &out[..],
            &[
                0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58
            ]
        );
    }

    #[test]
    fn client_frames_decode_to_their_payload() {
        let mut rng = MaskRng::new(42);
        let keys: Vec<[u8; 4]> = (0..4).map(|_| rng.next_key()).collect();
        assert!(keys.windows(2).all(|w| w[0] != w[1]));
        for len in [0usize, 125, 126, 65535, 65536] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let key = rng.next_key();
            let mut out = BytesMut::new();
            encode_client_frame(&mut out, OP_BINARY, &payload, key);
            let header = parse_header(&out).unwrap().unwrap();
            assert_eq!(
                (header.len, header.mask, header.fin),
                (len as u64, Some(key), true)
            );
            let mut body = out[header.header_len..].to_vec();
            apply_mask(&mut body, key);
            assert_eq!(body, payload);
        }
    }

    fn server_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        write_header(&mut out, fin, opcode, payload.len() as u64, None);
        out.extend_from_slice(payload);
        out.to_vec()
    }

    /// Feeds `stream` to an unframer in pieces of `step` bytes; returns the data and events.
    fn unframe_in_steps(stream: &[u8], step: usize) -> Result<(Vec<u8>, Vec<Event>), WsError> {
        let mut unframer = Unframer::default();
        let (mut raw, mut data, mut events) = (BytesMut::new(), BytesMut::new(), Vec::new());
        for piece in stream.chunks(step) {
            raw.extend_from_slice(piece);
            loop {
                match unframer.unframe(&mut raw, &mut data)? {
                    Event::NeedMore => break,
                    event => events.push(event),
                }
            }
        }
        assert!(raw.is_empty());
        Ok((data.to_vec(), events))
    }

    #[test]
    fn unframes_fragments_and_control_frames_split_anywhere() {
        let big: Vec<u8> = (0..70_000).map(|i| (i % 253) as u8).collect();
        let mut stream = Vec::new();
        stream.extend(server_frame(false, OP_TEXT, b"MESS"));
        stream.extend(server_frame(true, OP_PING, b"are you there"));
        stream.extend(server_frame(false, OP_CONTINUATION, b"AGE\n"));
        stream.extend(server_frame(true, OP_CONTINUATION, b"\n\0"));
        stream.extend(server_frame(true, OP_BINARY, &big));
        stream.extend(server_frame(true, OP_TEXT, b""));
        stream.extend(server_frame(true, OP_PONG, b""));
        stream.extend(server_frame(true, OP_CLOSE, &CLOSE_NORMAL));
        let mut expected = b"MESSAGE\n\n\0".to_vec();
        expected.extend(&big);
        for step in [1, 2, 3, 5, 13, 4096, stream.len()] {
            let (data, events) = unframe_in_steps(&stream, step).unwrap();
            assert!(data == expected, "step {step}");
            assert_eq!(
                events,
                [
                    Event::Ping(b"are you there".to_vec()),
                    Event::Pong,
                    Event::Close
                ],
                "step {step}"
            );
        }
    }

    #[test]
    fn protocol_violations_are_errors() {
        let mut masked = BytesMut::new();
        encode_client_frame(&mut masked, OP_TEXT, b"hi", [9, 8, 7, 6]);
        let cases: [(Vec<u8>, WsError); 7] = [
            (masked.to_vec(), WsError::MaskedFrame),
            (vec![0xc1, 0], WsError::ReservedBits(4)),
            (vec![0x83, 0], WsError::UnknownOpcode(3)),
            (vec![0x09, 0], WsError::BadControlFrame),
            (vec![0x89, 126, 0, 126], WsError::BadControlFrame),
            (vec![0x80, 0], WsError::UnexpectedContinuation),
            (
                [vec![0x01, 0], vec![0x81, 0]].concat(),
                WsError::UnfinishedMessage,
            ),
        ];
        for (bytes, error) in cases {
            assert_eq!(unframe_in_steps(&bytes, 1).map(|_| ()), Err(error));
        }
        let mut huge = BytesMut::new();
        write_header(&mut huge, false, OP_BINARY, MAX_MESSAGE, None);
        write_header(&mut huge, true, OP_CONTINUATION, 1, None);
        let mut unframer = Unframer::default();
        let mut data = BytesMut::new();
        let mut first = huge.split_to(10);
        assert_eq!(unframer.unframe(&mut first, &mut data), Ok(Event::NeedMore));
        unframer.remaining = 0; // as if the 16 MiB had arrived
        assert_eq!(
            unframer.unframe(&mut huge, &mut data),
            Err(WsError::MessageTooLarge)
        );
    }

    #[test]
    fn checks_the_handshake_response() {
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let accept = derive_accept_key(key.as_bytes());
        assert_eq!(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        let good = format!(
            "HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\n\
             Connection: keep-alive, Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\
             Sec-WebSocket-Protocol: v12.stomp\r\n\r\n"
        );
        assert_eq!(check_response(good.as_bytes(), &accept), Ok(()));
        let wrong_key = good.replace(&accept, "AAAA");
        assert!(check_response(wrong_key.as_bytes(), &accept).is_err());
        let no_protocol = good.replace("Sec-WebSocket-Protocol: v12.stomp\r\n", "");
        assert!(check_response(no_protocol.as_bytes(), &accept).is_err());
        let other_protocol = good.replace("v12.stomp", "v11.stomp");
        assert!(check_response(other_protocol.as_bytes(), &accept).is_err());
        let error = check_response(b"HTTP/1.1 404 Not Found\r\n\r\n", &accept).unwrap_err();
        assert_eq!(error, "HTTP status 404 Not Found");
    }
}
