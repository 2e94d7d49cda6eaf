//! Torii's session checks with the in-process session cache and the JWT
//! deny-list, through Torii's own API (`Torii::new(Arc::new(provider))`) on
//! real daemons: a session deleted through a second service instance on
//! another daemon stops validating once its event arrives; while the cache
//! is not live every check goes to the daemon; Torii's expiry rules hold;
//! the JWT recipe of docs/torii.md.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{eventually, Daemon, FAST_HEARTBEAT};
use torii::{JwtConfig, SessionConfig, Torii};
use torii_core::repositories::SessionRepository;
use torii_core::RepositoryProvider;
use torii_core::SessionToken;
use torii_storage_toriid::{toriid_user_id, ToriidRepositoryProvider};
use toriid_client::{jwt_token_id, JwtDenyList, SessionCache, Subscriber, SubscriberConfig};

const WITHIN: Duration = Duration::from_secs(10);

fn subscriber(events: &[&str]) -> Subscriber {
    SubscriberConfig::new(events.iter().copied())
        .with_heartbeat(FAST_HEARTBEAT)
        .start()
        .expect("a subscriber")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_deleted_through_another_daemon_stops_validating_once_its_event_arrives() {
    let db = support::fresh_database();
    let d1 = Daemon::start_fast_on(&db).await;
    let d2 = Daemon::start_fast_on(&db).await;
    let sub = subscriber(&[&d1.events, &d2.events]);
    let cache = SessionCache::new(&sub, 10_000);
    // When the deletion was applied (the session's uuid -> instant).
    let applied: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let sink = applied.clone();
    cache.set_applied_hook(move |e, when| {
        if e.topic == "session.deleted" {
            if let Some(id) = e.str("id") {
                sink.lock().unwrap().push((id.to_string(), when));
            }
        }
    });
    let p1 = ToriidRepositoryProvider::new(d1.client()).with_session_cache(cache.clone());
    assert!(p1.session_cache().is_some());
    let t1 = Torii::new(Arc::new(p1));
    let t2 = Torii::new(Arc::new(ToriidRepositoryProvider::new(d2.client())));
    assert!(sub.wait_live(WITHIN).await);

    let user = t1
        .password()
        .register("cache@example.com", "a long password")
        .await
        .unwrap();
    let (_, session) = t1
        .password()
        .authenticate(
            "cache@example.com",
            "a long password",
            Some("ua".into()),
            None,
        )
        .await
        .unwrap();
    let token = session.token.clone();
    assert!(
        eventually(WITHIN, || async {
            t1.get_session(&token).await.is_ok()
                && cache.lookup("default", token.as_str()).is_some()
        })
        .await,
        "cached by Torii's check"
    );
    let id = cache.lookup("default", token.as_str()).unwrap().id.clone();
    let hits = cache.stats().hits;
    let again = t1.get_session(&token).await.expect("valid");
    assert_eq!(cache.stats().hits, hits + 1, "answered from memory");
    assert_eq!(again.user_id, user.id, "Torii's own user id");
    assert_eq!(again.user_agent.as_deref(), Some("ua"));

    // A second service instance on the other daemon logs the session out.
    t2.delete_session(&token).await.unwrap();
    let accepted_after = AtomicUsize::new(0);
    let refused = eventually(WITHIN, || async {
        let start = Instant::now();
        let ok = t1.get_session(&token).await.is_ok();
        let applied_at = applied
            .lock()
            .unwrap()
            .iter()
            .find(|(s, _)| *s == id)
            .map(|(_, w)| *w);
        if ok && applied_at.is_some_and(|w| w <= start) {
            accepted_after.fetch_add(1, Ordering::Relaxed);
        }
        !ok
    })
    .await;
    assert!(refused, "the deleted session stopped validating");
    assert_eq!(
        accepted_after.load(Ordering::Relaxed),
        0,
        "no check accepted it after its event"
    );
    assert!(
        eventually(WITHIN, || async {
            applied.lock().unwrap().iter().any(|(s, _)| *s == id)
        })
        .await
    );
    assert!(t1.get_session(&token).await.is_err());
    assert_eq!(cache.stats().drops, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_not_live_goes_to_the_daemon_and_expiry_is_torii_s() {
    let d = Daemon::start_fast_on(&support::fresh_database()).await;
    let nowhere = format!("tcp://127.0.0.1:{}", support::free_port());
    let sub = subscriber(&[&nowhere]);
    let cache = SessionCache::new(&sub, 100);
    let p = ToriidRepositoryProvider::new(d.client()).with_session_cache(cache.clone());
    let t = Torii::new(Arc::new(p));
    t.password()
        .register("nl@example.com", "a long password")
        .await
        .unwrap();
    let (_, s) = t
        .password()
        .authenticate("nl@example.com", "a long password", None, None)
        .await
        .unwrap();
    for _ in 0..3 {
        t.get_session(&s.token).await.expect("from the daemon");
    }
    let st = cache.stats();
    assert_eq!((st.hits, st.misses), (0, 3));
    assert!(cache.is_empty());
    t.delete_session(&s.token).await.unwrap();
    assert!(t.get_session(&s.token).await.is_err());

    // Live: an expired session is never served from memory, and Torii
    // says Expired as without the cache.
    let d2 = Daemon::start_fast_on(&support::fresh_database()).await;
    let sub = subscriber(&[&d2.events]);
    let cache = SessionCache::new(&sub, 100);
    let p = ToriidRepositoryProvider::new(d2.client()).with_session_cache(cache.clone());
    let p_check = ToriidRepositoryProvider::new(d2.client());
    let t = Torii::new(Arc::new(p))
        .with_session_config(SessionConfig::default().expires_in(chrono::Duration::seconds(2)));
    assert!(sub.wait_live(WITHIN).await);
    let user = t
        .password()
        .register("ex@example.com", "a long password")
        .await
        .unwrap();
    let s = t.create_session(&user.id, None, None).await.unwrap();
    assert!(
        eventually(WITHIN, || async {
            t.get_session(&s.token).await.is_ok()
                && cache.lookup("default", s.token.as_str()).is_some()
        })
        .await
    );
    let expired = eventually(WITHIN, || async { t.get_session(&s.token).await.is_err() }).await;
    assert!(expired, "refused once expired");
    // Torii's own check said Expired and deleted the row, as without a
    // cache (tests/torii_api.rs).
    let gone = p_check.session().find_by_token(&s.token).await.unwrap();
    assert!(gone.is_none(), "Torii deleted the expired row");
    assert!(cache.lookup("default", s.token.as_str()).is_none());
}

/// The recipe of docs/torii.md for a service with Torii's JWT sessions:
/// after `torii.get_session` accepts a JWT, the deny-list rejects a revoked
/// token (by `jwt_token_id`) or a user's tokens issued before a cut-off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_sessions_with_the_deny_list() {
    let db = support::fresh_database();
    let d1 = Daemon::start_fast_on(&db).await;
    let d2 = Daemon::start_fast_on(&db).await;
    let p1 = ToriidRepositoryProvider::new(d1.client());
    let jwt = JwtConfig::new_hs256(b"a test secret of 32 bytes or so!".to_vec());
    let t1 = Torii::new(Arc::new(p1.clone())).with_jwt_sessions(jwt);
    let sub = subscriber(&[&d1.events]);
    let deny = JwtDenyList::new(p1.client(), &sub);
    assert!(sub.wait_live(WITHIN).await);
    deny.load().await.expect("the first load");

    // The service's check: Torii verifies the signature and expiry, the
    // deny-list the revocations.
    let check = |token: SessionToken| {
        let t1 = &t1;
        let deny = &deny;
        async move {
            let s = t1.get_session(&token).await.ok()?;
            let uuid = toriid_user_id(&s.user_id);
            if deny.revoked(
                &jwt_token_id(token.as_str()),
                Some(&uuid),
                Some(s.created_at),
            ) {
                return None;
            }
            Some(s)
        }
    };

    let user = t1
        .password()
        .register("jwt@example.com", "a long password")
        .await
        .unwrap();
    let (_, a) = t1
        .password()
        .authenticate("jwt@example.com", "a long password", None, None)
        .await
        .unwrap();
    assert!(matches!(a.token, SessionToken::Jwt(_)));
    assert!(check(a.token.clone()).await.is_some());

    // Logout elsewhere: another instance on another daemon revokes the token.
    let other = ToriidRepositoryProvider::new(d2.client());
    let uuid = toriid_user_id(&user.id);
    other
        .client()
        .revoke_jwt(&jwt_token_id(a.token.as_str()), a.expires_at, Some(&uuid))
        .await
        .unwrap();
    assert!(
        eventually(WITHIN, || async { check(a.token.clone()).await.is_none() }).await,
        "a revoked token is refused"
    );
    assert!(
        t1.get_session(&a.token).await.is_ok(),
        "Torii alone accepts it"
    );

    // "Log out everywhere": a cut-off refuses every token issued before it.
    // (Another user: Torii's JWTs of one user issued in the same second are
    // the same string, so `a`'s revocation would cover it.)
    let user = t1
        .password()
        .register("jwt2@example.com", "a long password")
        .await
        .unwrap();
    let uuid = toriid_user_id(&user.id);
    let (_, b) = t1
        .password()
        .authenticate("jwt2@example.com", "a long password", None, None)
        .await
        .unwrap();
    assert!(check(b.token.clone()).await.is_some());
    let cutoff = chrono::Utc::now();
    other
        .client()
        .revoke_user_jwts(&uuid, Some(cutoff))
        .await
        .unwrap();
    assert!(
        eventually(WITHIN, || async { check(b.token.clone()).await.is_none() }).await,
        "a token issued before the cut-off is refused"
    );
    // A token issued in a later second than the cut-off passes.
    assert!(!deny.revoked(
        "later",
        Some(&uuid),
        Some(cutoff + chrono::Duration::seconds(1))
    ));
}
