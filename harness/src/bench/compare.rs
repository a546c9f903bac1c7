//! `harness bench --compare OLD.json`: every figure of an earlier run next to this run's, with
//! the change in percent, so a regression is visible.
//!
//! Figures are found by shape, not by name: every `{"value": <number>, "unit": <string>}`
//! object under a profile's `metrics` is one, named by its path (`loginHttp.perSecond`).
//! Profiles are matched by name.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::report::{FORMAT_VERSION, unit};

/// Changes smaller than this (in percent) are reported as within noise.
const NOISE_PERCENT: f64 = 5.0;

/// A figure's value and unit.
type Figures = BTreeMap<(String, String), (f64, String)>;

/// Reads an earlier bench JSON, refusing what is not one of this format.
pub(crate) fn load(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the bench JSON {}", path.display()))?;
    let value: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    check(&value).with_context(|| format!("{} cannot be compared", path.display()))?;
    Ok(value)
}

/// Checks that `report` is a bench JSON of [`FORMAT_VERSION`].
pub(crate) fn check(report: &Value) -> Result<()> {
    if !report.is_object() || report.get("profiles").is_none() {
        bail!("it is not the JSON of `harness bench` (no `profiles`)");
    }
    match report.get("formatVersion").and_then(Value::as_u64) {
        Some(v) if v == u64::from(FORMAT_VERSION) => {}
        Some(v) => bail!(
            "it has format version {v}, this harness reads version {FORMAT_VERSION}: rerun the old build's bench, or compare with the harness that wrote it"
        ),
        None => bail!(
            "it has no formatVersion: it was written before figures carried their units (format {FORMAT_VERSION}); rerun the old build's bench"
        ),
    }
    let Some(profiles) = report["profiles"].as_array() else {
        bail!("`profiles` is not a list");
    };
    if let Some(unnamed) = profiles.iter().position(|p| !p["name"].is_string()) {
        bail!("profile {} has no name", unnamed + 1);
    }
    Ok(())
}

/// Every figure of `report`, by (profile name, figure path).
fn figures(report: &Value) -> Figures {
    let mut out = Figures::new();
    for profile in report["profiles"].as_array().into_iter().flatten() {
        let name = profile["name"].as_str().unwrap_or_default().to_string();
        collect(
            &profile["metrics"],
            &mut String::new(),
            &mut |path, value, unit| {
                out.insert((name.clone(), path.to_string()), (value, unit.to_string()));
            },
        );
    }
    out
}

fn collect(value: &Value, path: &mut String, found: &mut dyn FnMut(&str, f64, &str)) {
    let Value::Object(map) = value else { return };
    if let (2, Some(number), Some(unit)) = (
        map.len(),
        map.get("value").and_then(Value::as_f64),
        map.get("unit").and_then(Value::as_str),
    ) {
        found(path, number, unit);
        return;
    }
    for (key, child) in map {
        let before = path.len();
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key);
        collect(child, path, found);
        path.truncate(before);
    }
}

/// Whether more of a figure is better (`Some(true)`), worse, or neither.
fn more_is_better(path: &str, unit: &str) -> Option<bool> {
    if path.ends_with(".failed") {
        return Some(false);
    }
    match unit {
        unit::LOGINS_PER_S | unit::REQUESTS_PER_S | unit::RATIO => Some(true),
        unit::MS | unit::SECONDS | unit::MIB | unit::BYTES => Some(false),
        _ => None,
    }
}

fn number(value: f64) -> String {
    if value.abs() >= 100.0 || value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

/// The comparison table of `old` (an earlier run) against `new`.
pub(crate) fn render(old: &Value, new: &Value) -> String {
    let (old, new) = (figures(old), figures(new));
    let mut keys: Vec<&(String, String)> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut lines = vec![
        [
            "profile", "figure", "unit", "old", "new", "change", "verdict",
        ]
        .map(String::from),
    ];
    for key in keys {
        let (profile, path) = key;
        let (old, new) = (old.get(key), new.get(key));
        let unit = new.or(old).map(|(_, u)| u.clone()).unwrap_or_default();
        let cell = |f: Option<&(f64, String)>| f.map_or("-".into(), |(v, _)| number(*v));
        let (change, verdict) = match (old, new) {
            (Some((_, old_unit)), Some(_)) if *old_unit != unit => {
                ("-".into(), format!("unit was {old_unit}"))
            }
            (Some((o, _)), Some((n, _))) if *o == 0.0 => {
                ("-".into(), if *n == 0.0 { "same" } else { "was 0" }.into())
            }
            (Some((o, _)), Some((n, _))) => {
                let percent = (n - o) / o.abs() * 100.0;
                let verdict = match more_is_better(path, &unit) {
                    _ if percent.abs() < NOISE_PERCENT => "within 5%",
                    Some(better) if better == (percent > 0.0) => "better",
                    Some(_) => "worse",
                    None => "",
                };
                (format!("{percent:+.1}%"), verdict.into())
            }
            (Some(_), None) => ("-".into(), "not in new run".into()),
            (None, _) => ("-".into(), "new figure".into()),
        };
        lines.push([
            profile.clone(),
            path.clone(),
            unit,
            cell(old),
            cell(new),
            change,
            verdict,
        ]);
    }
    crate::table::render(&lines, |column| (3..=5).contains(&column), false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/bench")
            .join(name)
    }

    #[test]
    fn two_runs_compare_figure_by_figure() {
        let old = load(&fixture("old.json")).unwrap();
        let new = load(&fixture("new.json")).unwrap();
        insta::assert_snapshot!(render(&old, &new));
    }

    #[test]
    fn a_missing_file_is_named() {
        let error = load(&fixture("no-such.json")).unwrap_err();
        let text = format!("{error:#}");
        assert!(
            text.starts_with("cannot read the bench JSON ") && text.contains("no-such.json"),
            "{text}"
        );
    }

    #[test]
    fn files_that_are_not_bench_json_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        for (content, reason) in [
            ("{not json", "is not JSON: key must be a string"),
            (
                "[1, 2]",
                "cannot be compared: it is not the JSON of `harness bench`",
            ),
            (
                r#"{"profiles": []}"#,
                "it has no formatVersion: it was written before figures carried their units",
            ),
            (
                r#"{"formatVersion": 1, "profiles": []}"#,
                "it has format version 1, this harness reads version 2",
            ),
            (
                r#"{"formatVersion": 2, "profiles": [{"metrics": {}}]}"#,
                "profile 1 has no name",
            ),
        ] {
            let path = dir.path().join("old.json");
            std::fs::write(&path, content).unwrap();
            let text = format!("{:#}", load(&path).unwrap_err());
            assert!(text.contains(reason), "{content}: {text}");
        }
    }

    #[test]
    fn figures_are_found_by_shape_at_any_depth() {
        let report = serde_json::json!({"profiles": [{"name": "p", "metrics": {
            "a": {"value": 1.5, "unit": "ms"},
            "b": {"c": {"value": 2, "unit": "MiB"}, "concurrency": 16},
            "d": {"value": 3, "unit": "s", "extra": true},
        }}]});
        let found: Vec<String> = figures(&report)
            .iter()
            .map(|((p, path), (v, u))| format!("{p} {path} {v} {u}"))
            .collect();
        assert_eq!(found, ["p a 1.5 ms", "p b.c 2 MiB"]);
    }
}
