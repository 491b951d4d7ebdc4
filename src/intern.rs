//! Shared strings for what per-object state repeats: namespaces, object names and account names.
//!
//! The operator keeps several maps with an entry per object (readiness, objects at rest, what the
//! fan-out last saw, who names whom, the controllers' queues). With owned strings each entry
//! paid for its own copies of the namespace and the name: at 10,000 objects that was most of the
//! memory besides the caches. An interned string is one allocation however many maps hold it.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock, Mutex};

/// A shared, immutable string.
pub type Name = Arc<str>;

/// The table: every string handed out and still held, and the size at which to sweep it again.
struct Table {
    names: HashSet<Name>,
    sweep_at: usize,
}

/// The smallest table that is swept.
const SWEEP_MIN: usize = 1024;

static TABLE: LazyLock<Mutex<Table>> = LazyLock::new(|| {
    Mutex::new(Table {
        names: HashSet::new(),
        sweep_at: SWEEP_MIN,
    })
});

/// The shared copy of `s`. Strings nobody holds any more are dropped from the table whenever it
/// has doubled since the last sweep, so it stays within twice what is in use.
pub fn intern(s: &str) -> Name {
    let mut t = TABLE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(n) = t.names.get(s) {
        return n.clone();
    }
    let n: Name = Arc::from(s);
    t.names.insert(n.clone());
    if t.names.len() >= t.sweep_at {
        sweep(&mut t);
    }
    n
}

/// Drops the strings only the table holds.
fn sweep(t: &mut Table) {
    t.names.retain(|n| Arc::strong_count(n) > 1);
    t.sweep_at = (t.names.len() * 2).max(SWEEP_MIN);
}

/// How many strings the table holds (for the state-size metric and tests).
pub fn len() -> usize {
    TABLE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .names
        .len()
}

/// An object's UID as a number: Kubernetes UIDs are UUIDs (16 bytes instead of a 36-character
/// string in every key). Anything else (tests, other API servers) is hashed to 128 bits.
pub fn uid(s: &str) -> u128 {
    if let Ok(u) = uuid::Uuid::parse_str(s) {
        return u.as_u128();
    }
    use std::hash::{Hash, Hasher};
    let half = |salt: u8| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        salt.hash(&mut h);
        s.hash(&mut h);
        h.finish()
    };
    (u128::from(half(1)) << 64) | u128::from(half(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One allocation per string while it is held; the table forgets what nobody holds.
    #[test]
    fn interned_strings_are_shared_and_swept() {
        let a = intern("intern-test-ns");
        let b = intern("intern-test-ns");
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(&*a, "intern-test-ns");
        let c = intern("intern-test-other");
        assert!(!Arc::ptr_eq(&a, &c));
        drop((b, c));
        let mut t = TABLE.lock().unwrap();
        sweep(&mut t);
        assert!(t.names.contains("intern-test-ns"), "held: kept");
        assert!(!t.names.contains("intern-test-other"), "not held: dropped");
        assert!(t.sweep_at >= 2 * t.names.len() && t.sweep_at >= SWEEP_MIN);
        drop(t);
        assert!(Arc::ptr_eq(&intern("intern-test-ns"), &a));
    }

    /// UUIDs become their 128-bit value; other strings a stable hash that tells them apart.
    #[test]
    fn uids_are_numbers() {
        assert_eq!(
            uid("6f1c7a3e-0d5b-4f5e-9c1a-2b3c4d5e6f70"),
            0x6f1c7a3e_0d5b_4f5e_9c1a_2b3c4d5e6f70
        );
        assert_eq!(uid("uid-a"), uid("uid-a"));
        assert_ne!(uid("uid-a"), uid("uid-b"));
        assert_ne!(uid(""), uid("uid-a"));
    }
}
