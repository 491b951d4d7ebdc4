//! The queue in front of a kind's controller: wakes wait here, compactly and without duplicates,
//! until the controller has room for them.
//!
//! kube-runtime's scheduler takes every request its input offers at once and keeps each one as two
//! copies of an `ObjectRef` (four owned strings) in a delay queue and a map, whose capacity stays
//! once grown. A namespace of 10,000 objects deleted at once (or a restart, or 10,000 objects
//! applied together) put all 10,000 there: several megabytes, kept for the life of the process.
//! Here a waiting wake is two shared names, and only a few dozen are handed on at a time.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::intern::Name;

/// `(namespace, name)` of an object to reconcile.
pub type Wake = (Name, Name);

/// A handed wake whose reconcile has not started after this long is no longer counted: a request
/// the controller dropped without a trace must not take a place for good.
pub const STALE: Duration = Duration::from_secs(300);

#[derive(Default)]
struct State {
    /// Waiting, oldest first.
    queue: VecDeque<Wake>,
    /// The members of `queue`.
    waiting: HashSet<Wake>,
    /// Handed to the controller, and when; not started yet.
    handed: HashMap<Wake, Instant>,
}

/// A kind's wakes between the fan-out and its controller.
pub struct Gate {
    /// How many wakes may be handed on and not yet started.
    limit: usize,
    state: Mutex<State>,
    /// Signalled when a handed wake starts (there is room again).
    room: tokio::sync::Notify,
}

impl Gate {
    /// A gate that hands on at most `limit` wakes not yet started.
    pub fn new(limit: usize) -> Self {
        Self {
            limit: limit.max(1),
            state: Mutex::default(),
            room: tokio::sync::Notify::new(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues a wake, unless the same object already waits or was handed on and has not
    /// started: its reconcile will read the object as it is then, which covers this wake too.
    pub fn push(&self, wake: Wake) {
        let mut s = self.state();
        if s.waiting.contains(&wake) || s.handed.contains_key(&wake) {
            return;
        }
        s.waiting.insert(wake.clone());
        s.queue.push_back(wake);
    }

    /// The oldest waiting wake, if fewer than the limit are handed on and not started.
    pub fn take(&self) -> Option<Wake> {
        let mut s = self.state();
        if s.handed.len() >= self.limit {
            let now = Instant::now();
            s.handed.retain(|_, at| now.duration_since(*at) < STALE);
            if s.handed.len() >= self.limit {
                return None;
            }
        }
        let wake = s.queue.pop_front()?;
        s.waiting.remove(&wake);
        s.handed.insert(wake.clone(), Instant::now());
        if s.queue.is_empty() && s.queue.capacity() > 1024 {
            // A burst is over: give its room back.
            s.queue = VecDeque::new();
            s.waiting = HashSet::new();
        }
        Some(wake)
    }

    /// The controller started (or dropped, its object being gone) the object's reconcile.
    pub fn started(&self, namespace: &str, name: &str) {
        let key: Wake = (
            crate::intern::intern(namespace),
            crate::intern::intern(name),
        );
        if self.state().handed.remove(&key).is_some() {
            self.room.notify_one();
        }
    }

    /// Waits until a handed wake starts.
    pub async fn room(&self) {
        self.room.notified().await;
    }

    /// How many wakes wait, and how many are handed on and not started.
    pub fn len(&self) -> (usize, usize) {
        let s = self.state();
        (s.queue.len(), s.handed.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intern::intern;

    fn wake(name: &str) -> Wake {
        (intern("ns"), intern(name))
    }

    /// At most `limit` wakes are handed on until they start; the rest wait in order, each
    /// object once; a wake for an object handed on and not started is covered by it, one for an
    /// object whose reconcile started is not.
    #[tokio::test(start_paused = true)]
    async fn the_gate_hands_on_a_few_at_a_time() {
        let g = Gate::new(2);
        for n in ["a", "b", "c", "a", "d", "c"] {
            g.push(wake(n));
        }
        assert_eq!(g.len(), (4, 0), "each object once");
        assert_eq!(g.take(), Some(wake("a")));
        assert_eq!(g.take(), Some(wake("b")));
        assert_eq!(g.take(), None, "two handed on and not started");
        g.push(wake("a"));
        assert_eq!(
            g.len(),
            (2, 2),
            "a is handed on: its reconcile covers this wake"
        );
        g.started("ns", "a");
        assert_eq!(g.take(), Some(wake("c")));
        g.push(wake("a"));
        assert_eq!(g.len(), (2, 2), "a started: a new wake waits for it");
        g.started("ns", "b");
        g.started("ns", "nobody");
        assert_eq!(g.take(), Some(wake("d")));
        assert_eq!(g.take(), None);
        g.started("ns", "c");
        assert_eq!(g.take(), Some(wake("a")));
        assert_eq!(g.take(), None, "d and a handed on");
        assert_eq!(g.len(), (0, 2));
    }

    /// A handed wake that never starts stops counting after [`STALE`].
    #[tokio::test(start_paused = true)]
    async fn a_wake_that_never_starts_frees_its_place() {
        let g = Gate::new(1);
        g.push(wake("lost"));
        g.push(wake("next"));
        assert_eq!(g.take(), Some(wake("lost")));
        assert_eq!(g.take(), None);
        tokio::time::advance(STALE).await;
        assert_eq!(g.take(), Some(wake("next")));
    }

    /// `room` resolves once a handed wake starts, even if it started before anyone waited.
    #[tokio::test(start_paused = true)]
    async fn room_is_signalled_when_a_reconcile_starts() {
        let g = std::sync::Arc::new(Gate::new(1));
        g.push(wake("a"));
        assert_eq!(g.take(), Some(wake("a")));
        g.started("ns", "a");
        tokio::time::timeout(Duration::from_secs(1), g.room())
            .await
            .expect("signalled");
    }
}
