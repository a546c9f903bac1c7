//! Dotted paths into a tree: `server.http.addr`, with numeric segments indexing lists
//! (`server.http.origins.0`). Keys that contain a `.` cannot be addressed.

use serde_json::Value;

/// The value at `path`, or the whole tree for an empty path.
pub fn lookup<'a>(tree: &'a Value, path: &str) -> Option<&'a Value> {
    if path.is_empty() {
        return Some(tree);
    }
    path.split('.').try_fold(tree, |node, segment| match node {
        Value::Object(map) => map.get(segment),
        Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// `parent.child`, or `child` at the root.
pub fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_owned()
    } else {
        format!("{parent}.{child}")
    }
}

/// A word for the JSON type of `value`, for error messages.
pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn lookup_walks_maps_and_lists() {
        let tree = json!({"server": {"http": {"addr": ":8080", "origins": ["a", "b"]}}});
        assert_eq!(lookup(&tree, "server.http.addr"), Some(&json!(":8080")));
        assert_eq!(lookup(&tree, "server.http.origins.1"), Some(&json!("b")));
        assert_eq!(lookup(&tree, "server.http.origins.2"), None);
        assert_eq!(lookup(&tree, "server.grpc"), None);
        assert_eq!(lookup(&tree, "server.http.addr.x"), None);
        assert_eq!(lookup(&tree, ""), Some(&tree));
    }

    #[test]
    fn join_omits_the_dot_at_the_root() {
        assert_eq!(join("", "a"), "a");
        assert_eq!(join("a.b", "c"), "a.b.c");
    }
}
