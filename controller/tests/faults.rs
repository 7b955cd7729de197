//! The whole controller loop against a fake API server that misbehaves as real ones do:
//! it goes away in the middle of a reconcile, ends its watches, answers status writes
//! with 409 Conflict, and loses the cache while it is being reconciled. In each case the
//! controller converges with a bounded number of reconciles (no hot loop), and its
//! failure metrics count what happened, by cause.

mod support;

use std::time::Duration;

use oras_controller::metrics::FailureLabels;
use serde_json::json;
use support::fake_api::{FakeApi, Fault, Kind};
use support::running::{Running, is, until};

const CACHE: &str = "team-000/oras";

/// How long the API server stays away: a control-plane restart.
const OUTAGE: Duration = Duration::from_secs(30);

#[tokio::test]
async fn an_api_server_that_goes_away_mid_reconcile_is_waited_for_with_backoff() {
    let api = FakeApi::start(1).await;
    // The first reconcile has applied the StatefulSet when the server goes away.
    api.on_request("PATCH Service team-000/oras", Fault::Away(OUTAGE));
    let controller = Running::start(&api);

    until("the outage", || api.is_away()).await;
    let during = tokio::time::Instant::now();
    while api.is_away() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let failed_while_away = controller.metrics.all_failures();
    // Backoff 5 s, 10 s, 20 s: the cut request and at most the retries at 5 s and 15 s.
    assert!(
        (1..=3).contains(&failed_while_away),
        "{failed_while_away} failed reconciles in {:?} away",
        during.elapsed()
    );

    // Back: the cache is applied whole, and the watches come back on their own.
    until("the cache applied after the outage", || {
        is(&api, CACHE, "False", "RegistryNotReady")
    })
    .await;
    assert!(api.object(Kind::Service, CACHE).is_some());
    assert!(api.object(Kind::NetworkPolicy, CACHE).is_some());
    until("the watches back", || api.watching()).await;
    api.set_ready(1);
    until("ready through the new watch", || {
        is(&api, CACHE, "True", "RegistryReady")
    })
    .await;

    let metrics = controller.metrics.clone();
    controller.stop().await;
    let unreachable = metrics.failures(FailureLabels {
        error: "apply",
        cause: "unreachable",
    });
    assert_eq!(
        unreachable,
        metrics.all_failures(),
        "every failure was the outage:\n{}",
        metrics.render()
    );
    assert!(unreachable >= 2, "{}", metrics.render());
    // The failures, the reconcile that converged, the one for readiness.
    assert!(
        metrics.reconciles() <= unreachable + 3,
        "{} reconciles:\n{}",
        metrics.reconciles(),
        metrics.render()
    );
}

#[tokio::test]
async fn ended_watches_are_watched_again_without_reconciling() {
    let api = FakeApi::start(1).await;
    let controller = Running::start(&api);
    until("the cache applied", || {
        is(&api, CACHE, "False", "RegistryNotReady")
    })
    .await;
    until("the watches", || api.watching()).await;
    let applied = api.applies(Kind::StatefulSet, CACHE);
    let reconciled = controller.metrics.reconciles();

    api.end_watches();
    until("the watches again", || api.watching()).await;
    // A change after the new watch started is seen; the watch's return itself was not
    // a change.
    api.set_ready(1);
    until("ready", || is(&api, CACHE, "True", "RegistryReady")).await;

    let metrics = controller.metrics.clone();
    controller.stop().await;
    assert_eq!(api.applies(Kind::StatefulSet, CACHE), applied + 1);
    assert_eq!(metrics.reconciles(), reconciled + 1, "{}", metrics.render());
    assert_eq!(metrics.all_failures(), 0, "{}", metrics.render());
}

#[tokio::test]
async fn conflicting_status_writes_are_retried_soon_and_counted() {
    let api = FakeApi::start(1).await;
    api.conflict_status_writes(3);
    let controller = Running::start(&api);
    until("the status written", || {
        is(&api, CACHE, "False", "RegistryNotReady")
    })
    .await;

    let metrics = controller.metrics.clone();
    controller.stop().await;
    let conflicts = FailureLabels {
        error: "write_status",
        cause: "conflict",
    };
    assert_eq!(metrics.failures(conflicts), 3, "{}", metrics.render());
    assert_eq!(metrics.all_failures(), 3, "{}", metrics.render());
    assert_eq!(metrics.reconciles(), 4, "{}", metrics.render());
    assert_eq!(api.requests()["PATCH Cache"], 4);
}

#[tokio::test]
async fn a_cache_deleted_while_it_is_reconciled_ends_its_reconciles() {
    let api = FakeApi::start(2).await;
    api.on_request(
        "PATCH Service team-000/oras",
        Fault::Delete(Kind::Cache, CACHE.into()),
    );
    let controller = Running::start(&api);

    // The other cache shows the controller went on: its status is written.
    until("the other cache applied", || {
        is(&api, "team-001/oras", "False", "RegistryNotReady")
    })
    .await;
    until("the deleted cache's status write", || {
        api.requests().get("PATCH Cache").copied() == Some(2)
    })
    .await;
    until("the watches", || api.watching()).await;
    // What the reconcile applied after the deletion is the garbage collector's; the
    // controller leaves it, and a change to it brings nothing back.
    api.modify(Kind::Service, CACHE, |service| {
        service["spec"]["ports"] = json!([]);
    });
    api.set_ready(1);
    until("the other cache ready", || {
        is(&api, "team-001/oras", "True", "RegistryReady")
    })
    .await;

    let metrics = controller.metrics.clone();
    controller.stop().await;
    assert!(api.object(Kind::Cache, CACHE).is_none());
    assert_eq!(metrics.all_failures(), 0, "{}", metrics.render());
    // team-000 once (it ended at the status write), team-001 twice.
    assert_eq!(metrics.reconciles(), 3, "{}", metrics.render());
    assert_eq!(api.applies(Kind::Service, CACHE), 1);
    assert_eq!(api.requests()["PATCH Cache"], 3);
}
