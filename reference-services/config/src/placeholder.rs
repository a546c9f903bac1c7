//! `${path}` / `${path:default}` placeholders in string values.
//!
//! Rules:
//! - A string that is exactly one placeholder is replaced by the value at `path` in the merged
//!   tree, whatever its JSON type (a mapping, a list, a number...). When the path is absent (or
//!   holds null) the default is used, as a string.
//! - Placeholders inside a longer string are interpolated: the referenced value must be a
//!   string, number or boolean.
//! - The path ends at the first `:`; the default is everything after it up to the first `}`
//!   (so `${server.http.addr:0.0.0.0:8080}` has default `0.0.0.0:8080`, and `${x:}` defaults to
//!   the empty string). Paths are dotted, see [`crate::path`].
//! - A placeholder whose path is absent and that has no default is an error (Go-Micro would
//!   substitute an empty string; an empty secret is worse than a clear failure).
//! - `$${` is an escape that stands for a literal `${`; an unterminated `${` is an error.
//! - Referenced values are themselves resolved; a reference loop (`a: ${b}`, `b: ${a}`, or a
//!   value referring to its own ancestor) is reported as a [`ConfigError::PlaceholderCycle`].
//!   Lookups walk the merged tree as written: a path cannot pass through a placeholder.
//! - Mapping keys are never resolved.

use serde_json::{Map, Value};

use crate::ConfigError;
use crate::path;

/// Returns `tree` with every placeholder resolved against `tree` itself.
pub fn resolve(tree: &Value) -> Result<Value, ConfigError> {
    Resolver {
        root: tree,
        stack: Vec::new(),
    }
    .resolve_node(tree, "")
}

/// A piece of a string value.
#[derive(Debug, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    Reference {
        path: &'a str,
        default: Option<&'a str>,
    },
}

/// Splits a string into literal text and references.
/// Messages never quote the text: it may be a secret.
fn parse_template(text: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        if rest[..start].ends_with('$') {
            pieces.push(Piece::Text(&rest[..start - 1]));
            pieces.push(Piece::Text("${"));
            rest = &rest[start + 2..];
            continue;
        }
        pieces.push(Piece::Text(&rest[..start]));
        let inner_and_rest = &rest[start + 2..];
        let end = inner_and_rest
            .find('}')
            .ok_or("unterminated placeholder (write `$${` for a literal `${`)")?;
        let inner = &inner_and_rest[..end];
        let (path, default) = match inner.split_once(':') {
            Some((path, default)) => (path.trim(), Some(default)),
            None => (inner.trim(), None),
        };
        if path.is_empty() {
            return Err("empty placeholder path".into());
        }
        pieces.push(Piece::Reference { path, default });
        rest = &inner_and_rest[end + 1..];
    }
    pieces.push(Piece::Text(rest));
    pieces.retain(|piece| *piece != Piece::Text(""));
    Ok(pieces)
}

struct Resolver<'a> {
    root: &'a Value,
    /// Paths of the nodes being resolved, outermost first (for cycle detection).
    stack: Vec<String>,
}

impl Resolver<'_> {
    fn resolve_node(&mut self, node: &Value, at: &str) -> Result<Value, ConfigError> {
        if let Some(first) = self.stack.iter().position(|entered| entered == at) {
            let mut chain = self.stack[first..].to_vec();
            chain.push(at.to_owned());
            return Err(ConfigError::PlaceholderCycle {
                chain: chain.join(" -> "),
            });
        }
        self.stack.push(at.to_owned());
        let resolved = match node {
            Value::Object(map) => {
                let mut out = Map::with_capacity(map.len());
                for (key, child) in map {
                    out.insert(key.clone(), self.resolve_node(child, &path::join(at, key))?);
                }
                Ok(Value::Object(out))
            }
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| self.resolve_node(item, &path::join(at, &i.to_string())))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            Value::String(text) => self.resolve_string(text, at),
            scalar => Ok(scalar.clone()),
        };
        self.stack.pop();
        resolved
    }

    fn resolve_string(&mut self, text: &str, at: &str) -> Result<Value, ConfigError> {
        let pieces = parse_template(text).map_err(|reason| ConfigError::Placeholder {
            at: at.to_owned(),
            reason,
        })?;
        if let [Piece::Reference { path, default }] = pieces.as_slice() {
            return self.reference(path, *default, at);
        }
        let mut out = String::with_capacity(text.len());
        for piece in pieces {
            match piece {
                Piece::Text(literal) => out.push_str(literal),
                Piece::Reference { path, default } => match self.reference(path, default, at)? {
                    Value::String(s) => out.push_str(&s),
                    Value::Number(n) => out.push_str(&n.to_string()),
                    Value::Bool(b) => out.push_str(if b { "true" } else { "false" }),
                    other => {
                        return Err(ConfigError::Placeholder {
                            at: at.to_owned(),
                            reason: format!(
                                "${{{path}}} is {} and cannot be embedded in a string",
                                path::type_name(&other)
                            ),
                        });
                    }
                },
            }
        }
        Ok(Value::String(out))
    }

    fn reference(
        &mut self,
        target: &str,
        default: Option<&str>,
        at: &str,
    ) -> Result<Value, ConfigError> {
        match (path::lookup(self.root, target), default) {
            (Some(Value::Null) | None, Some(default)) => Ok(Value::String(default.to_owned())),
            (Some(value), _) => self.resolve_node(value, target),
            (None, None) => Err(ConfigError::Placeholder {
                at: at.to_owned(),
                reason: format!("${{{target}}} is not set and has no default"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn error(tree: Value) -> String {
        resolve(&tree).unwrap_err().to_string()
    }

    #[test]
    fn whole_value_placeholders_keep_the_referenced_type() {
        let tree = json!({
            "defaults": {"timeout": "1s", "port": 9090, "origins": ["a"], "tls": {"on": false}},
            "server": {"timeout": "${defaults.timeout}", "port": "${ defaults.port }",
                       "origins": "${defaults.origins}", "tls": "${defaults.tls}",
                       "first": "${defaults.origins.0}"}
        });
        let resolved = resolve(&tree).unwrap();
        assert_eq!(
            resolved["server"],
            json!({"timeout": "1s", "port": 9090, "origins": ["a"], "tls": {"on": false}, "first": "a"})
        );
    }

    #[test]
    fn defaults_apply_when_the_path_is_absent_or_null() {
        let tree = json!({
            "nothing": null,
            "a": "${auth.api_key:some_api_key}",
            "b": "${server.http.addr:0.0.0.0:8080}",
            "c": "${nothing:fallback}",
            "d": "${missing:}",
        });
        let resolved = resolve(&tree).unwrap();
        assert_eq!(resolved["a"], json!("some_api_key"));
        assert_eq!(resolved["b"], json!("0.0.0.0:8080"));
        assert_eq!(resolved["c"], json!("fallback"));
        assert_eq!(resolved["d"], json!(""));
    }

    #[test]
    fn present_values_win_over_defaults() {
        let tree = json!({"auth": {"api_key": "real"}, "key": "${auth.api_key:some_api_key}"});
        assert_eq!(resolve(&tree).unwrap()["key"], json!("real"));
    }

    #[test]
    fn embedded_placeholders_interpolate_scalars() {
        let tree = json!({
            "host": "users", "port": 9090, "tls": true,
            "url": "http://${host}:${port}/v1?tls=${tls}&x=${absent:y}",
        });
        assert_eq!(
            resolve(&tree).unwrap()["url"],
            json!("http://users:9090/v1?tls=true&x=y")
        );
    }

    #[test]
    fn embedding_a_mapping_is_an_error() {
        let message = error(json!({"m": {"a": 1}, "s": "x-${m}"}));
        assert_eq!(
            message,
            "placeholder at `s`: ${m} is a mapping and cannot be embedded in a string"
        );
    }

    #[test]
    fn chains_of_references_resolve() {
        let tree = json!({"a": "${b}", "b": "${c}-b", "c": "${d:c}"});
        let resolved = resolve(&tree).unwrap();
        assert_eq!(resolved, json!({"a": "c-b", "b": "c-b", "c": "c"}));
    }

    #[test]
    fn missing_without_default_is_an_error_naming_both_paths() {
        let message = error(json!({"server": {"addr": "${net.addr}"}}));
        assert_eq!(
            message,
            "placeholder at `server.addr`: ${net.addr} is not set and has no default"
        );
    }

    #[test]
    fn cycles_are_reported_not_followed() {
        assert_eq!(
            error(json!({"a": "${b}", "b": "${a}"})),
            "placeholder cycle: a -> b -> a"
        );
        assert_eq!(error(json!({"a": "${a}"})), "placeholder cycle: a -> a");
        assert_eq!(
            error(json!({"a": {"b": "x${a}"}})),
            "placeholder cycle: a -> a.b -> a"
        );
    }

    #[test]
    fn escapes_and_malformed_placeholders() {
        let tree = json!({"a": "cost: $${price}", "b": "$$"});
        assert_eq!(
            resolve(&tree).unwrap(),
            json!({"a": "cost: ${price}", "b": "$$"})
        );
        assert_eq!(
            error(json!({"a": "${unclosed"})),
            "placeholder at `a`: unterminated placeholder (write `$${` for a literal `${`)"
        );
        assert_eq!(
            error(json!({"a": "${ :x}"})),
            "placeholder at `a`: empty placeholder path"
        );
    }

    #[test]
    fn strings_without_placeholders_and_keys_are_untouched() {
        let tree = json!({"${k}": "plain $ text {}", "n": [1, null, "${n.0}"]});
        assert_eq!(
            resolve(&tree).unwrap(),
            json!({"${k}": "plain $ text {}", "n": [1, null, 1]})
        );
    }
}
