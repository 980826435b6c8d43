//! Encryption at rest for survey answers: AES-256-GCM with a random 96-bit nonce per answer, a
//! key id stored beside the ciphertext (so keys rotate: new answers use the first key, old ones
//! open with theirs), and associated data binding each ciphertext to its survey and response, so
//! a row copied onto another survey or response does not open.

use aws_lc_rs::{
    aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN},
    rand::{SecureRandom, SystemRandom},
};
use secrecy::ExposeSecret;
use uuid::Uuid;

use crate::env::NamedKey;

/// A sealed record (answers, a chat message), as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("no key with id {0}")]
    UnknownKey(String),
    #[error("the ciphertext does not open (wrong key, associated data or tampering)")]
    Open,
    #[error("a key is not 32 bytes")]
    BadKey,
    #[error("the system random generator failed")]
    Random,
}

/// Seals and opens records at rest with AES-256-GCM under named keys: survey answers (associated
/// data: survey id and response id) and chat messages and memory notes (owner id and message
/// id), each kind with its own keys. The first key seals; every key opens, so keys rotate.
pub struct Sealer {
    keys: Vec<(String, LessSafeKey)>,
    random: SystemRandom,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("Sealer").field("key_ids", &ids).finish()
    }
}

impl Sealer {
    pub fn new(keys: &[NamedKey]) -> Result<Self, CryptoError> {
        let keys = keys
            .iter()
            .map(|key| {
                let bytes = key.secret.0.expose_secret();
                let unbound =
                    UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| CryptoError::BadKey)?;
                Ok((key.kid.clone(), LessSafeKey::new(unbound)))
            })
            .collect::<Result<Vec<_>, CryptoError>>()?;
        if keys.is_empty() {
            return Err(CryptoError::BadKey);
        }
        Ok(Self {
            keys,
            random: SystemRandom::new(),
        })
    }

    /// Seals `plaintext` for response `response_id` of survey `survey_id`.
    pub fn seal(
        &self,
        survey_id: Uuid,
        response_id: Uuid,
        plaintext: &[u8],
    ) -> Result<Sealed, CryptoError> {
        let (key_id, key) = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        self.random
            .fill(&mut nonce)
            .map_err(|_| CryptoError::Random)?;
        let mut in_out = plaintext.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(associated_data(survey_id, response_id)),
            &mut in_out,
        )
        .map_err(|_| CryptoError::Random)?;
        Ok(Sealed {
            key_id: key_id.clone(),
            nonce: nonce.to_vec(),
            ciphertext: in_out,
        })
    }

    /// Opens what [`Sealer::seal`] sealed for the same survey and response.
    pub fn open(
        &self,
        survey_id: Uuid,
        response_id: Uuid,
        sealed: &Sealed,
    ) -> Result<Vec<u8>, CryptoError> {
        let (_, key) = self
            .keys
            .iter()
            .find(|(id, _)| *id == sealed.key_id)
            .ok_or_else(|| CryptoError::UnknownKey(sealed.key_id.clone()))?;
        let nonce: [u8; NONCE_LEN] = sealed
            .nonce
            .as_slice()
            .try_into()
            .map_err(|_| CryptoError::Open)?;
        let mut in_out = sealed.ciphertext.clone();
        let plaintext = key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(associated_data(survey_id, response_id)),
                &mut in_out,
            )
            .map_err(|_| CryptoError::Open)?;
        Ok(plaintext.to_vec())
    }
}

/// Lower-case hex of `bytes` (digests, HMAC tags).
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

/// survey id ‖ response id (docs/privacy.md).
fn associated_data(survey_id: Uuid, response_id: Uuid) -> [u8; 32] {
    let mut aad = [0u8; 32];
    aad[..16].copy_from_slice(survey_id.as_bytes());
    aad[16..].copy_from_slice(response_id.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::SecretKey;

    fn key(kid: &str, byte: u8) -> NamedKey {
        NamedKey {
            kid: kid.into(),
            secret: SecretKey(secrecy::SecretSlice::from(vec![byte; 32])),
        }
    }

    fn ids() -> (Uuid, Uuid) {
        (Uuid::new_v4(), Uuid::new_v4())
    }

    #[test]
    fn sealed_answers_open_with_the_same_ids() {
        let cipher = Sealer::new(&[key("a", 1)]).unwrap();
        let (survey, response) = ids();
        let sealed = cipher
            .seal(survey, response, b"kind, sharp, funny")
            .unwrap();
        assert_eq!(sealed.key_id, "a");
        assert!(!sealed.ciphertext.windows(4).any(|w| w == b"kind"));
        assert_eq!(
            cipher.open(survey, response, &sealed).unwrap(),
            b"kind, sharp, funny"
        );
    }

    #[test]
    fn wrong_associated_data_fails() {
        let cipher = Sealer::new(&[key("a", 1)]).unwrap();
        let (survey, response) = ids();
        let sealed = cipher.seal(survey, response, b"secret").unwrap();
        assert!(cipher.open(Uuid::new_v4(), response, &sealed).is_err());
        assert!(cipher.open(survey, Uuid::new_v4(), &sealed).is_err());
        assert!(cipher.open(response, survey, &sealed).is_err());
    }

    #[test]
    fn a_wrong_or_unknown_key_fails() {
        let (survey, response) = ids();
        let sealed = Sealer::new(&[key("a", 1)])
            .unwrap()
            .seal(survey, response, b"secret")
            .unwrap();
        let impostor = Sealer::new(&[key("a", 2)]).unwrap();
        let stranger = Sealer::new(&[key("b", 1)]).unwrap();
        assert!(matches!(
            impostor.open(survey, response, &sealed),
            Err(CryptoError::Open)
        ));
        assert!(matches!(
            stranger.open(survey, response, &sealed),
            Err(CryptoError::UnknownKey(_))
        ));
    }

    #[test]
    fn after_rotation_new_answers_use_the_new_key_and_old_ones_still_open() {
        let (survey, response) = ids();
        let old = Sealer::new(&[key("a", 1)])
            .unwrap()
            .seal(survey, response, b"old")
            .unwrap();
        let rotated = Sealer::new(&[key("b", 2), key("a", 1)]).unwrap();
        assert_eq!(rotated.open(survey, response, &old).unwrap(), b"old");
        assert_eq!(rotated.seal(survey, response, b"new").unwrap().key_id, "b");
    }

    #[test]
    fn every_single_bit_flip_fails_to_open() {
        let cipher = Sealer::new(&[key("a", 1)]).unwrap();
        let (survey, response) = ids();
        let plaintext = vec![0x5a; 110];
        let sealed = cipher.seal(survey, response, &plaintext).unwrap();
        let bits = (sealed.ciphertext.len() + sealed.nonce.len()) * 8;
        assert!(bits >= 1000);
        let mut flips = 0;
        for bit in 0..1000 {
            let mut tampered = sealed.clone();
            let (field, index) = if bit / 8 < tampered.ciphertext.len() {
                (&mut tampered.ciphertext, bit / 8)
            } else {
                (&mut tampered.nonce, bit / 8 - sealed.ciphertext.len())
            };
            field[index] ^= 1 << (bit % 8);
            assert!(
                cipher.open(survey, response, &tampered).is_err(),
                "bit {bit}"
            );
            flips += 1;
        }
        assert_eq!(flips, 1000);
    }
}
