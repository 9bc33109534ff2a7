//! The hub's session token, kept sealed (ChaCha20-Poly1305) under a key derived from the local
//! session token, which the data file never holds, so a copy of the file cannot act on the hub.

use ring::aead;

fn seal_key(local_token: &str) -> aead::LessSafeKey {
    let key = blake3::derive_key(
        "imgvault 2026-11 hub session token seal",
        local_token.as_bytes(),
    );
    aead::LessSafeKey::new(
        aead::UnboundKey::new(&aead::CHACHA20_POLY1305, &key).expect("32-byte key"),
    )
}

/// Encrypts the hub's token under the local session token.
pub fn seal(local_token: &str, hub_token: &str) -> ([u8; 12], Vec<u8>) {
    let mut nonce = [0u8; 12];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut nonce);
    let mut sealed = hub_token.as_bytes().to_vec();
    seal_key(local_token)
        .seal_in_place_append_tag(
            aead::Nonce::assume_unique_for_key(nonce),
            aead::Aad::empty(),
            &mut sealed,
        )
        .expect("in-memory encryption");
    (nonce, sealed)
}

/// The hub's token, if `local_token` is the one it was sealed under and nothing was altered.
pub fn unseal(local_token: &str, nonce: [u8; 12], sealed: &[u8]) -> Option<String> {
    let mut buf = sealed.to_vec();
    let plain = seal_key(local_token)
        .open_in_place(
            aead::Nonce::assume_unique_for_key(nonce),
            aead::Aad::empty(),
            &mut buf,
        )
        .ok()?;
    String::from_utf8(plain.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_token_opens_only_with_its_local_token() {
        let (nonce, sealed) = seal("local-token-a", "hub-token");
        assert!(!sealed.windows(9).any(|w| w == b"hub-token"));
        assert_eq!(
            unseal("local-token-a", nonce, &sealed).as_deref(),
            Some("hub-token")
        );
        assert_eq!(unseal("local-token-b", nonce, &sealed), None);
        let mut tampered = sealed.clone();
        tampered[0] ^= 1;
        assert_eq!(unseal("local-token-a", nonce, &tampered), None);
    }
}
