//! The client-side rate limit of one account: at most `rate` requests per second on average,
//! bursts up to `rate` (at least one).
//!
//! The arithmetic is governor's GCRA. Two things are ours, because governor's own waiting
//! (`until_ready`) cannot give them: it sleeps on futures-timer against its own clock, where the
//! client's tests (`tests/client.rs`) pin the spacing of calls on tokio's paused clock; and its
//! waiters are not queued, so under contention a new caller can overtake one that has waited
//! (with hundreds of objects on one account, a reconcile could starve). So the limiter reads
//! tokio's clock, and callers take turns in a FIFO queue (tokio's fair mutex).
//!
//! Lists go ahead of that queue ([`RateLimiter::acquire_first`]): one list answers every
//! reconcile of its kind that waits for it, and those reconciles hold their controller's slots
//! while they wait. Behind a queue of creates (a few seconds at 15 requests per second) the
//! waiting readers of one kind would fill its slots and hold up its creates too.

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
    /// The queue of ordinary callers: its head goes on to `next`.
    turn: Mutex<()>,
    /// Who takes the next free slot: the ordinary queue's head and the callers that go first,
    /// in the order they came.
    next: Mutex<()>,
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
            next: Mutex::new(()),
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
        self.take(queued).await
    }

    /// As [`RateLimiter::acquire`], ahead of the callers queued there: at most the one caller
    /// already at the head of that queue goes before this one (and those that came first
    /// through this same call). For lists, whose one answer serves many waiting callers.
    pub async fn acquire_first(&self) -> Duration {
        self.take(Instant::now()).await
    }

    /// Takes the next free slot, in the order callers reach `next`.
    async fn take(&self, queued: Instant) -> Duration {
        let _next = self.next.lock().await;
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

    /// A caller that goes first waits for at most the head of the ordinary queue, not for the
    /// whole queue; the ordinary callers keep their order.
    #[tokio::test(start_paused = true)]
    async fn a_list_goes_ahead_of_the_queue() {
        let l = std::sync::Arc::new(RateLimiter::new(1.0));
        l.acquire().await;
        let start = Instant::now();
        let mut queue = Vec::new();
        for _ in 0..4 {
            let l = l.clone();
            queue.push(tokio::spawn(async move {
                l.acquire().await;
                Instant::now()
            }));
            // Queued in this order.
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let first = l.acquire_first().await;
        let list_at = Instant::now();
        let mut done = Vec::new();
        for q in queue {
            done.push(q.await.unwrap());
        }
        // The head of the queue had its slot at 1 s; the list took the one at 2 s instead of
        // waiting until 5 s; the others follow in order.
        assert_eq!(list_at - start, Duration::from_secs(2), "{done:?}");
        assert_eq!(first, Duration::from_millis(1500));
        let offsets: Vec<u64> = done.iter().map(|t| (*t - start).as_secs()).collect();
        assert_eq!(offsets, [1, 3, 4, 5]);
    }
}
