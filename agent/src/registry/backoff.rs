//! When to try again: the wait the registry asked for (`Retry-After`), else a backoff
//! from 0.1 s doubling to 3 s, and never past the retry budget.

use std::time::{Duration, Instant};

const FIRST: Duration = Duration::from_millis(100);
const LONGEST: Duration = Duration::from_secs(3);

/// The retries of one call.
pub(super) struct Backoff {
    start: Instant,
    budget: Duration,
    next: Duration,
}

/// Why no further try is made.
pub(super) enum Exhausted {
    /// The budget is spent.
    Budget,
    /// The registry asked for a longer wait than the budget has left.
    AskedTooLong(Duration),
}

impl Backoff {
    pub(super) fn new(budget: Duration) -> Self {
        Self {
            start: Instant::now(),
            budget,
            next: FIRST,
        }
    }

    /// The wait before the next try: `requested` when the registry asked for one, else
    /// the next step of the backoff.
    pub(super) fn next_wait(&mut self, requested: Option<Duration>) -> Result<Duration, Exhausted> {
        let wait = requested.unwrap_or(self.next);
        if self.start.elapsed() + wait > self.budget {
            return Err(match requested {
                Some(asked) if self.start.elapsed() + self.next <= self.budget => {
                    Exhausted::AskedTooLong(asked)
                }
                _ => Exhausted::Budget,
            });
        }
        self.next = (self.next * 2).min(LONGEST);
        Ok(wait)
    }
}

impl Exhausted {
    /// What to add to the last failure's description.
    pub(super) fn note(&self) -> String {
        match self {
            Exhausted::Budget => String::new(),
            Exhausted::AskedTooLong(asked) => format!(
                "; it asked to wait {}s, more than what is left of the retry budget",
                asked.as_secs()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_to_three_seconds_and_a_requested_wait_replaces_it() {
        let mut backoff = Backoff::new(Duration::from_secs(3600));
        let waits: Vec<u128> = (0..7)
            .map(|_| backoff.next_wait(None).ok().unwrap().as_millis())
            .collect();
        assert_eq!(waits, [100, 200, 400, 800, 1600, 3000, 3000]);
        let asked = Duration::from_secs(42);
        assert_eq!(backoff.next_wait(Some(asked)).ok(), Some(asked));
    }

    #[test]
    fn no_wait_goes_past_the_budget() {
        let mut backoff = Backoff::new(Duration::from_secs(2));
        assert!(matches!(
            backoff.next_wait(Some(Duration::from_secs(30))),
            Err(Exhausted::AskedTooLong(asked)) if asked == Duration::from_secs(30)
        ));
        let mut spent = Backoff::new(Duration::ZERO);
        assert!(matches!(spent.next_wait(None), Err(Exhausted::Budget)));
        assert!(matches!(
            spent.next_wait(Some(Duration::from_secs(1))),
            Err(Exhausted::Budget)
        ));
    }
}
