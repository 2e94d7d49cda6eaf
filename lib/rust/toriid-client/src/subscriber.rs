//! [`Subscriber`]: the change-event side of PROTOCOL.md section 3, with the
//! rules of docs/protocol.md sections 6 and 11 exactly as the C++
//! `torii::Subscriber` implements them.
//!
//! One background thread owns one SUB socket per endpoint and applies each
//! event to the registered [`Listener`]s (the [`SessionCache`], the
//! [`JwtDenyList`], an [`EventStream`]) as soon as it arrives, so a cache
//! drops a revoked session without waiting for any task to run.
//!
//! - A stale condition on an endpoint is one of: a seq gap (a family's seq
//!   skipped, or a heartbeat's `seqs` shows a family beyond, or behind, the
//!   last seq seen), an epoch change (the daemon restarted), missed
//!   heartbeats (no message of any kind for 3 x the heartbeat interval,
//!   reported once per silence, also when nothing ever arrived), a
//!   `torii.resync`, or a malformed message. After one, the endpoint is not
//!   live until its next clean heartbeat, and its seq tracking starts again
//!   (a new "segment").
//! - An endpoint is live when, since it was connected and since its last
//!   stale condition, it delivered a heartbeat of its current epoch whose
//!   `seqs` showed nothing missed, and it is within its heartbeat deadline.
//!   [`Subscriber::live`] is true while at least one endpoint is live; false
//!   right after [`SubscriberConfig::start`] (the first heartbeat proves the
//!   subscriptions are in place).
//! - Several endpoints (daemons on one database): every event a daemon
//!   relays from the database carries `eid`, the same on every daemon; an
//!   eid already delivered (within the dedup window) is not delivered again
//!   (listeners still see the copy, flagged `duplicate`; see
//!   [`Listener::on_event`]). Heartbeats and a daemon's own resync have no
//!   eid and are never deduplicated.
//! - The stale rule with several endpoints (docs/protocol.md section 11): a
//!   stale condition on endpoint A reaches [`Listener::on_stale`] unless
//!   another endpoint vouches for it. Let x be the eid of the last event A
//!   delivered before the condition. B vouches when it is live and received
//!   x in its current segment (absorbed at once); when another endpoint is
//!   live but has not received x yet, the condition is held up to 3
//!   heartbeat intervals waiting for x. B also vouches, with or without x,
//!   when it is live and has been caught up, with no stale condition, since
//!   before the *anchor*: the first [`Subscriber::live`] call that answered
//!   true after the last reported condition (a cache checks `live()` before
//!   it reads what it caches and drops everything at each report, so
//!   everything it holds was read after the anchor). Reported at once when
//!   no other endpoint is live, when A has no position and nobody has been
//!   live since before the anchor, when x left the window, and always for a
//!   `torii.resync` that carries an eid (database-wide).
//! - Tenants (PROTOCOL.md section 6): a topic `@T/family.kind` is tenant
//!   T's; the prefix is stripped ([`Event::topic`] is `family.kind`) and
//!   [`Event::tenant`] names T (`default` for topics without a prefix). Seqs
//!   are tracked per (tenant, family); each tenant's `torii.heartbeat`
//!   checks that tenant's families.
//!
//! Listeners run on the subscriber's thread while it holds its state: they
//! must be quick and must not call the [`Subscriber`] (its methods would
//! wait for the thread that is calling them).
//!
//! [`SessionCache`]: crate::SessionCache
//! [`JwtDenyList`]: crate::JwtDenyList

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rmpv::Value;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::io::CurveKeys;
use crate::value::timestamp_from_value;

// The default tenant: events whose topic has no `@T/` prefix.
use crate::client::DEFAULT_TENANT;

/// A flood must not keep the thread from checking deadlines.
const MAX_MESSAGES_PER_SOCKET_PER_ROUND: usize = 10_000;
/// The longest the thread sleeps before looking at its stop flag.
const MAX_WAIT_MS: i64 = 50;

/// How to subscribe. Build with [`SubscriberConfig::new`] and the `with_*`
/// methods, then [`SubscriberConfig::start`].
#[derive(Clone)]
pub struct SubscriberConfig {
    endpoints: Vec<String>,
    families: Vec<String>,
    tenants: Vec<String>,
    heartbeat: Duration,
    rcvhwm: i32,
    dedup_window: usize,
    curve: Option<CurveKeys>,
}

impl fmt::Debug for SubscriberConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubscriberConfig")
            .field("endpoints", &self.endpoints)
            .field("families", &self.families)
            .field("tenants", &self.tenants)
            .field("heartbeat", &self.heartbeat)
            .field("curve", &self.curve.is_some())
            .finish()
    }
}

impl SubscriberConfig {
    /// One or more `events` endpoints of daemons on one database (at most
    /// 64).
    pub fn new<I, S>(endpoints: I) -> SubscriberConfig
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        SubscriberConfig {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            families: Vec::new(),
            tenants: Vec::new(),
            heartbeat: Duration::from_secs(1),
            rcvhwm: 100_000,
            dedup_window: 65_536,
            curve: None,
        }
    }

    /// The families to receive (`user`, `session`, `jwt`; a trailing `.`
    /// is allowed); `torii` is always received. Default (empty): every
    /// family of every tenant.
    pub fn with_families<I, S>(mut self, families: I) -> SubscriberConfig
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.families = families.into_iter().map(Into::into).collect();
        self
    }

    /// With [`with_families`](Self::with_families): the tenants whose
    /// families to receive (default: `default` only). Without families every
    /// tenant's events arrive anyway.
    pub fn with_tenants<I, S>(mut self, tenants: I) -> SubscriberConfig
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tenants = tenants.into_iter().map(Into::into).collect();
        self
    }

    /// The daemon's `events.heartbeat_ms` (1 s unless set): silence for 3 x
    /// this is stale.
    pub fn with_heartbeat(mut self, interval: Duration) -> SubscriberConfig {
        self.heartbeat = interval;
        self
    }

    /// Receive high-water mark per socket, in messages (ZeroMQ drops beyond
    /// it; the seq gap then tells). Default 100,000.
    pub fn with_rcvhwm(mut self, messages: i32) -> SubscriberConfig {
        self.rcvhwm = messages;
        self
    }

    /// With two or more endpoints: how many recent event ids are remembered
    /// for deduplication and for the stale rule (default 65,536, at least 1).
    pub fn with_dedup_window(mut self, eids: usize) -> SubscriberConfig {
        self.dedup_window = eids.max(1);
        self
    }

    /// CURVE with three Z85 key files as `torii keygen` writes them.
    pub fn with_curve_key_files(
        mut self,
        server_public: impl AsRef<Path>,
        client_public: impl AsRef<Path>,
        client_secret: impl AsRef<Path>,
    ) -> Result<SubscriberConfig> {
        self.curve = Some(CurveKeys::from_files(
            server_public,
            client_public,
            client_secret,
        )?);
        Ok(self)
    }

    /// Creates and connects the SUB sockets and starts the thread. A
    /// config error for no endpoint, more than 64, or a zero heartbeat.
    pub fn start(mut self) -> Result<Subscriber> {
        if self.endpoints.is_empty() {
            return Err(Error::Config(
                "the subscriber needs at least one endpoint".into(),
            ));
        }
        if self.endpoints.len() > 64 {
            return Err(Error::Config(
                "the subscriber takes at most 64 endpoints".into(),
            ));
        }
        if self.heartbeat.is_zero() {
            return Err(Error::Config(
                "the heartbeat interval must be positive".into(),
            ));
        }
        for f in &mut self.families {
            if f.ends_with('.') {
                f.pop();
            }
        }
        if self.families.iter().any(|f| f.is_empty()) {
            self.families.clear();
        }
        if self.tenants.is_empty() {
            self.tenants.push(DEFAULT_TENANT.to_string());
        }
        let ctx = zmq::Context::new();
        let mut sockets = Vec::with_capacity(self.endpoints.len());
        for ep in &self.endpoints {
            let s = ctx.socket(zmq::SUB)?;
            s.set_linger(0)?;
            s.set_rcvhwm(self.rcvhwm)?;
            if let Some(keys) = &self.curve {
                s.set_curve_serverkey(&keys.server_public)?;
                s.set_curve_publickey(&keys.client_public)?;
                s.set_curve_secretkey(&keys.client_secret)?;
            }
            if self.families.is_empty() {
                s.set_subscribe(b"")?;
            } else {
                // "torii." last: subscriptions reach the publisher in order,
                // so the first heartbeat proves the others are in place.
                for t in &self.tenants {
                    let prefix = tenant_prefix(t);
                    for f in &self.families {
                        if f != "torii" {
                            s.set_subscribe(format!("{prefix}{f}.").as_bytes())?;
                        }
                    }
                }
                for t in &self.tenants {
                    s.set_subscribe(format!("{}torii.", tenant_prefix(t)).as_bytes())?;
                }
            }
            s.connect(ep)?;
            sockets.push(s);
        }
        let base = Instant::now();
        let n = self.endpoints.len();
        let heartbeat_ms = i64::try_from(self.heartbeat.as_millis())
            .unwrap_or(i64::MAX / 4)
            .max(1);
        let state = State {
            endpoints: (0..n).map(|_| EndpointState::new(0)).collect(),
            dedup: n > 1,
            seen: HashMap::new(),
            order: VecDeque::new(),
            held: Vec::new(),
            tick: 0,
            anchor: None,
            stats: SubscriberStats::default(),
            last_delivered_eid: None,
            delivered: 0,
            delivered_at_ms: 0,
            rank: HashMap::new(),
            heartbeat_ms,
            families: self.families.clone(),
            dedup_window: self.dedup_window,
        };
        let shared = Arc::new(Shared {
            base,
            heartbeat: self.heartbeat,
            state: Mutex::new(state),
            live_until_ms: AtomicU64::new(0),
            freshest_ms: AtomicU64::new(0),
            stale_generation: AtomicU64::new(0),
            listeners: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            followed: if self.families.is_empty() {
                None
            } else {
                Some(self.tenants.clone())
            },
        });
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("toriid-subscriber".into())
            .spawn(move || run(thread_shared, ctx, sockets))
            .map_err(|e| Error::Config(format!("cannot start the subscriber thread: {e}")))?;
        Ok(Subscriber {
            shared: shared.clone(),
            _guard: Arc::new(Guard {
                shared,
                thread: Mutex::new(Some(thread)),
            }),
        })
    }
}

fn tenant_prefix(tenant: &str) -> String {
    if tenant == DEFAULT_TENANT {
        String::new()
    } else {
        format!("@{tenant}/")
    }
}

/// A position in the database's event stream as this subscriber delivered
/// it ([`Subscriber::position`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    delivered: u64,
    at_ms: u64,
}

/// One decoded event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The tenant: the `T` of a topic `@T/…`, `default` without a prefix.
    pub tenant: String,
    /// `family.kind` (the tenant prefix stripped), e.g. `session.deleted`.
    pub topic: String,
    /// `session`.
    pub family: String,
    /// `deleted`.
    pub kind: String,
    /// The per-(tenant, family) sequence number.
    pub seq: u64,
    /// The database's event id, when the body has one.
    pub eid: Option<u64>,
    /// The publishing daemon's epoch.
    pub epoch: String,
    /// When the daemon published it.
    pub at: Option<DateTime<Utc>>,
    /// Which endpoint brought it (index into the configured endpoints).
    pub endpoint: usize,
    /// The whole body (a map).
    pub body: Value,
    /// When the subscriber's thread decoded it.
    pub received: Instant,
}

impl Event {
    /// A body value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match &self.body {
            Value::Map(m) => m
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// A string body value.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    /// A timestamp body value.
    pub fn time(&self, key: &str) -> Option<DateTime<Utc>> {
        self.get(key).and_then(timestamp_from_value)
    }
}

/// The kinds of stale condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StaleKind {
    /// A seq skipped or went backwards, or a heartbeat showed one.
    Gap,
    /// The daemon behind the endpoint restarted.
    EpochChange,
    /// No message for 3 heartbeat intervals.
    MissedHeartbeats,
    /// A `torii.resync`.
    Resync,
    /// An undecodable message (it may have been an invalidation).
    Malformed,
}

impl StaleKind {
    /// `gap`, `epoch_change`, `missed_heartbeats`, `resync`, `malformed`.
    pub fn name(self) -> &'static str {
        match self {
            StaleKind::Gap => "gap",
            StaleKind::EpochChange => "epoch_change",
            StaleKind::MissedHeartbeats => "missed_heartbeats",
            StaleKind::Resync => "resync",
            StaleKind::Malformed => "malformed",
        }
    }
}

/// Why the subscriber may have missed something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleReason {
    /// Which condition.
    pub kind: StaleKind,
    /// Which endpoint (index).
    pub endpoint: usize,
    /// The tenant of a gap's family (`default` otherwise).
    pub tenant: String,
    /// A gap's family.
    pub family: String,
    /// The epoch now tracked (an epoch change: the new one).
    pub epoch: String,
    /// An epoch change: the old one.
    pub old_epoch: String,
    /// A gap: the next seq expected.
    pub expected: u64,
    /// A gap: the seq seen (or shown by a heartbeat).
    pub got: u64,
    /// More words (a resync: the daemon's reason).
    pub detail: String,
}

impl StaleReason {
    fn new(kind: StaleKind, endpoint: usize, epoch: &str) -> StaleReason {
        StaleReason {
            kind,
            endpoint,
            tenant: DEFAULT_TENANT.into(),
            family: String::new(),
            epoch: epoch.to_string(),
            old_epoch: String::new(),
            expected: 0,
            got: 0,
            detail: String::new(),
        }
    }
}

impl fmt::Display for StaleReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let epoch = if self.epoch.is_empty() {
            "unknown"
        } else {
            &self.epoch
        };
        match self.kind {
            StaleKind::Gap => write!(
                f,
                "gap on {}{} (epoch {epoch}, expected seq {}, got {})",
                tenant_prefix(&self.tenant),
                self.family,
                self.expected,
                self.got
            )?,
            StaleKind::EpochChange => {
                write!(f, "epoch_change ({} -> {})", self.old_epoch, self.epoch)?
            }
            k => write!(f, "{} (epoch {epoch})", k.name())?,
        }
        write!(f, " on endpoint #{}", self.endpoint)?;
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SubscriberStats {
    /// Every message received.
    pub messages: u64,
    /// Events delivered (duplicates and `torii.*` not counted).
    pub events: u64,
    /// Events whose eid was already delivered.
    pub duplicates: u64,
    /// Heartbeats received.
    pub heartbeats: u64,
    /// Stale conditions reported to listeners.
    pub stale: u64,
    /// Stale conditions another endpoint vouched for.
    pub absorbed: u64,
    /// Malformed messages.
    pub malformed: u64,
}

/// Receives what the subscriber's thread decodes, on that thread. Register
/// with [`Subscriber::add_listener`]; the subscriber keeps a weak
/// reference, so dropping the listener's last `Arc` unregisters it.
pub trait Listener: Send + Sync {
    /// An event. `duplicate`: a copy from another daemon of an event (same
    /// eid) already delivered; a cache applies invalidations again (it
    /// closes the lagging-daemon race of docs/protocol.md section 11) but
    /// nothing else should count it. `torii.*` events come too.
    fn on_event(&self, event: &Event, duplicate: bool);
    /// A stale condition no live endpoint absorbed: drop everything cached.
    fn on_stale(&self, reason: &StaleReason);
}

/// What an [`EventStream`] yields.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// An event (once per eid; `torii.*` only if asked for).
    Event(Arc<Event>),
    /// A reported stale condition.
    Stale(StaleReason),
}

/// An async stream of [`Notice`]s from [`Subscriber::events`]. Unbounded:
/// read it, or drop it.
#[derive(Debug)]
pub struct EventStream {
    rx: mpsc::UnboundedReceiver<Notice>,
    _sink: Arc<StreamSink>,
}

impl EventStream {
    /// The next notice; `None` once the subscriber stopped.
    pub async fn next(&mut self) -> Option<Notice> {
        self.rx.recv().await
    }

    /// A notice already waiting, without waiting.
    pub fn try_next(&mut self) -> Option<Notice> {
        self.rx.try_recv().ok()
    }
}

impl futures_core::Stream for EventStream {
    type Item = Notice;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Notice>> {
        self.rx.poll_recv(cx)
    }
}

#[derive(Debug)]
struct StreamSink {
    tx: mpsc::UnboundedSender<Notice>,
    torii: bool,
}

impl Listener for StreamSink {
    fn on_event(&self, event: &Event, duplicate: bool) {
        if !duplicate && (self.torii || event.family != "torii") {
            let _ = self.tx.send(Notice::Event(Arc::new(event.clone())));
        }
    }
    fn on_stale(&self, reason: &StaleReason) {
        let _ = self.tx.send(Notice::Stale(reason.clone()));
    }
}

/// The event subscriber: a background thread with one SUB socket per
/// endpoint; its rules are in the [module documentation](crate::subscriber). Cheap to clone;
/// the thread stops when the last clone (and every cache built on it) is
/// dropped.
#[derive(Clone)]
pub struct Subscriber {
    shared: Arc<Shared>,
    _guard: Arc<Guard>,
}

impl fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscriber")
            .field("live", &self.live_now())
            .finish()
    }
}

struct Guard {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(t) = lock(&self.thread).take() {
            // The last clone may go with a listener the thread itself
            // dropped: it then ends on its own at its next round.
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Subscriber {
    /// True while at least one endpoint is live. The first call that
    /// answers true after a reported stale condition is the stale rule's
    /// anchor: a cache calls it before it reads anything it caches.
    pub fn live(&self) -> bool {
        let now = self.shared.now_ms();
        let mut st = lock(&self.shared.state);
        if (0..st.endpoints.len()).any(|i| st.endpoint_live(i, now)) {
            if st.anchor.is_none() {
                st.tick += 1;
                st.anchor = Some(st.tick);
            }
            true
        } else {
            false
        }
    }

    /// Whether this subscriber receives `tenant`'s events: every tenant's
    /// without families, else the tenants of
    /// [`with_tenants`](SubscriberConfig::with_tenants) (`default` unless
    /// set). A cache must not keep a tenant's sessions when its deletions
    /// never arrive.
    pub fn follows(&self, tenant: &str) -> bool {
        match &self.shared.followed {
            None => true,
            Some(tenants) => tenants.iter().any(|t| t == tenant),
        }
    }

    /// [`live`](Self::live) without touching the anchor and without a
    /// lock (two atomic loads): for a cache's hit path, which serves only
    /// entries read after an earlier `live()`.
    pub fn live_now(&self) -> bool {
        self.shared.now_ms() < self.shared.live_until_ms.load(Ordering::Acquire)
    }

    /// Whether endpoint `index` is live on its own.
    pub fn endpoint_live(&self, index: usize) -> bool {
        let now = self.shared.now_ms();
        let st = lock(&self.shared.state);
        index < st.endpoints.len() && st.endpoint_live(index, now)
    }

    /// Time since the newest message of an endpoint that is live; `None`
    /// while none is live. [`live`](Self::live) alone allows up to 3
    /// heartbeat intervals of silence.
    pub fn live_silence(&self) -> Option<Duration> {
        if !self.live_now() {
            return None;
        }
        let fresh = self.shared.freshest_ms.load(Ordering::Acquire);
        Some(Duration::from_millis(
            self.shared.now_ms().saturating_sub(fresh),
        ))
    }

    /// Bumped at every reported stale condition.
    pub fn stale_generation(&self) -> u64 {
        self.shared.stale_generation.load(Ordering::Acquire)
    }

    /// The counters.
    pub fn stats(&self) -> SubscriberStats {
        lock(&self.shared.state).stats
    }

    /// The eid of the last event delivered.
    pub fn last_delivered_eid(&self) -> Option<u64> {
        lock(&self.shared.state).last_delivered_eid
    }

    /// The daemons' heartbeat interval this subscriber was configured with.
    pub fn heartbeat(&self) -> Duration {
        self.shared.heartbeat
    }

    /// The position in the database's event stream now: what has been
    /// delivered so far. A cache notes it before a read and checks
    /// [`relayed_by_every_endpoint`](Self::relayed_by_every_endpoint).
    pub fn position(&self) -> Position {
        let st = lock(&self.shared.state);
        Position {
            delivered: st.delivered,
            at_ms: st.delivered_at_ms,
        }
    }

    /// Whether every daemon that may answer a read now has relayed every
    /// event delivered up to `position`, so that its answer reflects them
    /// (the lagging-daemon rule of docs/torii.md). True with one endpoint.
    /// With several, for each endpoint heard from within 3 heartbeat
    /// intervals (a silent one answers nothing in time): it relayed an
    /// event at or after `position` (every daemon relays the database's
    /// events in one order), or a message of it arrived more than one
    /// heartbeat interval after `position` was delivered (it relays what
    /// it will relay within that: events it never relays were committed
    /// before it started listening, and its reads see them).
    pub fn relayed_by_every_endpoint(&self, position: Position) -> bool {
        let now = self.shared.now_ms();
        let st = lock(&self.shared.state);
        if !st.dedup || position.delivered == 0 {
            return true;
        }
        let hb = st.heartbeat_ms as u64;
        st.endpoints.iter().all(|ep| {
            let heard = now < ep.last_message_ms.saturating_add(3 * hb);
            !heard
                || ep.relayed >= position.delivered
                || ep.last_message_ms > position.at_ms.saturating_add(hb)
        })
    }

    /// Waits (polling every millisecond) until
    /// [`relayed_by_every_endpoint`](Self::relayed_by_every_endpoint) or
    /// `within` passes; returns it.
    pub async fn wait_relayed(&self, position: Position, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if self.relayed_by_every_endpoint(position) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Registers a listener (called on the subscriber's thread, in the
    /// order added). Held weakly: it stays registered while an `Arc` of it
    /// lives.
    pub fn add_listener(&self, listener: Weak<dyn Listener>) {
        let mut ls = lock(&self.shared.listeners);
        ls.retain(|l| l.strong_count() > 0);
        ls.push(listener);
    }

    /// An async stream of the events (once per eid) and reported stale
    /// conditions from now on; `torii`: include `torii.*` events.
    pub fn events(&self, torii: bool) -> EventStream {
        let (tx, rx) = mpsc::unbounded_channel();
        let sink = Arc::new(StreamSink { tx, torii });
        let weak: Weak<dyn Listener> = Arc::downgrade(&(sink.clone() as Arc<dyn Listener>));
        self.add_listener(weak);
        EventStream { rx, _sink: sink }
    }

    /// Waits (polling every few ms) until [`live`](Self::live) or `within`
    /// passes; returns `live()`.
    pub async fn wait_live(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if self.live() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

struct Shared {
    base: Instant,
    heartbeat: Duration,
    state: Mutex<State>,
    // For lock-free liveness: the time (ms since base) until which some
    // endpoint stays live without another message (0: none live), and the
    // newest message of a live endpoint.
    live_until_ms: AtomicU64,
    freshest_ms: AtomicU64,
    stale_generation: AtomicU64,
    listeners: Mutex<Vec<Weak<dyn Listener>>>,
    stop: AtomicBool,
    // The tenants whose streams the sockets subscribe to (None: every
    // tenant's, the subscription to everything).
    followed: Option<Vec<String>>,
}

impl Shared {
    /// Milliseconds since start, plus one (0 stays "never").
    fn now_ms(&self) -> u64 {
        self.base.elapsed().as_millis() as u64 + 1
    }

    fn listeners(&self) -> Vec<Arc<dyn Listener>> {
        lock(&self.listeners)
            .iter()
            .filter_map(Weak::upgrade)
            .collect()
    }
}

struct EndpointState {
    epoch: String,
    seqs: HashMap<String, u64>, // "@T/family" or "family" -> last seq (this epoch)
    last_message_ms: u64,
    silence_reported: bool,
    caught_up: bool,
    caught_up_tick: u64,
    last_eid: Option<u64>,
    // The highest stream position (State::delivered numbering) this
    // endpoint relayed.
    relayed: u64,
}

impl EndpointState {
    fn new(now: u64) -> EndpointState {
        EndpointState {
            epoch: String::new(),
            seqs: HashMap::new(),
            last_message_ms: now,
            silence_reported: false,
            caught_up: false,
            caught_up_tick: 0,
            last_eid: None,
            relayed: 0,
        }
    }
}

struct Held {
    reason: StaleReason,
    eid: u64,
    deadline_ms: u64,
}

struct State {
    endpoints: Vec<EndpointState>,
    dedup: bool,
    // eid -> bit i set when endpoint i received it in its current segment.
    seen: HashMap<u64, u64>,
    order: VecDeque<u64>,
    held: Vec<Held>,
    tick: u64,
    anchor: Option<u64>,
    stats: SubscriberStats,
    last_delivered_eid: Option<u64>,
    // The position in the database's event stream: how many events with
    // an eid were delivered, when the last one was, and each eid's number
    // (within the dedup window).
    delivered: u64,
    delivered_at_ms: u64,
    rank: HashMap<u64, u64>,
    heartbeat_ms: i64,
    families: Vec<String>,
    dedup_window: usize,
}

impl State {
    fn limit(&self) -> u64 {
        3 * self.heartbeat_ms as u64
    }

    fn endpoint_live(&self, i: usize, now: u64) -> bool {
        let ep = &self.endpoints[i];
        ep.caught_up && !ep.silence_reported && now < ep.last_message_ms + self.limit()
    }

    fn any_other_live(&self, index: usize, now: u64) -> bool {
        (0..self.endpoints.len()).any(|i| i != index && self.endpoint_live(i, now))
    }

    fn any_other_live_since_anchor(&self, index: usize, now: u64) -> bool {
        (0..self.endpoints.len()).any(|i| {
            i != index
                && self.endpoint_live(i, now)
                && self
                    .anchor
                    .is_none_or(|a| self.endpoints[i].caught_up_tick <= a)
        })
    }

    fn subscribed(&self, family: &str) -> bool {
        self.families.is_empty() || self.families.iter().any(|f| f == family)
    }
}

/// What processing produced, dispatched to listeners in order.
enum Out {
    Event(Event, bool),
    Stale(StaleReason),
}

struct Worker {
    shared: Arc<Shared>,
    out: Vec<Out>,
}

impl Worker {
    fn publish_liveness(&self, st: &State) {
        let mut until = 0;
        let mut freshest = 0;
        for ep in &st.endpoints {
            if ep.caught_up && !ep.silence_reported {
                until = until.max(ep.last_message_ms + st.limit());
                freshest = freshest.max(ep.last_message_ms);
            }
        }
        self.shared.freshest_ms.store(freshest, Ordering::Release);
        self.shared.live_until_ms.store(until, Ordering::Release);
    }

    fn caught_up(&self, st: &mut State, index: usize) {
        if st.endpoints[index].caught_up {
            return;
        }
        st.tick += 1;
        let tick = st.tick;
        let ep = &mut st.endpoints[index];
        ep.caught_up = true;
        ep.caught_up_tick = tick;
        self.publish_liveness(st);
    }

    fn report(&mut self, st: &mut State, reason: StaleReason) {
        st.stats.stale += 1;
        st.anchor = None;
        self.shared.stale_generation.fetch_add(1, Ordering::AcqRel);
        self.out.push(Out::Stale(reason));
    }

    fn stale(&mut self, st: &mut State, reason: StaleReason, absorbable: bool) {
        let a = reason.endpoint;
        st.endpoints[a].caught_up = false;
        self.publish_liveness(st);
        if !st.dedup {
            self.report(st, reason);
            return;
        }
        let mine = 1u64 << a;
        for v in st.seen.values_mut() {
            *v &= !mine;
        }
        let now = self.shared.now_ms();
        if !absorbable || !st.any_other_live(a, now) {
            self.report(st, reason);
            return;
        }
        if st.any_other_live_since_anchor(a, now) {
            st.stats.absorbed += 1;
            return;
        }
        let Some(x) = st.endpoints[a].last_eid else {
            self.report(st, reason);
            return;
        };
        let Some(&bits) = st.seen.get(&x) else {
            self.report(st, reason);
            return;
        };
        for i in 0..st.endpoints.len() {
            if i != a && bits & (1u64 << i) != 0 && st.endpoint_live(i, now) {
                st.stats.absorbed += 1;
                return;
            }
        }
        let deadline_ms = now + st.limit();
        st.held.push(Held {
            reason,
            eid: x,
            deadline_ms,
        });
    }

    fn malformed(&mut self, st: &mut State, index: usize, detail: String) {
        st.stats.malformed += 1;
        let mut r = StaleReason::new(StaleKind::Malformed, index, &st.endpoints[index].epoch);
        r.detail = detail;
        self.stale(st, r, true);
    }

    #[allow(clippy::too_many_arguments)]
    fn gap(
        &mut self,
        st: &mut State,
        index: usize,
        tenant: &str,
        family: &str,
        expected: u64,
        got: u64,
        detail: &str,
    ) {
        let mut r = StaleReason::new(StaleKind::Gap, index, &st.endpoints[index].epoch);
        r.tenant = tenant.to_string();
        r.family = family.to_string();
        r.expected = expected;
        r.got = got;
        r.detail = detail.to_string();
        self.stale(st, r, true);
    }

    /// Endpoint `index` received `eid` in its current segment; false for a
    /// duplicate. Settles held conditions waiting for it.
    fn record_eid(&mut self, st: &mut State, index: usize, eid: u64) -> bool {
        st.endpoints[index].last_eid = Some(eid);
        if !st.dedup {
            return true;
        }
        let mine = 1u64 << index;
        let fresh = match st.seen.get_mut(&eid) {
            Some(bits) => {
                *bits |= mine;
                false
            }
            None => {
                while st.order.len() >= st.dedup_window {
                    if let Some(old) = st.order.pop_front() {
                        st.seen.remove(&old);
                        st.rank.remove(&old);
                    }
                }
                st.seen.insert(eid, mine);
                st.order.push_back(eid);
                st.delivered += 1;
                st.delivered_at_ms = self.shared.now_ms();
                let k = st.delivered;
                st.rank.insert(eid, k);
                true
            }
        };
        let k = st.rank.get(&eid).copied().unwrap_or(0);
        let ep = &mut st.endpoints[index];
        ep.relayed = ep.relayed.max(k);
        let before = st.held.len();
        st.held
            .retain(|h| !(h.eid == eid && h.reason.endpoint != index));
        st.stats.absorbed += (before - st.held.len()) as u64;
        fresh
    }

    fn check_heartbeat(&mut self, st: &mut State, index: usize, prefix: &str, e: &Event) -> bool {
        let Some(Value::Map(seqs)) = e.get("seqs") else {
            self.malformed(st, index, "torii.heartbeat without a seqs map".into());
            return false;
        };
        let mut clean = true;
        for (k, v) in seqs {
            let (Some(family), Some(shown)) = (k.as_str(), v.as_u64()) else {
                continue;
            };
            if family == "torii" || !st.subscribed(family) {
                continue;
            }
            let key = format!("{prefix}{family}");
            match st.endpoints[index].seqs.get(&key).copied() {
                None => {
                    st.endpoints[index].seqs.insert(key, shown);
                }
                Some(last) if last != shown => {
                    let detail = if shown > last {
                        "the heartbeat shows messages we did not receive"
                    } else {
                        "the heartbeat shows a seq behind what we received"
                    };
                    st.endpoints[index].seqs.insert(key, shown);
                    self.gap(st, index, &e.tenant, family, last + 1, shown, detail);
                    clean = false;
                }
                Some(_) => {}
            }
        }
        // A subscribed family the heartbeat does not list has published
        // nothing yet: its first message must be seq 1.
        let fams: Vec<String> = st
            .families
            .iter()
            .filter(|f| *f != "torii")
            .map(|f| format!("{prefix}{f}"))
            .collect();
        for key in fams {
            st.endpoints[index].seqs.entry(key).or_insert(0);
        }
        clean
    }

    fn process(&mut self, st: &mut State, index: usize, topic: &[u8], body: &[u8]) {
        let Ok(topic) = std::str::from_utf8(topic) else {
            self.malformed(st, index, "an event topic that is not UTF-8".into());
            return;
        };
        let (tenant, prefix_len) = if let Some(rest) = topic.strip_prefix('@') {
            match rest.find('/') {
                Some(slash) if slash > 0 => (rest[..slash].to_string(), slash + 2),
                _ => {
                    self.malformed(st, index, "an event topic '@…' without a tenant".into());
                    return;
                }
            }
        } else {
            (DEFAULT_TENANT.to_string(), 0)
        };
        let prefix = &topic[..prefix_len];
        let bare = &topic[prefix_len..];
        let Some(dot) = bare.find('.') else {
            self.malformed(st, index, "an event topic without a '.'".into());
            return;
        };
        let body = match rmpv::decode::read_value(&mut &body[..]) {
            Ok(v @ Value::Map(_)) => v,
            _ => {
                self.malformed(
                    st,
                    index,
                    format!("an event body that is not a msgpack map ({bare})"),
                );
                return;
            }
        };
        let mut e = Event {
            tenant,
            topic: bare.to_string(),
            family: bare[..dot].to_string(),
            kind: bare[dot + 1..].to_string(),
            seq: 0,
            eid: None,
            epoch: String::new(),
            at: None,
            endpoint: index,
            body,
            received: Instant::now(),
        };
        let seq = e.get("seq").and_then(Value::as_u64);
        let epoch = e.str("epoch").map(str::to_string);
        let (Some(seq), Some(epoch)) = (seq, epoch) else {
            self.malformed(st, index, format!("an event without seq or epoch ({bare})"));
            return;
        };
        if let Some(t) = e.str("tenant") {
            if t != e.tenant {
                self.malformed(
                    st,
                    index,
                    format!("an event body whose tenant is not its topic's ({bare})"),
                );
                return;
            }
        }
        e.seq = seq;
        e.epoch = epoch;
        e.eid = e.get("eid").and_then(Value::as_u64);
        e.at = e.time("at");

        if st.endpoints[index].epoch != e.epoch {
            if st.endpoints[index].epoch.is_empty() {
                st.endpoints[index].epoch = e.epoch.clone();
            } else {
                let mut r = StaleReason::new(StaleKind::EpochChange, index, &e.epoch);
                r.old_epoch = std::mem::replace(&mut st.endpoints[index].epoch, e.epoch.clone());
                r.detail = "the daemon restarted".into();
                st.endpoints[index].seqs.clear();
                self.stale(st, r, true);
            }
        }

        let mut clean = true;
        let key = format!("{prefix}{}", e.family);
        match st.endpoints[index].seqs.get(&key).copied() {
            None => {
                st.endpoints[index].seqs.insert(key, e.seq);
            }
            Some(last) => {
                st.endpoints[index].seqs.insert(key, e.seq);
                if e.seq != last + 1 {
                    let detail = if e.seq > last + 1 {
                        ""
                    } else {
                        "the seq went backwards within one epoch"
                    };
                    let (tenant, family) = (e.tenant.clone(), e.family.clone());
                    self.gap(st, index, &tenant, &family, last + 1, e.seq, detail);
                    clean = false;
                }
            }
        }

        // After the seq checks: a gap is judged at the position before this
        // event, and this event opens the new segment.
        let fresh = match e.eid {
            Some(eid) => self.record_eid(st, index, eid),
            None => true,
        };
        if !fresh {
            st.stats.duplicates += 1;
        }
        let torii = e.family == "torii";
        if torii && e.kind == "heartbeat" {
            st.stats.heartbeats += 1;
            let prefix = prefix.to_string();
            if self.check_heartbeat(st, index, &prefix, &e) && clean {
                self.caught_up(st, index);
            }
        } else if torii && e.kind == "resync" && fresh {
            let mut r = StaleReason::new(StaleKind::Resync, index, &st.endpoints[index].epoch);
            r.tenant = e.tenant.clone();
            r.detail = e.str("reason").unwrap_or("torii.resync").to_string();
            // With an eid it came from the database: every daemon relays
            // it and no endpoint can vouch for it.
            let absorbable = e.eid.is_none();
            self.stale(st, r, absorbable);
        }
        if fresh {
            if !torii {
                st.stats.events += 1;
            }
            if let Some(eid) = e.eid {
                st.last_delivered_eid = Some(eid);
            }
        }
        self.out.push(Out::Event(e, !fresh));
    }

    /// Reports held conditions past their deadline or with no other
    /// endpoint live; returns ms to the next deadline.
    fn check_held(&mut self, st: &mut State, now: u64) -> Option<u64> {
        let mut next: Option<u64> = None;
        let mut i = 0;
        while i < st.held.len() {
            let h = &st.held[i];
            if now >= h.deadline_ms || !st.any_other_live(h.reason.endpoint, now) {
                let mut r = st.held.remove(i).reason;
                if r.detail.is_empty() {
                    r.detail = "no other endpoint vouched for it".into();
                } else {
                    r.detail.push_str("; no other endpoint vouched for it");
                }
                self.report(st, r);
                continue;
            }
            let due = h.deadline_ms - now;
            next = Some(next.map_or(due, |n| n.min(due)));
            i += 1;
        }
        next
    }

    fn check_deadlines(&mut self, st: &mut State, now: u64) -> Option<u64> {
        let limit = st.limit();
        let mut next: Option<u64> = None;
        for i in 0..st.endpoints.len() {
            let ep = &st.endpoints[i];
            if ep.silence_reported {
                continue;
            }
            let due = ep.last_message_ms + limit;
            if now >= due {
                let silent = now - ep.last_message_ms;
                st.endpoints[i].silence_reported = true;
                let mut r = StaleReason::new(
                    StaleKind::MissedHeartbeats,
                    i,
                    &st.endpoints[i].epoch.clone(),
                );
                r.detail = format!(
                    "no message for {silent} ms (3 heartbeats of {} ms)",
                    st.heartbeat_ms
                );
                self.stale(st, r, true);
            } else {
                let d = due - now;
                next = Some(next.map_or(d, |n| n.min(d)));
            }
        }
        if let Some(h) = self.check_held(st, now) {
            next = Some(next.map_or(h, |n| n.min(h)));
        }
        next
    }

    fn dispatch(&mut self) {
        if self.out.is_empty() {
            return;
        }
        let listeners = self.shared.listeners();
        for o in self.out.drain(..) {
            match o {
                Out::Event(e, dup) => {
                    for l in &listeners {
                        l.on_event(&e, dup);
                    }
                }
                Out::Stale(r) => {
                    for l in &listeners {
                        l.on_stale(&r);
                    }
                }
            }
        }
    }
}

fn run(shared: Arc<Shared>, _ctx: zmq::Context, sockets: Vec<zmq::Socket>) {
    let mut w = Worker {
        shared: shared.clone(),
        out: Vec::new(),
    };
    {
        let now = shared.now_ms();
        let mut st = lock(&shared.state);
        for ep in &mut st.endpoints {
            ep.last_message_ms = now;
        }
    }
    while !shared.stop.load(Ordering::Acquire) {
        let next_deadline;
        {
            let mut st = lock(&shared.state);
            // An endpoint with messages waiting has been heard from now,
            // before any endpoint's messages are processed (the stale rule
            // judges one endpoint against the others' present).
            let now = shared.now_ms();
            for (i, s) in sockets.iter().enumerate() {
                if s.get_events().is_ok_and(|ev| ev.contains(zmq::POLLIN)) {
                    st.endpoints[i].last_message_ms = now;
                }
            }
            for (i, s) in sockets.iter().enumerate() {
                drain(&mut w, &mut st, i, s);
            }
            let now = shared.now_ms();
            next_deadline = w.check_deadlines(&mut st, now);
            w.publish_liveness(&st);
            // Listeners run with the state held: a cache's read sees either
            // none or all of what this round applied.
            w.dispatch();
        }
        let wait = next_deadline
            .map_or(MAX_WAIT_MS, |d| (d as i64).min(MAX_WAIT_MS))
            .max(1);
        let mut items: Vec<zmq::PollItem<'_>> = sockets
            .iter()
            .map(|s| s.as_poll_item(zmq::POLLIN))
            .collect();
        let _ = zmq::poll(&mut items, wait);
    }
}

fn drain(w: &mut Worker, st: &mut State, index: usize, s: &zmq::Socket) {
    let mut n = 0;
    while n < MAX_MESSAGES_PER_SOCKET_PER_ROUND {
        let Ok(topic) = s.recv_bytes(zmq::DONTWAIT) else {
            break;
        };
        n += 1;
        st.stats.messages += 1;
        st.endpoints[index].last_message_ms = w.shared.now_ms();
        st.endpoints[index].silence_reported = false;
        if !s.get_rcvmore().unwrap_or(false) {
            w.malformed(st, index, "an event with one frame".into());
            continue;
        }
        let Ok(body) = s.recv_bytes(0) else {
            break;
        };
        if s.get_rcvmore().unwrap_or(false) {
            while s.get_rcvmore().unwrap_or(false) {
                if s.recv_bytes(0).is_err() {
                    break;
                }
            }
            w.malformed(st, index, "an event with more than two frames".into());
            continue;
        }
        w.process(st, index, &topic, &body);
    }
}
