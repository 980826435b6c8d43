//! The environment reader every function's configuration is built with.
//!
//! [`Env`] collects *all* problems before failing, so an operator fixing a deployment sees every
//! missing or malformed variable in one error, not one per redeploy.

use std::{collections::BTreeMap, fmt, str::FromStr};

use base64::Engine;
use secrecy::SecretSlice;

/// Every problem found while reading the environment, by variable name.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub problems: BTreeMap<String, String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration: ")?;
        let mut first = true;
        for (name, problem) in &self.problems {
            if !first {
                write!(f, "; ")?;
            }
            first = false;
            write!(f, "{name} {problem}")?;
        }
        Ok(())
    }
}

/// Reads variables through a lookup and remembers what was wrong with them.
/// The lookup every configuration reader takes: the process environment, or values the local
/// stack and the tests supply.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

pub struct Env<F> {
    lookup: F,
    problems: BTreeMap<String, String>,
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    pub fn new(lookup: F) -> Self {
        Self {
            lookup,
            problems: BTreeMap::new(),
        }
    }

    /// The raw value, `None` when absent or blank.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|value| !value.trim().is_empty())
    }

    /// Records a problem with `name`.
    pub fn problem(&mut self, name: &str, problem: impl Into<String>) {
        self.problems.insert(name.to_owned(), problem.into());
    }

    fn parse<T: FromStr + Default>(&mut self, name: &str, raw: &str) -> T
    where
        T::Err: fmt::Display,
    {
        raw.trim().parse().unwrap_or_else(|error| {
            self.problem(name, format!("is malformed ({error})"));
            T::default()
        })
    }

    /// A variable that must be present and parse as `T`.
    pub fn required<T: FromStr + Default>(&mut self, name: &str) -> T
    where
        T::Err: fmt::Display,
    {
        match self.get(name) {
            Some(raw) => self.parse(name, &raw),
            None => {
                self.problem(name, "is missing");
                T::default()
            }
        }
    }

    /// A variable that may be absent, in which case `default` applies.
    pub fn optional<T: FromStr + Default>(&mut self, name: &str, default: T) -> T
    where
        T::Err: fmt::Display,
    {
        match self.get(name) {
            Some(raw) => self.parse(name, &raw),
            None => default,
        }
    }

    /// A required absolute `http(s)://` URL.
    pub fn required_url(&mut self, name: &str) -> String {
        let value: String = self.required(name);
        let is_url = value.starts_with("https://") || value.starts_with("http://");
        if !value.is_empty() && !is_url {
            self.problem(name, "is malformed (expected an http(s) URL)");
        }
        value
    }

    /// An optional `http(s)://` URL with a default.
    pub fn optional_url(&mut self, name: &str, default: &str) -> String {
        match self.get(name) {
            Some(_) => self.required_url(name),
            None => default.to_owned(),
        }
    }

    /// A required variable parsed by `parse`.
    pub fn required_with<T: Default>(
        &mut self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> T {
        let Some(raw) = self.get(name) else {
            self.problem(name, "is missing");
            return T::default();
        };
        parse(&raw).unwrap_or_else(|problem| {
            self.problem(name, format!("is malformed ({problem})"));
            T::default()
        })
    }

    /// A comma-separated list; absent means empty.
    pub fn list(&mut self, name: &str) -> Vec<String> {
        self.get(name)
            .map(|raw| {
                raw.split(',')
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `Ok` when every variable read so far was fine.
    pub fn finish(self) -> Result<(), ConfigError> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError {
                problems: self.problems,
            })
        }
    }
}

/// Reads a whole configuration with `read` and fails with every problem at once.
pub fn read<T>(
    lookup: impl Fn(&str) -> Option<String>,
    read: impl FnOnce(&mut Env<&dyn Fn(&str) -> Option<String>>) -> T,
) -> Result<T, ConfigError> {
    let lookup: &dyn Fn(&str) -> Option<String> = &lookup;
    let mut env = Env::new(lookup);
    let value = read(&mut env);
    env.finish().map(|()| value)
}

/// A symmetric key with an id, so keys can rotate: the first of a list is used for new data,
/// all of them for existing data.
#[derive(Debug, Clone)]
pub struct NamedKey {
    pub kid: String,
    pub secret: SecretKey,
}

/// Secret key material (at least 32 bytes), never printed.
#[derive(Debug, Clone)]
pub struct SecretKey(pub SecretSlice<u8>);

impl Default for SecretKey {
    fn default() -> Self {
        Self(SecretSlice::from(Vec::new()))
    }
}

impl FromStr for SecretKey {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text))
            .map_err(|_| "expected base64".to_owned())?;
        if bytes.len() < 32 {
            return Err(format!("expected at least 32 bytes, got {}", bytes.len()));
        }
        Ok(Self(SecretSlice::from(bytes)))
    }
}

/// Parses `kid:base64key[,kid:base64key...]`.
pub fn named_keys(text: &str) -> Result<Vec<NamedKey>, String> {
    text.split(',')
        .map(|entry| {
            let (kid, key) = entry
                .trim()
                .split_once(':')
                .ok_or("expected kid:base64key entries")?;
            if kid.is_empty() || kid.len() > 64 {
                return Err("a kid must have 1 to 64 characters".to_owned());
            }
            Ok(NamedKey {
                kid: kid.to_owned(),
                secret: key.parse()?,
            })
        })
        .collect()
}

/// Parses `kid:base64key[,...]` of AES-256 keys: each exactly 32 bytes. A longer key would be
/// accepted by `named_keys` and then refused when the cipher is built; here it is refused with
/// the configuration, naming the variable.
pub fn aes_keys(text: &str) -> Result<Vec<NamedKey>, String> {
    let keys = named_keys(text)?;
    for key in &keys {
        let length = secrecy::ExposeSecret::expose_secret(&key.secret.0).len();
        if length != 32 {
            return Err(format!(
                "key {:?} must be exactly 32 bytes (AES-256), got {length}",
                key.kid
            ));
        }
    }
    Ok(keys)
}

/// The kid of a key derived from a stack-generated seed.
pub const SEED_KID: &str = "stack";
/// Shortest seed accepted: 32 characters of a generated secret string.
const MIN_SEED_CHARS: usize = 32;

/// A 32-byte key derived from `seed` for `purpose` (HKDF-SHA256), so one random string the stack
/// generates (`GenerateSecretString` cannot produce base64 of exactly 32 bytes) yields distinct,
/// full-strength keys.
pub fn derive_key(seed: &str, purpose: &str) -> SecretKey {
    use aws_lc_rs::hkdf;
    struct Length;
    impl hkdf::KeyType for Length {
        fn len(&self) -> usize {
            32
        }
    }
    let mut key = [0u8; 32];
    let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"remirai/key-derivation/v1");
    let info = [purpose.as_bytes()];
    // Expanding 32 bytes from SHA-256 cannot fail (the limit is 255 x 32).
    if let Ok(okm) = salt.extract(seed.as_bytes()).expand(&info, Length) {
        let _ = okm.fill(&mut key);
    }
    SecretKey(SecretSlice::from(key.to_vec()))
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    /// A key list: `list` (`kid:base64key[,...]`, the first seals or signs) and, when `seed` is
    /// set (the stack generates it), a key derived from it for `purpose` with kid
    /// [`SEED_KID`], used when `list` is unset and kept for opening after it is set (rotation:
    /// put a new `list` in the secret next to the seed). `aes`: keys of exactly 32 bytes.
    pub fn keys(&mut self, list: &str, seed: &str, purpose: &str, aes: bool) -> Vec<NamedKey> {
        let parse = if aes { aes_keys } else { named_keys };
        let mut keys = match self.get(list) {
            Some(text) => match parse(&text) {
                Ok(keys) => keys,
                Err(problem) => {
                    self.problem(list, format!("is malformed ({problem})"));
                    Vec::new()
                }
            },
            None => Vec::new(),
        };
        match self.get(seed) {
            Some(text) if text.trim().chars().count() < MIN_SEED_CHARS => {
                self.problem(
                    seed,
                    format!("must have at least {MIN_SEED_CHARS} characters"),
                );
            }
            Some(text) if !keys.iter().any(|key| key.kid == SEED_KID) => keys.push(NamedKey {
                kid: SEED_KID.to_owned(),
                secret: derive_key(text.trim(), purpose),
            }),
            Some(_) => {}
            None if keys.is_empty() && self.get(list).is_none() => {
                self.problem(
                    list,
                    format!("is missing (or {seed}, which the stack generates)"),
                );
            }
            None => {}
        }
        keys
    }

    /// One key: `name` (base64, at least 32 bytes), or derived from `seed` for `purpose`.
    pub fn key(&mut self, name: &str, seed: &str, purpose: &str) -> SecretKey {
        if self.get(name).is_some() {
            return self.required(name);
        }
        match self.get(seed) {
            Some(text) if text.trim().chars().count() >= MIN_SEED_CHARS => {
                derive_key(text.trim(), purpose)
            }
            Some(_) => {
                self.problem(
                    seed,
                    format!("must have at least {MIN_SEED_CHARS} characters"),
                );
                SecretKey::default()
            }
            None => {
                self.problem(
                    name,
                    format!("is missing (or {seed}, which the stack generates)"),
                );
                SecretKey::default()
            }
        }
    }
}

#[cfg(test)]
mod key_tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Env<impl Fn(&str) -> Option<String>> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        Env::new(move |name: &str| vars.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()))
    }

    const KEY32: &str = "AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM=";
    const KEY48: &str = "AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMD";
    const SEED: &str = "Zy8Qx1sV7kLm2Np4Rt6Uw9Ya3Cb5Df7GhJk0LnMpQrStUvWxYz12";

    #[test]
    fn an_aes_key_of_any_length_but_32_bytes_is_refused_at_start_naming_the_variable() {
        let mut long = env(&[("ANSWER_KEYS", &format!("a1:{KEY48}"))]);
        assert!(long
            .keys("ANSWER_KEYS", "ANSWER_SEED", "answers", true)
            .is_empty());
        let error = long.finish().unwrap_err();
        assert!(
            error.problems["ANSWER_KEYS"].contains("exactly 32 bytes"),
            "{error}"
        );
        let mut exact = env(&[("ANSWER_KEYS", &format!("a1:{KEY32}"))]);
        assert_eq!(
            exact
                .keys("ANSWER_KEYS", "ANSWER_SEED", "answers", true)
                .len(),
            1
        );
        assert!(exact.finish().is_ok());
    }

    #[test]
    fn a_stack_seed_gives_distinct_stable_keys_per_purpose_and_a_list_takes_precedence() {
        let mut seeded = env(&[("ANSWER_SEED", SEED), ("IDENTITY_SEED", SEED)]);
        let answers = seeded.keys("ANSWER_KEYS", "ANSWER_SEED", "answers", true);
        let address = seeded.key("ADDRESS_HASH_KEY", "IDENTITY_SEED", "address-hash");
        assert!(seeded.finish().is_ok());
        assert_eq!(answers.len(), 1);
        assert_eq!(answers[0].kid, SEED_KID);
        let bytes = |key: &SecretKey| secrecy::ExposeSecret::expose_secret(&key.0).to_vec();
        assert_eq!(bytes(&answers[0].secret).len(), 32);
        assert_ne!(bytes(&answers[0].secret), bytes(&address));
        assert_eq!(
            bytes(&derive_key(SEED, "answers")),
            bytes(&answers[0].secret)
        );

        // Rotation: a new list seals, the seed's key still opens.
        let mut rotated = env(&[
            ("ANSWER_SEED", SEED),
            ("ANSWER_KEYS", &format!("a2:{KEY32}")),
        ]);
        let keys = rotated.keys("ANSWER_KEYS", "ANSWER_SEED", "answers", true);
        let kids: Vec<&str> = keys.iter().map(|key| key.kid.as_str()).collect();
        assert_eq!(kids, ["a2", SEED_KID]);

        let mut missing = env(&[("ANSWER_SEED", "short")]);
        missing.keys("ANSWER_KEYS", "ANSWER_SEED", "answers", true);
        missing.key("ADDRESS_HASH_KEY", "IDENTITY_SEED", "address-hash");
        let error = missing.finish().unwrap_err();
        assert!(error.problems.contains_key("ANSWER_SEED"));
        assert!(error.problems["ADDRESS_HASH_KEY"].contains("IDENTITY_SEED"));
    }
}
