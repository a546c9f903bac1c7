//! What `harness bench` measured, as JSON and as a text table with goals and ratios.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

/// p50/p95 (or p50/p99) of a latency in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Percentiles {
    pub samples: usize,
    pub p50_ms: f64,
    pub high_ms: f64,
    /// Which quantile `high_ms` is (95 or 99).
    pub high_quantile: u8,
}

impl Percentiles {
    /// From millisecond samples; `None` when there are none.
    pub fn of(samples_ms: &[f64], high_quantile: u8) -> Option<Percentiles> {
        Some(Percentiles {
            samples: samples_ms.len(),
            p50_ms: crate::load::quantile(samples_ms, 0.5)?,
            high_ms: crate::load::quantile(samples_ms, f64::from(high_quantile) / 100.0)?,
            high_quantile,
        })
    }
}

/// Login load over one protocol.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoginLoad {
    pub concurrency: usize,
    pub duration_s: f64,
    pub succeeded: usize,
    pub failed: usize,
    pub per_second: f64,
    pub latency: Option<Percentiles>,
    pub first_errors: Vec<String>,
}

/// admin-srv with unrelated pods in the cluster.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UnrelatedPods {
    pub pods: usize,
    /// How long creating them took.
    pub create_s: f64,
    pub rss_before_mib: f64,
    pub rss_after_mib: f64,
    /// Bytes admin-srv's pod network namespace received in an idle window of `window_s`.
    pub rx_bytes_idle: u64,
    pub idle_window_s: f64,
    /// Bytes it received from the first creation until `window_s` after the last one.
    pub rx_bytes_with_pods: u64,
    pub pods_window_s: f64,
}

/// Every figure of one profile; a figure is absent when its measurement failed (see `errors`).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Metrics {
    pub cluster_start_s: Option<f64>,
    pub deploy_to_ready_s: Option<f64>,
    pub registration: Option<Percentiles>,
    pub resolver_update: Option<Percentiles>,
    pub config_reload: Option<Percentiles>,
    pub login_http: Option<LoginLoad>,
    pub login_grpc: Option<LoginLoad>,
    /// Per service role (`admin`, `user`, `token`).
    pub rss_idle_mib: BTreeMap<String, f64>,
    /// Peak per service role during the HTTP login load.
    pub rss_load_mib: BTreeMap<String, f64>,
    pub unrelated_pods: Option<UnrelatedPods>,
}

/// The bench of one profile.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileBench {
    /// Short name: the profile file's stem.
    pub name: String,
    pub profile: String,
    pub implementation: String,
    pub backend: String,
    pub kubernetes_version: String,
    pub metrics: Metrics,
    /// Figures not measured because the profile does not declare their feature (figure →
    /// feature).
    pub not_declared: BTreeMap<String, String>,
    /// Measurements that failed, with the reason.
    pub errors: Vec<String>,
}

/// The whole `harness bench` output.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BenchReport {
    pub date: String,
    /// What each figure means and how it was measured.
    pub method: BTreeMap<&'static str, &'static str>,
    pub goals: BTreeMap<&'static str, &'static str>,
    pub profiles: Vec<ProfileBench>,
}

/// One table row: label, goal, and a value per profile (numeric for ratios).
struct Row {
    label: String,
    goal: &'static str,
    values: Vec<Option<f64>>,
    unit: &'static str,
}

/// The figure (key of [`ProfileBench::not_declared`]) a row shows, if it depends on a feature.
fn figure_of(label: &str) -> Option<&'static str> {
    [
        ("registration", "registration"),
        ("resolver update", "resolverUpdate"),
        ("config reload", "configReload"),
        ("HTTP", "loginHttp"),
        ("gRPC", "loginGrpc"),
    ]
    .into_iter()
    .find(|(prefix, _)| label.starts_with(prefix))
    .map(|(_, figure)| figure)
}

/// Bytes in MiB.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn rows(profiles: &[ProfileBench]) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut row = |label: &str,
                   goal: &'static str,
                   unit: &'static str,
                   get: &dyn Fn(&Metrics) -> Option<f64>| {
        rows.push(Row {
            label: label.to_string(),
            goal,
            values: profiles.iter().map(|p| get(&p.metrics)).collect(),
            unit,
        });
    };
    row("cluster start", "", "s", &|m| m.cluster_start_s);
    row("deploy to ready", "", "s", &|m| m.deploy_to_ready_s);
    row("registration p50", "", "ms", &|m| {
        m.registration.as_ref().map(|p| p.p50_ms)
    });
    row("registration p95", "", "ms", &|m| {
        m.registration.as_ref().map(|p| p.high_ms)
    });
    row("resolver update p50", "", "ms", &|m| {
        m.resolver_update.as_ref().map(|p| p.p50_ms)
    });
    row("resolver update p95", "<= 200 ms", "ms", &|m| {
        m.resolver_update.as_ref().map(|p| p.high_ms)
    });
    row("config reload p50", "", "ms", &|m| {
        m.config_reload.as_ref().map(|p| p.p50_ms)
    });
    row("config reload p95", "<= 300 ms", "ms", &|m| {
        m.config_reload.as_ref().map(|p| p.high_ms)
    });
    for (name, goal, get) in [
        (
            "HTTP",
            ">= 5000/s",
            (|m: &Metrics| m.login_http.clone()) as fn(&Metrics) -> Option<LoginLoad>,
        ),
        ("gRPC", "", |m: &Metrics| m.login_grpc.clone()),
    ] {
        row(&format!("{name} logins/s"), goal, "/s", &|m| {
            get(m).map(|l| l.per_second)
        });
        row(&format!("{name} login p50"), "", "ms", &|m| {
            get(m).and_then(|l| l.latency).map(|p| p.p50_ms)
        });
        row(&format!("{name} login p99"), "", "ms", &|m| {
            get(m).and_then(|l| l.latency).map(|p| p.high_ms)
        });
        row(&format!("{name} failed logins"), "", "", &|m| {
            get(m).map(|l| l.failed as f64)
        });
    }
    for role in ["admin", "user", "token"] {
        row(&format!("{role} RSS idle"), "<= 15 MiB", "MiB", &|m| {
            m.rss_idle_mib.get(role).copied()
        });
        row(&format!("{role} RSS under load"), "", "MiB", &|m| {
            m.rss_load_mib.get(role).copied()
        });
    }
    let unrelated = |m: &Metrics| m.unrelated_pods.clone();
    row("admin RSS, 0 unrelated pods", "", "MiB", &|m| {
        unrelated(m).map(|u| u.rss_before_mib)
    });
    row("admin RSS, with unrelated pods", "", "MiB", &|m| {
        unrelated(m).map(|u| u.rss_after_mib)
    });
    row("admin RSS growth", "<= +2 MiB", "MiB", &|m| {
        unrelated(m).map(|u| u.rss_after_mib - u.rss_before_mib)
    });
    row("admin rx, idle window", "", "KiB", &|m| {
        unrelated(m).map(|u| u.rx_bytes_idle as f64 / 1024.0)
    });
    row("admin rx, unrelated-pods window", "", "KiB", &|m| {
        unrelated(m).map(|u| u.rx_bytes_with_pods as f64 / 1024.0)
    });
    rows
}

fn format_value(value: Option<f64>, unit: &str) -> String {
    match value {
        None => "-".into(),
        Some(v) if unit == "s" => format!("{v:.1} s"),
        Some(v) if unit.is_empty() => format!("{v:.0}"),
        Some(v) if v.abs() >= 100.0 => format!("{v:.0} {unit}"),
        Some(v) => format!("{v:.1} {unit}"),
    }
}

/// The table: one column per profile, then `name/first` ratio columns when there are several.
pub fn render_table(profiles: &[ProfileBench]) -> String {
    let mut header = vec!["metric".to_string(), "goal".to_string()];
    header.extend(profiles.iter().map(|p| p.name.clone()));
    for p in profiles.iter().skip(1) {
        header.push(format!("{}/{}", p.name, profiles[0].name));
    }
    let mut lines = vec![header];
    for row in rows(profiles) {
        let mut line = vec![row.label.clone(), row.goal.to_string()];
        let figure = figure_of(&row.label);
        line.extend(row.values.iter().zip(profiles).map(|(v, p)| {
            match figure.filter(|f| v.is_none() && p.not_declared.contains_key(*f)) {
                Some(_) => "not declared".to_string(),
                None => format_value(*v, row.unit),
            }
        }));
        for value in row.values.iter().skip(1) {
            line.push(match (row.values[0], value) {
                (Some(base), Some(v)) if base != 0.0 => format!("{:.2}x", v / base),
                _ => "-".into(),
            });
        }
        lines.push(line);
    }
    let widths: Vec<usize> = (0..lines[0].len())
        .map(|i| {
            lines
                .iter()
                .map(|l| l[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for (n, line) in lines.iter().enumerate() {
        let cells: Vec<String> = line
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (cell, width))| {
                if i < 2 {
                    format!("{cell:<width$}")
                } else {
                    format!("{cell:>width$}")
                }
            })
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
        if n == 0 {
            let _ = writeln!(
                out,
                "{}",
                "-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1))
            );
        }
    }
    for p in profiles {
        for error in &p.errors {
            let _ = writeln!(out, "[{}] not measured: {error}", p.name);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bench(name: &str, start: f64, rss: f64) -> ProfileBench {
        let mut metrics = Metrics {
            cluster_start_s: Some(start),
            resolver_update: Percentiles::of(&[10.0, 20.0, 30.0], 95),
            ..Default::default()
        };
        metrics.rss_idle_mib.insert("admin".into(), rss);
        ProfileBench {
            name: name.into(),
            profile: format!("{name}.yaml"),
            implementation: name.into(),
            backend: "local".into(),
            kubernetes_version: "v1.35.4".into(),
            metrics,
            not_declared: BTreeMap::new(),
            errors: vec![],
        }
    }

    #[test]
    fn one_profile_has_no_ratio_column() {
        let table = render_table(&[bench("reference", 12.34, 5.0)]);
        let header = table.lines().next().unwrap();
        assert!(
            header.contains("reference") && !header.contains('/'),
            "{header}"
        );
        assert!(table.contains("12.3 s"), "{table}");
        let p95 = table
            .lines()
            .find(|l| l.starts_with("resolver update p95"))
            .unwrap();
        assert!(
            p95.contains("<= 200 ms") && p95.ends_with("30.0 ms"),
            "{p95}"
        );
    }

    #[test]
    fn several_profiles_get_ratios_against_the_first() {
        let mut other = bench("gomicro", 24.68, 20.0);
        other.errors.push("login load: boom".into());
        let table = render_table(&[bench("reference", 12.34, 5.0), other]);
        assert!(
            table.lines().next().unwrap().contains("gomicro/reference"),
            "{table}"
        );
        let start = table
            .lines()
            .find(|l| l.starts_with("cluster start"))
            .unwrap();
        assert!(start.ends_with("2.00x"), "{start}");
        let rss = table
            .lines()
            .find(|l| l.starts_with("admin RSS idle"))
            .unwrap();
        assert!(rss.ends_with("4.00x"), "{rss}");
        let missing = table
            .lines()
            .find(|l| l.starts_with("HTTP logins/s"))
            .unwrap();
        assert!(missing.ends_with('-'), "{missing}");
        assert!(
            table.contains("[gomicro] not measured: login load: boom"),
            "{table}"
        );
    }

    #[test]
    fn figures_of_undeclared_features_say_so() {
        let mut core_only = bench("core-only", 12.0, 5.0);
        core_only
            .not_declared
            .insert("configReload".into(), "config-live-reload".into());
        let table = render_table(&[core_only]);
        let reload = table
            .lines()
            .find(|l| l.starts_with("config reload p95"))
            .unwrap();
        assert!(reload.ends_with("not declared"), "{reload}");
        let http = table
            .lines()
            .find(|l| l.starts_with("HTTP logins/s"))
            .unwrap();
        assert!(http.ends_with('-'), "{http}");
    }
}
