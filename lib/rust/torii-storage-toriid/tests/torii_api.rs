//! Torii's flows through Torii's own public API (`Torii::new(Arc::new(
//! provider))`) on a real toriid and PostgreSQL.

mod support;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use support::{eventually, Daemon};
use torii::{SessionConfig, Torii};
use torii_core::error::SessionError;
use torii_core::repositories::SessionRepositoryAdapter;
use torii_core::repositories::{SessionRepository, TokenRepository, UserRepository};
use torii_core::session::{OpaqueSessionProvider, SessionProvider};
use torii_core::storage::{NewUser, TokenPurpose};
use torii_core::{RepositoryProvider, SessionToken, UserId};
use torii_storage_toriid::{toriid_user_id, ToriidRepositoryProvider};
use toriid_client::SessionKey;

fn provider(d: &Daemon) -> ToriidRepositoryProvider {
    ToriidRepositoryProvider::new(d.client())
}

fn torii(d: &Daemon) -> (Torii<ToriidRepositoryProvider>, ToriidRepositoryProvider) {
    let p = provider(d);
    (Torii::new(Arc::new(p.clone())), p)
}

/// A user signed up through Torii's password flow (the first step of most
/// tests here).
async fn sign_up(
    t: &Torii<ToriidRepositoryProvider>,
    email: &str,
    password: &str,
) -> torii_core::User {
    t.password().register(email, password).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_and_health_check() {
    let d = Daemon::start().await;
    let (t, _) = torii(&d);
    t.migrate()
        .await
        .expect("migrate checks the schema version");
    t.health_check().await.expect("health_check pings");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_sign_up_and_login() {
    let d = Daemon::start().await;
    let (t, p) = torii(&d);
    let user = t
        .password()
        .register("ada@example.com", "correct horse battery")
        .await
        .expect("register");
    assert!(
        user.id.as_str().starts_with("usr_"),
        "Torii's own id: {}",
        user.id
    );
    // Stored under the UUIDv5 of Torii's id, which comes back intact.
    let stored = p
        .client()
        .get_user(&toriid_user_id(&user.id))
        .await
        .unwrap();
    assert_eq!(stored.metadata_str("torii_id"), Some(user.id.as_str()));
    assert!(stored.password_hash.is_some());

    let (u, session) = t
        .password()
        .authenticate(
            "ADA@example.com",
            "correct horse battery",
            Some("ua".into()),
            None,
        )
        .await
        .expect("login");
    assert_eq!(u.id, user.id);
    assert_eq!(session.user_id, user.id);
    let again = t
        .get_session(&session.token)
        .await
        .expect("the session validates");
    assert_eq!(again.user_id, user.id);
    assert_eq!(again.user_agent.as_deref(), Some("ua"));

    assert!(t
        .password()
        .authenticate("ada@example.com", "wrong", None, None)
        .await
        .is_err());
    assert!(t
        .password()
        .register("ada@example.com", "another one")
        .await
        .is_err());
    // Password change through Torii, then only the new one works.
    t.password()
        .change_password(&user.id, "correct horse battery", "new password 1")
        .await
        .expect("change_password");
    assert!(t
        .password()
        .authenticate("ada@example.com", "correct horse battery", None, None)
        .await
        .is_err());
    t.password()
        .authenticate("ada@example.com", "new password 1", None, None)
        .await
        .expect("the new password");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opaque_sessions() {
    let d = Daemon::start().await;
    let (t, p) = torii(&d);
    let user = sign_up(&t, "s@example.com", "pw pw pw pw").await;
    let s1 = t
        .create_session(&user.id, None, Some("10.0.0.1".into()))
        .await
        .unwrap();
    let s2 = t.create_session(&user.id, None, None).await.unwrap();
    let token = s1.token.as_str().to_string();
    assert_eq!(token.len(), 43, "a 32-byte base64url token");
    let got = t.get_session(&s1.token).await.unwrap();
    assert_eq!(got.user_id, user.id);
    assert_eq!(got.ip_address.as_deref(), Some("10.0.0.1"));
    assert_eq!(got.token, s1.token);

    // Missing: Torii's Ok(None) / Ok(()).
    let unknown = SessionToken::new("no-such-token-no-such-token-no-such-token-x");
    assert!(p.session().find_by_token(&unknown).await.unwrap().is_none());
    p.session()
        .delete(&unknown)
        .await
        .expect("deleting an absent session is Ok(())");

    t.delete_session(&s1.token).await.unwrap();
    assert!(t.get_session(&s1.token).await.is_err());
    t.get_session(&s2.token)
        .await
        .expect("the other one still validates");
    t.delete_sessions_for_user(&user.id).await.unwrap();
    assert!(t.get_session(&s2.token).await.is_err());
    assert!(p
        .client()
        .list_sessions(&toriid_user_id(&user.id))
        .await
        .unwrap()
        .is_empty());
}

/// An expired session comes back from `find_by_token` as Torii's SQLite
/// backend returns it (expired row), so Torii's own check says `Expired`
/// and deletes it; `Torii::get_session` refuses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_session_does_not_validate() {
    let d = Daemon::start().await;
    let p = provider(&d);
    let t = Torii::new(Arc::new(p.clone()))
        .with_session_config(SessionConfig::default().expires_in(chrono::Duration::seconds(2)));
    let user = sign_up(&t, "e@example.com", "pw pw pw pw").await;
    let s1 = t.create_session(&user.id, None, None).await.unwrap();
    let s2 = t.create_session(&user.id, None, None).await.unwrap();
    t.get_session(&s1.token).await.expect("valid at first");
    t.get_session(&s2.token).await.expect("valid at first");
    // The provider returns the row once it has expired, with its past expiry.
    let expired = eventually(Duration::from_secs(10), || async {
        p.session()
            .find_by_token(&s1.token)
            .await
            .unwrap()
            .is_some_and(|s| s.expires_at <= Utc::now())
    })
    .await;
    assert!(expired, "the session did not expire within 10 s");
    let row = p.session().find_by_token(&s1.token).await.unwrap().unwrap();
    assert_eq!(row.user_id, user.id);
    assert!(row.is_expired());

    // Torii's session provider (the one `Torii::new` builds) says Expired,
    // not NotFound, and deletes the row.
    let opaque =
        OpaqueSessionProvider::new(Arc::new(SessionRepositoryAdapter::new(Arc::new(p.clone()))));
    match opaque.get_session(&s1.token).await {
        Err(torii_core::Error::Session(SessionError::Expired)) => {}
        other => panic!("Torii's check should say Expired: {other:?}"),
    }
    assert!(p
        .session()
        .find_by_token(&s1.token)
        .await
        .unwrap()
        .is_none());
    match opaque.get_session(&s1.token).await {
        Err(torii_core::Error::Session(SessionError::NotFound)) => {}
        other => panic!("gone after Torii deleted it: {other:?}"),
    }

    // Through Torii's public API: refused, and Torii's check deleted it.
    assert!(p
        .session()
        .find_by_token(&s2.token)
        .await
        .unwrap()
        .is_some());
    assert!(t.get_session(&s2.token).await.is_err());
    assert!(p
        .session()
        .find_by_token(&s2.token)
        .await
        .unwrap()
        .is_none());
    // A token that never existed is still NotFound.
    let never = SessionToken::new_random();
    match opaque.get_session(&never).await {
        Err(torii_core::Error::Session(SessionError::NotFound)) => {}
        other => panic!("an unknown token is NotFound: {other:?}"),
    }
    // The cleanups Torii may schedule succeed (the daemon runs its own too).
    p.session().cleanup_expired().await.unwrap();
    p.token().cleanup_expired_tokens().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_create_update_verify_delete() {
    let d = Daemon::start().await;
    let (t, p) = torii(&d);
    let verified_at = Utc::now() - chrono::Duration::days(1);
    let new = NewUser::builder()
        .email("v@example.com".into())
        .name("Vera".into())
        .email_verified_at(Some(verified_at))
        .build()
        .unwrap();
    let id = new.id.clone();
    let u = p.user().create(new).await.unwrap();
    assert_eq!(u.id, id);
    assert_eq!(u.name.as_deref(), Some("Vera"));
    assert_eq!(
        u.email_verified_at.map(|t| t.timestamp_micros()),
        Some(verified_at.timestamp_micros())
    );
    // update(&User) replaces email, name and email_verified_at (clearing).
    let mut changed = u.clone();
    changed.email = "v2@example.com".into();
    changed.name = None;
    changed.email_verified_at = None;
    let after = p.user().update(&changed).await.unwrap();
    assert_eq!(after.email, "v2@example.com");
    assert_eq!(after.name, None);
    assert_eq!(after.email_verified_at, None);
    assert_eq!(after.id, id);
    // Email verification through Torii.
    t.set_user_email_verified(&id).await.unwrap();
    assert!(t.get_user(&id).await.unwrap().unwrap().is_email_verified());
    // Missing rows: Ok(None) and Ok(()).
    let ghost = UserId::new_random();
    assert!(p.user().find_by_id(&ghost).await.unwrap().is_none());
    assert!(p
        .user()
        .find_by_email("nobody@example.com")
        .await
        .unwrap()
        .is_none());
    p.user().delete(&ghost).await.unwrap();
    // find_or_create: one user, however often.
    let a = p
        .user()
        .find_or_create_by_email("new@example.com")
        .await
        .unwrap();
    let b = p
        .user()
        .find_or_create_by_email("NEW@example.com")
        .await
        .unwrap();
    assert_eq!(a.id, b.id);
    t.delete_user(&id).await.unwrap();
    assert!(t.get_user(&id).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn magic_link_and_password_reset_tokens() {
    let d = Daemon::start().await;
    let (t, p) = torii(&d);
    let user = sign_up(&t, "m@example.com", "old password").await;

    // Magic link: usable once.
    let ml = t
        .magic_link()
        .generate_token("m@example.com")
        .await
        .unwrap();
    let (u, session) = t
        .magic_link()
        .authenticate(&ml.token, None, None)
        .await
        .unwrap();
    assert_eq!(u.id, user.id);
    assert_eq!(session.user_id, user.id);
    t.get_session(&session.token).await.unwrap();
    assert!(t
        .magic_link()
        .authenticate(&ml.token, None, None)
        .await
        .is_err());

    // verify_token's SecureToken names Torii's own id (user_torii_id), as
    // create_token's does.
    let ev = p
        .token()
        .create_token(
            &user.id,
            TokenPurpose::EmailVerification,
            chrono::Duration::minutes(5),
        )
        .await
        .unwrap();
    assert_eq!(ev.user_id, user.id);
    let verified = p
        .token()
        .verify_token(&ev.token, TokenPurpose::EmailVerification)
        .await
        .unwrap()
        .expect("a fresh token verifies once");
    assert_eq!(verified.user_id, user.id);

    // Password reset: a token of that purpose, checked, then used once.
    let reset = p
        .token()
        .create_token(
            &user.id,
            TokenPurpose::PasswordReset,
            chrono::Duration::minutes(10),
        )
        .await
        .unwrap();
    assert!(t
        .password()
        .reset_password_verify_token(&reset.token)
        .await
        .unwrap());
    // The wrong purpose is refused: a reset token is no magic link.
    assert!(t
        .magic_link()
        .authenticate(&reset.token, None, None)
        .await
        .is_err());
    let other_ml = t
        .magic_link()
        .generate_token("m@example.com")
        .await
        .unwrap();
    assert!(!t
        .password()
        .reset_password_verify_token(&other_ml.token)
        .await
        .unwrap());
    t.password()
        .reset_password_complete(&reset.token, "brand new password")
        .await
        .expect("reset");
    assert!(t
        .password()
        .reset_password_complete(&reset.token, "again")
        .await
        .is_err());
    assert!(!t
        .password()
        .reset_password_verify_token(&reset.token)
        .await
        .unwrap());
    t.password()
        .authenticate("m@example.com", "brand new password", None, None)
        .await
        .expect("login with the new password");
    // Repository view: verify (use) once, check without using.
    let tok = p
        .token()
        .create_token(
            &user.id,
            TokenPurpose::EmailVerification,
            chrono::Duration::minutes(5),
        )
        .await
        .unwrap();
    assert!(p
        .token()
        .check_token(&tok.token, TokenPurpose::EmailVerification)
        .await
        .unwrap());
    assert!(!p
        .token()
        .check_token(&tok.token, TokenPurpose::MagicLink)
        .await
        .unwrap());
    assert!(p
        .token()
        .verify_token(&tok.token, TokenPurpose::EmailVerification)
        .await
        .unwrap()
        .is_some());
    assert!(p
        .token()
        .verify_token(&tok.token, TokenPurpose::EmailVerification)
        .await
        .unwrap()
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_link_login_and_pkce() {
    let d = Daemon::start().await;
    let (t, p) = torii(&d);
    // First login creates the user and links the account.
    let (u1, s1) = t
        .oauth()
        .authenticate(
            "github",
            "gh-42",
            "o@example.com",
            Some("Octo".into()),
            None,
            None,
        )
        .await
        .unwrap();
    assert!(u1.id.as_str().starts_with("usr_"));
    t.get_session(&s1.token).await.unwrap();
    // The second finds the same user by (provider, subject).
    let (u2, _) = t
        .oauth()
        .authenticate("github", "gh-42", "o@example.com", None, None, None)
        .await
        .unwrap();
    assert_eq!(u1.id, u2.id);
    let account = t
        .oauth()
        .get_account("github", "gh-42")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(account.provider, "github");
    // Torii's own id, restored from the reply's user_torii_id.
    assert_eq!(account.user_id, u1.id);
    // The account's user id resolves to the same user.
    assert_eq!(
        t.get_user(&account.user_id).await.unwrap().unwrap().id,
        u1.id
    );
    assert!(t
        .oauth()
        .get_account("github", "nobody")
        .await
        .unwrap()
        .is_none());
    // A password user gets linked to a second provider by email.
    let pw = t
        .password()
        .register("pw@example.com", "pw pw pw pw")
        .await
        .unwrap();
    let linked = t
        .oauth()
        .get_or_create_user("google", "g-7", "pw@example.com", None)
        .await
        .unwrap();
    assert_eq!(linked.id, pw.id);
    // Linking a pair that belongs to another user is refused.
    assert!(t
        .oauth()
        .link_account(&pw.id, "github", "gh-42")
        .await
        .is_err());
    // PKCE verifier: stored, taken once.
    t.oauth()
        .store_pkce_verifier("csrf-state-1", "verifier-1", chrono::Duration::minutes(5))
        .await
        .unwrap();
    assert_eq!(
        t.oauth()
            .get_pkce_verifier("csrf-state-1")
            .await
            .unwrap()
            .as_deref(),
        Some("verifier-1")
    );
    assert_eq!(
        t.oauth().get_pkce_verifier("csrf-state-1").await.unwrap(),
        None
    );
    assert_eq!(
        t.oauth().get_pkce_verifier("never-stored").await.unwrap(),
        None
    );
    // Main's additions through the client: list and unlink.
    let uid = toriid_user_id(&u1.id);
    assert_eq!(p.client().list_oauth_accounts(&uid).await.unwrap().len(), 1);
    assert_eq!(
        p.client()
            .unlink_oauth_account(&uid, "github", None)
            .await
            .unwrap(),
        1
    );
    assert!(t
        .oauth()
        .get_account("github", "gh-42")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passkeys() {
    let d = Daemon::start().await;
    let (t, _) = torii(&d);
    let user = sign_up(&t, "pk@example.com", "pw pw pw pw").await;
    let cred = t
        .passkey()
        .register_credential(&user.id, vec![1, 2, 3], vec![9; 65], Some("laptop".into()))
        .await
        .unwrap();
    assert_eq!(cred.user_id, user.id);
    assert!(cred.last_used_at.is_none());
    t.passkey()
        .register_credential(&user.id, vec![4, 5], vec![8; 65], None)
        .await
        .unwrap();
    // A taken credential id is refused.
    assert!(t
        .passkey()
        .register_credential(&user.id, vec![1, 2, 3], vec![7; 65], None)
        .await
        .is_err());
    let list = t.passkey().get_user_credentials(&user.id).await.unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].name.as_deref(), Some("laptop"));
    let got = t
        .passkey()
        .get_credential(&[1, 2, 3])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.public_key, vec![9; 65]);
    // Torii's own id, restored from the reply's user_torii_id.
    assert_eq!(got.user_id, user.id);
    // Use: log in with it; last_used_at is set.
    let (u, session) = t
        .passkey()
        .authenticate(&[1, 2, 3], None, None)
        .await
        .unwrap();
    assert_eq!(u.id, user.id);
    assert_eq!(session.user_id, user.id);
    t.get_session(&session.token).await.unwrap();
    let used = t
        .passkey()
        .get_credential(&[1, 2, 3])
        .await
        .unwrap()
        .unwrap();
    assert!(used.last_used_at.is_some());
    assert!(t.passkey().authenticate(&[6, 6], None, None).await.is_err());
    // Delete one (absent: Ok), then all.
    t.passkey().delete_credential(&[1, 2, 3]).await.unwrap();
    t.passkey().delete_credential(&[1, 2, 3]).await.unwrap();
    assert!(t
        .passkey()
        .get_credential(&[1, 2, 3])
        .await
        .unwrap()
        .is_none());
    t.passkey().delete_user_credentials(&user.id).await.unwrap();
    assert!(t
        .passkey()
        .get_user_credentials(&user.id)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_on_one_database() {
    let a = Daemon::start().await;
    let b = Daemon::start_on(&a.database).await;
    let (ta, _) = torii(&a);
    let (tb, pb) = torii(&b);
    let user = ta
        .password()
        .register("two@example.com", "pw pw pw pw")
        .await
        .unwrap();
    let (_, session) = ta
        .password()
        .authenticate("two@example.com", "pw pw pw pw", None, None)
        .await
        .unwrap();
    let seen = tb
        .get_session(&session.token)
        .await
        .expect("validates through the other daemon");
    assert_eq!(seen.user_id, user.id);
    ta.delete_session(&session.token).await.unwrap();
    let gone = eventually(Duration::from_secs(10), || async {
        pb.session()
            .find_by_token(&session.token)
            .await
            .unwrap()
            .is_none()
    })
    .await;
    assert!(
        gone,
        "a deleted session still validated through the other daemon"
    );
    assert!(tb.get_session(&session.token).await.is_err());
    // One client over both daemons: reads survive the loss of one.
    let both = toriid_client::Config::new([a.endpoint.clone(), b.endpoint.clone()])
        .with_timeout(Duration::from_secs(5))
        .connect()
        .unwrap();
    let (_, s2) = tb
        .password()
        .authenticate("two@example.com", "pw pw pw pw", None, None)
        .await
        .unwrap();
    drop(a);
    for _ in 0..4 {
        both.get_session(SessionKey::Token(s2.token.as_str()))
            .await
            .expect("a read fails over to the live daemon");
    }
}

/// A Z85 key pair written as `torii keygen` writes it (with a comment line).
fn write_key_pair(dir: &std::path::Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let pair = zmq::CurveKeyPair::new().expect("libzmq with CURVE");
    let public = dir.join(format!("{name}.pub"));
    let secret = dir.join(format!("{name}.key"));
    let z85 = |k: &[u8]| zmq::z85_encode(k).unwrap();
    std::fs::write(
        &public,
        format!("# {name} public key\n{}\n", z85(&pair.public_key)),
    )
    .unwrap();
    std::fs::write(
        &secret,
        format!("# {name} secret key\n{}\n", z85(&pair.secret_key)),
    )
    .unwrap();
    (public, secret)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curve_keys_from_files() {
    let keys = std::env::temp_dir().join(format!("toriid-rs-curve-{}", std::process::id()));
    let authorized = keys.join("authorized");
    std::fs::create_dir_all(&authorized).unwrap();
    let (server_pub, server_key) = write_key_pair(&keys, "server");
    let (app_pub, app_key) = write_key_pair(&keys, "app");
    let (stranger_pub, stranger_key) = write_key_pair(&keys, "stranger");
    std::fs::copy(&app_pub, authorized.join("app.pub")).unwrap();
    let extra = format!(
        "\n[security]\ncurve_secret_key_file = \"{}\"\ncurve_authorized_keys_dir = \"{}\"\n",
        server_key.display(),
        authorized.display()
    );
    let d = Daemon::start_with(&support::fresh_database(), &extra, false).await;
    let config = |public: &std::path::Path, secret: &std::path::Path| {
        toriid_client::Config::new([d.endpoint.clone()])
            .with_timeout(Duration::from_millis(500))
            .with_curve_key_files(&server_pub, public, secret)
            .unwrap()
    };
    let client = config(&app_pub, &app_key).connect().unwrap();
    let up = eventually(Duration::from_secs(60), || async {
        client.ping().await.is_ok()
    })
    .await;
    assert!(up, "no CURVE ping within 60 s; log:\n{}", d.log_tail());
    // Torii on the CURVE client.
    let t = Torii::new(Arc::new(ToriidRepositoryProvider::new(
        client.with_timeout(Duration::from_secs(10)),
    )));
    t.password()
        .register("curve@example.com", "pw pw pw pw")
        .await
        .unwrap();
    // An unknown key and a plain client are not served: deadline errors.
    let stranger = config(&stranger_pub, &stranger_key).connect().unwrap();
    assert_eq!(
        stranger.ping().await.unwrap_err().kind(),
        toriid_client::ErrorKind::Timeout
    );
    let plain = toriid_client::Config::new([d.endpoint.clone()])
        .with_timeout(Duration::from_millis(500))
        .connect()
        .unwrap();
    assert_eq!(
        plain.ping().await.unwrap_err().kind(),
        toriid_client::ErrorKind::Timeout
    );
    // Events over CURVE: the authorized key's subscriber goes live, a
    // stranger's never does.
    let events = |public: &std::path::Path, secret: &std::path::Path| {
        toriid_client::SubscriberConfig::new([d.events.clone()])
            .with_heartbeat(Duration::from_millis(1000))
            .with_curve_key_files(&server_pub, public, secret)
            .unwrap()
            .start()
            .unwrap()
    };
    let sub = events(&app_pub, &app_key);
    let outsider = events(&stranger_pub, &stranger_key);
    assert!(sub.wait_live(Duration::from_secs(10)).await, "CURVE events");
    assert!(!outsider.wait_live(Duration::from_millis(1500)).await);
    let _ = std::fs::remove_dir_all(&keys);
}
