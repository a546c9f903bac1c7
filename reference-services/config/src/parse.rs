//! Parsing entries into JSON trees.
//!
//! YAML goes through serde-saphyr configured for YAML 1.2 semantics where it offers an option:
//! - `strict_booleans`: only `true`/`false` (any case) are booleans; `yes`, `no`, `on`, `off`
//!   stay strings;
//! - `leading_zero_numbers_as_strings`: `0755` or `007` stay the strings as written (no octal
//!   and no lost leading zero); explicit `0o755`/`0x1F` are still numbers;
//! - `underscored_numbers_as_strings`: `1_000` stays a string (YAML 1.2 has no digit separators);
//! - duplicate keys are an error (naming the key), and error messages carry no source snippet
//!   so that a secret on a neighbouring line never reaches the logs.
//!
//! Merge keys (`<<`) keep saphyr's default (expanded). JSON duplicates are rejected too
//! (serde_json alone would keep the last one silently). An empty document is an empty mapping;
//! any other top level than a mapping is an error, since entries merge at the root.

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::{ConfigError, Entry, Format};

/// What an entry contributes: a tree to merge, or raw text kept aside.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    /// A parsed YAML/JSON mapping.
    Tree(Map<String, Value>),
    /// The text of an entry without extension.
    Raw(String),
}

/// An entry together with its parsed content.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedEntry {
    pub entry: Entry,
    pub content: Content,
}

/// Parses `entry` by its format and logs `config loaded: <key> format: <format>` at DEBUG.
pub fn parse_entry(entry: Entry) -> Result<ParsedEntry, ConfigError> {
    let content = match entry.format {
        Format::Raw => Content::Raw(entry.value.clone()),
        Format::Yaml => Content::Tree(parse_yaml(&entry.key, &entry.value)?),
        Format::Json => Content::Tree(parse_json(&entry.key, &entry.value)?),
    };
    tracing::debug!("config loaded: {} format: {}", entry.key, entry.format);
    Ok(ParsedEntry { entry, content })
}

/// Parses a YAML document into a mapping (see the module docs for the YAML 1.2 options).
pub fn parse_yaml(key: &str, text: &str) -> Result<Map<String, Value>, ConfigError> {
    let fail = |reason: String| ConfigError::Parse {
        key: key.to_owned(),
        format: Format::Yaml,
        reason,
    };
    if is_blank_yaml(text) {
        return Ok(Map::new());
    }
    let options = serde_saphyr::options! {
        strict_booleans: true,
        leading_zero_numbers_as_strings: true,
        underscored_numbers_as_strings: true,
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
        with_snippet: false,
    };
    let value: Value = serde_saphyr::from_str_with_options(text, options)
        .map_err(|err| fail(yaml_reason(&err.to_string())))?;
    top_level_mapping(value).map_err(fail)
}

/// Parses a JSON document into a mapping, rejecting duplicate keys.
pub fn parse_json(key: &str, text: &str) -> Result<Map<String, Value>, ConfigError> {
    let fail = |reason: String| ConfigError::Parse {
        key: key.to_owned(),
        format: Format::Json,
        reason,
    };
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = UniqueKeys
        .deserialize(&mut deserializer)
        .and_then(|value| deserializer.end().map(|()| value))
        .map_err(|err| fail(err.to_string()))?;
    top_level_mapping(value).map_err(fail)
}

/// True when a YAML text holds no node at all (only blank lines, comments or `---`).
fn is_blank_yaml(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .all(|line| line.is_empty() || line.starts_with('#') || line == "---" || line == "...")
}

fn top_level_mapping(value: Value) -> Result<Map<String, Value>, String> {
    match value {
        Value::Object(map) => Ok(map),
        Value::Null => Ok(Map::new()),
        other => Err(format!(
            "the top level must be a mapping, found {}",
            crate::path::type_name(&other)
        )),
    }
}

/// saphyr's message on one line, without its hints to Rust callers (which option to set or
/// which function to call instead): the reader of this message edits YAML, not code.
fn yaml_reason(message: &str) -> String {
    let one_line = message.split_whitespace().collect::<Vec<_>>().join(" ");
    one_line
        .replace(", set DuplicateKeyPolicy in Options if acceptable", "")
        .replace(
            "; use from_str_multiple or from_str_multiple_with_options",
            " (an entry holds one document)",
        )
}

/// Builds a `serde_json::Value` like its own `Deserialize`, but fails on a repeated key.
#[derive(Clone, Copy)]
struct UniqueKeys;

impl<'de> DeserializeSeed<'de> for UniqueKeys {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for UniqueKeys {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                return Err(de::Error::custom(format_args!("duplicate key `{key}`")));
            }
            let value = access.next_value_seed(self)?;
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn yaml(text: &str) -> Value {
        Value::Object(parse_yaml("t/cm/config.yaml", text).unwrap())
    }

    fn yaml_error(text: &str) -> String {
        parse_yaml("t/cm/config.yaml", text)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn yaml_maps_lists_and_scalars_become_json() {
        let tree = yaml(
            "server:\n  http:\n    addr: 0.0.0.0:8080\n    timeout: 1s\n    origins: ['*']\n    \
             port: 8080\n    ratio: 0.5\n    enabled: true\n    nothing: ~\n",
        );
        assert_eq!(
            tree,
            json!({"server": {"http": {
                "addr": "0.0.0.0:8080", "timeout": "1s", "origins": ["*"],
                "port": 8080, "ratio": 0.5, "enabled": true, "nothing": null
            }}})
        );
    }

    #[test]
    fn yaml_1_1_surprises_are_plain_strings() {
        let tree = yaml("a: no\nb: yes\nc: off\nd: 0755\ne: 1_000\nf: True\ng: 0o17\n");
        assert_eq!(tree["a"], json!("no"));
        assert_eq!(tree["b"], json!("yes"));
        assert_eq!(tree["c"], json!("off"));
        assert_eq!(tree["d"], json!("0755"));
        assert_eq!(tree["e"], json!("1_000"));
        assert_eq!(tree["f"], json!(true));
        assert_eq!(tree["g"], json!(15));
    }

    #[test]
    fn empty_yaml_is_an_empty_mapping() {
        assert_eq!(yaml(""), json!({}));
        assert_eq!(yaml("# only a comment\n---\n"), json!({}));
    }

    #[test]
    fn yaml_duplicate_keys_are_rejected_naming_the_key() {
        let message = yaml_error("auth:\n  api_key: a\n  api_key: b\n");
        assert!(
            message.starts_with("t/cm/config.yaml: invalid yaml:"),
            "{message}"
        );
        assert!(message.contains("api_key"), "{message}");
        assert!(
            message.contains("duplicate mapping key: api_key"),
            "{message}"
        );
        assert!(message.contains("at line 3"), "{message}");
        assert!(!message.contains("DuplicateKeyPolicy"), "{message}");
    }

    #[test]
    fn malformed_yaml_is_rejected_on_one_line() {
        let message = yaml_error("server: [unclosed\n  other: 1\n");
        assert!(
            message.starts_with("t/cm/config.yaml: invalid yaml:"),
            "{message}"
        );
        assert!(!message.contains('\n'), "{message}");
    }

    #[test]
    fn several_documents_in_one_entry_are_rejected() {
        let message = yaml_error("a: 1\n---\nb: 2\n");
        assert!(
            message.contains("multiple YAML documents detected (an entry holds one document)"),
            "{message}"
        );
    }

    #[test]
    fn non_mapping_top_level_is_rejected() {
        let message = yaml_error("- a\n- b\n");
        assert!(
            message.contains("top level must be a mapping, found a list"),
            "{message}"
        );
        let message = parse_json("x.json", "42").unwrap_err().to_string();
        assert!(message.contains("found a number"), "{message}");
    }

    #[test]
    fn json_parses_into_a_mapping() {
        let tree = parse_json("t/cm/extra.json", r#"{"a": {"b": [1, "x", null, 2.5]}}"#).unwrap();
        assert_eq!(
            Value::Object(tree),
            json!({"a": {"b": [1, "x", null, 2.5]}})
        );
    }

    #[test]
    fn json_duplicate_keys_and_syntax_errors_are_rejected() {
        let message = parse_json("t/cm/extra.json", r#"{"a": 1, "a": 2}"#)
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with("t/cm/extra.json: invalid json:"),
            "{message}"
        );
        assert!(message.contains("duplicate key `a`"), "{message}");
        let message = parse_json("t/cm/extra.json", r#"{"a": "#)
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with("t/cm/extra.json: invalid json:"),
            "{message}"
        );
        let message = parse_json("t/cm/extra.json", r#"{} {}"#)
            .unwrap_err()
            .to_string();
        assert!(message.contains("trailing"), "{message}");
    }

    #[test]
    fn raw_entries_keep_their_text() {
        let parsed = parse_entry(Entry::new("t/cm/api_key", "secret\n").unwrap()).unwrap();
        assert_eq!(parsed.content, Content::Raw("secret\n".into()));
    }
}
