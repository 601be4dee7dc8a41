//! A bounded, least-recently-used cache of unwrapped keyrings.
//!
//! Unwrapping costs a KEK round trip (a KMS call, later), so hot tenants stay
//! cached; the bound limits how much key material sits in memory at once, and
//! an evicted keyring is wiped as soon as the last request using it finishes.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::keyring::TenantKeyring;

/// Thread-safe LRU cache of `Arc<TenantKeyring>` by tenant id.
#[derive(Debug)]
pub struct KeyCache {
    capacity: usize,
    inner: Mutex<Lru>,
}

/// Recency is a monotonically increasing tick; `order` maps tick → tenant so
/// the least recently used entry is the first key. O(log n) per operation.
#[derive(Debug, Default)]
struct Lru {
    tick: u64,
    entries: HashMap<String, (Arc<TenantKeyring>, u64)>,
    order: BTreeMap<u64, String>,
}

impl Lru {
    fn touch(&mut self, tenant_id: &str) -> Option<Arc<TenantKeyring>> {
        self.tick += 1;
        let tick = self.tick;
        let (ring, used) = self.entries.get_mut(tenant_id)?;
        let old = std::mem::replace(used, tick);
        let ring = Arc::clone(ring);
        if let Some(id) = self.order.remove(&old) {
            self.order.insert(tick, id);
        }
        Some(ring)
    }

    fn remove(&mut self, tenant_id: &str) {
        if let Some((_, used)) = self.entries.remove(tenant_id) {
            self.order.remove(&used);
        }
    }
}

impl KeyCache {
    /// A cache holding at most `capacity` keyrings. A capacity of 0 caches
    /// nothing (every `get` misses).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            inner: Mutex::new(Lru::default()),
        }
    }

    // A panic while holding the lock cannot leave the maps half-updated in a
    // way that matters (worst case a stale entry), so recover from poisoning
    // instead of taking every later request down with it.
    fn lock(&self) -> MutexGuard<'_, Lru> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached keyring for `tenant_id`, marking it most recently used.
    pub fn get(&self, tenant_id: &str) -> Option<Arc<TenantKeyring>> {
        self.lock().touch(tenant_id)
    }

    /// Cache `keyring` under its tenant id (replacing any previous one),
    /// evicting the least recently used entries beyond capacity.
    pub fn insert(&self, keyring: Arc<TenantKeyring>) {
        if self.capacity == 0 {
            return;
        }
        let mut lru = self.lock();
        let tenant_id = keyring.tenant_id().to_owned();
        lru.remove(&tenant_id);
        lru.tick += 1;
        let tick = lru.tick;
        lru.order.insert(tick, tenant_id.clone());
        lru.entries.insert(tenant_id, (keyring, tick));
        while lru.entries.len() > self.capacity {
            let Some((_, oldest)) = lru.order.pop_first() else {
                break;
            };
            lru.entries.remove(&oldest);
        }
    }

    /// Drop `tenant_id`'s keyring (after a key rotation or tenant deletion).
    pub fn invalidate(&self, tenant_id: &str) {
        self.lock().remove(tenant_id);
    }

    /// Drop every cached keyring (e.g. after a master-key rotation).
    pub fn clear(&self) {
        let mut lru = self.lock();
        lru.entries.clear();
        lru.order.clear();
    }

    /// Number of cached keyrings.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The maximum number of keyrings held.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::secret::SecretKey;

    fn ring(tenant: &str) -> Arc<TenantKeyring> {
        Arc::new(
            TenantKeyring::new(
                tenant.to_owned(),
                vec![(1, SecretKey::from_bytes([1; 32]))],
                SecretKey::from_bytes([2; 32]),
            )
            .unwrap(),
        )
    }

    #[test]
    fn evicts_least_recently_used() {
        let cache = KeyCache::new(2);
        cache.insert(ring("a"));
        cache.insert(ring("b"));
        assert!(cache.get("a").is_some()); // a is now most recent
        cache.insert(ring("c")); // evicts b
        assert_eq!(cache.len(), 2);
        assert!(cache.get("b").is_none());
        assert!(cache.get("a").is_some());
        assert!(cache.get("c").is_some());
    }

    #[test]
    fn never_exceeds_capacity() {
        let cache = KeyCache::new(3);
        for i in 0..20 {
            cache.insert(ring(&format!("t{i}")));
            assert!(cache.len() <= 3);
        }
        assert_eq!(cache.len(), 3);
        for i in 17..20 {
            assert!(cache.get(&format!("t{i}")).is_some());
        }
        assert!(cache.get("t16").is_none());
    }

    #[test]
    fn reinsert_replaces_without_growing() {
        let cache = KeyCache::new(2);
        let first = ring("a");
        cache.insert(Arc::clone(&first));
        let second = ring("a");
        cache.insert(Arc::clone(&second));
        assert_eq!(cache.len(), 1);
        assert!(Arc::ptr_eq(&cache.get("a").unwrap(), &second));
    }

    #[test]
    fn invalidate_and_clear() {
        let cache = KeyCache::new(4);
        cache.insert(ring("a"));
        cache.insert(ring("b"));
        cache.invalidate("a");
        cache.invalidate("missing");
        assert!(cache.get("a").is_none());
        assert!(cache.get("b").is_some());
        assert_eq!(cache.len(), 1);
        cache.clear();
        assert!(cache.is_empty());
        // Still usable after clear.
        cache.insert(ring("c"));
        assert!(cache.get("c").is_some());
    }

    #[test]
    fn zero_capacity_caches_nothing() {
        let cache = KeyCache::new(0);
        cache.insert(ring("a"));
        assert!(cache.get("a").is_none());
        assert!(cache.is_empty());
    }

    #[test]
    fn is_shareable_across_threads() {
        let cache = Arc::new(KeyCache::new(8));
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let cache = Arc::clone(&cache);
                std::thread::spawn(move || {
                    for i in 0..50 {
                        cache.insert(ring(&format!("t{t}-{i}")));
                        let _ = cache.get(&format!("t{t}-{}", i / 2));
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(cache.len(), 8);
    }
}
