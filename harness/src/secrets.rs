//! The secrets a run knows (the profile's demo password and signing key, the wrong passwords,
//! keys and tokens its cases used or saw) and finding them in text: the [`Redactor`] replaces
//! them, and every JWT-shaped string, by [`MARKER`] in what the harness writes; the
//! secret-hygiene cases use it to find leaks (CONTRACT.md §5).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use crate::profile::Profile;

/// What replaces a secret in everything the harness writes.
pub(crate) const MARKER: &str = "[redacted]";

/// Shortest Secret data value treated as a secret (shorter ones would blank out ordinary text).
pub(crate) const MIN_SECRET_DATA_LEN: usize = 4;

/// What a secret is; names a finding without showing the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SecretKind {
    /// The demo user's password.
    DemoPassword,
    /// A wrong password a case sent.
    WrongPassword,
    /// An `auth.api_key` value (the deployed one or one a case set).
    ApiKey,
    /// A token the implementation issued, or any JWT-shaped string.
    Token,
    /// A value of a Secret object's data.
    SecretData,
}

impl SecretKind {
    /// A phrase for reports: says what was found, never the value.
    pub fn describe(self) -> &'static str {
        match self {
            SecretKind::DemoPassword => "the demo user's password",
            SecretKind::WrongPassword => "a wrong password a case sent",
            SecretKind::ApiKey => "an auth.api_key value",
            SecretKind::Token => "a JWT (issued token)",
            SecretKind::SecretData => "a value of Secret data",
        }
    }
}

/// The secrets of one run; cases add what they send or receive. Clones share one store.
#[derive(Debug, Default, Clone)]
pub struct KnownSecrets {
    values: Arc<Mutex<BTreeMap<String, SecretKind>>>,
}

impl KnownSecrets {
    /// The profile's demo password and deployed signing key.
    pub fn for_profile(profile: &Profile) -> KnownSecrets {
        let known = KnownSecrets::default();
        let expectations = &profile.expectations;
        known.remember(SecretKind::DemoPassword, &expectations.demo_user.password);
        known.remember(SecretKind::ApiKey, &expectations.api_key);
        known
    }

    /// Adds a secret (empty values are ignored; a value keeps the kind it was first known as).
    pub fn remember(&self, kind: SecretKind, value: &str) {
        if value.is_empty() {
            return;
        }
        let mut values = self.values.lock().unwrap_or_else(|p| p.into_inner());
        values.entry(value.to_string()).or_insert(kind);
    }

    /// A redactor for everything known so far.
    pub fn redactor(&self) -> Redactor {
        let values = self.values.lock().unwrap_or_else(|p| p.into_inner());
        Redactor::new(values.iter().map(|(v, k)| (v.clone(), *k)))
    }
}

/// One secret found in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Byte range in the text.
    pub range: Range<usize>,
    pub kind: SecretKind,
    /// Neither preceded nor followed by a letter or digit (`123456` inside `.123456Z` is not).
    pub standalone: bool,
}

/// Finds and replaces known secrets and JWT-shaped strings.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Longest first, so that a secret containing another is found whole.
    secrets: Vec<(String, SecretKind)>,
}

impl Redactor {
    /// A redactor for these secrets (empty values are ignored).
    pub fn new(secrets: impl IntoIterator<Item = (String, SecretKind)>) -> Redactor {
        Redactor::default().with(secrets)
    }

    /// This redactor plus more secrets.
    pub fn with(mut self, secrets: impl IntoIterator<Item = (String, SecretKind)>) -> Redactor {
        for (value, kind) in secrets {
            if !value.is_empty() && !self.secrets.iter().any(|(v, _)| *v == value) {
                self.secrets.push((value, kind));
            }
        }
        self.secrets
            .sort_by_key(|(v, _)| std::cmp::Reverse(v.len()));
        self
    }

    /// Every known secret and JWT in `text`, in order, overlapping matches merged.
    pub fn find(&self, text: &str) -> Vec<Found> {
        let mut found: Vec<(Range<usize>, SecretKind)> = jwt_ranges(text)
            .into_iter()
            .map(|range| (range, SecretKind::Token))
            .collect();
        for (secret, kind) in &self.secrets {
            found.extend(
                text.match_indices(secret.as_str())
                    .map(|(start, s)| (start..start + s.len(), *kind)),
            );
        }
        found.sort_by_key(|(range, _)| (range.start, std::cmp::Reverse(range.end)));
        let mut merged: Vec<(Range<usize>, SecretKind)> = Vec::new();
        for (range, kind) in found {
            match merged.last_mut() {
                Some((last, _)) if range.start < last.end => last.end = last.end.max(range.end),
                _ => merged.push((range, kind)),
            }
        }
        merged
            .into_iter()
            .map(|(range, kind)| Found {
                standalone: standalone(text, &range),
                range,
                kind,
            })
            .collect()
    }

    /// `text` with every known secret and JWT replaced by [`MARKER`].
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let found = self.find(text);
        if found.is_empty() {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for Found { range, .. } in found {
            out.push_str(&text[at..range.start]);
            out.push_str(MARKER);
            at = range.end;
        }
        out.push_str(&text[at..]);
        Cow::Owned(out)
    }
}

fn standalone(text: &str, range: &Range<usize>) -> bool {
    let before = text[..range.start].chars().next_back();
    let after = text[range.end..].chars().next();
    !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
}

fn is_base64url(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_'
}

/// Byte ranges of JWT-shaped strings: three base64url segments joined by dots, the first
/// starting `eyJ` (base64 of `{"`, the start of every JWT header).
pub fn jwt_ranges(text: &str) -> Vec<Range<usize>> {
    let bytes = text.as_bytes();
    let segment_end = |from: usize| {
        let mut end = from;
        while end < bytes.len() && is_base64url(bytes[end]) {
            end += 1;
        }
        end
    };
    let mut ranges = Vec::new();
    let mut from = 0;
    while let Some(offset) = text[from..].find("eyJ") {
        let start = from + offset;
        let mut end = segment_end(start);
        let mut segments = 1;
        while segments < 3 && bytes.get(end) == Some(&b'.') && segment_end(end + 1) > end + 1 {
            end = segment_end(end + 1);
            segments += 1;
        }
        if segments == 3 {
            ranges.push(start..end);
            from = end;
        } else {
            from = start + 3;
        }
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ0aGFuZ24ifQ.c2lnbmF0dXJl_-x";

    #[test]
    fn finds_jwts_but_not_their_look_alikes() {
        let text = format!("token={JWT}, eyJno.dots, eyJa.b, {JWT}");
        let ranges = jwt_ranges(&text);
        assert_eq!(ranges.len(), 2, "{ranges:?}");
        assert_eq!(&text[ranges[0].clone()], JWT);
        assert_eq!(&text[ranges[1].clone()], JWT);
    }

    #[test]
    fn overlapping_secrets_are_replaced_once_and_standalone_is_told() {
        let redactor = Redactor::new([
            ("123456".to_string(), SecretKind::DemoPassword),
            ("key-123456-x".to_string(), SecretKind::ApiKey),
        ]);
        let text = "a key-123456-x b \"123456\" c 23:01:02.123456Z";
        assert_eq!(
            redactor.redact(text),
            "a [redacted] b \"[redacted]\" c 23:01:02.[redacted]Z"
        );
        let found = redactor.find(text);
        let kinds: Vec<(SecretKind, bool)> = found.iter().map(|f| (f.kind, f.standalone)).collect();
        assert_eq!(
            kinds,
            [
                (SecretKind::ApiKey, true),
                (SecretKind::DemoPassword, true),
                (SecretKind::DemoPassword, false)
            ]
        );
    }

    #[test]
    fn text_without_secrets_is_borrowed_unchanged() {
        let redactor = Redactor::new([("hunter2".to_string(), SecretKind::WrongPassword)]);
        assert!(matches!(
            redactor.redact("nothing here"),
            Cow::Borrowed("nothing here")
        ));
    }
}
