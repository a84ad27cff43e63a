//! API keys: `Authorization: Bearer <secret>` against `[[http.api_keys]]`. Only SHA-256
//! digests are kept (a key given as `secret` is hashed at start); the presented token is
//! hashed too and compared with every key's digest in constant time (`subtle`), so neither
//! which key nor how much of a secret a guess got right shows in the time an answer takes.

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};
use tracing::debug;

use super::error::ApiError;
use crate::config::{ApiAction, ApiKeyConfig};

/// One configured key.
#[derive(Debug)]
pub(super) struct Key {
    pub(super) name: String,
    digest: [u8; 32],
    actions: HashSet<ApiAction>,
    /// Who the access rules see: a user (`None`: anonymous) and roles.
    pub(super) user: Option<String>,
    pub(super) roles: Vec<String>,
}

/// Every configured key.
#[derive(Debug)]
pub(super) struct Keys(Vec<Arc<Key>>);

impl Keys {
    /// The keys of `[[http.api_keys]]` (validated: each has one well-formed secret).
    pub(super) fn from_config(keys: &[ApiKeyConfig]) -> Keys {
        Keys(
            keys.iter()
                .map(|key| {
                    let digest = match key.secret.is_empty() {
                        true => from_hex(&key.secret_sha256),
                        false => Sha256::digest(key.secret.as_bytes()).into(),
                    };
                    Arc::new(Key {
                        name: key.name.clone(),
                        digest,
                        actions: key.actions.iter().copied().collect(),
                        user: Some(key.user.clone()).filter(|u| !u.is_empty()),
                        roles: key.roles.clone(),
                    })
                })
                .collect(),
        )
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    /// The key whose secret `token` is. Every key is compared and the match is selected
    /// without a branch, so the time taken is the same whichever key (if any) matched.
    fn find(&self, token: &[u8]) -> Option<&Arc<Key>> {
        let presented: [u8; 32] = Sha256::digest(token).into();
        let mut found = u64::MAX;
        for (i, key) in self.0.iter().enumerate() {
            found.conditional_assign(&(i as u64), key.digest.ct_eq(&presented));
        }
        usize::try_from(found).ok().and_then(|i| self.0.get(i))
    }

    /// The caller's key, if `authorization` carries one allowing `action`.
    pub(super) fn authorize(
        &self,
        authorization: Option<&[u8]>,
        action: ApiAction,
    ) -> Result<Arc<Key>, ApiError> {
        let token = authorization
            .and_then(bearer)
            .ok_or(ApiError::Unauthorized(
                "an Authorization: Bearer header with an API key is required",
            ))?;
        let key = self
            .find(token)
            .ok_or(ApiError::Unauthorized("not a valid API key"))?;
        if !key.actions.contains(&action) {
            debug!(key = %key.name, ?action, "http api: action not allowed for this key");
            return Err(ApiError::Forbidden);
        }
        Ok(Arc::clone(key))
    }
}

/// The token of `Bearer <token>` (scheme case-insensitive, RFC 6750).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, token) = value.split_at_checked(7)?;
    (scheme.eq_ignore_ascii_case(b"bearer ") && !token.is_empty()).then_some(token)
}

fn from_hex(hex: &str) -> [u8; 32] {
    let mut digest = [0; 32];
    for (byte, pair) in digest.iter_mut().zip(hex.as_bytes().chunks(2)) {
        let text = std::str::from_utf8(pair).unwrap_or("0");
        *byte = u8::from_str_radix(text, 16).unwrap_or(0);
    }
    digest
}

/// What one route's key check needs.
#[derive(Debug, Clone)]
pub(super) struct Guard {
    pub(super) keys: Arc<Keys>,
    pub(super) action: ApiAction,
}

/// The key check in front of each route: 401 without a valid key, 403 when the key lacks the
/// route's action; else the handler runs with the key as a request extension.
pub(super) async fn guard(
    State(guard): State<Guard>,
    mut request: Request,
    next: Next,
) -> Response {
    let authorization = request.headers().get(AUTHORIZATION).map(|v| v.as_bytes());
    match guard.keys.authorize(authorization, guard.action) {
        Ok(key) => {
            request.extensions_mut().insert(key);
            next.run(request).await
        }
        Err(refused) => refused.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(secret: &str, hash: &str, actions: &[ApiAction]) -> ApiKeyConfig {
        ApiKeyConfig {
            name: "k".into(),
            secret: secret.into(),
            secret_sha256: hash.into(),
            actions: actions.to_vec(),
            ..ApiKeyConfig::default()
        }
    }

    const SECRET: &str = "correct horse battery staple";

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn a_key_given_by_its_digest_is_the_same_key() {
        let digest = hex(&Sha256::digest(SECRET.as_bytes()));
        for config in [
            key(SECRET, "", &[ApiAction::Publish]),
            key("", &digest, &[ApiAction::Publish]),
            key("", &digest.to_uppercase(), &[ApiAction::Publish]),
        ] {
            let keys = Keys::from_config(&[config]);
            let header = format!("Bearer {SECRET}");
            assert!(
                keys.authorize(Some(header.as_bytes()), ApiAction::Publish)
                    .is_ok()
            );
            let lower = format!("bearer {SECRET}");
            assert!(
                keys.authorize(Some(lower.as_bytes()), ApiAction::Publish)
                    .is_ok()
            );
        }
    }

    #[test]
    fn each_of_several_keys_is_found() {
        let secrets = [
            "first-key-0123456789",
            "second-key-0123456789",
            "third-key-0123456789",
        ];
        let keys = Keys::from_config(&secrets.map(|s| key(s, "", &[ApiAction::Stats])));
        for (i, secret) in secrets.iter().enumerate() {
            let found = keys.find(secret.as_bytes()).expect("a key");
            assert!(Arc::ptr_eq(found, &keys.0[i]));
        }
        assert!(keys.find(b"fourth-key-0123456789").is_none());
    }

    #[test]
    fn missing_wrong_and_insufficient_keys_are_told_apart() {
        let keys = Keys::from_config(&[key(SECRET, "", &[ApiAction::Stats])]);
        let refused = |header: Option<&str>, action| {
            keys.authorize(header.map(str::as_bytes), action)
                .map(|_| ())
                .unwrap_err()
        };
        assert!(matches!(
            refused(None, ApiAction::Stats),
            ApiError::Unauthorized(_)
        ));
        for wrong in [
            "Bearer correct horse battery stapl",
            "Bearer correct horse battery staplee",
            "Bearer ",
            "Basic Y29ycmVjdA==",
            "Bearer",
            "",
        ] {
            assert!(
                matches!(
                    refused(Some(wrong), ApiAction::Stats),
                    ApiError::Unauthorized(_)
                ),
                "{wrong:?}"
            );
        }
        let header = format!("Bearer {SECRET}");
        assert!(matches!(
            refused(Some(&header), ApiAction::Publish),
            ApiError::Forbidden
        ));
    }

    /// No secret is kept, only digests, and a guess is compared as a digest: a guess sharing
    /// a long prefix with the secret is not "closer" than any other.
    #[test]
    fn only_digests_are_kept_and_compared() {
        let keys = Keys::from_config(&[key(SECRET, "", &[ApiAction::Stats])]);
        let kept = format!("{:?}", keys);
        assert!(!kept.contains("horse"), "{kept}");
        let near: [u8; 32] = Sha256::digest(b"correct horse battery stapla").into();
        let far: [u8; 32] = Sha256::digest(b"x").into();
        let secret: [u8; 32] = Sha256::digest(SECRET.as_bytes()).into();
        let common = |a: &[u8; 32]| a.iter().zip(&secret).take_while(|(x, y)| x == y).count();
        assert!(common(&near) < 4 && common(&far) < 4);
    }
}
