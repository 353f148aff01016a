//! The service's cryptographic helpers: random identifiers, the key
//! encryption key and what is derived from it, hashing of stored secrets.
//!
//! - Client secrets are 256-bit random, so HMAC-SHA-256 under a server
//!   pepper is enough to store them (microseconds to check, useless to a
//!   thief without the pepper); the check is constant-time.
//! - Registration and initial access tokens are stored as SHA-256.
//! - Signing keys are sealed with AES-256-GCM, their kid as associated data.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::digest::{digest, SHA256};
use aws_lc_rs::hkdf::{Salt, HKDF_SHA256};
use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// `bytes` random bytes, base64url without padding.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    // The system RNG does not fail on supported platforms; if it ever did,
    // an all-zero value must not be used, so abort loudly.
    if SystemRandom::new().fill(&mut buf).is_err() {
        panic!("system random number generator failed");
    }
    URL_SAFE_NO_PAD.encode(buf)
}

/// SHA-256 of a bearer value (registration / initial access tokens).
pub fn sha256(value: &str) -> Vec<u8> {
    digest(&SHA256, value.as_bytes()).as_ref().to_vec()
}

/// Constant-time equality of two byte strings.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Minimum length of CUSTOS_KEY_ENCRYPTION_KEY.
pub const MIN_KEK_LENGTH: usize = 32;

/// The key-encryption key and the keys derived from it (HKDF-SHA-256).
pub struct MasterKey {
    seal: LessSafeKey,
    /// Seals what custos hands out to be handed back (pushed
    /// authorization requests); separate from the signing-key sealing key.
    handout: LessSafeKey,
    pepper: hmac::Key,
    nonce: hmac::Key,
    browser: hmac::Key,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the key encryption key must be at least {MIN_KEK_LENGTH} characters")]
    TooShort,
    #[error("a stored signing key cannot be decrypted: the key encryption key is not the one it was sealed with")]
    WrongKey,
    #[error("cryptographic failure: {0}")]
    Crypto(&'static str),
}

struct Len(usize);
impl aws_lc_rs::hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

impl MasterKey {
    /// Derives the sealing key and the client-secret pepper from the
    /// operator's key encryption key (any string of at least 32 characters;
    /// a generated key file holds 32 random bytes in base64url).
    pub fn from_secret(secret: &str) -> Result<Self, KeyError> {
        let secret = secret.trim();
        if secret.len() < MIN_KEK_LENGTH {
            return Err(KeyError::TooShort);
        }
        let prk =
            Salt::new(HKDF_SHA256, b"custos key encryption key v1").extract(secret.as_bytes());
        let derive = |info: &'static [u8]| -> Result<[u8; 32], KeyError> {
            let mut out = [0u8; 32];
            prk.expand(&[info], Len(32))
                .and_then(|okm| okm.fill(&mut out))
                .map_err(|_| KeyError::Crypto("hkdf"))?;
            Ok(out)
        };
        let seal_bytes = derive(b"signing key sealing")?;
        let pepper_bytes = derive(b"client secret pepper")?;
        let nonce_bytes = derive(b"dpop nonce")?;
        let browser_bytes = derive(b"browser sessions and pending requests")?;
        let handout_bytes = derive(b"sealed hand-outs")?;
        let seal = LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, &seal_bytes).map_err(|_| KeyError::Crypto("aead key"))?,
        );
        let handout = LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, &handout_bytes)
                .map_err(|_| KeyError::Crypto("aead key"))?,
        );
        Ok(MasterKey {
            seal,
            handout,
            pepper: hmac::Key::new(hmac::HMAC_SHA256, &pepper_bytes),
            nonce: hmac::Key::new(hmac::HMAC_SHA256, &nonce_bytes),
            browser: hmac::Key::new(hmac::HMAC_SHA256, &browser_bytes),
        })
    }

    /// A fresh key encryption key for a key file: 32 random bytes, base64url.
    pub fn generate_secret() -> String {
        random_token(32)
    }

    /// HMAC-SHA-256(pepper, secret): what is stored for a client secret.
    pub fn hash_client_secret(&self, secret: &str) -> Vec<u8> {
        hmac::sign(&self.pepper, secret.as_bytes())
            .as_ref()
            .to_vec()
    }

    /// Constant-time check of a presented secret against a stored hash.
    pub fn verify_client_secret(&self, secret: &str, stored_hash: &[u8]) -> bool {
        hmac::verify(&self.pepper, secret.as_bytes(), stored_hash).is_ok()
    }

    /// HMAC-SHA-256 under the DPoP-nonce key (every replica derives the
    /// same key, so a nonce issued by one is accepted by all).
    pub fn nonce_tag(&self, message: &[u8]) -> Vec<u8> {
        hmac::sign(&self.nonce, message).as_ref().to_vec()
    }

    /// HMAC-SHA-256 under the key that signs what the person's browser
    /// carries (session cookies, pending authorization requests, CSRF
    /// tokens); `purpose` separates the uses.
    pub fn browser_tag(&self, purpose: &str, message: &[u8]) -> Vec<u8> {
        let mut context = hmac::Context::with_key(&self.browser);
        context.update(purpose.as_bytes());
        context.update(&[0]);
        context.update(message);
        context.sign().as_ref().to_vec()
    }

    /// Constant-time check of a [`MasterKey::browser_tag`].
    pub fn verify_browser_tag(&self, purpose: &str, message: &[u8], tag: &[u8]) -> bool {
        constant_time_eq(&self.browser_tag(purpose, message), tag)
    }

    /// AES-256-GCM under the hand-out key (not the signing-key sealing
    /// key): nonce || ciphertext || tag, with `aad` bound.
    pub fn seal_handout(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, KeyError> {
        seal_with(&self.handout, plaintext, aad)
    }

    /// Opens a [`MasterKey::seal_handout`] value; `None` if altered or not ours.
    pub fn open_handout(&self, sealed: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
        open_with(&self.handout, sealed, aad).ok()
    }

    /// AES-256-GCM: nonce || ciphertext || tag, with `aad` bound.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, KeyError> {
        seal_with(&self.seal, plaintext, aad)
    }

    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, KeyError> {
        open_with(&self.seal, sealed, aad)
    }
}

fn seal_with(key: &LessSafeKey, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, KeyError> {
    {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| KeyError::Crypto("rng"))?;
        let mut buf = plaintext.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut buf,
        )
        .map_err(|_| KeyError::Crypto("seal"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(out)
    }
}

fn open_with(key: &LessSafeKey, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, KeyError> {
    {
        if sealed.len() < NONCE_LEN {
            return Err(KeyError::WrongKey);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| KeyError::WrongKey)?;
        let mut buf = ciphertext.to_vec();
        let plain = key
            .open_in_place(nonce, Aad::from(aad), &mut buf)
            .map_err(|_| KeyError::WrongKey)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trip_and_wrong_key() {
        let a = MasterKey::from_secret(&"a".repeat(32)).unwrap();
        let b = MasterKey::from_secret(&"b".repeat(32)).unwrap();
        let sealed = a.seal(b"private", b"kid").unwrap();
        assert_eq!(a.open(&sealed, b"kid").unwrap(), b"private");
        assert!(a.open(&sealed, b"other kid").is_err());
        assert!(b.open(&sealed, b"kid").is_err());
        assert!(MasterKey::from_secret("short").is_err());
    }

    #[test]
    fn client_secret_hash_verifies_only_the_secret() {
        let key = MasterKey::from_secret(&MasterKey::generate_secret()).unwrap();
        let secret = random_token(32);
        let hash = key.hash_client_secret(&secret);
        assert!(key.verify_client_secret(&secret, &hash));
        assert!(!key.verify_client_secret("guess", &hash));
        assert!(!key.verify_client_secret(&secret, &hash[..31]));
        assert_eq!(random_token(32).len(), 43);
    }
}
