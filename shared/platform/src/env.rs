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
