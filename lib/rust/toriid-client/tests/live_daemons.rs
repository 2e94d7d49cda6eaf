//! The Subscriber, SessionCache and JwtDenyList against real daemons on a
//! real PostgreSQL (the harness of the provider's tests: tools/test starts
//! the cluster): events of every kind once each, the cache's guarantee
//! (never served after the revoking event was applied; dropped on a
//! stale condition; not live: every lookup goes to the daemon), its bound,
//! and two daemons on one database with one of them killed.

#[path = "../../torii-storage-toriid/tests/support/mod.rs"]
mod support;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use support::{eventually, Daemon, FAST_HEARTBEAT};
use toriid_client::{
    jwt_token_id, Client, Config, ErrorKind, Expiry, JwtDenyList, NewSession, NewUser, Notice,
    SessionCache, SessionCacheConfig, SessionKey, Subscriber, SubscriberConfig,
};

const WITHIN: Duration = Duration::from_secs(10);

fn subscriber(daemons: &[&Daemon]) -> Subscriber {
    SubscriberConfig::new(daemons.iter().map(|d| d.events.clone()))
        .with_heartbeat(FAST_HEARTBEAT)
        .start()
        .expect("a subscriber")
}

fn client(daemons: &[&Daemon]) -> Client {
    Config::new(daemons.iter().map(|d| d.endpoint.clone()))
        .with_timeout(Duration::from_secs(5))
        .connect()
        .expect("a client")
}

async fn user(c: &Client, email: &str) -> String {
    c.create_user(NewUser {
        email: email.into(),
        ..Default::default()
    })
    .await
    .expect("create_user")
    .id
}

/// A session of `user`; (id, token).
async fn session(c: &Client, user: &str) -> (String, String) {
    let s = c
        .create_session(NewSession::new(user, Expiry::In(Duration::from_secs(3600))))
        .await
        .expect("create_session");
    (s.id, s.token.expect("a token"))
}

/// Records the ids of the deletion events the cache applied.
fn applied_ids(cache: &SessionCache) -> Arc<Mutex<HashSet<String>>> {
    let ids = Arc::new(Mutex::new(HashSet::new()));
    let sink = ids.clone();
    cache.set_applied_hook(move |e, _| {
        if let (Some(id), "deleted") = (e.str("id"), e.kind.as_str()) {
            sink.lock().unwrap().insert(id.to_string());
        }
    });
    ids
}

async fn wait_live(sub: &Subscriber) {
    assert!(sub.wait_live(WITHIN).await, "the subscriber went live");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_of_a_daemon_arrive_once_with_their_tenant() {
    let d = Daemon::start_fast_on(&support::fresh_database()).await;
    let sub = subscriber(&[&d]);
    let mut stream = sub.events(false);
    wait_live(&sub).await;
    let c = client(&[&d]);
    let u = user(&c, "ev@example.com").await;
    let (sid, token) = session(&c, &u).await;
    c.delete_session(SessionKey::Token(&token)).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        match tokio::time::timeout(WITHIN, stream.next()).await {
            Ok(Some(Notice::Event(e))) => {
                assert_eq!(e.tenant, "default");
                assert!(e.eid.is_some(), "a relayed event has an eid");
                seen.push((e.topic.clone(), e.str("id").unwrap_or("").to_string()));
            }
            other => panic!("expected an event, got {other:?}"),
        }
    }
    assert_eq!(seen[0], ("user.created".to_string(), u.clone()));
    assert_eq!(seen[1], ("session.created".to_string(), sid.clone()));
    assert_eq!(seen[2], ("session.deleted".to_string(), sid));
    assert!(sub.live());
    assert_eq!(sub.stats().stale, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_session_is_never_served_after_its_event() {
    let db = support::fresh_database();
    let d1 = Daemon::start_fast_on(&db).await;
    let d2 = Daemon::start_fast_on(&db).await;
    let sub = subscriber(&[&d1]);
    let cache = SessionCache::new(&sub, 1000);
    let applied = applied_ids(&cache);
    wait_live(&sub).await;
    let c1 = client(&[&d1]);
    let c2 = client(&[&d2]); // another service instance, another daemon
    let u = user(&c1, "rev@example.com").await;
    let (sid, token) = session(&c1, &u).await;
    let (sid_b, token_b) = session(&c1, &u).await;

    let s = cache.get(&c1, &token).await.expect("the session");
    assert_eq!(s.id, sid);
    assert!(s.token.is_none(), "the cache keeps no token");
    assert!(
        cache.lookup("default", &token).is_some(),
        "cached after the first get"
    );
    assert!(cache.lookup("acme", &token).is_none(), "keyed by tenant");
    cache.get(&c1, &token_b).await.unwrap();
    let hits = cache.stats().hits;
    cache.get(&c1, &token).await.unwrap();
    assert_eq!(cache.stats().hits, hits + 1);

    // Deleted through the other daemon: once its event is applied, never
    // served again, from memory or otherwise.
    c2.delete_session(SessionKey::Token(&token)).await.unwrap();
    assert!(
        eventually(WITHIN, || async { applied.lock().unwrap().contains(&sid) }).await,
        "the deletion's event was applied"
    );
    assert!(cache.lookup("default", &token).is_none());
    let err = cache.get(&c1, &token).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    // The user's deletion drops the user's other session.
    assert!(cache.lookup("default", &token_b).is_some());
    c2.delete_user(&u).await.unwrap();
    assert!(eventually(WITHIN, || async { applied.lock().unwrap().contains(&u) }).await);
    assert!(cache.lookup("default", &token_b).is_none());
    assert!(applied.lock().unwrap().contains(&sid_b) || cache.get(&c1, &token_b).await.is_err());
    assert!(cache.stats().evictions >= 2);
    assert_eq!(cache.stats().drops, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_live_every_lookup_goes_to_the_daemon() {
    let d = Daemon::start_fast_on(&support::fresh_database()).await;
    // Events from nowhere: the subscriber is never live.
    let nowhere = format!("tcp://127.0.0.1:{}", support::free_port());
    let sub = SubscriberConfig::new([nowhere])
        .with_heartbeat(FAST_HEARTBEAT)
        .start()
        .unwrap();
    let cache = SessionCache::new(&sub, 100);
    let c = client(&[&d]);
    let u = user(&c, "nl@example.com").await;
    let (sid, token) = session(&c, &u).await;
    for _ in 0..3 {
        assert_eq!(cache.get(&c, &token).await.unwrap().id, sid);
    }
    let st = cache.stats();
    assert_eq!((st.hits, st.misses), (0, 3));
    assert_eq!(st.not_cached_stale, 3);
    assert!(st.not_live_lookups >= 3);
    assert!(cache.is_empty());
    c.delete_session(SessionKey::Id(&sid)).await.unwrap();
    assert_eq!(
        cache.get(&c, &token).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_only_daemon_lost_drops_everything() {
    let mut d = Daemon::start_fast_on(&support::fresh_database()).await;
    let sub = subscriber(&[&d]);
    let cache = SessionCache::new(&sub, 100);
    wait_live(&sub).await;
    let c = client(&[&d]);
    let u = user(&c, "drop@example.com").await;
    let (_, token) = session(&c, &u).await;
    cache.get(&c, &token).await.unwrap();
    assert_eq!(cache.len(), 1);
    d.kill();
    assert!(
        eventually(WITHIN, || async { cache.stats().drops == 1 }).await,
        "missed heartbeats drop the cache"
    );
    assert!(cache.is_empty());
    assert!(!sub.live() && !cache.serving());
    assert!(cache.lookup("default", &token).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounded_lru_with_expiry_and_memory_per_entry() {
    let d = Daemon::start_fast_on(&support::fresh_database()).await;
    let sub = subscriber(&[&d]);
    let cache = SessionCacheConfig::new(2).with_shards(1).build(&sub);
    wait_live(&sub).await;
    let c = client(&[&d]);
    let u = user(&c, "lru@example.com").await;
    let mut tokens = Vec::new();
    for _ in 0..3 {
        tokens.push(session(&c, &u).await.1);
    }
    cache.get(&c, &tokens[0]).await.unwrap();
    cache.get(&c, &tokens[1]).await.unwrap();
    cache.get(&c, &tokens[0]).await.unwrap(); // 1 is now the least recent
    cache.get(&c, &tokens[2]).await.unwrap();
    assert_eq!(cache.len(), 2);
    assert_eq!(cache.stats().capacity_evictions, 1);
    assert!(cache.lookup("default", &tokens[0]).is_some());
    assert!(cache.lookup("default", &tokens[1]).is_none());
    assert!(cache.lookup("default", &tokens[2]).is_some());

    // Never served at or past expires_at.
    let short = c
        .create_session(NewSession::new(
            &u,
            Expiry::At(Utc::now() + chrono::Duration::milliseconds(1500)),
        ))
        .await
        .unwrap()
        .token
        .unwrap();
    cache.get(&c, &short).await.unwrap();
    assert!(cache.lookup("default", &short).is_some());
    assert!(
        eventually(WITHIN, || async {
            cache.lookup("default", &short).is_none()
        })
        .await
    );
    assert!(cache.stats().expired >= 1);

    // State bytes per session, for docs/torii.md.
    let big = SessionCache::new(&sub, 10_000);
    let base = big.memory_bytes();
    let n = 300;
    for _ in 0..n {
        let t = session(&c, &u).await.1;
        big.get(&c, &t).await.unwrap();
    }
    assert_eq!(big.len(), n);
    let per = (big.memory_bytes() - base) / n;
    eprintln!("session cache: about {per} bytes per cached session");
    assert!(per < 2048, "{per} bytes per session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_one_killed_the_cache_stays_live_and_correct() {
    let db = support::fresh_database();
    let mut d1 = Daemon::start_fast_on(&db).await;
    let d2 = Daemon::start_fast_on(&db).await;
    let sub = subscriber(&[&d1, &d2]);
    let cache = SessionCache::new(&sub, 1000);
    let applied = applied_ids(&cache);
    assert!(
        eventually(WITHIN, || async {
            sub.endpoint_live(0) && sub.endpoint_live(1)
        })
        .await,
        "both endpoints live"
    );
    let c = client(&[&d1, &d2]);
    let c2 = client(&[&d2]);
    let u = user(&c2, "ha@example.com").await;
    let (_, token) = session(&c2, &u).await;
    let (sid2, token2) = session(&c2, &u).await;
    // Events come once, whichever daemon brought them first.
    assert!(eventually(WITHIN, || async { sub.stats().duplicates >= 3 }).await);
    assert_eq!(sub.stats().events, 3);
    assert!(
        eventually(WITHIN, || async {
            cache.get(&c, &token).await.is_ok() && cache.lookup("default", &token).is_some()
        })
        .await,
        "cached"
    );
    cache.get(&c, &token2).await.unwrap();

    d1.kill();
    // Through 3 heartbeat intervals and more: still live, nothing dropped.
    let until = Instant::now() + 5 * FAST_HEARTBEAT;
    while Instant::now() < until {
        assert!(cache.serving(), "live through the other daemon");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!sub.endpoint_live(0));
    assert!(eventually(WITHIN, || async { sub.stats().absorbed >= 1 }).await);
    assert_eq!(sub.stats().stale, 0);
    assert_eq!(cache.stats().drops, 0);
    assert!(cache.lookup("default", &token).is_some());

    // And correct: a deletion through d2 reaches it.
    c2.delete_session(SessionKey::Id(&sid2)).await.unwrap();
    assert!(eventually(WITHIN, || async { applied.lock().unwrap().contains(&sid2) }).await);
    assert!(cache.lookup("default", &token2).is_none());
    assert_eq!(
        cache.get(&c, &token2).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    // Misses are cached again (only the live daemon has to have relayed
    // what was delivered).
    let (_, token3) = session(&c2, &u).await;
    assert!(
        eventually(WITHIN, || async {
            cache.get(&c, &token3).await.is_ok() && cache.lookup("default", &token3).is_some()
        })
        .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_deny_list_loads_and_follows_revocations() {
    let db = support::fresh_database();
    let d1 = Daemon::start_fast_on(&db).await;
    let d2 = Daemon::start_fast_on(&db).await;
    let c1 = client(&[&d1]);
    let c2 = client(&[&d2]);
    let exp = Utc::now() + chrono::Duration::hours(1);
    let u = user(&c2, "jwt@example.com").await;
    c2.revoke_jwt("before-load", exp, Some(&u)).await.unwrap();

    let sub = subscriber(&[&d1]);
    let deny = JwtDenyList::new(&c1, &sub);
    assert!(deny.is_stale(), "stale before the first load");
    assert!(
        deny.revoked("anything", None, None),
        "fail closed while stale"
    );
    wait_live(&sub).await;
    deny.load().await.expect("load");
    assert!(!deny.is_stale());
    assert!(deny.check("before-load", None, None).revoked);
    assert!(!deny.revoked("fresh", Some(&u), Some(Utc::now())));

    let token = "header.payload.signature";
    let jti = jwt_token_id(token);
    assert_eq!(jti.len(), 32);
    c2.revoke_jwt(&jti, exp, Some(&u)).await.unwrap();
    assert!(eventually(WITHIN, || async { deny.check(&jti, None, None).revoked }).await);
    let issued = Utc::now() - chrono::Duration::seconds(10);
    assert!(!deny.revoked("other", Some(&u), Some(issued)));
    c2.revoke_user_jwts(&u, Some(Utc::now())).await.unwrap();
    assert!(
        eventually(WITHIN, || async {
            deny.revoked("other", Some(&u.to_uppercase()), Some(issued))
        })
        .await
    );
    assert!(!deny.revoked(
        "newer",
        Some(&u),
        Some(Utc::now() + chrono::Duration::seconds(5))
    ));
    assert!(!deny.is_stale());
    assert!(deny.stats().events >= 2);
}
