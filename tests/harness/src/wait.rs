//! The one bounded wait of the tests: poll a check until it gives a value, and at the
//! deadline fail with what was awaited, what was seen last, and any context (a log tail).
//!
//! ```ignore
//! let file = Wait::new(LIMIT, "the first snapshot").blocking(|| read(&path).ok());
//! Wait::new(LIMIT, "the firing event").until(|| (calls(&out).len() == 1).then_some(())).await;
//! ```

use std::fmt::Display;
use std::future::Future;
use std::time::{Duration, Instant};

/// The usual bound of a wait; generous because the machine is shared.
pub const LIMIT: Duration = Duration::from_secs(60);
/// How long a test watches for something that must not happen.
pub const QUIET: Duration = Duration::from_secs(3);

/// How often a check runs unless [`Wait::every`] says otherwise.
pub const DEFAULT_POLL: Duration = Duration::from_millis(50);

/// What one check gives: `Some`/`Ok` ends the wait with the value; `None`/`Err` means not
/// yet, and an `Err` says what was seen, for the failure message.
pub trait Progress<T> {
    fn into_result(self) -> Result<T, Option<String>>;
}

impl<T> Progress<T> for Option<T> {
    fn into_result(self) -> Result<T, Option<String>> {
        self.ok_or(None)
    }
}

impl<T, E: Display> Progress<T> for Result<T, E> {
    fn into_result(self) -> Result<T, Option<String>> {
        self.map_err(|seen| Some(seen.to_string()))
    }
}

/// A bounded wait, described by what it waits for.
pub struct Wait<'a> {
    what: &'a str,
    limit: Duration,
    every: Duration,
    context: Option<&'a (dyn Fn() -> String + Sync)>,
}

impl<'a> Wait<'a> {
    pub fn new(limit: Duration, what: &'a str) -> Wait<'a> {
        Wait {
            what,
            limit,
            every: DEFAULT_POLL,
            context: None,
        }
    }

    /// The pause between two checks.
    pub fn every(mut self, every: Duration) -> Wait<'a> {
        self.every = every;
        self
    }

    /// Adds `context()` (a log tail, say) to the failure message; called only on failure.
    pub fn on_timeout(mut self, context: &'a (dyn Fn() -> String + Sync)) -> Wait<'a> {
        self.context = Some(context);
        self
    }

    /// Polls `check`, sleeping the thread in between; panics at the deadline.
    pub fn blocking<T, P: Progress<T>>(self, check: impl FnMut() -> P) -> T {
        let outcome = self.poll_blocking(check);
        self.unwrap(outcome)
    }

    /// [`Wait::blocking`], but `None` at the deadline: for waits that may fail.
    pub fn try_blocking<T, P: Progress<T>>(self, check: impl FnMut() -> P) -> Option<T> {
        self.poll_blocking(check).ok()
    }

    /// Polls a synchronous `check`, sleeping on tokio in between; panics at the deadline.
    pub async fn until<T, P: Progress<T>>(self, mut check: impl FnMut() -> P) -> T {
        let outcome = self.poll(|| std::future::ready(check())).await;
        self.unwrap(outcome)
    }

    /// Polls an asynchronous `check` (a query, say); panics at the deadline.
    pub async fn until_async<T, P, F>(self, check: impl FnMut() -> F) -> T
    where
        P: Progress<T>,
        F: Future<Output = P>,
    {
        let outcome = self.poll(check).await;
        self.unwrap(outcome)
    }

    /// [`Wait::until_async`], but `None` at the deadline.
    pub async fn try_until_async<T, P, F>(self, check: impl FnMut() -> F) -> Option<T>
    where
        P: Progress<T>,
        F: Future<Output = P>,
    {
        self.poll(check).await.ok()
    }

    /// The value, or at the deadline what the last check saw.
    fn poll_blocking<T, P: Progress<T>>(
        &self,
        mut check: impl FnMut() -> P,
    ) -> Result<T, Option<String>> {
        let deadline = self.deadline();
        loop {
            match check().into_result() {
                Ok(value) => return Ok(value),
                Err(seen) if Instant::now() > deadline => return Err(seen),
                Err(_) => std::thread::sleep(self.every),
            }
        }
    }

    async fn poll<T, P, F>(&self, mut check: impl FnMut() -> F) -> Result<T, Option<String>>
    where
        P: Progress<T>,
        F: Future<Output = P>,
    {
        let deadline = self.deadline();
        loop {
            match check().await.into_result() {
                Ok(value) => return Ok(value),
                Err(seen) if Instant::now() > deadline => return Err(seen),
                Err(_) => tokio::time::sleep(self.every).await,
            }
        }
    }

    /// The deadline, on the real clock: a test that pauses tokio time still waits `limit`.
    fn deadline(&self) -> Instant {
        Instant::now() + self.limit
    }

    /// The value; at the deadline a panic with what the last check saw, and the context.
    fn unwrap<T>(&self, outcome: Result<T, Option<String>>) -> T {
        let seen = match outcome {
            Ok(value) => return value,
            Err(seen) => seen,
        };
        let mut message = format!("timed out after {:?} waiting for {}", self.limit, self.what);
        if let Some(seen) = seen {
            message.push_str(&format!("; last seen: {seen}"));
        }
        if let Some(context) = self.context {
            message.push_str(&format!("\n{}", context()));
        }
        panic!("{message}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_returns_the_first_value() {
        let mut calls = 0;
        let value = Wait::new(Duration::from_secs(5), "the third call")
            .every(Duration::from_millis(1))
            .blocking(|| {
                calls += 1;
                (calls == 3).then_some(calls)
            });
        assert_eq!(value, 3);
    }

    #[test]
    #[should_panic(expected = "timed out after 20ms waiting for nothing; last seen: still 0")]
    fn a_wait_fails_at_its_deadline_with_what_it_saw() {
        Wait::new(Duration::from_millis(20), "nothing")
            .every(Duration::from_millis(1))
            .blocking(|| Err::<(), _>("still 0"));
    }

    #[test]
    fn a_try_wait_gives_none_at_its_deadline() {
        let never = Wait::new(Duration::from_millis(20), "nothing")
            .every(Duration::from_millis(1))
            .try_blocking(|| None::<()>);
        assert_eq!(never, None);
    }
}
