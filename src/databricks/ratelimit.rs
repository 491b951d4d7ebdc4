//! The client-side rate limit of one account: at most `rate` requests per second on average,
//! bursts up to `rate` (at least one).
//!
//! The arithmetic is governor's GCRA. Two things are ours, because governor's own waiting
//! (`until_ready`) cannot give them: it sleeps on futures-timer against its own clock, where the
//! client's tests (`tests/client.rs`) pin the spacing of calls on tokio's paused clock; and its
//! waiters are not queued, so under contention a new caller can overtake one that has waited
//! (with hundreds of objects on one account, a reconcile could starve). So the limiter reads
//! tokio's clock, and callers take turns in a FIFO queue (tokio's fair mutex).

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter as Gcra};
use tokio::sync::Mutex;
use tokio::time::Instant;

/// Tokio's clock, as time since the limiter was made.
#[derive(Clone, Debug)]
struct TokioClock(Instant);

impl Clock for TokioClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        self.0.elapsed()
    }
}

/// The rate limit shared by every caller of one account's client.
pub struct RateLimiter {
    rate: f64,
    gcra: Gcra<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Duration>>,
    clock: TokioClock,
    turn: Mutex<()>,
}

impl RateLimiter {
    /// A limiter of `rate` requests per second (between 0.1 and 10,000; 15 if not a number).
    pub fn new(rate: f64) -> Self {
        let rate = if rate.is_finite() {
            rate.clamp(0.1, 10_000.0)
        } else {
            15.0
        };
        // `as` saturates; the clamp above keeps the burst within 1..=10,000 anyway.
        let burst = NonZeroU32::new(rate.max(1.0) as u32).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(Duration::from_secs_f64(1.0 / rate))
            .unwrap_or_else(|| Quota::per_second(burst))
            .allow_burst(burst);
        let clock = TokioClock(Instant::now());
        Self {
            rate,
            gcra: Gcra::direct_with_clock(quota, clock.clone()),
            clock,
            turn: Mutex::new(()),
        }
    }

    /// Requests per second.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Waits for its turn and a free slot. Returns how long the caller was held back.
    pub async fn acquire(&self) -> Duration {
        let queued = Instant::now();
        let _turn = self.turn.lock().await;
        let mut held = queued.elapsed();
        while let Err(not_until) = self.gcra.check() {
            let wait = not_until.wait_time_from(self.clock.now());
            held = held.saturating_add(wait);
            tokio::time::sleep(wait).await;
        }
        held
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

    /// A caller that arrives just as the slot frees up waits behind the one that has been
    /// waiting for it, instead of taking it.
    #[tokio::test(start_paused = true)]
    async fn a_waiting_caller_is_not_overtaken() {
        let l = RateLimiter::new(1.0);
        l.acquire().await;
        let waiting = async {
            let held = l.acquire().await;
            (held, Instant::now())
        };
        let newcomer = async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let held = l.acquire().await;
            (held, Instant::now())
        };
        // At one second both are ready to go on; the newcomer is polled first.
        let (newcomer, waiting) = tokio::join!(biased; newcomer, waiting);
        assert_eq!(waiting.0, Duration::from_secs(1));
        assert_eq!(newcomer.0, Duration::from_secs(1));
        assert!(waiting.1 < newcomer.1, "{waiting:?} {newcomer:?}");
    }
}
