//! Throttling of password guessing: a sliding window of failed logins per account and per
//! client address, kept in memory.
//!
//! Two independent counters because they stop different attacks: the per-account limit stops
//! guessing one user's password from many addresses, the per-address limit stops one address
//! trying a common password against many accounts. In memory because a lost count after a
//! restart costs an attacker's few extra guesses, while a database write per failed login
//! would hand them a cheap way to load the database.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Duration, Utc};
use steward_core::{Clock, Error, Result};

/// How many keys (accounts plus addresses, counted per kind) are tracked at most, so a flood
/// of distinct keys cannot grow memory without bound.
pub const DEFAULT_MAX_KEYS: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Failures per account within `window` before its logins are refused. Zero is treated as
    /// one.
    pub per_account: u32,
    /// Failures per client address within `window` before its logins are refused. Zero is
    /// treated as one.
    pub per_address: u32,
    pub window: Duration,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            per_account: 5,
            per_address: 20,
            window: Duration::minutes(15),
        }
    }
}

/// Failure timestamps per key, oldest first. At most `limit` are kept per key: older ones
/// cannot change the decision.
#[derive(Debug, Default)]
struct Counters {
    map: HashMap<String, VecDeque<DateTime<Utc>>>,
}

impl Counters {
    /// Seconds until `key` may try again, or `None` if it is under `limit`.
    fn retry_after(
        &mut self,
        key: &str,
        limit: usize,
        now: DateTime<Utc>,
        window: Duration,
    ) -> Option<u64> {
        let cutoff = now - window;
        let failures = self.map.get_mut(key)?;
        drop_expired(failures, cutoff);
        if failures.is_empty() {
            self.map.remove(key);
            return None;
        }
        if failures.len() < limit {
            return None;
        }
        // The key is usable again once enough of the oldest failures have left the window to
        // bring the count below the limit.
        let freeing = failures[failures.len() - limit];
        let ms = (freeing + window - now).num_milliseconds().max(0);
        let secs = u64::try_from(ms).unwrap_or(0).div_ceil(1000);
        Some(secs.max(1))
    }

    fn record(
        &mut self,
        key: &str,
        limit: usize,
        now: DateTime<Utc>,
        window: Duration,
        max_keys: usize,
    ) {
        let cutoff = now - window;
        if !self.map.contains_key(key) && self.map.len() >= max_keys {
            self.make_room(cutoff, max_keys);
        }
        let failures = self.map.entry(key.to_owned()).or_default();
        drop_expired(failures, cutoff);
        failures.push_back(now);
        while failures.len() > limit {
            failures.pop_front();
        }
    }

    fn sweep(&mut self, cutoff: DateTime<Utc>) {
        self.map
            .retain(|_, failures| failures.back().is_some_and(|t| *t > cutoff));
    }

    /// Frees at least one slot: expired keys first, then those whose latest failure is
    /// oldest. Evicts an eighth of the map at a time so that a sustained flood of new keys
    /// pays for this scan rarely rather than on every insert.
    fn make_room(&mut self, cutoff: DateTime<Utc>, max_keys: usize) {
        self.sweep(cutoff);
        if self.map.len() < max_keys {
            return;
        }
        let evict = (max_keys / 8).clamp(1, self.map.len());
        let mut by_age: Vec<(DateTime<Utc>, String)> = self
            .map
            .iter()
            .map(|(k, f)| {
                (
                    f.back().copied().unwrap_or(DateTime::<Utc>::MIN_UTC),
                    k.clone(),
                )
            })
            .collect();
        by_age.select_nth_unstable(evict - 1);
        for (_, key) in by_age.into_iter().take(evict) {
            self.map.remove(&key);
        }
    }
}

fn drop_expired(failures: &mut VecDeque<DateTime<Utc>>, cutoff: DateTime<Utc>) {
    while failures.front().is_some_and(|t| *t <= cutoff) {
        failures.pop_front();
    }
}

#[derive(Debug)]
struct State {
    accounts: Counters,
    addresses: Counters,
    last_sweep: Option<DateTime<Utc>>,
}

/// Counts failed logins and refuses further attempts once a limit is reached.
///
/// The caller builds the keys (e.g. `acct:<lowercased email>`, `ip:<address>`); the first
/// argument of each method is always counted against `per_account`, the second against
/// `per_address`.
#[derive(Debug)]
pub struct LoginRateLimiter {
    config: RateLimitConfig,
    clock: Arc<dyn Clock>,
    max_keys: usize,
    state: Mutex<State>,
}

impl LoginRateLimiter {
    pub fn new(config: RateLimitConfig, clock: Arc<dyn Clock>) -> Self {
        Self::with_max_keys(config, clock, DEFAULT_MAX_KEYS)
    }

    /// Like [`new`](Self::new) with a different bound on tracked keys per kind.
    pub fn with_max_keys(config: RateLimitConfig, clock: Arc<dyn Clock>, max_keys: usize) -> Self {
        Self {
            config,
            clock,
            max_keys: max_keys.max(1),
            state: Mutex::new(State {
                accounts: Counters::default(),
                addresses: Counters::default(),
                last_sweep: None,
            }),
        }
    }

    pub fn config(&self) -> &RateLimitConfig {
        &self.config
    }

    fn account_limit(&self) -> usize {
        usize::try_from(self.config.per_account.max(1)).unwrap_or(usize::MAX)
    }

    fn address_limit(&self) -> usize {
        usize::try_from(self.config.per_address.max(1)).unwrap_or(usize::MAX)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves at worst a stale count; keep limiting.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Call before checking the password. `Err(RateLimited)` if either the account or the
    /// address has reached its limit, with the longer of the two waits.
    pub fn check(&self, account_key: &str, address_key: &str) -> Result<()> {
        let now = self.clock.now();
        let window = self.config.window;
        let mut state = self.lock();
        let account = state
            .accounts
            .retry_after(account_key, self.account_limit(), now, window);
        let address = state
            .addresses
            .retry_after(address_key, self.address_limit(), now, window);
        match account.max(address) {
            Some(retry_after_secs) => Err(Error::RateLimited { retry_after_secs }),
            None => Ok(()),
        }
    }

    /// Call after a wrong password (or an unknown account: the two must look the same).
    pub fn record_failure(&self, account_key: &str, address_key: &str) {
        let now = self.clock.now();
        let window = self.config.window;
        let (account_limit, address_limit) = (self.account_limit(), self.address_limit());
        let mut state = self.lock();
        // A full sweep at most once per window keeps keys that are never looked at again from
        // lingering, at amortised constant cost.
        if state.last_sweep.is_none_or(|t| now - t >= window) {
            let cutoff = now - window;
            state.accounts.sweep(cutoff);
            state.addresses.sweep(cutoff);
            state.last_sweep = Some(now);
        }
        state
            .accounts
            .record(account_key, account_limit, now, window, self.max_keys);
        state
            .addresses
            .record(address_key, address_limit, now, window, self.max_keys);
    }

    /// Call after a correct password. Clears the account's count only: clearing the address
    /// too would let an attacker who owns one account reset their address's count at will.
    pub fn record_success(&self, account_key: &str) {
        self.lock().accounts.map.remove(account_key);
    }

    /// How many account and address keys are currently tracked (for metrics and tests).
    pub fn tracked_keys(&self) -> (usize, usize) {
        let state = self.lock();
        (state.accounts.map.len(), state.addresses.map.len())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use steward_core::ManualClock;

    fn limiter() -> (LoginRateLimiter, ManualClock) {
        let clock = ManualClock::starting_now();
        let l = LoginRateLimiter::new(RateLimitConfig::default(), Arc::new(clock.clone()));
        (l, clock)
    }

    fn retry_after(r: Result<()>) -> u64 {
        match r {
            Err(Error::RateLimited { retry_after_secs }) => retry_after_secs,
            other => panic!("expected RateLimited, got {other:?}"),
        }
    }

    const ACCT: &str = "acct:alice@example.com";
    const IP: &str = "ip:192.0.2.1";

    #[test]
    fn five_failures_lock_until_window_passes() {
        let (l, clock) = limiter();
        for _ in 0..4 {
            l.check(ACCT, IP).unwrap();
            l.record_failure(ACCT, IP);
        }
        l.check(ACCT, IP).unwrap();
        l.record_failure(ACCT, IP);
        assert_eq!(retry_after(l.check(ACCT, IP)), 900);

        clock.advance(Duration::seconds(899));
        assert_eq!(retry_after(l.check(ACCT, IP)), 1);
        clock.advance(Duration::seconds(1));
        l.check(ACCT, IP).unwrap();
    }

    #[test]
    fn retry_after_counts_from_the_oldest_failure() {
        let (l, clock) = limiter();
        for _ in 0..5 {
            l.record_failure(ACCT, IP);
            clock.advance(Duration::minutes(1));
        }
        // Oldest failure 5 minutes ago leaves the window in 10 minutes.
        assert_eq!(retry_after(l.check(ACCT, IP)), 600);
        clock.advance(Duration::minutes(10));
        l.check(ACCT, IP).unwrap();
        // Four failures are still in the window: one more locks again, until the (new)
        // oldest leaves.
        l.record_failure(ACCT, IP);
        assert_eq!(retry_after(l.check(ACCT, IP)), 60);
    }

    #[test]
    fn sub_second_remainder_rounds_up() {
        let (l, clock) = limiter();
        for _ in 0..5 {
            l.record_failure(ACCT, IP);
        }
        clock.advance(Duration::milliseconds(899_500));
        assert_eq!(retry_after(l.check(ACCT, IP)), 1);
    }

    #[test]
    fn success_resets_account_but_not_address() {
        let (l, _) = limiter();
        for _ in 0..5 {
            l.record_failure(ACCT, IP);
        }
        assert!(l.check(ACCT, IP).is_err());
        l.record_success(ACCT);
        l.check(ACCT, IP).unwrap();
        assert_eq!(l.tracked_keys(), (0, 1));
    }

    #[test]
    fn address_limit_is_independent() {
        let (l, _) = limiter();
        for i in 0..20 {
            let acct = format!("acct:user{i}@example.com");
            l.check(&acct, IP).unwrap();
            l.record_failure(&acct, IP);
        }
        // A fresh account from the same address is refused ...
        assert_eq!(retry_after(l.check("acct:new@example.com", IP)), 900);
        // ... while the same accounts from another address are not (each has one failure).
        l.check("acct:user0@example.com", "ip:198.51.100.7")
            .unwrap();
    }

    #[test]
    fn account_limit_spans_addresses() {
        let (l, _) = limiter();
        for i in 0..5 {
            l.record_failure(ACCT, &format!("ip:203.0.113.{i}"));
        }
        assert!(l.check(ACCT, "ip:203.0.113.200").is_err());
    }

    #[test]
    fn longer_wait_wins_when_both_are_over() {
        let clock = ManualClock::starting_now();
        let cfg = RateLimitConfig {
            per_account: 1,
            per_address: 1,
            window: Duration::minutes(15),
        };
        let l = LoginRateLimiter::new(cfg, Arc::new(clock.clone()));
        l.record_failure("acct:a", "ip:1");
        clock.advance(Duration::minutes(5));
        l.record_failure("acct:b", "ip:1");
        assert_eq!(retry_after(l.check("acct:a", "ip:1")), 900);
        assert_eq!(retry_after(l.check("acct:a", "ip:2")), 600);
    }

    #[test]
    fn memory_is_bounded_dropping_expired_then_oldest() {
        let clock = ManualClock::starting_now();
        let l =
            LoginRateLimiter::with_max_keys(RateLimitConfig::default(), Arc::new(clock.clone()), 4);
        for i in 0..4 {
            l.record_failure(&format!("acct:{i}"), &format!("ip:{i}"));
            clock.advance(Duration::seconds(1));
        }
        assert_eq!(l.tracked_keys(), (4, 4));
        l.record_failure("acct:new", "ip:new");
        let (accounts, addresses) = l.tracked_keys();
        assert!(accounts <= 4 && addresses <= 4);
        // The oldest went first, the newest is there.
        let state = l.lock();
        assert!(!state.accounts.map.contains_key("acct:0"));
        assert!(state.accounts.map.contains_key("acct:new"));
        drop(state);

        // Once the window has passed everything old is dropped by the periodic sweep.
        clock.advance(Duration::minutes(16));
        l.record_failure("acct:later", "ip:later");
        assert_eq!(l.tracked_keys(), (1, 1));
    }

    #[test]
    fn flood_of_keys_stays_under_cap() {
        let clock = ManualClock::starting_now();
        let l = LoginRateLimiter::with_max_keys(
            RateLimitConfig::default(),
            Arc::new(clock.clone()),
            100,
        );
        for i in 0..5_000 {
            l.record_failure(&format!("acct:{i}"), IP);
        }
        let (accounts, addresses) = l.tracked_keys();
        assert!(accounts <= 100, "{accounts}");
        assert_eq!(addresses, 1);
        // The address is still limited despite the churn.
        assert!(l.check("acct:x", IP).is_err());
    }

    #[test]
    fn zero_limit_means_one() {
        let clock = ManualClock::starting_now();
        let cfg = RateLimitConfig {
            per_account: 0,
            per_address: 0,
            window: Duration::minutes(1),
        };
        let l = LoginRateLimiter::new(cfg, Arc::new(clock));
        l.check(ACCT, IP).unwrap();
        l.record_failure(ACCT, IP);
        assert!(l.check(ACCT, IP).is_err());
    }

    #[test]
    fn concurrent_use_counts_every_failure() {
        let clock = ManualClock::starting_now();
        let cfg = RateLimitConfig {
            per_account: 1_000,
            per_address: 1_000,
            window: Duration::minutes(15),
        };
        let l = Arc::new(LoginRateLimiter::new(cfg, Arc::new(clock)));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let l = Arc::clone(&l);
                std::thread::spawn(move || {
                    for _ in 0..125 {
                        l.record_failure(ACCT, IP);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(l.check(ACCT, IP).is_err());
        assert_eq!(l.lock().accounts.map[ACCT].len(), 1_000);
    }
}
