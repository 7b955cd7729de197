//! The requests the agent makes itself (streamed uploads, blob downloads, deletes,
//! the version check): how they authenticate and how they fail, with the wait a
//! registry asks for in `Retry-After` (RFC 9110, 10.2.3: seconds or an HTTP date).

use std::time::{Duration, SystemTime};

use http::{HeaderMap, StatusCode};

/// Longest wait taken from a `Retry-After` header: a registry asking for more is taken
/// as asking for this much, and the retry budget decides the rest.
const LONGEST_REQUESTED_WAIT: Duration = Duration::from_secs(3600);

/// How our own requests authenticate.
#[derive(Clone)]
pub(super) enum RequestAuth {
    Anonymous,
    Basic(String, String),
    Bearer(String),
}

impl RequestAuth {
    pub(super) fn apply(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            RequestAuth::Anonymous => request,
            RequestAuth::Basic(user, password) => request.basic_auth(user, Some(password)),
            RequestAuth::Bearer(token) => request.bearer_auth(token),
        }
    }
}

/// A failed request.
pub(super) enum Failure {
    Network(reqwest::Error),
    /// An answer with this status and body, and the wait its `Retry-After` asked for.
    Status(StatusCode, String, Option<Duration>),
}

impl Failure {
    /// The failure a non-success answer stands for (its body read for the message).
    pub(super) async fn of_answer(response: reqwest::Response) -> Self {
        let status = response.status();
        let wait = requested_wait(response.headers(), SystemTime::now());
        let body = response.text().await.unwrap_or_default();
        Failure::Status(status, body, wait)
    }

    pub(super) fn is_transient(&self) -> bool {
        match self {
            Failure::Network(err) => {
                err.is_connect()
                    || err.is_timeout()
                    || err.is_request()
                    || err.is_body()
                    || super::broke_mid_body(err)
            }
            Failure::Status(status, body, _) => {
                status.is_server_error()
                    || *status == StatusCode::TOO_MANY_REQUESTS
                    || super::is_read_only(status.as_u16(), body)
            }
        }
    }

    pub(super) fn is_unauthorized(&self) -> bool {
        matches!(self, Failure::Status(StatusCode::UNAUTHORIZED, ..))
    }

    /// The wait the registry asked for before the next try.
    pub(super) fn requested_wait(&self) -> Option<Duration> {
        match self {
            Failure::Status(_, _, wait) => *wait,
            Failure::Network(_) => None,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Network(err) => f.write_str(&super::error_chain(err)),
            Failure::Status(status, body, _) if body.trim().is_empty() => {
                write!(f, "the registry answered {status}")
            }
            Failure::Status(status, body, _) => {
                write!(f, "the registry answered {status}: {}", body.trim())
            }
        }?;
        if let Some(wait) = self.requested_wait() {
            write!(f, " (Retry-After: {}s)", wait.as_secs())?;
        }
        Ok(())
    }
}

/// The wait `headers` ask for in `Retry-After`, if any (`now` for a date).
pub(super) fn requested_wait(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => httpdate::parse_http_date(value)
            .ok()?
            .duration_since(now)
            .unwrap_or(Duration::ZERO),
    };
    Some(wait.min(LONGEST_REQUESTED_WAIT))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::RETRY_AFTER, value.parse().unwrap());
        headers
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date_and_nonsense_ignored() {
        let now = httpdate::parse_http_date("Tue, 01 Dec 2026 08:00:00 GMT").unwrap();
        let wait = |value: &str| requested_wait(&headers(value), now);
        assert_eq!(wait("3"), Some(Duration::from_secs(3)));
        assert_eq!(wait(" 0 "), Some(Duration::ZERO));
        assert_eq!(
            wait("Tue, 01 Dec 2026 08:00:07 GMT"),
            Some(Duration::from_secs(7))
        );
        assert_eq!(wait("Tue, 01 Dec 2026 07:59:00 GMT"), Some(Duration::ZERO));
        assert_eq!(wait("99999999"), Some(LONGEST_REQUESTED_WAIT));
        assert_eq!(wait("-1"), None);
        assert_eq!(wait("soon"), None);
        assert_eq!(requested_wait(&HeaderMap::new(), now), None);
    }
}
