//! [`JwtDenyList`]: the JWT deny-list of PROTOCOL.md section 5 held in a
//! service's memory, with the guarantee of the C++ `torii::JwtDenyList`.
//!
//! # Guarantee
//!
//! While [`JwtDenyList::is_stale`] is false, [`JwtDenyList::check`] reports
//! `revoked` for every JWT of the list's tenant that was revoked
//! (`revoke_jwt`, or `revoke_user_jwts` for its user with a cutoff after its
//! issued-at) before the last successful [`JwtDenyList::load`], or whose
//! revocation event (`jwt.revoked`, `jwt.user_revoked`) has been applied
//! (by the subscriber's thread, as soon as it arrives). A jti stays until
//! the JWT's `expires_at` (local clock); per-user cutoffs until the next
//! load.
//!
//! Stale exactly when the session cache would not serve: before the first
//! successful load; after any stale condition the subscriber reports (until
//! the next load that began and ended live with no stale condition in
//! between); whenever the subscriber is not live; with
//! [`JwtDenyListConfig::with_max_staleness`], whenever no live endpoint
//! spoke within that bound (this passes by itself when one speaks again).
//! While stale, [`JwtDenyList::revoked`] still answers `true` for what it
//! holds (revocations are never undone) and, with `fail_closed` (the
//! default), `true` for everything else.
//!
//! Checking never goes to the daemon. Torii 0.5's JWTs carry no `jti`:
//! [`jwt_token_id`] derives one from the token (docs/torii.md, "JWT
//! sessions").

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use blake2::{Blake2s256, Digest};
use chrono::{DateTime, Utc};

use crate::client::Client;
use crate::error::{Error, Result};
use crate::subscriber::{Event, Listener, StaleReason, Subscriber};

/// A stable id for a JWT that has no `jti` claim (Torii 0.5's): the first
/// 16 bytes of BLAKE2s-256 of the whole token, in lower-case hex (32
/// characters). Revoke with it (`revoke_jwt(jwt_token_id(token), exp,
/// user)`) and check with it.
pub fn jwt_token_id(token: &str) -> String {
    let d = Blake2s256::digest(token.as_bytes());
    let mut s = String::with_capacity(32);
    for b in &d[..16] {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// How to build a [`JwtDenyList`].
#[derive(Debug, Clone)]
pub struct JwtDenyListConfig {
    fail_closed: bool,
    page_size: i64,
    max_staleness: Option<Duration>,
}

impl Default for JwtDenyListConfig {
    fn default() -> Self {
        JwtDenyListConfig {
            fail_closed: true,
            page_size: 1000,
            max_staleness: None,
        }
    }
}

impl JwtDenyListConfig {
    /// The defaults: fail closed, pages of 1,000, the subscriber's own
    /// staleness bound.
    pub fn new() -> JwtDenyListConfig {
        JwtDenyListConfig::default()
    }

    /// While stale, [`JwtDenyList::revoked`] answers `true` for a JWT it
    /// does not know (default true).
    pub fn with_fail_closed(mut self, fail_closed: bool) -> JwtDenyListConfig {
        self.fail_closed = fail_closed;
        self
    }

    /// The page size of a load (1..=1000).
    pub fn with_page_size(mut self, n: i64) -> JwtDenyListConfig {
        self.page_size = n.clamp(1, 1000);
        self
    }

    /// Stale while no live endpoint spoke within `bound` (set it above the
    /// heartbeat interval).
    pub fn with_max_staleness(mut self, bound: Duration) -> JwtDenyListConfig {
        self.max_staleness = Some(bound);
        self
    }

    /// The list for `client`'s tenant, registered on `subscriber` (which
    /// must receive the `jwt` family). Stale until [`JwtDenyList::load`].
    pub fn build(self, client: &Client, subscriber: &Subscriber) -> JwtDenyList {
        let inner = Arc::new(Inner {
            client: client.clone(),
            subscriber: subscriber.clone(),
            tenant: client.tenant().to_string(),
            config: self,
            state: Mutex::new(State {
                stale: true,
                jtis: HashMap::new(),
                users: HashMap::new(),
                stats: JwtDenyListStats::default(),
            }),
            own_gen: AtomicU64::new(0),
        });
        let weak: Weak<dyn Listener> = Arc::downgrade(&(inner.clone() as Arc<dyn Listener>));
        subscriber.add_listener(weak);
        JwtDenyList { inner }
    }
}

/// An answer of [`JwtDenyList::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JwtVerdict {
    /// Listed, or issued before its user's cutoff.
    pub revoked: bool,
    /// The list may be missing revocations.
    pub stale: bool,
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JwtDenyListStats {
    /// Successful loads.
    pub loads: u64,
    /// Loads that left the list stale.
    pub failed_loads: u64,
    /// `jwt.*` events applied.
    pub events: u64,
    /// Stale conditions seen.
    pub stale: u64,
    /// Checks.
    pub checks: u64,
    /// [`JwtDenyList::revoked`] answers of true.
    pub denied: u64,
}

/// The in-memory JWT deny-list (see the module documentation). Cheap to
/// clone.
#[derive(Clone)]
pub struct JwtDenyList {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for JwtDenyList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtDenyList")
            .field("tenant", &self.inner.tenant)
            .field("stale", &self.is_stale())
            .finish()
    }
}

struct Inner {
    client: Client,
    subscriber: Subscriber,
    tenant: String,
    config: JwtDenyListConfig,
    state: Mutex<State>,
    // Moves when the list itself goes stale (an event it cannot apply).
    own_gen: AtomicU64,
}

struct State {
    stale: bool,
    jtis: HashMap<String, i64>,  // jti -> the JWT's exp (µs)
    users: HashMap<String, i64>, // user uuid -> issued_before (µs)
    stats: JwtDenyListStats,
}

impl State {
    fn add_jti(&mut self, jti: String, exp: i64) {
        let e = self.jtis.entry(jti).or_insert(exp);
        *e = (*e).max(exp);
    }
    fn add_cutoff(&mut self, user: String, before: i64) {
        let e = self
            .users
            .entry(user.to_ascii_lowercase())
            .or_insert(before);
        *e = (*e).max(before);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

impl Listener for Inner {
    fn on_event(&self, e: &Event, _duplicate: bool) {
        if e.family != "jwt" || e.tenant != self.tenant {
            return;
        }
        let mut st = lock(&self.state);
        match e.kind.as_str() {
            "revoked" => match (e.str("jti"), e.time("expires_at")) {
                (Some(jti), Some(exp)) => {
                    st.stats.events += 1;
                    st.add_jti(jti.to_string(), exp.timestamp_micros());
                }
                // A revocation we cannot apply: we may miss it.
                _ => self.go_stale(&mut st),
            },
            "user_revoked" => match (e.str("user_id"), e.time("issued_before")) {
                (Some(u), Some(b)) => {
                    st.stats.events += 1;
                    st.add_cutoff(u.to_string(), b.timestamp_micros());
                }
                _ => self.go_stale(&mut st),
            },
            _ => {}
        }
    }

    fn on_stale(&self, _reason: &StaleReason) {
        let mut st = lock(&self.state);
        self.go_stale(&mut st);
    }
}

impl Inner {
    fn go_stale(&self, st: &mut State) {
        st.stats.stale += 1;
        st.stale = true;
        self.own_gen.fetch_add(1, Ordering::AcqRel);
    }
}

impl JwtDenyList {
    /// A fail-closed list for `client`'s tenant on `subscriber`.
    pub fn new(client: &Client, subscriber: &Subscriber) -> JwtDenyList {
        JwtDenyListConfig::new().build(client, subscriber)
    }

    /// Loads the whole unexpired list (`list_jwt_revocations`, in pages).
    /// `unavailable` when the subscriber is not live (wait for its first
    /// heartbeat and load again) or went stale during the load; the
    /// client's error when a page failed. On success the list is not stale.
    pub async fn load(&self) -> Result<()> {
        let inner = &self.inner;
        let sub = &inner.subscriber;
        if !sub.live() {
            lock(&inner.state).stats.failed_loads += 1;
            return Err(unavailable(
                "the event subscriber is not live yet (no clean heartbeat); load again later",
            ));
        }
        let gen = sub.stale_generation();
        let own = inner.own_gen.load(Ordering::Acquire);
        let mut after: Option<String> = None;
        loop {
            let page = match inner
                .client
                .list_jwt_revocations(after.as_deref(), Some(inner.config.page_size))
                .await
            {
                Ok(p) => p,
                Err(e) => {
                    lock(&inner.state).stats.failed_loads += 1;
                    return Err(e);
                }
            };
            {
                let mut st = lock(&inner.state);
                for (jti, exp) in page.jtis {
                    st.add_jti(jti, exp.timestamp_micros());
                }
                for (user, before) in page.users {
                    st.add_cutoff(user, before.timestamp_micros());
                }
            }
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        let mut st = lock(&inner.state);
        if !sub.live()
            || sub.stale_generation() != gen
            || inner.own_gen.load(Ordering::Acquire) != own
        {
            st.stats.failed_loads += 1;
            return Err(unavailable(
                "the event stream went stale during the load; load again",
            ));
        }
        let now = now_micros();
        st.jtis.retain(|_, exp| *exp > now);
        st.stale = false;
        st.stats.loads += 1;
        Ok(())
    }

    /// [`load`](Self::load) only if stale; cheap otherwise.
    pub async fn refresh(&self) -> Result<()> {
        if self.is_stale() {
            self.load().await
        } else {
            Ok(())
        }
    }

    /// Whether the list may be missing revocations.
    pub fn is_stale(&self) -> bool {
        let sub = &self.inner.subscriber;
        if lock(&self.inner.state).stale || !sub.live_now() {
            return true;
        }
        match self.inner.config.max_staleness {
            None => false,
            Some(bound) => sub.live_silence().is_none_or(|s| s >= bound),
        }
    }

    /// In memory. `user_id` (a uuid, any case) `None`: no cutoff applies;
    /// `issued_at` `None` with a user: any cutoff of that user counts (the
    /// JWT cannot show it is newer), as `is_jwt_revoked` does. The
    /// comparison is `issued_at < issued_before`.
    pub fn check(
        &self,
        jti: &str,
        user_id: Option<&str>,
        issued_at: Option<DateTime<Utc>>,
    ) -> JwtVerdict {
        let stale = self.is_stale();
        let now = now_micros();
        let mut st = lock(&self.inner.state);
        st.stats.checks += 1;
        let mut revoked = st.jtis.get(jti).is_some_and(|&exp| exp > now);
        if !revoked {
            if let Some(u) = user_id {
                let found = if u.bytes().any(|b| b.is_ascii_uppercase()) {
                    st.users.get(&u.to_ascii_lowercase()).copied()
                } else {
                    st.users.get(u).copied()
                };
                if let Some(before) = found {
                    revoked = issued_at.is_none_or(|t| t.timestamp_micros() < before);
                }
            }
        }
        JwtVerdict { revoked, stale }
    }

    /// [`check`](Self::check)'s `revoked`, or `fail_closed` when stale and
    /// not known revoked.
    pub fn revoked(
        &self,
        jti: &str,
        user_id: Option<&str>,
        issued_at: Option<DateTime<Utc>>,
    ) -> bool {
        let v = self.check(jti, user_id, issued_at);
        let deny = v.revoked || (v.stale && self.inner.config.fail_closed);
        if deny {
            lock(&self.inner.state).stats.denied += 1;
        }
        deny
    }

    /// Drops jtis past their expiry (also done by each load).
    pub fn purge_expired(&self) {
        let now = now_micros();
        lock(&self.inner.state).jtis.retain(|_, exp| *exp > now);
    }

    /// How many jtis are held.
    pub fn jti_count(&self) -> usize {
        lock(&self.inner.state).jtis.len()
    }

    /// How many user cutoffs are held.
    pub fn user_count(&self) -> usize {
        lock(&self.inner.state).users.len()
    }

    /// The counters.
    pub fn stats(&self) -> JwtDenyListStats {
        lock(&self.inner.state).stats
    }
}

fn unavailable(msg: &str) -> Error {
    Error::Daemon {
        op: "list_jwt_revocations".into(),
        code: "unavailable".into(),
        message: msg.into(),
    }
}
