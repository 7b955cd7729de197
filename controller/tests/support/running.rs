//! The controller running in this process against a [`FakeApi`], and the waits the
//! tests that drive it share.

#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use oras_controller::controller::{self, Shutdown};
use oras_controller::metrics::Metrics;
use oras_controller::{Context, Settings};

use super::fake_api::{FakeApi, Kind};

/// Upper bound of every wait, so that a broken loop fails instead of hanging. Nothing is
/// asserted about how long a step takes.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Waits until `done`, at most [`PATIENCE`].
pub async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let waited = tokio::time::timeout(PATIENCE, async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "gave up waiting for {what}");
}

/// `future`, at most [`PATIENCE`].
pub async fn within<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future)
        .await
        .expect("the controller stops")
}

/// The status and reason of the cache's Ready condition.
pub fn ready(api: &FakeApi, key: &str) -> Option<(String, String)> {
    let cache = api.object(Kind::Cache, key)?;
    let condition = &cache["status"]["conditions"][0];
    Some((
        condition["status"].as_str()?.to_string(),
        condition["reason"].as_str()?.to_string(),
    ))
}

/// Whether the cache's Ready condition has this status and reason.
pub fn is(api: &FakeApi, key: &str, status: &str, reason: &str) -> bool {
    ready(api, key) == Some((status.to_string(), reason.to_string()))
}

/// The controller running in this process against a fake API server.
pub struct Running {
    /// Its metrics.
    pub metrics: Arc<Metrics>,
    /// Its readiness (`/readyz`).
    pub ready: Arc<AtomicBool>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    pub fn start(api: &FakeApi) -> Self {
        let metrics = Arc::new(Metrics::default());
        let ctx = Arc::new(Context::new(
            api.client(),
            Settings::default(),
            metrics.clone(),
            None,
        ));
        let ready = Arc::new(AtomicBool::new(false));
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(controller::run(ctx, ready.clone(), Shutdown::On(stopped)));
        Self {
            metrics,
            ready,
            stop,
            task,
        }
    }

    /// Whether it has listed the caches.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Stops it and waits until it has.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        within(self.task).await.expect("the controller task");
    }
}
