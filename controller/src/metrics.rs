//! Prometheus metrics of the controller, rendered in the text exposition format by hand:
//! three families do not need a metrics library.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the reconcile duration histogram.
const BUCKETS: [f64; 9] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

/// Counters shared by the reconciler and the HTTP server.
#[derive(Debug, Default)]
pub struct Metrics {
    reconciles: AtomicU64,
    failures: Mutex<BTreeMap<&'static str, u64>>,
    buckets: [AtomicU64; BUCKETS.len()],
    duration_count: AtomicU64,
    duration_sum_micros: AtomicU64,
}

impl Metrics {
    /// Records one finished reconcile; `failure` is the error's metric label.
    pub fn observe(&self, took: Duration, failure: Option<&'static str>) {
        self.reconciles.fetch_add(1, Ordering::Relaxed);
        if let Some(label) = failure {
            // A poisoned lock only means another thread panicked while counting; the
            // map itself is still a valid map.
            let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
            *failures.entry(label).or_default() += 1;
        }
        let secs = took.as_secs_f64();
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            if secs <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.duration_count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.duration_sum_micros
            .fetch_add(micros, Ordering::Relaxed);
    }

    /// Reconciles run so far.
    pub fn reconciles(&self) -> u64 {
        self.reconciles.load(Ordering::Relaxed)
    }

    /// The metrics in the Prometheus text format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail: the results below are always Ok.
        let _ = writeln!(
            out,
            "# HELP oras_controller_reconciles_total OrasCache reconciles run.\n\
             # TYPE oras_controller_reconciles_total counter\n\
             oras_controller_reconciles_total {}",
            self.reconciles()
        );
        let _ = writeln!(
            out,
            "# HELP oras_controller_reconcile_failures_total OrasCache reconciles that failed, by error.\n\
             # TYPE oras_controller_reconcile_failures_total counter"
        );
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        for (label, count) in failures.iter() {
            let _ = writeln!(
                out,
                "oras_controller_reconcile_failures_total{{error=\"{label}\"}} {count}"
            );
        }
        drop(failures);
        let _ = writeln!(
            out,
            "# HELP oras_controller_reconcile_duration_seconds Time a reconcile took.\n\
             # TYPE oras_controller_reconcile_duration_seconds histogram"
        );
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            let _ = writeln!(
                out,
                "oras_controller_reconcile_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.duration_count.load(Ordering::Relaxed);
        let sum = self.duration_sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "oras_controller_reconcile_duration_seconds_bucket{{le=\"+Inf\"}} {count}\n\
             oras_controller_reconcile_duration_seconds_sum {sum}\n\
             oras_controller_reconcile_duration_seconds_count {count}"
        );
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
        assert!(
            text.contains("oras_controller_reconciles_total 2\n"),
            "{text}"
        );
        assert!(text.contains("oras_controller_reconcile_failures_total{error=\"apply\"} 1\n"));
        assert!(
            text.contains("oras_controller_reconcile_duration_seconds_bucket{le=\"0.005\"} 1\n")
        );
        assert!(text.contains("oras_controller_reconcile_duration_seconds_bucket{le=\"0.5\"} 2\n"));
        assert!(
            text.contains("oras_controller_reconcile_duration_seconds_bucket{le=\"+Inf\"} 2\n")
        );
        assert!(text.contains("oras_controller_reconcile_duration_seconds_count 2\n"));
        assert!(text.contains("oras_controller_reconcile_duration_seconds_sum 0.303\n"));
    }
}
