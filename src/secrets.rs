//! Secrets: password hashing with argon2id and session tokens.
//!
//! Passwords are hashed with OWASP's argon2id parameters (19 MiB, 2 passes, 1 lane). Session tokens
//! are 256 random bits; only their blake3 hash is stored, so a copied data file opens no session.
//! Everything here is CPU-bound and blocking: async callers use the blocking pool.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use rand::RngCore;

fn argon2() -> Argon2<'static> {
    let params = Params::new(19_456, 2, 1, None).expect("OWASP argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A PHC-format argon2id hash of `password` with a fresh random salt.
pub fn hash_password(password: &str) -> String {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).expect("16 bytes is a valid salt");
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 hashing with valid parameters cannot fail")
        .to_string()
}

/// Whether `password` matches `hash`. A malformed stored hash never matches.
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            argon2()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Spends the same time as checking a real password, for logins naming no known user, so response
/// time does not tell which usernames exist.
pub fn verify_against_nothing(password: &str) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let hash = DUMMY.get_or_init(|| hash_password("imgvault-no-such-user"));
    let _ = verify_password(hash, password);
}

/// A new session token (43 URL-safe characters) and the hash the store keeps of it.
pub fn new_session_token() -> (String, [u8; 32]) {
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    let hash = token_hash(&token);
    (token, hash)
}

pub fn token_hash(token: &str) -> [u8; 32] {
    *blake3::hash(token.as_bytes()).as_bytes()
}

/// What every API key starts with, so a key pasted somewhere is recognisable (and secret scanners
/// can find it).
pub const API_KEY_PREFIX: &str = "ivk_";

/// A new API key (32 random bytes, URL-safe, after `API_KEY_PREFIX`) and the hash the store keeps.
pub fn new_api_key() -> (String, [u8; 32]) {
    let (token, _) = new_session_token();
    let key = format!("{API_KEY_PREFIX}{token}");
    let hash = token_hash(&key);
    (key, hash)
}

/// Whether `key` has the shape of a key `new_api_key` makes (not whether it exists).
pub fn is_api_key(key: &str) -> bool {
    key.len() == API_KEY_PREFIX.len() + 43
        && key.starts_with(API_KEY_PREFIX)
        && key[API_KEY_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

/// A random password for the first admin when none is configured: 20 URL-safe characters.
pub fn random_password() -> String {
    let mut raw = [0u8; 15];
    rand::rng().fill_bytes(&mut raw);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_carry_their_prefix_and_enough_randomness() {
        let (a, hash) = new_api_key();
        let (b, _) = new_api_key();
        assert!(a.starts_with(API_KEY_PREFIX) && a != b);
        assert_eq!(a.len(), API_KEY_PREFIX.len() + 43, "32 random bytes");
        assert_eq!(hash, token_hash(&a));
        assert!(is_api_key(&a) && !is_api_key(&a[1..]) && !is_api_key(&format!("{a}x")));
        assert!(!is_api_key(&format!("ivk_{}", "é".repeat(21))));
    }

    #[test]
    fn hashes_verify_only_their_password() {
        let hash = hash_password("correct horse");
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify_password(&hash, "correct horse"));
        assert!(!verify_password(&hash, "correct horsE"));
        assert!(!verify_password("not a hash", "x"));
        assert_ne!(hash, hash_password("correct horse"), "salts differ");
    }

    #[test]
    fn tokens_are_distinct_and_stored_only_as_hashes() {
        let (a, ha) = new_session_token();
        let (b, _) = new_session_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(token_hash(&a), ha);
    }
}
