//! What a request carries: its body read within a bound and a time, parsed as JSON, and the
//! message in it (`body` or `body_base64`, `headers`) checked as the STOMP parser checks a
//! SEND: header count and line length, no NUL, CR or LF (which would let a header inject
//! others into the MESSAGE frames), headers the broker sets refused, and the whole within
//! `limits.max_frame_bytes`.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::{Body, HttpBody};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use herald_protocol::Headers;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::config::Config;

/// Headers the broker sets or acts on; a request may not set them.
const RESERVED: [&str; 8] = [
    "destination",
    "message-id",
    "subscription",
    "ack",
    "content-length",
    "receipt",
    "transaction",
    "redelivered",
];

/// Room in a request body beyond the message itself: the JSON around it and base64's
/// growth (4 bytes for 3) of a body as large as a frame may be.
fn request_bound(config: &Config) -> usize {
    let frame = config.limits.max_frame_bytes;
    frame.saturating_add(frame / 3).saturating_add(64 * 1024)
}

/// Reads and parses a JSON request body: at most [`request_bound`] bytes (413 past it, before
/// anything is parsed), within `http.request_timeout_ms` (408).
pub(super) async fn read_json<T: DeserializeOwned>(
    config: &Config,
    body: Body,
) -> Result<T, ApiError> {
    parse(&read(config, body).await?)
}

/// As [`read_json`], with `T::default()` for an empty body.
pub(super) async fn read_json_or_default<T: DeserializeOwned + Default>(
    config: &Config,
    body: Body,
) -> Result<T, ApiError> {
    let bytes = read(config, body).await?;
    match bytes.trim_ascii().is_empty() {
        true => Ok(T::default()),
        false => parse(&bytes),
    }
}

async fn read(config: &Config, body: Body) -> Result<Bytes, ApiError> {
    let bound = request_bound(config);
    let timeout = Duration::from_millis(config.http.request_timeout_ms);
    tokio::time::timeout(timeout, read_bounded(body, bound))
        .await
        .map_err(|_| ApiError::Timeout)?
}

/// A JSON value of type `T`, or 400 saying what is wrong (serde_json stops at 128 levels of
/// nesting, so a deep document cannot exhaust the stack).
pub(super) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::BadRequest(format!("bad JSON: {e}")))
}

async fn read_bounded(body: Body, bound: usize) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::TooLarge(format!(
            "the request body is over {bound} bytes (from limits.max_frame_bytes)"
        ))
    };
    // A declared length over the bound is refused before a byte of the body is read.
    if HttpBody::size_hint(&body).lower() > bound as u64 {
        return Err(too_large());
    }
    let mut stream = body.into_data_stream();
    let mut read = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("reading the body: {e}")))?;
        if read.len() + chunk.len() > bound {
            return Err(too_large());
        }
        read.extend_from_slice(&chunk);
    }
    Ok(read.freeze())
}

/// The body of every sending route: `destination` for one, `destinations` for a broadcast,
/// and the message.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct SendRequest {
    pub destination: Option<String>,
    pub destinations: Option<Vec<String>>,
    /// A text body.
    pub body: Option<String>,
    /// A binary body, base64 (standard alphabet, padded).
    pub body_base64: Option<String>,
    /// STOMP headers the subscribers get.
    pub headers: BTreeMap<String, String>,
}

/// A message ready for the router.
#[derive(Debug)]
pub(super) struct Message {
    pub headers: Headers,
    pub body: Bytes,
}

impl SendRequest {
    /// The message, checked against the limits a STOMP SEND to `destination` meets.
    pub(super) fn message(
        &mut self,
        config: &Config,
        destination: &str,
    ) -> Result<Message, ApiError> {
        let body = match (self.body.take(), self.body_base64.take()) {
            (Some(_), Some(_)) => {
                return Err(ApiError::BadRequest(
                    "give body or body_base64, not both".into(),
                ));
            }
            (Some(text), None) => Bytes::from(text),
            (None, Some(encoded)) => STANDARD
                .decode(encoded.as_bytes())
                .map(Bytes::from)
                .map_err(|e| ApiError::BadRequest(format!("body_base64 is not base64: {e}")))?,
            (None, None) => Bytes::new(),
        };
        let limits = &config.limits;
        // The destination header counts, as in a SEND.
        if self.headers.len() + 1 > limits.max_headers {
            return Err(ApiError::TooLarge(format!(
                "more than limits.max_headers ({}) headers, destination included",
                limits.max_headers
            )));
        }
        let mut size = "SEND\n\n\0".len() + "destination:".len() + destination.len() + 1;
        for (name, value) in &self.headers {
            check_header(name, value, limits.max_header_line_bytes)?;
            size += name.len() + value.len() + 2;
        }
        size += body.len();
        if size > limits.max_frame_bytes {
            return Err(ApiError::TooLarge(format!(
                "the message is {size} bytes as a SEND frame; limits.max_frame_bytes is {}",
                limits.max_frame_bytes
            )));
        }
        let headers = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        Ok(Message { headers, body })
    }
}

fn check_header(name: &str, value: &str, max_line: usize) -> Result<(), ApiError> {
    let bad = |why: String| Err(ApiError::BadRequest(why));
    if name.is_empty() {
        return bad("a header name is empty".into());
    }
    if name.contains(':') {
        return bad(format!("header name {name:?} contains ':'"));
    }
    let breaks = |text: &str| text.contains(['\0', '\r', '\n']);
    if breaks(name) || breaks(value) {
        return bad(format!(
            "header {name:?}: NUL, CR and LF are not allowed in headers"
        ));
    }
    if RESERVED.contains(&name.to_ascii_lowercase().as_str()) {
        return bad(format!("header {name:?} is set by the broker"));
    }
    if name.len() + 1 + value.len() > max_line {
        return Err(ApiError::TooLarge(format!(
            "header {name:?} is over limits.max_header_line_bytes ({max_line})"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(json: &str) -> Result<SendRequest, ApiError> {
        parse(json.as_bytes())
    }

    #[test]
    fn text_binary_and_empty_bodies() {
        let config = Config::default();
        let mut text = fields(r#"{"body":"héllo"}"#).unwrap();
        assert_eq!(
            &text.message(&config, "/topic/a").unwrap().body[..],
            "héllo".as_bytes()
        );
        let mut binary = fields(r#"{"body_base64":"AAEC/w=="}"#).unwrap();
        assert_eq!(
            &binary.message(&config, "/topic/a").unwrap().body[..],
            [0, 1, 2, 255]
        );
        let mut empty = fields("{}").unwrap();
        assert!(empty.message(&config, "/topic/a").unwrap().body.is_empty());
    }

    #[test]
    fn hostile_fields_are_refused() {
        let config = Config::default();
        let refused = |json: &str| match fields(json) {
            Err(e) => e,
            Ok(mut f) => f.message(&config, "/topic/a").unwrap_err(),
        };
        for json in [
            r#"{"body":"a","body_base64":"YQ=="}"#,
            r#"{"body_base64":"not base64!"}"#,
            r#"{"headers":{"x":"a\nmessage-id:forged"}}"#,
            r#"{"headers":{"x\r":"a"}}"#,
            r#"{"headers":{"x":"a\u0000b"}}"#,
            r#"{"headers":{"a:b":"c"}}"#,
            r#"{"headers":{"":"c"}}"#,
            r#"{"headers":{"Message-Id":"forged"}}"#,
            r#"{"headers":{"x":1}}"#,
            r#"{"bodyy":"a"}"#,
            r#"{"body":"\ud800"}"#,
        ] {
            assert!(matches!(refused(json), ApiError::BadRequest(_)), "{json}");
        }
        let not_utf8 = parse::<SendRequest>(b"{\"body\":\"\xff\"}");
        assert!(matches!(not_utf8, Err(ApiError::BadRequest(_))));
        let deep = "[".repeat(100_000);
        assert!(matches!(
            parse::<serde_json::Value>(deep.as_bytes()),
            Err(ApiError::BadRequest(_))
        ));
    }

    #[test]
    fn the_frame_limit_bounds_the_message() {
        let mut config = Config::default();
        config.limits.max_frame_bytes = 100;
        let body = |n: usize| SendRequest {
            body: Some("x".repeat(n)),
            ..SendRequest::default()
        };
        let overhead = "SEND\n\n\0".len() + "destination:/topic/a\n".len();
        assert!(body(100 - overhead).message(&config, "/topic/a").is_ok());
        assert!(matches!(
            body(101 - overhead).message(&config, "/topic/a"),
            Err(ApiError::TooLarge(_))
        ));
    }
}
