//! Bounds on everything that comes from outside the operator: custom resources, annotations,
//! Secrets and Account API answers. Nothing read from there may panic the operator, grow its memory
//! without bound, or make a status too large to write.
//!
//! Time arithmetic goes through [`after`] and [`add`] (never `Instant + Duration` or
//! `Duration + Duration`, which panic on overflow); a test below keeps it so.

use std::time::Duration;

/// Longest message written to a condition or an event note (bytes). Kubernetes refuses event
/// notes over 1 kB; conditions have no limit of their own, but a status must stay far below
/// etcd's 1.5 MiB object limit.
pub const MAX_MESSAGE_BYTES: usize = 1024;
/// Most entries of a list of messages from the API (a network's errors or warnings) kept in status.
pub const MAX_MESSAGES: usize = 10;
/// Largest Account API answer read for one object or an error (bytes).
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// Largest Account API answer read for a list (bytes): every object of a kind in one answer.
pub const MAX_LIST_BODY_BYTES: usize = 16 << 20;
/// Pages read of one paginated list (network connectivity configurations and their rules).
pub const MAX_PAGES: usize = 100;
/// The poll-interval annotation's range.
pub const POLL_INTERVAL_MIN: Duration = Duration::from_secs(10);
/// See [`POLL_INTERVAL_MIN`].
pub const POLL_INTERVAL_MAX: Duration = Duration::from_secs(24 * 3600);
/// The range of the operator's interval flags (`--poll-interval`, `--busy-poll-interval`,
/// `--lease-duration`).
pub const FLAG_DURATION_MIN: Duration = Duration::from_secs(1);
/// See [`FLAG_DURATION_MIN`].
pub const FLAG_DURATION_MAX: Duration = Duration::from_secs(24 * 3600);
/// Longest `Retry-After` honoured.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);
/// Longest token lifetime believed.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Longest requeue of any object.
pub const MAX_REQUEUE: Duration = Duration::from_secs(24 * 3600);

/// Cuts `s` to at most `max` bytes (on a character boundary) and says how much was cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let marker = format!(" … [truncated from {} bytes]", s.len());
    let mut end = max.saturating_sub(marker.len() + 4);
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{marker}", &s[..end])
}

/// A message fit for a condition or an event.
pub fn message(s: &str) -> String {
    truncate(s, MAX_MESSAGE_BYTES)
}

/// At most [`MAX_MESSAGES`] messages, each cut to a sixth of [`MAX_MESSAGE_BYTES`], plus one entry
/// counting what was dropped.
pub fn messages(all: &[String]) -> Vec<String> {
    let mut out: Vec<String> = all
        .iter()
        .take(MAX_MESSAGES)
        .map(|m| truncate(m, MAX_MESSAGE_BYTES / 6))
        .collect();
    if all.len() > MAX_MESSAGES {
        out.push(format!("… and {} more", all.len() - MAX_MESSAGES));
    }
    out
}

/// `a + b`, saturating at [`MAX_REQUEUE`] rather than overflowing.
pub fn add(a: Duration, b: Duration) -> Duration {
    a.saturating_add(b).min(MAX_REQUEUE.saturating_mul(2))
}

/// The instant `d` from now; `d` is first capped to [`MAX_REQUEUE`], so this cannot overflow.
pub fn after(d: Duration) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    now.checked_add(d.min(MAX_REQUEUE)).unwrap_or(now)
}

/// A requeue delay within `[0, MAX_REQUEUE]` (kube-runtime's delay queue panics far in the future).
pub fn requeue(d: Duration) -> Duration {
    d.min(MAX_REQUEUE)
}

/// Parses `30s`, `5m`, `1h` or a number of seconds, within `[min, max]`. Strict: no spaces, no
/// leading zeros, no fractions or compound forms (the chart's schema accepts exactly the same).
///
/// Deliberately not `humantime`: it accepts far more (`1h 30m`, `2days`, `100ms`, `1y`, spaces,
/// and values that overflow a timer), while this grammar is small enough that the chart's
/// `values.schema.json` states it as one regular expression, range included, and
/// `tests/helm/test_chart.py` (`test_schema_matches_binary`) checks that the schema and the
/// binary accept exactly the same values, so no value that passes `helm install` can make the pod
/// crash-loop. The range check and the messages naming it would be ours anyway.
pub fn parse_duration(s: &str, min: Duration, max: Duration) -> Result<Duration, String> {
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let shape =
        || format!("{s:?} is not a duration: use a whole number of s, m or h (e.g. 30s, 10m, 1h)");
    let range = || {
        format!(
            "{s:?} is out of range: between {} and {}",
            human(min),
            human(max)
        )
    };
    if num.is_empty() || (num.len() > 1 && num.starts_with('0')) {
        return Err(shape());
    }
    if num.len() > 12 {
        return Err(range());
    }
    let n: u64 = num.parse().map_err(|_| shape())?;
    let secs = match unit {
        "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        _ => return Err(shape()),
    };
    match secs.map(Duration::from_secs) {
        Some(d) if d >= min && d <= max => Ok(d),
        _ => Err(range()),
    }
}

/// `90s`, `10m`, `24h`: the shortest exact form.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s > 0 && s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s > 0 && s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Annotations and flags take the usual short forms, and nothing that could overflow a timer.
    #[test]
    fn durations_parse_within_their_bounds() {
        let p = |s| parse_duration(s, POLL_INTERVAL_MIN, POLL_INTERVAL_MAX);
        assert_eq!(p("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(p("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(p("24h"), Ok(Duration::from_secs(86400)));
        assert_eq!(p("45"), Ok(Duration::from_secs(45)));
        assert!(p("9s").unwrap_err().contains("between 10s and 24h"));
        assert!(p("25h").unwrap_err().contains("out of range"));
        assert!(
            p("18446744073709551615")
                .unwrap_err()
                .contains("out of range")
        );
        assert!(p("18446744073709551615h").is_err());
        assert!(p("0s").is_err());
        assert!(p("ten").unwrap_err().contains("not a duration"));
        assert!(p("5d").is_err());
        assert!(p("1h30m").is_err());
        assert!(p("").is_err());
        assert!(p("-5s").is_err());
        assert!(p(" 10m").is_err());
        assert!(p("010s").is_err());
    }

    /// A long message keeps its start and says how long it was, within the limit.
    #[test]
    fn messages_are_truncated_with_a_marker() {
        let long = "é".repeat(600_000);
        let m = message(&long);
        assert!(m.len() <= MAX_MESSAGE_BYTES, "{}", m.len());
        assert!(m.ends_with("[truncated from 1200000 bytes]"), "{m}");
        assert_eq!(message("short"), "short");
    }

    /// Ten thousand error messages become ten plus a count.
    #[test]
    fn message_lists_are_capped_with_a_count() {
        let all: Vec<String> = (0..10_000).map(|i| format!("error {i}")).collect();
        let kept = messages(&all);
        assert_eq!(kept.len(), MAX_MESSAGES + 1);
        assert_eq!(kept[MAX_MESSAGES], "… and 9990 more");
        assert_eq!(messages(&all[..3]).len(), 3);
    }

    /// The largest durations cannot overflow an instant or a requeue.
    #[test]
    fn time_arithmetic_saturates() {
        let _ = after(Duration::MAX);
        assert_eq!(requeue(Duration::MAX), MAX_REQUEUE);
        assert!(add(Duration::MAX, Duration::MAX) <= MAX_REQUEUE * 2);
    }

    /// Keeps panicking time arithmetic out of the code: `Instant + Duration` and
    /// `Duration + Duration` panic on overflow, and any of them may carry a value from outside.
    #[test]
    fn no_unchecked_time_arithmetic_in_the_sources() {
        let forbidden = [
            "Instant::now() +",
            "Instant::now() -",
            "now() + ",
            "now + ",
            "elapsed() + ",
            ".elapsed() +",
            "+ Duration::",
            "+ lifetime",
            "+ wait",
            "+ for_",
            "+ self.config.renew_every",
        ];
        // This crate lives in src/databricks/; src/ holds every crate of the workspace (the
        // operator's own modules, this client and the simulator), and all of them are checked.
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .to_path_buf();
        assert!(
            root.join("controller").is_dir() && root.join("sim").is_dir(),
            "{} is not the workspace's src/",
            root.display()
        );
        let mut bad = Vec::new();
        let mut stack = vec![root];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                if path.extension().is_none_or(|e| e != "rs") || path.ends_with("bounds.rs") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                // Test modules may build fixed instants.
                let code = text.split("#[cfg(test)]").next().unwrap_or_default();
                for (i, line) in code.lines().enumerate() {
                    if forbidden.iter().any(|f| line.contains(f)) {
                        bad.push(format!("{}:{}: {}", path.display(), i + 1, line.trim()));
                    }
                }
            }
        }
        assert!(
            bad.is_empty(),
            "unchecked time arithmetic (use bounds::after / bounds::add / checked_add):\n{}",
            bad.join("\n")
        );
    }
}
