//! The frame encoder.

use bytes::{BufMut, Bytes, BytesMut};

use crate::{
    Frame, Version,
    escape::{Escaping, Part, escape_into},
};

/// Appends `frame` to `out` as `version` writes it: headers escaped per version (never on
/// CONNECT/CONNECTED), `content-length` on every frame with a body, LF line ends, NUL at the
/// end. A `content-length` entry in `frame.headers` is ignored; the body's length is written.
pub fn encode(frame: &Frame, version: Version, out: &mut BytesMut) {
    let escaping = Escaping::for_frame(frame.command.escapes_headers(version), version);
    out.reserve(encoded_len_estimate(frame));
    out.put_slice(frame.command.as_str().as_bytes());
    out.put_u8(b'\n');
    for (name, value) in frame.headers.iter() {
        if name == "content-length" {
            continue;
        }
        put_header(out, name, value, escaping);
    }
    put_body(out, &frame.body);
}

/// [`encode`] into a buffer of its own.
pub fn encode_to_bytes(frame: &Frame, version: Version) -> Bytes {
    let mut out = BytesMut::new();
    encode(frame, version, &mut out);
    out.freeze()
}

/// Writes `name:value` and its LF.
pub(crate) fn put_header(out: &mut BytesMut, name: &str, value: &str, escaping: Escaping) {
    escape_into(out, name, escaping, Part::Name);
    out.put_u8(b':');
    escape_into(out, value, escaping, Part::Value);
    out.put_u8(b'\n');
}

/// Writes `content-length` (for a non-empty body), the blank line, the body and the NUL.
pub(crate) fn put_body(out: &mut BytesMut, body: &[u8]) {
    if !body.is_empty() {
        out.put_slice(b"content-length:");
        out.put_slice(itoa::Buffer::new().format(body.len()).as_bytes());
        out.put_u8(b'\n');
    }
    out.put_u8(b'\n');
    out.put_slice(body);
    out.put_u8(0);
}

fn encoded_len_estimate(frame: &Frame) -> usize {
    let headers: usize = frame
        .headers
        .iter()
        .map(|(n, v)| n.len() + v.len() + 2)
        .sum();
    frame.command.as_str().len() + headers + frame.body.len() + 40
}
