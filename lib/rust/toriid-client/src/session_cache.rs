//! [`SessionCache`]: a bounded, sharded LRU of `get_session` results kept
//! honest by a [`Subscriber`], with the guarantee of the C++
//! `torii::SessionCache`.
//!
//! # Guarantee
//!
//! Once the event of a session's deletion (`session.deleted`), change
//! (`session.updated`), its user's change or deletion (`user.updated`,
//! `user.deleted`), or a cleanup that covers it (`session.expired`) has been
//! *applied* to the cache (by the subscriber's thread, as soon as it
//! arrives; [`SessionCacheStats::last_applied`] and
//! [`SessionCache::set_applied_hook`] tell when), no lookup that starts
//! afterwards returns that session from memory again, and a fetch that was
//! in flight meanwhile is not cached.
//!
//! - On any stale condition the subscriber reports (a gap, an epoch change,
//!   missed heartbeats, a resync, a malformed message that no live endpoint
//!   vouched for; see [`Subscriber`]) every entry is dropped at once.
//! - While the subscriber is not live (before its first clean heartbeat,
//!   after 3 heartbeat intervals of silence from every endpoint), or, with
//!   [`SessionCacheConfig::with_max_staleness`], while no live endpoint spoke
//!   within that bound, nothing is served from memory: every lookup goes to
//!   the daemon (entries are kept and serve again once a live endpoint
//!   speaks, its heartbeat proving nothing was lost).
//! - A fetched session is cached only if the subscriber was live before the
//!   request was sent and after the reply, no stale condition was reported
//!   and no event touched that session or its user in between.
//! - Several daemons, one lagging behind another in relaying a change
//!   (docs/protocol.md section 11): a lagging daemon can answer a read with
//!   the old row from its own cache. Before a read is sent, the cache waits
//!   (normally well under a millisecond, at most 3 heartbeat intervals)
//!   until every daemon heard from in the last 3 heartbeat intervals has
//!   relayed the events delivered so far
//!   ([`Subscriber::relayed_by_every_endpoint`]); a read sent without that
//!   is not cached. Copies of an event from other daemons (duplicates by
//!   eid) are applied too, so a read in flight when a copy arrives is not
//!   cached either. So a check that starts after an event was applied is
//!   not answered with the row the event changed, from memory or from a
//!   daemon (assuming, as the rule does, that a daemon relays a change
//!   within one heartbeat interval of another).
//! - An entry is never served at or past its `expires_at` (local clock); an
//!   error or `not_found` is never cached.
//!
//! The client and the subscriber must name the same daemons.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use toriid_client::{Config, SessionCache, SubscriberConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), toriid_client::Error> {
//! let client = Config::new(["tcp://127.0.0.1:7420"]).connect()?;
//! let subscriber = SubscriberConfig::new(["tcp://127.0.0.1:7421"])
//!     .with_heartbeat(Duration::from_secs(1)) // the daemon's events.heartbeat_ms
//!     .start()?;
//! let cache = SessionCache::new(&subscriber, 100_000);
//! # let token = "";
//! // From memory while live; otherwise (and for a session not cached) one
//! // get_session, cached when the rules allow.
//! let session = cache.get(&client, token).await?;
//! // Memory only (None: not cached or not live), no await:
//! let again = cache.lookup(client.tenant(), token);
//! # let _ = (session, again);
//! # Ok(())
//! # }
//! ```
//!
//! # Cost
//!
//! A hit is a BLAKE2s digest of (tenant, token), one shard lock, one hash
//! lookup and an `Arc` clone (no allocation); tokens are kept only as their
//! digest. [`SessionCache::memory_bytes`] estimates the state.

use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use blake2::{Blake2s256, Digest};
use chrono::{DateTime, Utc};
use rmpv::Value;

use crate::client::{Client, SessionKey};
use crate::error::Result;
use crate::subscriber::{Event, Listener, StaleReason, Subscriber};
use crate::types::Session;

/// A fast hasher for keys that are already random (digests, uuids).
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let v = u64::from_le_bytes(c.try_into().unwrap_or([0; 8]));
            self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.0 = (self.0.rotate_left(5) ^ n as u64).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

pub(crate) type FxMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<FxHasher>>;

type Key = [u8; 32];
const NIL: u32 = u32::MAX;

/// The cache key of a token in a tenant: BLAKE2s-256 of `tenant NUL token`.
fn token_key(tenant: &str, token: &str) -> Key {
    let mut h = Blake2s256::new();
    h.update(tenant.as_bytes());
    h.update([0u8]);
    h.update(token.as_bytes());
    h.finalize().into()
}

fn parse_id(s: &str) -> Option<u128> {
    uuid::Uuid::parse_str(s).ok().map(|u| u.as_u128())
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Counters (summed over the shards).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionCacheStats {
    /// Lookups answered from memory.
    pub hits: u64,
    /// Lookups that went to the daemon.
    pub misses: u64,
    /// Entries removed by events.
    pub evictions: u64,
    /// Entries dropped at their `expires_at`.
    pub expired: u64,
    /// Least recently used entries dropped for capacity.
    pub capacity_evictions: u64,
    /// Whole-cache drops (reported stale conditions, [`SessionCache::clear`]).
    pub drops: u64,
    /// Lookups sent to the daemon because the subscriber was not live or
    /// silent past the staleness bound.
    pub not_live_lookups: u64,
    /// Replies not cached: not live, or a stale condition in between.
    pub not_cached_stale: u64,
    /// Replies not cached: an event touched the session or its user.
    pub not_cached_race: u64,
    /// Replies not cached: a live daemon had not relayed every delivered
    /// event yet.
    pub not_cached_lagging: u64,
    /// Events applied (copies from other daemons not counted).
    pub events: u64,
    /// When the last event was applied.
    pub last_applied: Option<Instant>,
}

impl SessionCacheStats {
    fn add(&mut self, o: &SessionCacheStats) {
        self.hits += o.hits;
        self.misses += o.misses;
        self.evictions += o.evictions;
        self.expired += o.expired;
        self.capacity_evictions += o.capacity_evictions;
        self.not_live_lookups += o.not_live_lookups;
        self.not_cached_stale += o.not_cached_stale;
        self.not_cached_race += o.not_cached_race;
        self.not_cached_lagging += o.not_cached_lagging;
    }
}

/// How to build a [`SessionCache`].
#[derive(Debug, Clone)]
pub struct SessionCacheConfig {
    capacity: usize,
    max_staleness: Option<Duration>,
    shards: Option<usize>,
}

impl SessionCacheConfig {
    /// At most `capacity` sessions (at least 1).
    pub fn new(capacity: usize) -> SessionCacheConfig {
        SessionCacheConfig {
            capacity: capacity.max(1),
            max_staleness: None,
            shards: None,
        }
    }

    /// Serve from memory only while a live endpoint sent a message within
    /// `bound` (default: the subscriber's own bound, 3 heartbeat intervals).
    /// Set it above the heartbeat interval, e.g. 1.5 x.
    pub fn with_max_staleness(mut self, bound: Duration) -> SessionCacheConfig {
        self.max_staleness = Some(bound);
        self
    }

    /// The number of independently locked shards (default 16, or 1 below
    /// 1,024 entries); each holds capacity / shards entries.
    pub fn with_shards(mut self, shards: usize) -> SessionCacheConfig {
        self.shards = Some(shards.clamp(1, 1024));
        self
    }

    /// The cache, registered on `subscriber`.
    pub fn build(self, subscriber: &Subscriber) -> SessionCache {
        let shards = self
            .shards
            .unwrap_or(if self.capacity >= 1024 { 16 } else { 1 });
        let per_shard = self.capacity.div_ceil(shards);
        let inner = Arc::new(Inner {
            subscriber: subscriber.clone(),
            shards: (0..shards)
                .map(|_| Mutex::new(Shard::new(per_shard)))
                .collect(),
            flush_gen: AtomicU64::new(0),
            max_staleness: self.max_staleness,
            drops: AtomicU64::new(0),
            applied: Mutex::new(Applied::default()),
        });
        let weak: Weak<dyn Listener> = Arc::downgrade(&(inner.clone() as Arc<dyn Listener>));
        subscriber.add_listener(weak);
        SessionCache { inner }
    }
}

type AppliedHook = Arc<dyn Fn(&Event, Instant) + Send + Sync>;

#[derive(Default)]
struct Applied {
    events: u64,
    last: Option<Instant>,
    hook: Option<AppliedHook>,
}

/// The in-process session cache; its guarantee is in the
/// [module documentation](crate::session_cache). Cheap to clone; clones
/// share the entries.
#[derive(Clone)]
pub struct SessionCache {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SessionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCache")
            .field("len", &self.len())
            .field("serving", &self.serving())
            .finish()
    }
}

struct Inner {
    subscriber: Subscriber,
    shards: Box<[Mutex<Shard>]>,
    // Moves at every drop of everything; an entry serves only with the
    // generation it was cached under, so a drop takes effect at once.
    flush_gen: AtomicU64,
    max_staleness: Option<Duration>,
    drops: AtomicU64,
    applied: Mutex<Applied>,
}

struct Slot {
    key: Key,
    session: Option<Arc<Session>>,
    sid: u128,
    uid: Option<u128>,
    expires_us: i64,
    gen: u64,
    prev: u32,
    next: u32,
    uprev: u32,
    unext: u32,
}

struct Shard {
    map: FxMap<Key, u32>,
    by_session: FxMap<u128, u32>,
    by_user: FxMap<u128, u32>, // user id -> first slot of the user's list
    slots: Vec<Slot>,
    free: Vec<u32>,
    head: u32, // most recently used
    tail: u32,
    len: usize,
    capacity: usize,
    // The read-through race: `event_gen` moves at every invalidating event;
    // while a fetch is in flight `touched` remembers it per id.
    event_gen: u64,
    in_flight: u32,
    touched: FxMap<u128, u64>,
    stats: SessionCacheStats,
}

impl Shard {
    fn new(capacity: usize) -> Shard {
        Shard {
            map: FxMap::default(),
            by_session: FxMap::default(),
            by_user: FxMap::default(),
            slots: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            len: 0,
            capacity,
            event_gen: 0,
            in_flight: 0,
            touched: FxMap::default(),
            stats: SessionCacheStats::default(),
        }
    }

    fn unlink_lru(&mut self, i: u32) {
        let (p, n) = (self.slots[i as usize].prev, self.slots[i as usize].next);
        if p == NIL {
            self.head = n;
        } else {
            self.slots[p as usize].next = n;
        }
        if n == NIL {
            self.tail = p;
        } else {
            self.slots[n as usize].prev = p;
        }
    }

    fn push_front(&mut self, i: u32) {
        self.slots[i as usize].prev = NIL;
        self.slots[i as usize].next = self.head;
        if self.head != NIL {
            self.slots[self.head as usize].prev = i;
        }
        self.head = i;
        if self.tail == NIL {
            self.tail = i;
        }
    }

    fn touch_lru(&mut self, i: u32) {
        if self.head != i {
            self.unlink_lru(i);
            self.push_front(i);
        }
    }

    fn remove(&mut self, i: u32) {
        self.unlink_lru(i);
        let (key, sid, uid, up, un) = {
            let s = &self.slots[i as usize];
            (s.key, s.sid, s.uid, s.uprev, s.unext)
        };
        if let Some(uid) = uid {
            if up == NIL {
                if un == NIL {
                    self.by_user.remove(&uid);
                } else {
                    self.by_user.insert(uid, un);
                }
            } else {
                self.slots[up as usize].unext = un;
            }
            if un != NIL {
                self.slots[un as usize].uprev = up;
            }
        }
        self.map.remove(&key);
        self.by_session.remove(&sid);
        self.slots[i as usize].session = None;
        self.free.push(i);
        self.len -= 1;
    }

    fn clear(&mut self) {
        self.map.clear();
        self.by_session.clear();
        self.by_user.clear();
        self.slots.clear();
        self.free.clear();
        self.head = NIL;
        self.tail = NIL;
        self.len = 0;
    }

    fn insert(&mut self, key: Key, session: Arc<Session>, sid: u128, uid: Option<u128>, gen: u64) {
        if let Some(&old) = self.map.get(&key) {
            self.remove(old);
        }
        if let Some(&old) = self.by_session.get(&sid) {
            self.remove(old);
        }
        let slot = Slot {
            key,
            expires_us: micros(session.expires_at),
            session: Some(session),
            sid,
            uid,
            gen,
            prev: NIL,
            next: NIL,
            uprev: NIL,
            unext: NIL,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = slot;
                i
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        };
        self.push_front(i);
        self.map.insert(key, i);
        self.by_session.insert(sid, i);
        if let Some(uid) = uid {
            if let Some(&first) = self.by_user.get(&uid) {
                self.slots[i as usize].unext = first;
                self.slots[first as usize].uprev = i;
            }
            self.by_user.insert(uid, i);
        }
        self.len += 1;
        while self.len > self.capacity && self.tail != NIL {
            self.stats.capacity_evictions += 1;
            let t = self.tail;
            self.remove(t);
        }
    }

    fn touch(&mut self, id: u128) {
        self.event_gen += 1;
        if self.in_flight > 0 {
            self.touched.insert(id, self.event_gen);
        }
    }

    fn touched_since(&self, id: u128, gen: u64) -> bool {
        self.touched.get(&id).is_some_and(|&g| g > gen)
    }

    fn evict_session(&mut self, sid: u128) {
        if let Some(&i) = self.by_session.get(&sid) {
            self.stats.evictions += 1;
            self.remove(i);
        }
    }

    fn evict_user(&mut self, uid: u128) {
        while let Some(&i) = self.by_user.get(&uid) {
            self.stats.evictions += 1;
            self.remove(i);
        }
    }

    fn evict_expired(&mut self, before_us: i64) {
        let mut i = self.head;
        while i != NIL {
            let next = self.slots[i as usize].next;
            if self.slots[i as usize].expires_us <= before_us {
                self.stats.evictions += 1;
                self.remove(i);
            }
            i = next;
        }
    }
}

/// The lagging-daemon wait before a read: up to 3 heartbeat intervals (a
/// daemon silent that long is no longer asked to have relayed anything).
async fn s_wait(sub: &Subscriber, position: crate::subscriber::Position) {
    let _ = sub.wait_relayed(position, 3 * sub.heartbeat()).await;
}

/// Ends a fetch's in-flight mark, also when the fetch's future is dropped.
struct InFlight<'a> {
    shard: &'a Mutex<Shard>,
    armed: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self.armed {
            let mut s = lock(self.shard);
            s.in_flight -= 1;
            if s.in_flight == 0 {
                s.touched.clear();
            }
        }
    }
}

impl SessionCache {
    /// A cache of at most `capacity` sessions on `subscriber` (see
    /// [`SessionCacheConfig`] for the options).
    pub fn new(subscriber: &Subscriber, capacity: usize) -> SessionCache {
        SessionCacheConfig::new(capacity).build(subscriber)
    }

    /// The subscriber it listens to.
    pub fn subscriber(&self) -> &Subscriber {
        &self.inner.subscriber
    }

    /// Whether lookups may be answered from memory now (the subscriber is
    /// live, and within the staleness bound if one is set).
    pub fn serving(&self) -> bool {
        let sub = &self.inner.subscriber;
        match self.inner.max_staleness {
            None => sub.live_now(),
            Some(bound) => sub.live_silence().is_some_and(|s| s < bound),
        }
    }

    fn shard_of(&self, key: &Key) -> &Mutex<Shard> {
        let n = self.inner.shards.len();
        let h = u64::from_le_bytes([
            key[24], key[25], key[26], key[27], key[28], key[29], key[30], key[31],
        ]);
        &self.inner.shards[(h % n as u64) as usize]
    }

    /// Memory only: the unexpired cached session of `token` in `tenant`,
    /// or `None` (not cached, expired, or not [`serving`](Self::serving)).
    /// Counts a hit when it answers; a `None` is not counted as a miss.
    pub fn lookup(&self, tenant: &str, token: &str) -> Option<Arc<Session>> {
        let key = token_key(tenant, token);
        self.lookup_key(
            &key,
            self.serving() && self.inner.subscriber.follows(tenant),
        )
    }

    fn lookup_key(&self, key: &Key, serving: bool) -> Option<Arc<Session>> {
        let mut s = lock(self.shard_of(key));
        if !serving {
            s.stats.not_live_lookups += 1;
            return None;
        }
        let &i = s.map.get(key)?;
        let slot = &s.slots[i as usize];
        if slot.gen != self.inner.flush_gen.load(Ordering::Acquire) {
            s.remove(i);
            return None;
        }
        if now_micros() >= slot.expires_us {
            s.stats.expired += 1;
            s.remove(i);
            return None;
        }
        let out = slot.session.clone();
        s.stats.hits += 1;
        s.touch_lru(i);
        out
    }

    /// The unexpired session of `token` through `client` (in the client's
    /// tenant): from memory, or `get_session` (then cached when the rules
    /// allow). Errors are the client's (`not_found` for an unknown or
    /// expired token).
    pub async fn get(&self, client: &Client, token: &str) -> Result<Arc<Session>> {
        self.get_with(client.tenant(), token, || {
            client.get_session(SessionKey::Token(token))
        })
        .await
    }

    /// Memory, or `fetch` (a `get_session` of `token` in `tenant` however
    /// the caller makes it), whose result is cached when the rules allow
    /// and it is unexpired. An expired session `fetch` returns is passed
    /// through, not cached.
    pub async fn get_with<F, Fut, E>(
        &self,
        tenant: &str,
        token: &str,
        fetch: F,
    ) -> std::result::Result<Arc<Session>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<Session, E>>,
    {
        if !self.inner.subscriber.follows(tenant) {
            // This tenant's deletions never reach the subscriber: nothing
            // of it may be kept, every check goes to the daemon.
            lock(self.shard_of(&token_key(tenant, token)))
                .stats
                .not_live_lookups += 1;
            let mut session = fetch().await?;
            session.token = None;
            return Ok(Arc::new(session));
        }
        let key = token_key(tenant, token);
        let serving = self.serving();
        if let Some(s) = self.lookup_key(&key, serving) {
            return Ok(s);
        }
        let shard = self.shard_of(&key);
        let event_at_start = {
            let mut s = lock(shard);
            s.stats.misses += 1;
            s.in_flight += 1;
            s.event_gen
        };
        let mut guard = InFlight { shard, armed: true };
        let sub = &self.inner.subscriber;
        // live() before the read: the stale rule's anchor.
        let live_at_start = sub.live();
        let flush_at_start = self.inner.flush_gen.load(Ordering::Acquire);
        // Events applied from here on mark this read as raced; those
        // applied before must be reflected by whichever daemon answers: wait
        // until every daemon that may answer has relayed them.
        let position = sub.position();
        if !sub.relayed_by_every_endpoint(position) {
            s_wait(sub, position).await;
        }

        let mut session = fetch().await?;
        session.token = None;

        let live_at_end = sub.live();
        let relayed = sub.relayed_by_every_endpoint(position);
        let sid = parse_id(&session.id);
        let uid = parse_id(&session.user_id);
        let session = Arc::new(session);
        let mut s = lock(shard);
        guard.armed = false;
        s.in_flight -= 1;
        let flush_now = self.inner.flush_gen.load(Ordering::Acquire);
        let verdict = if !live_at_start || !live_at_end || flush_now != flush_at_start {
            s.stats.not_cached_stale += 1;
            false
        } else if sid.is_none_or(|id| s.touched_since(id, event_at_start))
            || uid.is_some_and(|id| s.touched_since(id, event_at_start))
        {
            s.stats.not_cached_race += 1;
            false
        } else if !relayed {
            s.stats.not_cached_lagging += 1;
            false
        } else {
            now_micros() < micros(session.expires_at)
        };
        if s.in_flight == 0 {
            s.touched.clear();
        }
        if let (true, Some(sid)) = (verdict, sid) {
            s.insert(key, session.clone(), sid, uid, flush_now);
        }
        Ok(session)
    }

    /// Drops every entry.
    pub fn clear(&self) {
        self.inner.flush();
    }

    /// The number of cached sessions.
    pub fn len(&self) -> usize {
        self.inner.shards.iter().map(|s| lock(s).len).sum()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The counters.
    pub fn stats(&self) -> SessionCacheStats {
        let mut out = SessionCacheStats::default();
        for sh in self.inner.shards.iter() {
            out.add(&lock(sh).stats);
        }
        out.drops = self.inner.drops.load(Ordering::Relaxed);
        let a = lock(&self.inner.applied);
        out.events = a.events;
        out.last_applied = a.last;
        out
    }

    /// Calls `hook(event, when)` on the subscriber's thread right after an
    /// invalidating event (`session.*` and `user.*` but `*.created`) has
    /// been applied: from `when` on, the guarantee holds for it. For
    /// measurements (a revocation's delay); keep it quick.
    pub fn set_applied_hook(&self, hook: impl Fn(&Event, Instant) + Send + Sync + 'static) {
        lock(&self.inner.applied).hook = Some(Arc::new(hook));
    }

    /// An estimate of the cache's memory in bytes: its tables (at their
    /// capacity) and the cached sessions with their strings and metadata.
    pub fn memory_bytes(&self) -> usize {
        use std::mem::size_of;
        let mut total = size_of::<Inner>();
        for sh in self.inner.shards.iter() {
            let s = lock(sh);
            total += size_of::<Mutex<Shard>>();
            total += s.map.capacity() * (size_of::<(Key, u32)>() + 1);
            total += s.by_session.capacity() * (size_of::<(u128, u32)>() + 1);
            total += s.by_user.capacity() * (size_of::<(u128, u32)>() + 1);
            total += s.slots.capacity() * size_of::<Slot>();
            total += s.free.capacity() * size_of::<u32>();
            for slot in &s.slots {
                if let Some(sess) = &slot.session {
                    total += 2 * size_of::<usize>() + size_of::<Session>();
                    total += sess.id.capacity() + sess.user_id.capacity();
                    total += sess.user_agent.as_ref().map_or(0, String::capacity);
                    total += sess.ip_address.as_ref().map_or(0, String::capacity);
                    total += value_heap_bytes(&sess.metadata);
                }
            }
        }
        total
    }
}

fn value_heap_bytes(v: &Value) -> usize {
    use std::mem::size_of;
    match v {
        Value::String(s) => s.as_bytes().len(),
        Value::Binary(b) => b.len(),
        Value::Array(a) => {
            a.capacity() * size_of::<Value>() + a.iter().map(value_heap_bytes).sum::<usize>()
        }
        Value::Map(m) => {
            m.capacity() * size_of::<(Value, Value)>()
                + m.iter()
                    .map(|(k, v)| value_heap_bytes(k) + value_heap_bytes(v))
                    .sum::<usize>()
        }
        Value::Ext(_, b) => b.len(),
        _ => 0,
    }
}

impl Listener for Inner {
    fn on_event(&self, event: &Event, duplicate: bool) {
        if self.apply(event) && !duplicate {
            let when = Instant::now();
            let hook = {
                let mut a = lock(&self.applied);
                a.events += 1;
                a.last = Some(when);
                a.hook.clone()
            };
            if let Some(h) = hook {
                h(event, when);
            }
        }
    }

    fn on_stale(&self, _reason: &StaleReason) {
        self.flush();
    }
}

impl Inner {
    fn flush(&self) {
        self.flush_gen.fetch_add(1, Ordering::AcqRel);
        self.drops.fetch_add(1, Ordering::Relaxed);
        for sh in self.shards.iter() {
            lock(sh).clear();
        }
    }

    fn apply(&self, e: &Event) -> bool {
        match (e.family.as_str(), e.kind.as_str()) {
            ("session", "expired") => match e.time("before") {
                Some(b) => {
                    let b = micros(b);
                    for sh in self.shards.iter() {
                        lock(sh).evict_expired(b);
                    }
                }
                // A cleanup summary without a readable `before`: drop
                // everything rather than guess.
                None => self.flush(),
            },
            // A new session makes no cached row stale.
            ("session", "created") => return false,
            ("session", _) => match e.str("id").and_then(parse_id) {
                Some(id) => {
                    for sh in self.shards.iter() {
                        let mut s = lock(sh);
                        s.touch(id);
                        s.evict_session(id);
                    }
                }
                None => self.flush(),
            },
            ("user", "created") => return false,
            ("user", _) => match e.str("id").and_then(parse_id) {
                Some(id) => {
                    for sh in self.shards.iter() {
                        let mut s = lock(sh);
                        s.touch(id);
                        s.evict_user(id);
                    }
                }
                None => self.flush(),
            },
            _ => return false,
        }
        true
    }
}
