//! Merging trees: later sources win leaf by leaf.

use serde_json::{Map, Value};

/// Merges `overlay` into `base`: mappings merge key by key, recursively; anything else in
/// `overlay` (scalar, list, null, or a mapping over a non-mapping) replaces what `base` had.
pub fn merge(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Object(base), Value::Object(overlay)) => merge_maps(base, overlay),
        (base, overlay) => *base = overlay,
    }
}

/// [`merge`] for two mappings.
pub fn merge_maps(base: &mut Map<String, Value>, overlay: Map<String, Value>) {
    for (key, value) in overlay {
        match base.get_mut(&key) {
            Some(existing) => merge(existing, value),
            None => {
                base.insert(key, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn merged(base: Value, overlay: Value) -> Value {
        let mut base = base;
        merge(&mut base, overlay);
        base
    }

    #[test]
    fn maps_merge_leaf_by_leaf() {
        let result = merged(
            json!({"server": {"http": {"addr": ":8080", "timeout": "1s"}, "grpc": {"addr": ":9090"}}}),
            json!({"server": {"http": {"timeout": "5s"}}, "auth": {"api_key": "k"}}),
        );
        assert_eq!(
            result,
            json!({
                "server": {"http": {"addr": ":8080", "timeout": "5s"}, "grpc": {"addr": ":9090"}},
                "auth": {"api_key": "k"}
            })
        );
    }

    #[test]
    fn lists_are_replaced_not_concatenated() {
        let result = merged(
            json!({"origins": ["a", "b", "c"]}),
            json!({"origins": ["z"]}),
        );
        assert_eq!(result, json!({"origins": ["z"]}));
    }

    #[test]
    fn type_changes_replace_the_whole_value() {
        assert_eq!(
            merged(json!({"a": {"b": 1}}), json!({"a": "flat"})),
            json!({"a": "flat"})
        );
        assert_eq!(
            merged(json!({"a": "flat"}), json!({"a": {"b": 1}})),
            json!({"a": {"b": 1}})
        );
        assert_eq!(
            merged(json!({"a": 1}), json!({"a": null})),
            json!({"a": null})
        );
    }

    #[test]
    fn key_order_of_the_base_is_kept_and_new_keys_follow() {
        let result = merged(json!({"b": 1, "a": 2}), json!({"c": 3, "b": 4}));
        let keys: Vec<_> = result.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["b", "a", "c"]);
    }
}
