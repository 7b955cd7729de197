//! `oras-agent collect URL`: asks a registry pod's maintenance endpoint for one garbage
//! collection and waits for its summary.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use oras_contract::retention::CollectionSummary;

use super::server::{MIN_TOKEN_LEN, TOKEN_ENV};

/// How long a collection may take before the request is given up.
const COLLECTION_TIMEOUT: Duration = Duration::from_secs(3 * 3600);

pub async fn collect(url: &str) -> Result<CollectionSummary> {
    let token = std::env::var(TOKEN_ENV).unwrap_or_default();
    if token.trim().len() < MIN_TOKEN_LEN {
        bail!(
            "{TOKEN_ENV} must hold the cache's maintenance token (at least {MIN_TOKEN_LEN} characters)"
        );
    }
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(COLLECTION_TIMEOUT)
        .build()
        .context("cannot build an HTTP client")?;
    let response = client
        .post(url)
        .bearer_auth(token.trim())
        .send()
        .await
        .with_context(|| format!("cannot reach the maintenance endpoint {url}"))?;
    let status = response.status();
    let body = response
        .text()
        .await
        .with_context(|| format!("{url} broke off its answer"))?;
    if !status.is_success() {
        let reason = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or(body);
        bail!("{url} answered {status}: {reason}");
    }
    CollectionSummary::from_json(&body).with_context(|| {
        format!("{url} answered something that is not a collection summary: {body}")
    })
}
