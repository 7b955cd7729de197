//! Prometheus metrics of the controller (`prometheus-client`), served in the OpenMetrics
//! text format: reconciles run, reconciles failed by step and cause, and how long they
//! took.

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

/// The labels of a failed reconcile: which step failed, and why.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    /// The step: `apply`, `write_status`, `delete`, ...
    pub error: &'static str,
    /// The cause: `conflict`, `unreachable`, `server_error`, ...
    pub cause: &'static str,
}

/// Counters shared by the reconciler and the HTTP server.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: Counter,
    failures: Family<FailureLabels, Counter>,
    /// The sum of `failures` (not exposed: Prometheus sums the family itself).
    failed: Counter,
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
            "OrasCache reconciles that failed, by step (error) and cause",
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
            failed: Counter::default(),
            duration,
        }
    }
}

impl Metrics {
    /// Records one finished reconcile, and what made it fail.
    pub fn observe(&self, took: Duration, failure: Option<FailureLabels>) {
        self.reconciles.inc();
        if let Some(labels) = failure {
            self.failures.get_or_create(&labels).inc();
            self.failed.inc();
        }
        self.duration.observe(took.as_secs_f64());
    }

    /// Reconciles run so far.
    pub fn reconciles(&self) -> u64 {
        self.reconciles.get()
    }

    /// Failed reconciles so far with these labels.
    pub fn failures(&self, labels: FailureLabels) -> u64 {
        self.failures.get_or_create(&labels).get()
    }

    /// Failed reconciles so far, whatever their labels.
    pub fn all_failures(&self) -> u64 {
        self.failed.get()
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
        let failed = FailureLabels {
            error: "apply",
            cause: "unreachable",
        };
        m.observe(Duration::from_millis(300), Some(failed));
        let text = m.render();
        for line in [
            "# TYPE oras_controller_reconciles counter\n",
            "oras_controller_reconciles_total 2\n",
            "oras_controller_reconcile_failures_total{error=\"apply\",cause=\"unreachable\"} 1\n",
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
        assert_eq!(m.failures(failed), 1);
        assert_eq!(m.all_failures(), 1);
    }
}
