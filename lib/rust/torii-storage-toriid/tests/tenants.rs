//! Tenants (PROTOCOL.md section 6): one `ToriidRepositoryProvider` per
//! tenant, through Torii's own public API, on one real toriid; and the
//! `tenant` key on the wire.

mod support;

use std::sync::Arc;
use std::time::Duration;

use rmpv::Value;
use support::Daemon;
use torii::Torii;
use torii_core::repositories::UserRepository;
use torii_core::RepositoryProvider;
use torii_storage_toriid::{toriid_user_id, toriid_user_id_in, ToriidRepositoryProvider};
use toriid_client::{Args, Config};

fn provider_in(d: &Daemon, tenant: &str) -> ToriidRepositoryProvider {
    ToriidRepositoryProvider::connect(
        Config::new([d.endpoint.clone()])
            .with_timeout(Duration::from_secs(10))
            .with_tenant(tenant),
    )
    .expect("a provider")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_provider_per_tenant_keeps_users_and_sessions_apart() {
    let d = Daemon::start().await;
    d.client()
        .call("create_tenant", Args::new().str("name", "acme"))
        .await
        .expect("create_tenant");
    let acme = provider_in(&d, "acme");
    let default = ToriidRepositoryProvider::new(d.client());
    assert_eq!(acme.client().tenant(), "acme");
    assert_eq!(default.client().tenant(), "default");
    let ta = Torii::new(Arc::new(acme.clone()));
    let td = Torii::new(Arc::new(default.clone()));
    ta.migrate().await.expect("migrate in acme");
    ta.health_check().await.expect("health_check in acme");

    // The same email signs up in both tenants: two users.
    let ua = ta
        .password()
        .register("ada@example.com", "acme password 1")
        .await
        .expect("register in acme");
    let ud = td
        .password()
        .register("ADA@example.com", "default password 1")
        .await
        .expect("the same email registers in the default tenant too");
    assert_ne!(ua.id, ud.id);
    assert!(
        ta.password()
            .register("ada@example.com", "again")
            .await
            .is_err(),
        "but only once per tenant"
    );

    // Each user is stored under its tenant's uuid and found only there.
    let stored = acme
        .client()
        .get_user(&toriid_user_id_in(Some("acme"), &ua.id))
        .await
        .expect("acme's user under the tenant rule's uuid");
    assert_eq!(stored.metadata_str("torii_id"), Some(ua.id.as_str()));
    assert!(default.user().find_by_id(&ua.id).await.unwrap().is_none());
    assert!(acme.user().find_by_id(&ud.id).await.unwrap().is_none());
    assert!(default
        .client()
        .get_user(&toriid_user_id_in(Some("acme"), &ua.id))
        .await
        .unwrap_err()
        .is_not_found());
    assert_eq!(
        acme.user()
            .find_by_email("ada@example.com")
            .await
            .unwrap()
            .map(|u| u.id),
        Some(ua.id.clone())
    );
    assert_eq!(
        default
            .user()
            .find_by_email("ada@example.com")
            .await
            .unwrap()
            .map(|u| u.id),
        Some(ud.id.clone())
    );

    // Each password logs in only in its tenant, and a session of one
    // tenant never validates in the other.
    let (u, sa) = ta
        .password()
        .authenticate("ada@example.com", "acme password 1", None, None)
        .await
        .expect("login in acme");
    assert_eq!(u.id, ua.id);
    assert!(td
        .password()
        .authenticate("ada@example.com", "acme password 1", None, None)
        .await
        .is_err());
    let (_, sd) = td
        .password()
        .authenticate("ada@example.com", "default password 1", None, None)
        .await
        .expect("login in the default tenant");
    assert_eq!(ta.get_session(&sa.token).await.unwrap().user_id, ua.id);
    assert_eq!(td.get_session(&sd.token).await.unwrap().user_id, ud.id);
    assert!(td.get_session(&sa.token).await.is_err());
    assert!(ta.get_session(&sd.token).await.is_err());
    // Deleting in one tenant leaves the other alone.
    td.delete_session(&sa.token).await.ok();
    ta.get_session(&sa.token)
        .await
        .expect("acme's session survives a delete in the default tenant");
    ta.delete_session(&sa.token).await.unwrap();
    assert!(ta.get_session(&sa.token).await.is_err());
    td.get_session(&sd.token)
        .await
        .expect("the default tenant's session is untouched");
    // The default tenant's uuids are those of a deployment without tenants.
    default
        .client()
        .get_user(&toriid_user_id(&ud.id))
        .await
        .expect("the default rule");
}

/// A ROUTER on a fresh port that records each request body and answers ok.
fn recording_daemon() -> (String, std::sync::mpsc::Receiver<Value>) {
    let ctx = zmq::Context::new();
    let router = ctx.socket(zmq::ROUTER).unwrap();
    let endpoint = format!("tcp://127.0.0.1:{}", support::free_port());
    router.bind(&endpoint).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ctx = ctx;
        while let Ok(mut frames) = router.recv_multipart(0) {
            let body = frames.pop().unwrap_or_default();
            let req = rmpv::decode::read_value(&mut &body[..]).unwrap_or(Value::Nil);
            let id = req
                .as_map()
                .and_then(|m| m.iter().find(|(k, _)| k.as_str() == Some("id")))
                .map(|(_, v)| v.clone())
                .unwrap_or(Value::Nil);
            let _ = tx.send(req);
            let reply = Value::Map(vec![
                (Value::from("id"), id),
                (Value::from("ok"), Value::from(true)),
                (Value::from("result"), Value::Map(vec![])),
            ]);
            let mut out = Vec::new();
            rmpv::encode::write_value(&mut out, &reply).unwrap();
            frames.push(out);
            if router.send_multipart(frames, 0).is_err() {
                return;
            }
        }
    });
    (endpoint, rx)
}

fn keys(v: &Value) -> Vec<String> {
    v.as_map()
        .unwrap()
        .iter()
        .map(|(k, _)| k.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn tenant_is_sent_only_when_set() {
    let (endpoint, seen) = recording_daemon();
    let plain = Config::new([endpoint.clone()]).connect().unwrap();
    plain.call("ping", Args::new()).await.unwrap();
    let body = seen.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(keys(&body), ["op", "args", "id", "v", "timeout_ms"]);

    let acme = Config::new([endpoint])
        .with_tenant("acme")
        .connect()
        .unwrap();
    acme.as_actor("6f1c9a8e-0000-4000-8000-000000000001")
        .call("ping", Args::new())
        .await
        .unwrap();
    let body = seen.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(
        keys(&body),
        ["op", "args", "id", "v", "timeout_ms", "actor", "tenant"]
    );
    let tenant = body
        .as_map()
        .unwrap()
        .iter()
        .find(|(k, _)| k.as_str() == Some("tenant"))
        .map(|(_, v)| v.as_str().unwrap().to_string());
    assert_eq!(tenant.as_deref(), Some("acme"));
}
