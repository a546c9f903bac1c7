//! What `harness bench` measured, as JSON and as a text table with goals and ratios.
//!
//! Every measured figure in the JSON is a [`Figure`], `{"value": 3124.0, "unit": "logins/s"}`;
//! plain numbers are parameters of a measurement (concurrency, quantile, cores), not figures.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use serde::ser::SerializeMap;

/// Version of the JSON layout; `--compare` refuses files of another version.
pub(crate) const FORMAT_VERSION: u32 = 2;

/// Units of the figures.
pub(crate) mod unit {
    pub(crate) const SECONDS: &str = "s";
    pub(crate) const MS: &str = "ms";
    pub(crate) const MIB: &str = "MiB";
    pub(crate) const BYTES: &str = "bytes";
    pub(crate) const PODS: &str = "pods";
    pub(crate) const SAMPLES: &str = "samples";
    pub(crate) const LOGINS: &str = "logins";
    pub(crate) const LOGINS_PER_S: &str = "logins/s";
    pub(crate) const REQUESTS: &str = "requests";
    pub(crate) const REQUESTS_PER_S: &str = "requests/s";
    /// Percent of the machine's CPU time (wall time × cores).
    pub(crate) const CPU_PERCENT: &str = "% of machine CPU";
    /// A rate divided by the baseline's rate over the same protocol.
    pub(crate) const RATIO: &str = "ratio";
}

/// One measured figure and its unit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct Figure {
    pub value: f64,
    pub unit: &'static str,
}

impl Figure {
    pub(crate) fn new(value: f64, unit: &'static str) -> Figure {
        Figure { value, unit }
    }
}

/// p50 and a high quantile (p95 or p99) of a latency in milliseconds; serialised as
/// `{"samples", "p50", "p95"}` (or `"p99"`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Percentiles {
    pub samples: usize,
    pub p50_ms: f64,
    pub high_ms: f64,
    /// Which quantile `high_ms` is (95 or 99).
    pub high_quantile: u8,
}

impl Percentiles {
    /// From millisecond samples; `None` when there are none.
    pub(crate) fn of(samples_ms: &[f64], high_quantile: u8) -> Option<Percentiles> {
        Some(Percentiles {
            samples: samples_ms.len(),
            p50_ms: crate::load::quantile(samples_ms, 0.5)?,
            high_ms: crate::load::quantile(samples_ms, f64::from(high_quantile) / 100.0)?,
            high_quantile,
        })
    }
}

impl Serialize for Percentiles {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("samples", &Figure::new(self.samples as f64, unit::SAMPLES))?;
        map.serialize_entry("p50", &Figure::new(self.p50_ms, unit::MS))?;
        map.serialize_entry(
            &format!("p{}", self.high_quantile),
            &Figure::new(self.high_ms, unit::MS),
        )?;
        map.end()
    }
}

/// One load phase (logins through admin-srv, or requests to the baseline) over one protocol.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LoadPhase {
    pub concurrency: usize,
    pub duration: Figure,
    pub succeeded: Figure,
    pub failed: Figure,
    pub per_second: Figure,
    pub latency: Option<Percentiles>,
    /// CPU time of the harness process (the load generator) during the phase.
    pub generator_cpu: Option<Figure>,
    /// CPU time of the measured pods' processes during the phase (local backend).
    pub pods_cpu: Option<Figure>,
    pub first_errors: Vec<String>,
}

/// admin-srv with unrelated pods in the cluster.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UnrelatedPods {
    pub pods: Figure,
    /// How long creating them took.
    pub create: Figure,
    pub rss_before: Figure,
    pub rss_after: Figure,
    /// Bytes admin-srv's pod network namespace received in the idle window.
    pub rx_idle: Figure,
    pub idle_window: Figure,
    /// Bytes it received from the first creation until the settle window after the last one.
    pub rx_with_pods: Figure,
    pub pods_window: Figure,
}

/// Every figure of one profile; a figure is absent when its measurement failed (see `errors`).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Metrics {
    pub cluster_start: Option<Figure>,
    pub deploy_to_ready: Option<Figure>,
    pub registration: Option<Percentiles>,
    pub resolver_update: Option<Percentiles>,
    pub config_reload: Option<Percentiles>,
    pub login_http: Option<LoadPhase>,
    pub login_grpc: Option<LoadPhase>,
    /// The cheapest unary handler on the same cluster, load generator and concurrency.
    pub baseline_http: Option<LoadPhase>,
    pub baseline_grpc: Option<LoadPhase>,
    /// Logins/s divided by the baseline's requests/s (ideal about 1/3: a login is one request
    /// plus two gRPC calls behind it).
    pub login_http_vs_baseline: Option<Figure>,
    pub login_grpc_vs_baseline: Option<Figure>,
    /// Per service role (`admin`, `user`, `token`).
    pub rss_idle: BTreeMap<String, Figure>,
    /// Peak per service role during the HTTP login load.
    pub rss_load: BTreeMap<String, Figure>,
    pub unrelated_pods: Option<UnrelatedPods>,
}

impl Metrics {
    /// Fills the baseline ratios from the login and baseline phases.
    pub(crate) fn compute_ratios(&mut self) {
        let ratio = |login: &Option<LoadPhase>, baseline: &Option<LoadPhase>| {
            let (login, baseline) = (login.as_ref()?, baseline.as_ref()?);
            (baseline.per_second.value > 0.0).then(|| {
                Figure::new(
                    login.per_second.value / baseline.per_second.value,
                    unit::RATIO,
                )
            })
        };
        self.login_http_vs_baseline = ratio(&self.login_http, &self.baseline_http);
        self.login_grpc_vs_baseline = ratio(&self.login_grpc, &self.baseline_grpc);
    }
}

/// The bench of one profile.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ProfileBench {
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
pub(crate) struct BenchReport {
    pub format_version: u32,
    pub date: String,
    /// CPU cores the machine offers this process (the denominator of CPU shares).
    pub cores: usize,
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
pub(crate) fn mib(bytes: u64) -> f64 {
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
    let value = |figure: Option<&Figure>| figure.map(|f| f.value);
    row("cluster start", "", "s", &|m| {
        value(m.cluster_start.as_ref())
    });
    row("deploy to ready", "", "s", &|m| {
        value(m.deploy_to_ready.as_ref())
    });
    type Latency = fn(&Metrics) -> Option<&Percentiles>;
    for (name, goal, get) in [
        (
            "registration",
            "",
            (|m: &Metrics| m.registration.as_ref()) as Latency,
        ),
        ("resolver update", "<= 200 ms", |m: &Metrics| {
            m.resolver_update.as_ref()
        }),
        ("config reload", "<= 300 ms", |m: &Metrics| {
            m.config_reload.as_ref()
        }),
    ] {
        row(&format!("{name} p50"), "", "ms", &|m| {
            get(m).map(|p| p.p50_ms)
        });
        row(&format!("{name} p95"), goal, "ms", &|m| {
            get(m).map(|p| p.high_ms)
        });
    }
    type Phase = fn(&Metrics) -> Option<&LoadPhase>;
    type Ratio = fn(&Metrics) -> Option<&Figure>;
    for (name, goal, login, baseline, ratio) in [
        (
            "HTTP",
            ">= 5000/s",
            (|m: &Metrics| m.login_http.as_ref()) as Phase,
            (|m: &Metrics| m.baseline_http.as_ref()) as Phase,
            (|m: &Metrics| m.login_http_vs_baseline.as_ref()) as Ratio,
        ),
        (
            "gRPC",
            "",
            |m: &Metrics| m.login_grpc.as_ref(),
            |m: &Metrics| m.baseline_grpc.as_ref(),
            |m: &Metrics| m.login_grpc_vs_baseline.as_ref(),
        ),
    ] {
        row(&format!("{name} logins/s"), goal, "/s", &|m| {
            login(m).map(|l| l.per_second.value)
        });
        row(&format!("{name} login p50"), "", "ms", &|m| {
            login(m).and_then(|l| l.latency.as_ref()).map(|p| p.p50_ms)
        });
        row(&format!("{name} login p99"), "<= 5 ms", "ms", &|m| {
            login(m).and_then(|l| l.latency.as_ref()).map(|p| p.high_ms)
        });
        row(&format!("{name} failed logins"), "0", "", &|m| {
            login(m).map(|l| l.failed.value)
        });
        row(&format!("{name} load generator CPU"), "", "%", &|m| {
            value(login(m).and_then(|l| l.generator_cpu.as_ref()))
        });
        row(&format!("{name} services CPU"), "", "%", &|m| {
            value(login(m).and_then(|l| l.pods_cpu.as_ref()))
        });
        row(&format!("baseline {name} requests/s"), "", "/s", &|m| {
            baseline(m).map(|l| l.per_second.value)
        });
        row(&format!("baseline {name} p99"), "", "ms", &|m| {
            baseline(m)
                .and_then(|l| l.latency.as_ref())
                .map(|p| p.high_ms)
        });
        row(
            &format!("baseline {name} load generator CPU"),
            "",
            "%",
            &|m| value(baseline(m).and_then(|l| l.generator_cpu.as_ref())),
        );
        row(&format!("{name} logins / baseline"), ">= 0.25", "x", &|m| {
            value(ratio(m))
        });
    }
    for role in ["admin", "user", "token"] {
        row(&format!("{role} RSS idle"), "<= 12 MiB", "MiB", &|m| {
            value(m.rss_idle.get(role))
        });
        row(
            &format!("{role} RSS under load"),
            "<= 15 MiB",
            "MiB",
            &|m| value(m.rss_load.get(role)),
        );
    }
    type Unrelated = fn(&UnrelatedPods) -> f64;
    for (label, goal, unit, get) in [
        (
            "admin RSS, 0 unrelated pods",
            "",
            "MiB",
            (|u: &UnrelatedPods| u.rss_before.value) as Unrelated,
        ),
        ("admin RSS, with unrelated pods", "", "MiB", |u| {
            u.rss_after.value
        }),
        ("admin RSS growth", "<= +2 MiB", "MiB", |u| {
            u.rss_after.value - u.rss_before.value
        }),
        ("admin rx, idle window", "", "KiB", |u| {
            u.rx_idle.value / 1024.0
        }),
        ("admin rx, unrelated-pods window", "", "KiB", |u| {
            u.rx_with_pods.value / 1024.0
        }),
    ] {
        row(label, goal, unit, &|m| m.unrelated_pods.as_ref().map(get));
    }
    rows
}

fn format_value(value: Option<f64>, unit: &str) -> String {
    match value {
        None => "-".into(),
        Some(v) if unit == "s" => format!("{v:.1} s"),
        Some(v) if unit == "x" => format!("{v:.2}"),
        Some(v) if unit.is_empty() => format!("{v:.0}"),
        Some(v) if v.abs() >= 100.0 => format!("{v:.0} {unit}"),
        Some(v) => format!("{v:.1} {unit}"),
    }
}

/// The table: one column per profile, then `name/first` ratio columns when there are several.
pub(crate) fn render_table(profiles: &[ProfileBench]) -> String {
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
    let mut out = crate::table::render(&lines, |column| column >= 2, true);
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
            cluster_start: Some(Figure::new(start, unit::SECONDS)),
            resolver_update: Percentiles::of(&[10.0, 20.0, 30.0], 95),
            ..Default::default()
        };
        metrics
            .rss_idle
            .insert("admin".into(), Figure::new(rss, unit::MIB));
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

    fn phase(per_second: f64, rate: &'static str) -> LoadPhase {
        LoadPhase {
            concurrency: 16,
            duration: Figure::new(10.0, unit::SECONDS),
            succeeded: Figure::new(per_second * 10.0, unit::LOGINS),
            failed: Figure::new(0.0, unit::LOGINS),
            per_second: Figure::new(per_second, rate),
            latency: Percentiles::of(&[1.0, 2.0, 4.0], 99),
            generator_cpu: Some(Figure::new(41.5, unit::CPU_PERCENT)),
            pods_cpu: None,
            first_errors: vec![],
        }
    }

    #[test]
    fn logins_are_divided_by_the_baseline_of_their_protocol() {
        let mut profile = bench("reference", 12.0, 5.0);
        let metrics = &mut profile.metrics;
        metrics.login_http = Some(phase(3000.0, unit::LOGINS_PER_S));
        metrics.baseline_http = Some(phase(12000.0, unit::REQUESTS_PER_S));
        metrics.login_grpc = Some(phase(2000.0, unit::LOGINS_PER_S));
        metrics.compute_ratios();
        assert_eq!(
            metrics.login_http_vs_baseline,
            Some(Figure::new(0.25, unit::RATIO))
        );
        assert_eq!(metrics.login_grpc_vs_baseline, None, "no gRPC baseline");
        let table = render_table(&[profile.clone()]);
        let line = |label: &str| table.lines().find(|l| l.starts_with(label)).unwrap();
        assert!(line("HTTP logins / baseline").ends_with("0.25"), "{table}");
        assert!(
            line("HTTP load generator CPU").ends_with("41.5 %"),
            "{table}"
        );
        assert!(
            line("baseline HTTP requests/s").ends_with("12000 /s"),
            "{table}"
        );
        let json = serde_json::to_value(&profile.metrics).unwrap();
        assert_eq!(
            json["loginHttp"]["latency"],
            serde_json::json!({
                "samples": {"value": 3.0, "unit": "samples"},
                "p50": {"value": 2.0, "unit": "ms"},
                "p99": {"value": 4.0, "unit": "ms"},
            })
        );
        assert_eq!(
            json["loginHttpVsBaseline"],
            serde_json::json!({"value": 0.25, "unit": "ratio"})
        );
    }
}
