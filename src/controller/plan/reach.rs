//! The `Reachable` condition of a workspace: when to check that a RUNNING workspace answers, and
//! what a check's outcome says. The check itself (a workspace token and one SCIM `Me` call) is
//! [`crate::databricks::AccountClient::probe_workspace`].
//!
//! Cost: a check calls the workspace, never the Account API or the Kubernetes API server. A
//! workspace that answers is checked again at the poll interval (so a workspace that stops
//! answering is noticed within one); one that does not is retried with exponential backoff (2 s
//! doubling, at most the busy poll interval) for a bounded window after its first failure, then
//! at the poll interval. The condition's message depends only on the outcome, so the same
//! outcome writes no status.

use std::time::Duration;

use tokio::time::Instant;

use crate::crd::Reason;
use crate::databricks::Unreachable;

/// What is kept between reconciles about one workspace's checks (in memory, keyed by the object
/// and removed with it; a restart starts again with one check).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReachMemo {
    /// The deployment name checked: another one is checked at once.
    pub target: String,
    /// When the last check ran.
    pub checked: Instant,
    /// When the checks began failing, if the last one failed.
    pub failing_since: Option<Instant>,
    /// Failed checks in a row.
    pub failures: u32,
}

/// The bounds of the schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReachLimits {
    /// The object's poll interval: the pace of checks at rest.
    pub poll: Duration,
    /// The longest backoff between failed checks (the busy poll interval).
    pub max_backoff: Duration,
    /// How long failures are retried with backoff before the pace drops to the poll interval.
    pub window: Duration,
}

/// The first backoff after a failed check.
const FIRST_BACKOFF: Duration = Duration::from_secs(2);

impl ReachMemo {
    /// The time between this check and the next.
    fn interval(&self, limits: ReachLimits) -> Duration {
        match self.failing_since {
            None => limits.poll,
            Some(since) if self.checked.saturating_duration_since(since) >= limits.window => {
                limits.poll
            }
            Some(_) => FIRST_BACKOFF
                .saturating_mul(2u32.saturating_pow(self.failures.saturating_sub(1).min(16)))
                .min(limits.max_backoff)
                .min(limits.poll),
        }
    }
}

/// Whether to check the workspace with deployment name `target` now: `Ok` to check, or the
/// time until the next check is due.
pub fn reach_due(
    target: &str,
    memo: Option<&ReachMemo>,
    now: Instant,
    limits: ReachLimits,
) -> Result<(), Duration> {
    let Some(memo) = memo.filter(|m| m.target == target) else {
        return Ok(());
    };
    let interval = memo.interval(limits).min(crate::bounds::MAX_REQUEUE);
    let due = memo.checked.checked_add(interval).unwrap_or(memo.checked);
    if now >= due {
        Ok(())
    } else {
        Err(due.saturating_duration_since(now))
    }
}

/// What the `Reachable` condition says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReachCondition {
    /// `True` when the workspace answered.
    pub ok: bool,
    /// `Reachable`, `DnsPending`, `TlsError`, `Unauthorized` or `WorkspaceUnavailable`.
    pub reason: Reason,
    /// For a person.
    pub message: String,
}

fn pace(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 120 {
        format!("{} min", s / 60)
    } else {
        format!("{s} s")
    }
}

/// The outcome of a check of `url` (deployment name `target`): the memo to keep, the condition,
/// and the time until the next check.
pub fn reach_after(
    previous: Option<&ReachMemo>,
    target: &str,
    url: &str,
    outcome: Result<(), Unreachable>,
    now: Instant,
    limits: ReachLimits,
) -> (ReachMemo, ReachCondition, Duration) {
    let previous = previous.filter(|m| m.target == target);
    let (failing_since, failures) = match (&outcome, previous) {
        (Ok(()), _) => (None, 0),
        (Err(_), Some(p)) => (
            Some(p.failing_since.unwrap_or(now)),
            p.failures.saturating_add(1),
        ),
        (Err(_), None) => (Some(now), 1),
    };
    let memo = ReachMemo {
        target: target.to_string(),
        checked: now,
        failing_since,
        failures,
    };
    let retry = format!(
        "checked again with backoff for up to {} after the first failure, then every {}",
        pace(limits.window),
        pace(limits.poll)
    );
    let condition = match outcome {
        Ok(()) => ReachCondition {
            ok: true,
            reason: Reason::Reachable,
            message: format!(
                "{url} answers: a workspace token and the SCIM Me call succeeded with the account's credentials"
            ),
        },
        Err(Unreachable::Dns(d)) => ReachCondition {
            ok: false,
            reason: Reason::DnsPending,
            message: format!(
                "{url} does not resolve yet (DNS for a new workspace can take minutes): {d}; {retry}"
            ),
        },
        Err(Unreachable::Tls(d)) => ReachCondition {
            ok: false,
            reason: Reason::TlsError,
            message: format!(
                "the TLS handshake with {url} failed: {d}; if a TLS-intercepting proxy is in the way, add its CA (the operator's --extra-ca-file or the account's caBundle); {retry}"
            ),
        },
        Err(Unreachable::Unauthorized(d)) => ReachCondition {
            ok: false,
            reason: Reason::Unauthorized,
            message: format!(
                "{url} refused the account's credentials: {d}; the service principal (or user) must be allowed to log in to the workspace; {retry}"
            ),
        },
        Err(Unreachable::Unavailable(d)) => ReachCondition {
            ok: false,
            reason: Reason::WorkspaceUnavailable,
            message: format!("{url} does not answer: {d}; {retry}"),
        },
    };
    let next = memo.interval(limits);
    (memo, condition, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ReachLimits = ReachLimits {
        poll: Duration::from_secs(600),
        max_backoff: Duration::from_secs(15),
        window: Duration::from_secs(1800),
    };
    const URL: &str = "https://dbc-1.cloud.databricks.com";

    fn after(t: Instant, s: u64) -> Instant {
        t.checked_add(Duration::from_secs(s)).unwrap()
    }

    fn dns() -> Result<(), Unreachable> {
        Err(Unreachable::Dns("dns error: no such host".into()))
    }

    /// A workspace seen RUNNING for the first time (or after a restart) is checked at once.
    #[test]
    fn a_workspace_never_checked_is_checked_now() {
        assert_eq!(reach_due("dbc-1", None, Instant::now(), LIMITS), Ok(()));
    }

    /// A workspace that answers is checked again at the poll interval, not at every reconcile:
    /// the check costs the workspace two calls, and nothing else.
    #[test]
    fn a_reachable_workspace_is_checked_again_at_the_poll_interval() {
        let t0 = Instant::now();
        let (memo, c, next) = reach_after(None, "dbc-1", URL, Ok(()), t0, LIMITS);
        assert!(c.ok);
        assert_eq!(c.reason, Reason::Reachable);
        assert_eq!(next, LIMITS.poll);
        assert_eq!(
            reach_due("dbc-1", Some(&memo), after(t0, 5), LIMITS),
            Err(Duration::from_secs(595))
        );
        assert_eq!(
            reach_due("dbc-1", Some(&memo), after(t0, 600), LIMITS),
            Ok(())
        );
        // Another deployment name (an object pointed at another workspace) is checked at once.
        assert_eq!(
            reach_due("dbc-2", Some(&memo), after(t0, 5), LIMITS),
            Ok(())
        );
    }

    /// DNS for a new workspace takes minutes: the check backs off from 2 s up to the busy poll,
    /// so that the condition turns True soon after the name resolves.
    #[test]
    fn failures_back_off_up_to_the_busy_poll() {
        let t0 = Instant::now();
        let mut memo = None;
        let mut nexts = Vec::new();
        let mut t = t0;
        for _ in 0..6 {
            let (m, c, next) = reach_after(memo.as_ref(), "dbc-1", URL, dns(), t, LIMITS);
            assert!(!c.ok);
            assert_eq!(c.reason, Reason::DnsPending);
            nexts.push(next.as_secs());
            t = after(t, next.as_secs());
            memo = Some(m);
        }
        assert_eq!(nexts, [2, 4, 8, 15, 15, 15]);
        assert_eq!(memo.unwrap().failing_since, Some(t0));
    }

    /// Past the bounded window a workspace that still does not answer is checked at the poll
    /// interval only: a misconfigured workspace must not cost a call every 15 s forever.
    #[test]
    fn failures_past_the_window_are_checked_at_the_poll_interval() {
        let t0 = Instant::now();
        let (first, _, _) = reach_after(None, "dbc-1", URL, dns(), t0, LIMITS);
        let late = after(t0, 1800);
        let (memo, _, next) = reach_after(Some(&first), "dbc-1", URL, dns(), late, LIMITS);
        assert_eq!(next, LIMITS.poll);
        assert_eq!(memo.failures, 2);
        // And an answer resets the schedule.
        let (memo, c, next) = reach_after(Some(&memo), "dbc-1", URL, Ok(()), late, LIMITS);
        assert!(c.ok);
        assert_eq!((memo.failing_since, memo.failures), (None, 0));
        assert_eq!(next, LIMITS.poll);
    }

    /// Each cause has its reason, and the same outcome gives the same message, so repeated
    /// failures write no status.
    #[test]
    fn each_cause_has_its_reason_and_a_stable_message() {
        let t0 = Instant::now();
        let cases = [
            (Unreachable::Dns("d".into()), Reason::DnsPending),
            (Unreachable::Tls("t".into()), Reason::TlsError),
            (Unreachable::Unauthorized("u".into()), Reason::Unauthorized),
            (
                Unreachable::Unavailable("x".into()),
                Reason::WorkspaceUnavailable,
            ),
        ];
        for (err, reason) in cases {
            let (m, a, _) = reach_after(None, "dbc-1", URL, Err(err.clone()), t0, LIMITS);
            let (_, b, _) = reach_after(Some(&m), "dbc-1", URL, Err(err), after(t0, 9), LIMITS);
            assert_eq!(a.reason, reason);
            assert_eq!(a, b, "{reason:?}");
            assert!(
                a.message.starts_with(URL) || a.message.contains(URL),
                "{}",
                a.message
            );
        }
    }
}
