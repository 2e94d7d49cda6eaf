//! The Subscriber's rules against in-process PUB sockets publishing crafted
//! events (the cases of the C++ tests/unit/subscriber_test.cpp, plus
//! tenants): going live on a heartbeat, each stale condition, and with
//! several endpoints deduplication by eid and the stale rule. The same
//! rules against real daemons: tests/events.rs.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use toriid_client::{Event, Listener, StaleKind, StaleReason, Subscriber, SubscriberConfig, Value};

struct Pub {
    sock: zmq::Socket,
    endpoint: String,
}

impl Pub {
    fn new(ctx: &zmq::Context) -> Pub {
        let sock = ctx.socket(zmq::PUB).unwrap();
        sock.set_linger(0).unwrap();
        sock.bind("tcp://127.0.0.1:*").unwrap();
        let endpoint = sock.get_last_endpoint().unwrap().unwrap();
        Pub { sock, endpoint }
    }

    fn raw(&self, topic: &str, body: &[u8]) {
        self.sock.send(topic.as_bytes(), zmq::SNDMORE).unwrap();
        self.sock.send(body, 0).unwrap();
    }

    fn event(&self, topic: &str, epoch: &str, seq: u64, extra: Vec<(&str, Value)>) {
        let mut m = vec![
            (Value::from("seq"), Value::from(seq)),
            (Value::from("epoch"), Value::from(epoch)),
        ];
        for (k, v) in extra {
            m.push((Value::from(k), v));
        }
        let mut b = Vec::new();
        rmpv::encode::write_value(&mut b, &Value::Map(m)).unwrap();
        self.raw(topic, &b);
    }

    fn heartbeat(&self, prefix: &str, epoch: &str, torii: u64, seqs: &[(&str, u64)]) {
        let mut m = vec![(Value::from("torii"), Value::from(torii))];
        for (f, s) in seqs {
            m.push((Value::from(*f), Value::from(*s)));
        }
        self.event(
            &format!("{prefix}torii.heartbeat"),
            epoch,
            torii,
            vec![("seqs", Value::Map(m))],
        );
    }

    fn with_eid(&self, topic: &str, epoch: &str, seq: u64, id: &str, eid: u64) {
        self.event(
            topic,
            epoch,
            seq,
            vec![("id", Value::from(id)), ("eid", Value::from(eid))],
        );
    }
}

#[derive(Default)]
struct Rec {
    events: Mutex<Vec<Event>>,
    stale: Mutex<Vec<StaleReason>>,
}

impl Listener for Rec {
    fn on_event(&self, e: &Event, duplicate: bool) {
        if !duplicate && e.family != "torii" {
            self.events.lock().unwrap().push(e.clone());
        }
    }
    fn on_stale(&self, r: &StaleReason) {
        self.stale.lock().unwrap().push(r.clone());
    }
}

impl Rec {
    fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }
    fn stale(&self) -> Vec<StaleReason> {
        self.stale.lock().unwrap().clone()
    }
    fn eids(&self) -> Vec<u64> {
        self.events().iter().map(|e| e.eid.unwrap_or(0)).collect()
    }
}

fn attach(sub: &Subscriber) -> Arc<Rec> {
    let rec = Arc::new(Rec::default());
    let weak: Weak<dyn Listener> = Arc::downgrade(&(rec.clone() as Arc<dyn Listener>));
    sub.add_listener(weak);
    rec
}

/// Calls `f` every 10 ms until it is true or 5 s pass.
fn until(mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn start(endpoints: &[&str], heartbeat_ms: u64) -> Subscriber {
    SubscriberConfig::new(endpoints.iter().copied())
        .with_families(["session", "user"])
        .with_tenants(["default", "acme"])
        .with_heartbeat(Duration::from_millis(heartbeat_ms))
        .start()
        .unwrap()
}

/// Heartbeats until the subscriber is live; returns the last torii seq.
fn go_live(p: &Pub, sub: &Subscriber, epoch: &str, seqs: &[(&str, u64)], mut torii: u64) -> u64 {
    assert!(until(|| {
        torii += 1;
        p.heartbeat("", epoch, torii, seqs);
        sub.live()
    }));
    torii
}

#[test]
fn not_live_until_a_heartbeat_then_delivers_events_with_their_tenant() {
    let ctx = zmq::Context::new();
    let p = Pub::new(&ctx);
    let sub = start(&[&p.endpoint], 1000);
    let rec = attach(&sub);
    assert!(!sub.live());
    let t = go_live(&p, &sub, "E1", &[("session", 0), ("user", 0)], 0);
    p.event("session.deleted", "E1", 1, vec![("id", Value::from("s1"))]);
    // Another tenant's stream: its own seqs, the prefix stripped.
    p.heartbeat("@acme/", "E1", 1, &[("session", 0)]);
    p.event(
        "@acme/session.deleted",
        "E1",
        1,
        vec![("id", Value::from("s2")), ("tenant", Value::from("acme"))],
    );
    assert!(until(|| rec.events().len() == 2));
    let ev = rec.events();
    assert_eq!(ev[0].tenant, "default");
    assert_eq!(ev[0].topic, "session.deleted");
    assert_eq!(ev[0].str("id"), Some("s1"));
    assert_eq!(ev[1].tenant, "acme");
    assert_eq!(
        (ev[1].family.as_str(), ev[1].kind.as_str()),
        ("session", "deleted")
    );
    assert_eq!(ev[1].seq, 1);
    assert!(rec.stale().is_empty(), "{:?}", rec.stale());
    let h0 = sub.stats().heartbeats;
    p.heartbeat("", "E1", t + 1, &[("session", 1), ("user", 0)]);
    assert!(until(|| sub.stats().heartbeats > h0));
    assert!(sub.live());
    assert!(rec.stale().is_empty());
}

#[test]
fn a_seq_gap_is_stale_until_a_clean_heartbeat() {
    let ctx = zmq::Context::new();
    let p = Pub::new(&ctx);
    let sub = start(&[&p.endpoint], 1000);
    let rec = attach(&sub);
    let mut t = go_live(&p, &sub, "E1", &[("session", 0), ("user", 0)], 0);
    p.event("session.deleted", "E1", 1, vec![]);
    p.event("session.deleted", "E1", 3, vec![]);
    assert!(until(|| !rec.stale().is_empty()));
    let r = &rec.stale()[0];
    assert_eq!(r.kind, StaleKind::Gap);
    assert_eq!((r.family.as_str(), r.expected, r.got), ("session", 2, 3));
    assert!(r.to_string().contains("gap on session"), "{r}");
    assert!(!sub.live());
    assert!(until(|| {
        t += 1;
        p.heartbeat("", "E1", t, &[("session", 3), ("user", 0)]);
        sub.live()
    }));
    assert_eq!(rec.stale().len(), 1);
}

#[test]
fn a_gap_in_another_tenants_family_names_the_tenant() {
    let ctx = zmq::Context::new();
    let p = Pub::new(&ctx);
    let sub = start(&[&p.endpoint], 1000);
    let rec = attach(&sub);
    go_live(&p, &sub, "E1", &[("session", 4)], 0);
    // Seq 5 of default's session and seq 1 of acme's are both in order.
    p.event("session.deleted", "E1", 5, vec![]);
    p.event("@acme/session.deleted", "E1", 1, vec![]);
    p.event("@acme/session.deleted", "E1", 2, vec![]);
    assert!(until(|| rec.events().len() == 3));
    assert!(rec.stale().is_empty(), "{:?}", rec.stale());
    p.event("@acme/session.deleted", "E1", 4, vec![]);
    assert!(until(|| !rec.stale().is_empty()));
    let r = &rec.stale()[0];
    assert_eq!(
        (r.tenant.as_str(), r.family.as_str(), r.expected),
        ("acme", "session", 3)
    );
    assert!(r.to_string().contains("@acme/session"), "{r}");
}

#[test]
fn a_heartbeat_showing_a_missed_last_message_is_a_gap() {
    let ctx = zmq::Context::new();
    let p = Pub::new(&ctx);
    let sub = start(&[&p.endpoint], 1000);
    let rec = attach(&sub);
    let t = go_live(&p, &sub, "E1", &[("session", 0), ("user", 0)], 0);
    p.event("session.deleted", "E1", 1, vec![]);
    p.heartbeat("", "E1", t + 1, &[("session", 2), ("user", 0)]);
    assert!(until(|| !rec.stale().is_empty()));
    assert_eq!(rec.stale()[0].kind, StaleKind::Gap);
    assert_eq!(rec.stale()[0].got, 2);
}

#[test]
fn a_lost_heartbeat_is_a_gap_in_the_torii_family() {
    let ctx = zmq::Context::new();
    let p = Pub::new(&ctx);
    let sub = start(&[&p.endpoint], 1000);
    let rec = attach(&sub);
    let t = go_live(&p, &sub, "E1", &[("session", 0), ("user", 0)], 0);
    p.heartbeat("", "E1", t + 2, &[("session", 0), ("user", 0)]);
    assert!(until(|| !rec.stale().is_empty()));
    assert_eq!(rec.stale()[0].kind, StaleKind::Gap);
    assert_eq!(rec.stale()[0].family, "torii");
}

#[test]
fn a_new_epoch_on_a_known_endpoint_is_stale() {
    let ctx = zmq::Context::new();
    let p = Pub::new(&ctx);
    let sub = start(&[&p.endpoint], 1000);
    let rec = attach(&sub);
    go_live(&p, &sub, "E1", &[("session", 0), ("user", 0)], 0);
    p.heartbeat("", "E2", 1, &[("session", 0), ("user", 0)]);
    assert!(until(|| !rec.stale().is_empty()));
    let r = &rec.stale()[0];
    assert_eq!(r.kind, StaleKind::EpochChange);
    assert_eq!((r.old_epoch.as_str(), r.epoch.as_str()), ("E1", "E2"));
    let mut t = 1;
    assert!(until(|| {
        t += 1;
        p.heartbeat("", "E2", t, &[("session", 0), ("user", 0)]);
        sub.live()
    }));
    assert_eq!(rec.stale().len(), 1);
}

#[test]
fn resync_is_stale_with_its_reason() {
    let ctx = zmq::Context::new();
    let p = Pub::new(&ctx);
    let sub = start(&[&p.endpoint], 1000);
    let rec = attach(&sub);
    let t = go_live(&p, &sub, "E1", &[("session", 0), ("user", 0)], 0);
    p.event(
        "torii.resync",
        "E1",
        t + 1,
        vec![("reason", Value::from("listen lost"))],
    );
    assert!(until(|| !rec.stale().is_empty()));
    assert_eq!(rec.stale()[0].kind, StaleKind::Resync);
    assert_eq!(rec.stale()[0].detail, "listen lost");
    assert!(!sub.live());
}

#[test]
fn heartbeat_silence_is_stale_once_per_silence() {
    let ctx = zmq::Context::new();
    let p = Pub::new(&ctx);
    let sub = start(&[&p.endpoint], 50);
    let rec = attach(&sub);
    let t = go_live(&p, &sub, "E1", &[("session", 0), ("user", 0)], 0);
    let silent = Instant::now();
    assert!(until(|| !rec.stale().is_empty()));
    assert!(silent.elapsed() >= Duration::from_millis(100));
    assert_eq!(rec.stale()[0].kind, StaleKind::MissedHeartbeats);
    assert!(!sub.live());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(rec.stale().len(), 1, "one report per silence");
    // Speaking again, then falling silent again: a second report.
    let mut t = t;
    assert!(until(|| {
        t += 1;
        p.heartbeat("", "E1", t, &[("session", 0), ("user", 0)]);
        sub.live()
    }));
    assert!(until(|| rec.stale().len() == 2));
}

#[test]
fn an_endpoint_that_never_speaks_is_stale() {
    let ctx = zmq::Context::new();
    let p = Pub::new(&ctx);
    let sub = start(&[&p.endpoint], 50);
    let rec = attach(&sub);
    assert!(until(|| !rec.stale().is_empty()));
    assert_eq!(rec.stale()[0].kind, StaleKind::MissedHeartbeats);
    assert!(!sub.live());
}

#[test]
fn malformed_messages_are_stale() {
    let ctx = zmq::Context::new();
    let p = Pub::new(&ctx);
    // Every family: topics without a '.' reach it too.
    let sub = SubscriberConfig::new([p.endpoint.clone()]).start().unwrap();
    let rec = attach(&sub);
    go_live(&p, &sub, "E1", &[("session", 0), ("user", 0)], 0);
    p.raw("session.deleted", b"\xc1 not msgpack");
    let mut no_seq = Vec::new();
    rmpv::encode::write_value(
        &mut no_seq,
        &Value::Map(vec![(Value::from("epoch"), Value::from("E1"))]),
    )
    .unwrap();
    p.raw("user.deleted", &no_seq);
    p.raw("session", b"\x80");
    p.raw("@/session.deleted", b"\x80");
    p.event(
        "@acme/session.deleted",
        "E1",
        1,
        vec![("tenant", Value::from("other"))],
    );
    assert!(until(|| rec.stale().len() == 5), "{:?}", rec.stale());
    assert!(rec.stale().iter().all(|r| r.kind == StaleKind::Malformed));
    assert_eq!(sub.stats().malformed, 5);
    assert!(rec.events().is_empty());
}

#[test]
fn live_while_any_endpoint_is_caught_up() {
    let ctx = zmq::Context::new();
    let (a, b) = (Pub::new(&ctx), Pub::new(&ctx));
    let sub = start(&[&a.endpoint, &b.endpoint], 1000);
    let rec = attach(&sub);
    let mut ta = go_live(&a, &sub, "EA", &[("session", 0), ("user", 0)], 0);
    assert!(sub.endpoint_live(0) && !sub.endpoint_live(1));
    let mut tb = 0;
    assert!(until(|| {
        ta += 1;
        tb += 1;
        a.heartbeat("", "EA", ta, &[("session", 0), ("user", 0)]);
        b.heartbeat("", "EB", tb, &[("session", 0), ("user", 0)]);
        sub.endpoint_live(1)
    }));
    // Each endpoint has its own seqs; events without an eid are not
    // deduplicated.
    a.event("session.created", "EA", 1, vec![("id", Value::from("x"))]);
    b.event("session.created", "EB", 1, vec![("id", Value::from("y"))]);
    assert!(until(|| rec.events().len() == 2));
    assert!(rec.stale().is_empty());
    assert_ne!(rec.events()[0].endpoint, rec.events()[1].endpoint);
}

/// Two fake daemons relaying one database.
struct Two {
    _ctx: zmq::Context,
    a: Pub,
    b: Pub,
    sub: Subscriber,
    rec: Arc<Rec>,
    ta: u64,
    tb: u64,
    sa: u64,
    sb: u64,
}

impl Two {
    fn new(heartbeat_ms: u64, window: usize) -> Two {
        let ctx = zmq::Context::new();
        let (a, b) = (Pub::new(&ctx), Pub::new(&ctx));
        let sub = SubscriberConfig::new([a.endpoint.clone(), b.endpoint.clone()])
            .with_families(["session"])
            .with_heartbeat(Duration::from_millis(heartbeat_ms))
            .with_dedup_window(window)
            .start()
            .unwrap();
        let rec = attach(&sub);
        Two {
            _ctx: ctx,
            a,
            b,
            sub,
            rec,
            ta: 0,
            tb: 0,
            sa: 0,
            sb: 0,
        }
    }
    fn hb_a(&mut self) {
        self.ta += 1;
        self.a.heartbeat("", "EA", self.ta, &[("session", self.sa)]);
    }
    fn hb_b(&mut self) {
        self.tb += 1;
        self.b.heartbeat("", "EB", self.tb, &[("session", self.sb)]);
    }
    fn both_live(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !(self.sub.endpoint_live(0) && self.sub.endpoint_live(1)) {
            assert!(Instant::now() < deadline, "both endpoints live");
            self.hb_a();
            self.hb_b();
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    /// `a` live, a cache's first live() (the anchor), then `b`.
    fn a_live_then_both(&mut self) {
        self.ta = go_live(&self.a, &self.sub, "EA", &[("session", self.sa)], self.ta);
        self.both_live();
    }
    fn ea(&mut self, eid: u64) {
        self.sa += 1;
        self.a
            .with_eid("session.deleted", "EA", self.sa, &format!("s{eid}"), eid);
    }
    fn eb(&mut self, eid: u64) {
        self.sb += 1;
        self.b
            .with_eid("session.deleted", "EB", self.sb, &format!("s{eid}"), eid);
    }
    /// Heartbeats of `b` only for `ms`; returns whether live() held.
    fn only_b_for(&mut self, ms: u64) -> bool {
        let until = Instant::now() + Duration::from_millis(ms);
        let mut always = true;
        while Instant::now() < until {
            self.hb_b();
            std::thread::sleep(Duration::from_millis(20));
            always &= self.sub.live();
        }
        always
    }
}

#[test]
fn events_from_several_daemons_are_delivered_once_by_eid() {
    let mut t = Two::new(1000, 65536);
    t.both_live();
    t.ea(10);
    t.eb(10);
    t.ea(11);
    t.eb(11);
    t.eb(12);
    assert!(until(
        || t.sub.stats().duplicates == 2 && t.rec.events().len() == 3
    ));
    let mut eids = t.rec.eids();
    eids.sort();
    assert_eq!(eids, vec![10, 11, 12]);
    assert_eq!(t.sub.stats().events, 3);
    assert!(t.rec.stale().is_empty());
    assert!(t.rec.events()[0].get("eid").is_some());
}

#[test]
fn a_gap_on_one_endpoint_is_absorbed_when_another_live_one_had_its_position() {
    let mut t = Two::new(1000, 65536);
    t.a_live_then_both();
    t.ea(5);
    t.eb(5);
    assert!(until(|| t.sub.stats().duplicates == 1));
    t.sa += 1; // `a` loses eid 6
    t.ea(7);
    t.eb(6);
    t.eb(7);
    assert!(until(
        || t.rec.events().len() == 3 && t.sub.stats().duplicates == 2
    ));
    assert!(t.rec.stale().is_empty(), "{:?}", t.rec.stale());
    assert_eq!(t.sub.stats().absorbed, 1);
    assert!(t.sub.live());
    assert!(!t.sub.endpoint_live(0));
    let mut eids = t.rec.eids();
    eids.sort();
    assert_eq!(eids, vec![5, 6, 7]);
    assert!(until(|| {
        t.hb_a();
        t.sub.endpoint_live(0)
    }));
}

#[test]
fn a_gap_is_held_until_a_lagging_endpoint_reaches_its_position() {
    let mut t = Two::new(1000, 65536);
    t.a_live_then_both();
    t.ea(5);
    assert!(until(|| t.rec.events().len() == 1));
    t.sa += 1;
    t.ea(7);
    assert!(until(|| t.rec.events().len() == 2));
    assert!(t.rec.stale().is_empty());
    assert_eq!(t.sub.stats().absorbed, 0);
    t.eb(5);
    t.eb(6);
    t.eb(7);
    assert!(until(
        || t.sub.stats().absorbed == 1 && t.rec.events().len() == 3
    ));
    assert!(t.rec.stale().is_empty());
}

#[test]
fn a_held_gap_nobody_vouches_for_is_reported_after_three_heartbeats() {
    let mut t = Two::new(100, 65536);
    t.a_live_then_both();
    t.ea(5);
    assert!(until(|| t.rec.events().len() == 1));
    t.sa += 1;
    t.ea(7);
    let start = Instant::now();
    assert!(until(|| {
        t.hb_a();
        t.hb_b();
        !t.rec.stale().is_empty()
    }));
    assert!(start.elapsed() >= Duration::from_millis(250));
    let s = t.rec.stale();
    assert_eq!(s.len(), 1);
    assert_eq!((s[0].kind, s[0].endpoint), (StaleKind::Gap, 0));
    assert!(s[0].detail.contains("no other endpoint vouched"));
    assert_eq!(t.sub.stats().absorbed, 0);
}

#[test]
fn a_gap_is_reported_at_once_when_no_other_endpoint_is_live() {
    let mut t = Two::new(1000, 65536);
    t.ta = go_live(&t.a, &t.sub, "EA", &[("session", 0)], 0);
    assert!(!t.sub.endpoint_live(1));
    t.ea(5);
    t.sa += 1;
    t.ea(7);
    assert!(until(|| !t.rec.stale().is_empty()));
    assert_eq!(t.rec.stale()[0].kind, StaleKind::Gap);
    assert!(!t.sub.live());
}

#[test]
fn one_silent_daemon_is_absorbed_and_the_other_keeps_it_live() {
    let mut t = Two::new(100, 65536);
    t.a_live_then_both();
    t.ea(5);
    t.eb(5);
    assert!(until(|| t.sub.stats().duplicates == 1));
    assert!(t.only_b_for(600));
    assert!(!t.sub.endpoint_live(0));
    assert!(t.rec.stale().is_empty(), "{:?}", t.rec.stale());
    assert_eq!(t.sub.stats().absorbed, 1);
    t.eb(6);
    assert!(until(|| t.rec.events().len() == 2));
    // Then `b` falls silent too: reported.
    assert!(until(|| !t.rec.stale().is_empty()));
    let s = t.rec.stale();
    assert_eq!((s[0].kind, s[0].endpoint), (StaleKind::MissedHeartbeats, 1));
    assert!(!t.sub.live());
}

#[test]
fn a_quiet_daemons_restart_is_absorbed_by_one_live_since_before_anything_was_cached() {
    let mut t = Two::new(100, 65536);
    t.both_live();
    assert!(t.sub.live()); // the anchor
    assert!(t.only_b_for(600));
    assert!(!t.sub.endpoint_live(0));
    assert_eq!(t.sub.stats().absorbed, 1);
    t.ta = 1;
    t.a.event(
        "torii.resync",
        "EA2",
        1,
        vec![("reason", Value::from("the daemon started"))],
    );
    assert!(until(|| {
        t.ta += 1;
        t.a.heartbeat("", "EA2", t.ta, &[("session", 0)]);
        t.hb_b();
        t.sub.endpoint_live(0)
    }));
    assert!(t.rec.stale().is_empty(), "{:?}", t.rec.stale());
    assert!(t.sub.stats().absorbed >= 3);
    t.a.with_eid("session.deleted", "EA2", 1, "s1", 1);
    t.eb(1);
    assert!(until(|| t.sub.stats().duplicates == 1));
    assert_eq!(t.rec.events().len(), 1);
}

#[test]
fn a_quiet_silence_is_reported_when_the_other_became_live_later() {
    let mut t = Two::new(100, 65536);
    t.a_live_then_both();
    assert!(until(|| {
        t.hb_b();
        !t.rec.stale().is_empty()
    }));
    let s = t.rec.stale();
    assert_eq!((s[0].kind, s[0].endpoint), (StaleKind::MissedHeartbeats, 0));
    assert_eq!(t.sub.stats().absorbed, 0);
    // After the report both are live before a cache asks again: `b` vouches.
    t.rec.stale.lock().unwrap().clear();
    assert!(until(|| {
        t.hb_a();
        t.hb_b();
        t.sub.endpoint_live(0)
    }));
    assert!(t.sub.live());
    t.only_b_for(600);
    assert!(t.rec.stale().is_empty(), "{:?}", t.rec.stale());
    assert_eq!(t.sub.stats().absorbed, 1);
}

#[test]
fn a_rolling_restart_of_both_quiet_daemons_is_reported() {
    let mut t = Two::new(100, 65536);
    t.both_live();
    assert!(t.sub.live());
    t.ta = 0;
    assert!(until(|| {
        t.ta += 1;
        t.a.heartbeat("", "EA2", t.ta, &[("session", 0)]);
        t.hb_b();
        t.sub.stats().absorbed == 1 && t.sub.endpoint_live(0)
    }));
    assert!(t.rec.stale().is_empty());
    t.tb = 0;
    assert!(until(|| {
        t.ta += 1;
        t.tb += 1;
        t.a.heartbeat("", "EA2", t.ta, &[("session", 0)]);
        t.b.heartbeat("", "EB2", t.tb, &[("session", 0)]);
        !t.rec.stale().is_empty()
    }));
    let s = t.rec.stale();
    assert_eq!((s[0].kind, s[0].endpoint), (StaleKind::EpochChange, 1));
}

#[test]
fn a_database_resync_is_reported_once_and_a_daemons_own_is_absorbed() {
    let mut t = Two::new(1000, 65536);
    t.both_live();
    t.ea(5);
    t.eb(5);
    assert!(until(|| t.sub.stats().duplicates == 1));
    t.ta += 1;
    t.a.event(
        "torii.resync",
        "EA",
        t.ta,
        vec![("reason", Value::from("listen lost"))],
    );
    assert!(until(|| t.sub.stats().absorbed == 1));
    assert!(t.rec.stale().is_empty());
    let bulk = || {
        vec![
            ("reason", Value::from("bulk import")),
            ("eid", Value::from(9)),
        ]
    };
    t.ta += 1;
    t.tb += 1;
    t.a.event("torii.resync", "EA", t.ta, bulk());
    t.b.event("torii.resync", "EB", t.tb, bulk());
    assert!(until(|| t.sub.stats().duplicates == 2));
    let s = t.rec.stale();
    assert_eq!(s.len(), 1);
    assert_eq!(
        (s[0].kind, s[0].detail.as_str()),
        (StaleKind::Resync, "bulk import")
    );
}

#[test]
fn the_dedup_window_is_bounded() {
    let mut t = Two::new(1000, 2);
    t.both_live();
    t.ea(1);
    t.ea(2);
    t.ea(3);
    assert!(until(|| t.rec.events().len() == 3));
    t.eb(3);
    t.eb(1);
    assert!(until(|| t.rec.events().len() as u64
        + t.sub.stats().duplicates
        == 5));
    assert_eq!(t.rec.eids(), vec![1, 2, 3, 1]);
    assert_eq!(t.sub.stats().duplicates, 1);
}

#[test]
fn a_position_counts_as_relayed_once_every_heard_endpoint_relayed_it() {
    let mut t = Two::new(1000, 65536);
    t.both_live();
    assert!(t.sub.relayed_by_every_endpoint(t.sub.position()));
    t.ea(5);
    assert!(until(|| t.sub.last_delivered_eid() == Some(5)));
    let p = t.sub.position();
    assert!(!t.sub.relayed_by_every_endpoint(p), "b has not relayed 5");
    t.eb(5);
    assert!(until(|| t.sub.relayed_by_every_endpoint(p)));
    // A later event relayed by b covers the earlier position too (one
    // order), even when b's copy of it was lost.
    t.ea(6);
    t.ea(7);
    assert!(until(|| t.sub.last_delivered_eid() == Some(7)));
    let p6 = t.sub.position();
    assert!(!t.sub.relayed_by_every_endpoint(p6));
    t.sb += 1; // b's copy of 6 lost (a gap on b, absorbed by a)
    t.eb(7);
    assert!(until(|| t.sub.relayed_by_every_endpoint(p6)));
}

#[test]
fn an_endpoint_heard_a_heartbeat_interval_after_a_position_counts_as_relayed() {
    let mut t = Two::new(100, 65536);
    t.both_live();
    t.ea(5);
    assert!(until(|| t.sub.last_delivered_eid() == Some(5)));
    let p = t.sub.position();
    // b never relays 5 (committed before it listened) but keeps speaking.
    assert!(until(|| {
        t.hb_a();
        t.hb_b();
        t.sub.relayed_by_every_endpoint(p)
    }));
}

#[test]
fn start_rejects_bad_options() {
    assert!(SubscriberConfig::new(Vec::<String>::new()).start().is_err());
    assert!(SubscriberConfig::new(["tcp://127.0.0.1:1"])
        .with_heartbeat(Duration::ZERO)
        .start()
        .is_err());
    assert!(SubscriberConfig::new(vec!["tcp://127.0.0.1:1"; 65])
        .start()
        .is_err());
}

#[tokio::test]
async fn the_event_stream_yields_events_and_stale_conditions() {
    use toriid_client::Notice;
    let ctx = zmq::Context::new();
    let p = Pub::new(&ctx);
    let sub = start(&[&p.endpoint], 1000);
    let mut stream = sub.events(false);
    let mut t = 0;
    while !sub.live() {
        t += 1;
        p.heartbeat("", "E1", t, &[("session", 0), ("user", 0)]);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    p.event("user.deleted", "E1", 1, vec![("id", Value::from("u1"))]);
    p.event("user.deleted", "E1", 3, vec![("id", Value::from("u2"))]);
    let mut got = Vec::new();
    while got.len() < 3 {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("a notice within 5 s")
            .expect("the stream is open");
        got.push(n);
    }
    assert!(matches!(&got[0], Notice::Event(e) if e.str("id") == Some("u1")));
    assert!(matches!(&got[1], Notice::Stale(r) if r.kind == StaleKind::Gap));
    assert!(matches!(&got[2], Notice::Event(e) if e.str("id") == Some("u2")));
}

// Which tenants' events a subscriber receives, for a cache deciding what it
// may keep: with families, the tenants named (default unless named); without,
// every tenant's.
#[test]
fn follows_the_tenants_it_subscribes_to() {
    let ctx = zmq::Context::new();
    let p = Pub::new(&ctx);
    let default_only = SubscriberConfig::new([p.endpoint.clone()])
        .with_families(["session"])
        .start()
        .unwrap();
    assert!(default_only.follows("default"));
    assert!(!default_only.follows("acme"));
    let named = start(&[p.endpoint.as_str()], 100);
    assert!(named.follows("acme") && named.follows("default") && !named.follows("beta"));
    let every = SubscriberConfig::new([p.endpoint.clone()]).start().unwrap();
    assert!(every.follows("beta"));
}
