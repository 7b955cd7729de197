//! Prometheus metrics of the controller (`prometheus-client`), served in the OpenMetrics
//! text format: reconciles run, reconciles failed by error, and how long they took.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Upper bounds (seconds) of the reconcile duration histogram.
const BUCKETS: [f64; 9] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

/// The content type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The label of a failed reconcile: which step failed.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    error: &'static str,
}

/// Counters shared by the reconciler and the HTTP server.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: Counter,
    failures: Family<FailureLabels, Counter>,
    duration: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        let reconciles = Counter::default();
        let failures = Family::<FailureLabels, Counter>::default();
        let duration = Histogram::new(BUCKETS);
        let mut registry = Registry::default();
        // Counters are exposed with the `_total` suffix: oras_controller_reconciles_total.
        registry.register(
            "oras_controller_reconciles",
            "OrasCache reconciles run",
            reconciles.clone(),
        );
        registry.register(
            "oras_controller_reconcile_failures",
            "OrasCache reconciles that failed, by error",
            failures.clone(),
        );
        registry.register(
            "oras_controller_reconcile_duration_seconds",
            "Time a reconcile took",
            duration.clone(),
        );
        Self {
            registry,
            reconciles,
            failures,
            duration,
        }
    }
}

impl Metrics {
    /// Records one finished reconcile; `failure` is the error's metric label.
    pub fn observe(&self, took: Duration, failure: Option<&'static str>) {
        self.reconciles.inc();
        if let Some(error) = failure {
            self.failures.get_or_create(&FailureLabels { error }).inc();
        }
        self.duration.observe(took.as_secs_f64());
    }

    /// Reconciles run so far.
    pub fn reconciles(&self) -> u64 {
        self.reconciles.get()
    }

    /// The metrics in the OpenMetrics text format ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_failures_and_the_histogram() {
        let m = Metrics::default();
        m.observe(Duration::from_millis(3), None);
        m.observe(Duration::from_millis(300), Some("apply"));
        let text = m.render();
        for line in [
            "# TYPE oras_controller_reconciles counter\n",
            "oras_controller_reconciles_total 2\n",
            "oras_controller_reconcile_failures_total{error=\"apply\"} 1\n",
            "# TYPE oras_controller_reconcile_duration_seconds histogram\n",
            "oras_controller_reconcile_duration_seconds_bucket{le=\"0.005\"} 1\n",
            "oras_controller_reconcile_duration_seconds_bucket{le=\"0.25\"} 1\n",
            "oras_controller_reconcile_duration_seconds_bucket{le=\"0.5\"} 2\n",
            "oras_controller_reconcile_duration_seconds_bucket{le=\"+Inf\"} 2\n",
            "oras_controller_reconcile_duration_seconds_count 2\n",
            "# EOF\n",
        ] {
            assert!(text.contains(line), "{line:?} in:\n{text}");
        }
        let sum: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("oras_controller_reconcile_duration_seconds_sum "))
            .unwrap_or_else(|| panic!("no sum in:\n{text}"))
            .parse()
            .unwrap();
        assert!((sum - 0.303).abs() < 1e-9, "{sum}");
    }
}
