//! A client-side token bucket: at most `rate` requests per second on average, bursts up to `rate`.

use std::time::Duration;

use tokio::time::Instant;

use tokio::sync::Mutex;

/// Token bucket shared by every caller of one account's client.
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    /// A limiter of `rate` requests per second (at least 0.1).
    pub fn new(rate: f64) -> Self {
        let rate = if rate.is_finite() {
            rate.max(0.1)
        } else {
            15.0
        };
        let burst = rate.max(1.0);
        Self {
            rate,
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// Requests per second.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Waits for a token. Returns how long the caller was held back.
    pub async fn acquire(&self) -> Duration {
        let wait = {
            let mut s = self.state.lock().await;
            let now = Instant::now();
            let elapsed = now.saturating_duration_since(s.1).as_secs_f64();
            // Tokens may go negative: each waiter reserves its slot, so waiters are served in order.
            s.0 = (s.0 + elapsed * self.rate).min(self.burst) - 1.0;
            s.1 = now;
            if s.0 >= 0.0 {
                Duration::ZERO
            } else {
                Duration::from_secs_f64(-s.0 / self.rate)
            }
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// After the burst, requests are spaced at the configured rate.
    #[tokio::test(start_paused = true)]
    async fn burst_then_rate() {
        let l = RateLimiter::new(5.0);
        let start = tokio::time::Instant::now();
        for _ in 0..5 {
            assert_eq!(l.acquire().await, Duration::ZERO);
        }
        let held = l.acquire().await;
        assert!(held >= Duration::from_millis(190), "{held:?}");
        for _ in 0..4 {
            l.acquire().await;
        }
        // 5 free, then 5 more at 5/s: about one second in all.
        assert!(start.elapsed() >= Duration::from_millis(990));
    }
}
