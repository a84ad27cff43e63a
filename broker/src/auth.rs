//! Identity (semantics.md section 5): who a CONNECT's credentials say the session is.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use tokio::sync::Semaphore;

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

/// Verified for a login that is not a configured user, so that an unknown login costs what a
/// known one does and user names do not leak by timing: an argon2id hash with the default
/// parameters (those of `herald hash-password`) of a password nobody knows.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$j7jyckClzgMHhW454DqEcA$rUE+n02Da5ojnE4p7tvXZYFcAkwHsL8cS1HYDXe8oss";

/// Checks `login`/`passcode` against the configured users, and tokens against `[jwt]`.
pub struct Authenticator {
    users: HashMap<String, UserConfig>,
    jwt: Option<JwtVerifier>,
    /// Bounds the hashes verified at once: each takes a blocking-pool thread and a CPU.
    hashing: Arc<Semaphore>,
    permits: usize,
    checks: PasswordChecks,
}

/// Password hashes verified so far, by whether the login was a configured user.
#[derive(Debug, Default)]
pub struct PasswordChecks {
    pub known: AtomicU64,
    pub unknown: AtomicU64,
    waiting: AtomicU64,
}

impl Default for Authenticator {
    fn default() -> Authenticator {
        Authenticator::new(&AuthConfig::default(), &JwtConfig::default())
    }
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("users", &self.users.len())
            .field("jwt", &self.jwt.is_some())
            .field("permits", &self.permits)
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
        let permits = match config.max_parallel_password_checks {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        Authenticator {
            users: config
                .users
                .iter()
                .map(|u| (u.login.clone(), u.clone()))
                .collect(),
            jwt: jwt.enabled.then(|| JwtVerifier::new(jwt)),
            hashing: Arc::new(Semaphore::new(permits)),
            permits,
            checks: PasswordChecks::default(),
        }
    }

    /// Password hashes verified so far.
    pub fn password_checks(&self) -> &PasswordChecks {
        &self.checks
    }

    /// Password hashes being verified now, and those waiting for their turn to be.
    pub fn password_checks_in_progress(&self) -> (usize, usize) {
        (
            self.permits - self.hashing.available_permits(),
            self.checks.waiting.load(Ordering::Relaxed) as usize,
        )
    }

    /// Whether tokens are accepted.
    pub fn accepts_tokens(&self) -> bool {
        self.jwt.is_some()
    }

    /// Whether `login` is a configured user.
    pub fn has_user(&self, login: &str) -> bool {
        self.users.contains_key(login)
    }

    /// Runs `work` on the blocking pool once a hashing permit is free, so that hashing never
    /// holds up the async workers that serve sessions; `None` if it could not run.
    async fn hash_off_runtime<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        self.checks.waiting.fetch_add(1, Ordering::Relaxed);
        let permit = Arc::clone(&self.hashing).acquire_owned().await;
        self.checks.waiting.fetch_sub(1, Ordering::Relaxed);
        // The semaphore is never closed; the permit moves into the blocking task, so a
        // caller that gives up does not free it while the hash still runs.
        let permit = permit.ok()?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .ok()
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

    /// The identity `login`/`passcode` prove. Verifying a hash is deliberately slow (argon2),
    /// so it runs on the blocking pool, at most `permits` at once; an unknown login verifies
    /// a dummy hash, to take as long as a known one.
    pub async fn verify(&self, login: &str, passcode: &str) -> Result<Identity, Denied> {
        let user = self.users.get(login);
        let (hash, counter) = match user {
            Some(user) => (user.passcode_hash.clone(), &self.checks.known),
            None => (DUMMY_HASH.to_owned(), &self.checks.unknown),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let passcode = passcode.to_owned();
        let verified = self
            .hash_off_runtime(move || verify_hash(&hash, &passcode))
            .await
            .unwrap_or(false);
        match user {
            Some(user) if verified => Ok(Identity {
                name: user.login.clone(),
                roles: user.roles.clone(),
            }),
            Some(_) => Err(Denied::WrongPasscode),
            None => Err(Denied::UnknownLogin),
        }
    }
}

impl JwtVerifier {
    fn new(config: &JwtConfig) -> JwtVerifier {
        let mut validation = Validation::new(algorithm(config.algorithm));
        validation.leeway = config.leeway_ms.div_ceil(1000);
        validation.set_required_spec_claims(&["exp", "sub"]);
        // Off by default in jsonwebtoken; a token not yet valid is refused (with the leeway).
        validation.validate_nbf = true;
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

/// Whether `passcode` matches the argon2 `hash` (PHC format); a hash that does not parse
/// matches nothing (validation refuses such a configuration).
fn verify_hash(hash: &str, passcode: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(passcode.as_bytes(), &hash)
            .is_ok()
    })
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

    #[tokio::test]
    async fn verifies_hashed_passwords_and_a_dummy_hash_for_unknown_logins() {
        let config = AuthConfig {
            users: vec![UserConfig {
                login: "alice".into(),
                passcode_hash: hash_password("secret").unwrap(),
                roles: vec!["publisher".into()],
            }],
            ..AuthConfig::default()
        };
        let auth = Authenticator::new(&config, &JwtConfig::default());
        let alice = auth.verify("alice", "secret").await.unwrap();
        assert_eq!(alice.name, "alice");
        assert_eq!(alice.roles, ["publisher"]);
        assert_eq!(
            auth.verify("alice", "wrong").await,
            Err(Denied::WrongPasscode)
        );
        assert_eq!(
            auth.verify("bob", "secret").await,
            Err(Denied::UnknownLogin)
        );
        let checks = auth.password_checks();
        assert_eq!(checks.known.load(Ordering::Relaxed), 2);
        assert_eq!(checks.unknown.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn the_dummy_hash_is_a_valid_hash_with_the_default_parameters() {
        let dummy = PasswordHash::new(DUMMY_HASH).unwrap();
        let fresh = hash_password("x").unwrap();
        let fresh = PasswordHash::new(&fresh).unwrap();
        assert_eq!(dummy.algorithm, fresh.algorithm);
        assert_eq!(dummy.params, fresh.params);
    }

    #[tokio::test]
    async fn hashing_runs_off_the_runtime_within_the_permits() {
        let auth = Authenticator::new(
            &AuthConfig {
                max_parallel_password_checks: 2,
                ..AuthConfig::default()
            },
            &JwtConfig::default(),
        );
        let runtime_thread = std::thread::current().id();
        let running = Arc::new(AtomicU64::new(0));
        let most = Arc::new(AtomicU64::new(0));
        let (release, released) = std::sync::mpsc::channel::<()>();
        let released = Arc::new(parking_lot::Mutex::new(released));
        let work = || {
            let (running, most, released) = (
                Arc::clone(&running),
                Arc::clone(&most),
                Arc::clone(&released),
            );
            auth.hash_off_runtime(move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                // Blocks its thread until the test lets it go: on a runtime worker this
                // would hang the (single-threaded) test runtime.
                released.lock().recv().unwrap();
                running.fetch_sub(1, Ordering::SeqCst);
                std::thread::current().id()
            })
        };
        let checks = futures_util::future::join_all((0..5).map(|_| work()));
        tokio::pin!(checks);
        let mut blocked = true;
        loop {
            tokio::select! {
                biased;
                threads = &mut checks => {
                    for thread in threads {
                        assert_ne!(thread.unwrap(), runtime_thread);
                    }
                    break;
                }
                // The runtime stays free while two hashes block their threads and three
                // wait for a permit.
                () = tokio::task::yield_now(), if blocked => {
                    if auth.password_checks_in_progress() == (2, 3)
                        && running.load(Ordering::SeqCst) == 2
                    {
                        for _ in 0..5 {
                            release.send(()).unwrap();
                        }
                        blocked = false;
                    }
                }
            }
        }
        assert_eq!(most.load(Ordering::SeqCst), 2, "at most two at once");
        assert_eq!(auth.password_checks_in_progress(), (0, 0));
    }
}
