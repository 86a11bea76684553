//! Waiting without fixed sleeps: poll a condition against a deadline.

use std::time::{Duration, Instant};

/// How often [`poll_until`] and [`poll_until_async`] look again.
pub const POLL_EVERY: Duration = Duration::from_millis(20);

/// Calls `check` until it returns `Some`, at most for `within`.
///
/// # Errors
///
/// A message naming `what` and the deadline when time runs out.
pub fn poll_until<T>(
    within: Duration,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> Result<T, String> {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return Ok(v);
        }
        if start.elapsed() >= within {
            return Err(format!("no {what} within {within:?}"));
        }
        std::thread::sleep(POLL_EVERY);
    }
}

/// [`poll_until`] for async tests: sleeps on the tokio timer between looks (works with
/// a paused clock too).
///
/// # Errors
///
/// A message naming `what` and the deadline when time runs out.
pub async fn poll_until_async<T, F, Fut>(
    within: Duration,
    what: &str,
    mut check: F,
) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = tokio::time::Instant::now();
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if start.elapsed() >= within {
            return Err(format!("no {what} within {within:?}"));
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_condition_that_never_holds_times_out_naming_it() {
        let e = poll_until(Duration::from_millis(50), "miracle", || None::<()>).unwrap_err();
        assert!(e.contains("no miracle within"), "{e}");
    }

    #[test]
    fn the_value_is_returned_once_the_condition_holds() {
        let mut n = 0;
        let v = poll_until(Duration::from_secs(5), "third look", || {
            n += 1;
            (n == 3).then_some(n)
        });
        assert_eq!(v, Ok(3));
    }
}
