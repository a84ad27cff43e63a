//! The API's errors: each a status code and a JSON body `{"error": CODE, "message": TEXT}`,
//! `CODE` a stable word for programs, `TEXT` for people.

use axum::http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::routing::router::Refusal;

#[derive(Debug)]
pub(super) enum ApiError {
    /// No `Authorization: Bearer` token, or not one of the keys.
    Unauthorized(&'static str),
    /// The key does not allow the route's action.
    Forbidden,
    NotFound(String),
    MethodNotAllowed,
    /// The body took longer than `http.request_timeout_ms` to arrive.
    Timeout,
    /// The request body or the message it carries is over its bound.
    TooLarge(String),
    /// Not JSON, not the expected fields, or a field's value is wrong.
    BadRequest(String),
    /// The router refused the destination (outside the prefixes, a pattern, ...).
    Destination(Refusal),
    /// The access rules refused the key's send.
    AccessDenied(String),
    /// A queue at its bound did not take the message.
    QueueFull(Refusal),
    /// The queue store (JetStream) did not store the message: out of reach, or failing.
    StoreUnavailable(Refusal),
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, String) {
        match self {
            ApiError::Unauthorized(why) => {
                (StatusCode::UNAUTHORIZED, "unauthorized", (*why).into())
            }
            ApiError::Forbidden => (
                StatusCode::FORBIDDEN,
                "forbidden",
                "this key does not allow this action".into(),
            ),
            ApiError::NotFound(what) => (StatusCode::NOT_FOUND, "not_found", what.clone()),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take this method".into(),
            ),
            ApiError::Timeout => (
                StatusCode::REQUEST_TIMEOUT,
                "timeout",
                "the request body did not arrive within http.request_timeout_ms".into(),
            ),
            ApiError::TooLarge(what) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large", what.clone()),
            ApiError::BadRequest(what) => (StatusCode::BAD_REQUEST, "bad_request", what.clone()),
            ApiError::Destination(refusal) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_destination",
                refusal.detail.clone(),
            ),
            ApiError::AccessDenied(what) => (StatusCode::FORBIDDEN, "access_denied", what.clone()),
            ApiError::QueueFull(refusal) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "queue_full",
                refusal.detail.clone(),
            ),
            ApiError::StoreUnavailable(refusal) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                refusal.detail.clone(),
            ),
        }
    }
}

/// A refusal by the router: a full queue, a message too large for the cluster link, or a
/// destination it cannot take.
impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> ApiError {
        match refusal.message {
            "queue full" => ApiError::QueueFull(refusal),
            "queue store unavailable" | "offline delivery failed" => {
                ApiError::StoreUnavailable(refusal)
            }
            "message too large" => ApiError::TooLarge(refusal.detail),
            _ => ApiError::Destination(refusal),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = self.parts();
        let body = serde_json::json!({ "error": code, "message": message });
        let mut response = (status, json(&body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// A JSON response body with its content type.
pub(super) fn json(value: &serde_json::Value) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    (
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        body,
    )
        .into_response()
}
