//! Identity (SEMANTICS.md section 5): who a CONNECT's credentials say the session is.

use std::collections::HashMap;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use crate::config::{AuthConfig, JwtAlgorithm, JwtConfig, UserConfig};

/// An authenticated principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user name: the session's user for user destinations and `user-name`.
    pub name: String,
    pub roles: Vec<String>,
}

/// Why credentials were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    UnknownLogin,
    WrongPasscode,
    /// A token that does not verify, and why.
    InvalidToken(String),
}

/// Checks `login`/`passcode` against the configured users, and tokens against `[jwt]`.
#[derive(Default)]
pub struct Authenticator {
    users: HashMap<String, UserConfig>,
    jwt: Option<JwtVerifier>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("users", &self.users.len())
            .field("jwt", &self.jwt.is_some())
            .finish()
    }
}

struct JwtVerifier {
    /// `None` when the key could not be loaded (validation reports that): every token fails.
    key: Option<DecodingKey>,
    validation: Validation,
    roles_claim: String,
}

/// An identity proven by a token, and when the token expires (epoch seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenIdentity {
    pub identity: Identity,
    pub expires: u64,
}

impl Authenticator {
    pub fn new(config: &AuthConfig, jwt: &JwtConfig) -> Authenticator {
        Authenticator {
            users: config
                .users
                .iter()
                .map(|u| (u.login.clone(), u.clone()))
                .collect(),
            jwt: jwt.enabled.then(|| JwtVerifier::new(jwt)),
        }
    }

    /// Whether tokens are accepted.
    pub fn accepts_tokens(&self) -> bool {
        self.jwt.is_some()
    }

    /// Whether `login` is a configured user.
    pub fn has_user(&self, login: &str) -> bool {
        self.users.contains_key(login)
    }

    /// The identity a token proves: `sub` and the roles claim; `exp` is required.
    pub fn verify_token(&self, token: &str) -> Result<TokenIdentity, Denied> {
        let invalid = |why: &str| Denied::InvalidToken(why.to_owned());
        let jwt = self
            .jwt
            .as_ref()
            .ok_or_else(|| invalid("tokens are not accepted"))?;
        let key = jwt.key.as_ref().ok_or_else(|| invalid("no usable key"))?;
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, key, &jwt.validation)
            .map_err(|e| Denied::InvalidToken(e.to_string()))?;
        let claims = data.claims;
        let name = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| invalid("no sub claim"))?;
        let expires = claims
            .get("exp")
            .and_then(Value::as_u64)
            .ok_or_else(|| invalid("no exp claim"))?;
        let roles = match claims.get(&jwt.roles_claim) {
            Some(Value::String(role)) => vec![role.clone()],
            Some(Value::Array(roles)) => roles
                .iter()
                .filter_map(|r| r.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        Ok(TokenIdentity {
            identity: Identity {
                name: name.to_owned(),
                roles,
            },
            expires,
        })
    }

    /// The identity `login`/`passcode` prove. Verifying a hash is deliberately slow (argon2).
    pub fn verify(&self, login: &str, passcode: &str) -> Result<Identity, Denied> {
        let user = self.users.get(login).ok_or(Denied::UnknownLogin)?;
        let hash = PasswordHash::new(&user.passcode_hash).map_err(|_| Denied::WrongPasscode)?;
        Argon2::default()
            .verify_password(passcode.as_bytes(), &hash)
            .map_err(|_| Denied::WrongPasscode)?;
        Ok(Identity {
            name: user.login.clone(),
            roles: user.roles.clone(),
        })
    }
}

impl JwtVerifier {
    fn new(config: &JwtConfig) -> JwtVerifier {
        let mut validation = Validation::new(algorithm(config.algorithm));
        validation.leeway = config.leeway_ms.div_ceil(1000);
        validation.set_required_spec_claims(&["exp", "sub"]);
        if config.issuer.is_empty() {
            validation.iss = None;
        } else {
            validation.set_issuer(&[&config.issuer]);
        }
        if config.audience.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&[&config.audience]);
        }
        let key = match load_jwt_key(config) {
            Ok(key) => Some(key),
            Err(e) => {
                tracing::error!(error = %e, "jwt key unusable; every token will be refused");
                None
            }
        };
        JwtVerifier {
            key,
            validation,
            roles_claim: config.roles_claim.clone(),
        }
    }
}

fn algorithm(algorithm: JwtAlgorithm) -> Algorithm {
    match algorithm {
        JwtAlgorithm::Hs256 => Algorithm::HS256,
        JwtAlgorithm::Rs256 => Algorithm::RS256,
        JwtAlgorithm::Es256 => Algorithm::ES256,
    }
}

/// The key tokens are checked with: the HS256 secret, or the public key in the PEM file.
pub fn load_jwt_key(config: &JwtConfig) -> Result<DecodingKey, String> {
    let pem = || {
        std::fs::read(&config.key_file).map_err(|e| format!("cannot read {}: {e}", config.key_file))
    };
    match config.algorithm {
        JwtAlgorithm::Hs256 => Ok(DecodingKey::from_secret(config.secret.as_bytes())),
        JwtAlgorithm::Rs256 => DecodingKey::from_rsa_pem(&pem()?)
            .map_err(|e| format!("{}: not an RSA public key in PEM: {e}", config.key_file)),
        JwtAlgorithm::Es256 => DecodingKey::from_ec_pem(&pem()?)
            .map_err(|e| format!("{}: not an EC public key in PEM: {e}", config.key_file)),
    }
}

/// Whether `text` has the shape of a JWT: three base64url parts separated by dots.
pub fn looks_like_jwt(text: &str) -> bool {
    let parts: Vec<&str> = text.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// An argon2id hash of `password` in PHC format, with a fresh salt from the operating
/// system's random number generator.
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_hashed_passwords() {
        let config = AuthConfig {
            users: vec![UserConfig {
                login: "alice".into(),
                passcode_hash: hash_password("secret").unwrap(),
                roles: vec!["publisher".into()],
            }],
            ..AuthConfig::default()
        };
        let auth = Authenticator::new(&config, &JwtConfig::default());
        let alice = auth.verify("alice", "secret").unwrap();
        assert_eq!(alice.name, "alice");
        assert_eq!(alice.roles, ["publisher"]);
        assert_eq!(auth.verify("alice", "wrong"), Err(Denied::WrongPasscode));
        assert_eq!(auth.verify("bob", "secret"), Err(Denied::UnknownLogin));
    }
}
