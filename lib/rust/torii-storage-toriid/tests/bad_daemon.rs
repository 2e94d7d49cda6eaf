//! Bad input from the other side: a dead daemon, a daemon of another
//! protocol, a malformed reply. Clear errors within the deadline, no panic.
//! The "daemons" here are tiny fake ROUTER sockets.

mod support;

use std::time::{Duration, Instant};

use rmpv::Value;
use torii_core::RepositoryProvider;
use torii_storage_toriid::ToriidRepositoryProvider;
use toriid_client::{Config, ErrorKind};

/// A ROUTER on a fresh port that answers every request with `answer(id)`
/// (raw body bytes) until the test ends.
fn fake_daemon(answer: fn(Value) -> Vec<u8>) -> String {
    let ctx = zmq::Context::new();
    let router = ctx.socket(zmq::ROUTER).unwrap();
    let port = support::free_port();
    let endpoint = format!("tcp://127.0.0.1:{port}");
    router.bind(&endpoint).unwrap();
    std::thread::spawn(move || {
        let _ctx = ctx;
        while let Ok(mut frames) = router.recv_multipart(0) {
            let body = frames.pop().unwrap_or_default();
            let req = rmpv::decode::read_value(&mut &body[..]).unwrap_or(Value::Nil);
            let id = match &req {
                Value::Map(m) => m
                    .iter()
                    .find(|(k, _)| k.as_str() == Some("id"))
                    .map(|(_, v)| v.clone())
                    .unwrap_or(Value::Nil),
                _ => Value::Nil,
            };
            frames.push(answer(id));
            if router.send_multipart(frames, 0).is_err() {
                return;
            }
        }
    });
    endpoint
}

fn encode(v: Value) -> Vec<u8> {
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, &v).unwrap();
    out
}

fn map(pairs: Vec<(&str, Value)>) -> Value {
    Value::Map(
        pairs
            .into_iter()
            .map(|(k, v)| (Value::from(k), v))
            .collect(),
    )
}

#[tokio::test]
async fn dead_daemon_is_a_deadline_error_within_the_configured_time() {
    let endpoint = format!("tcp://127.0.0.1:{}", support::free_port());
    let config = Config::new([endpoint]).with_timeout(Duration::from_millis(300));
    let provider = ToriidRepositoryProvider::connect(config).unwrap();
    let started = Instant::now();
    let err = provider
        .client()
        .get_user("6af69e92-7b68-53eb-b1a6-0f7f935d8f4b")
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(
        took >= Duration::from_millis(290),
        "gave up early: {took:?}"
    );
    assert!(
        took < Duration::from_secs(2),
        "took {took:?} for a 300 ms deadline"
    );
    let err = provider.health_check().await.unwrap_err();
    assert!(
        err.to_string().contains("no reply from toriid within"),
        "{err}"
    );
}

#[tokio::test]
async fn daemon_of_another_protocol_version() {
    let refusing = fake_daemon(|id| {
        encode(map(vec![
            ("id", id),
            ("ok", Value::Boolean(false)),
            (
                "error",
                map(vec![
                    ("code", Value::from("unsupported_version")),
                    ("message", Value::from("this daemon speaks protocol 2")),
                ]),
            ),
        ]))
    });
    let client = Config::new([refusing]).connect().unwrap();
    let err = client.ping().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnsupportedVersion);
    assert_eq!(err.code(), Some("unsupported_version"));
    assert!(err.to_string().contains("protocol 2"), "{err}");

    // An older daemon: answers ping with protocol 0 and no schema version.
    let old = fake_daemon(|id| {
        encode(map(vec![
            ("id", id),
            ("ok", Value::Boolean(true)),
            (
                "result",
                map(vec![
                    ("version", Value::from("0.0.1")),
                    ("protocol", Value::from(0)),
                ]),
            ),
        ]))
    });
    let provider = ToriidRepositoryProvider::connect(Config::new([old])).unwrap();
    let err = provider.health_check().await.unwrap_err();
    assert!(err.to_string().contains("speaks protocol 0"), "{err}");
    let err = provider.migrate().await.unwrap_err();
    assert!(err.to_string().contains("protocol 0"), "{err}");
}

#[tokio::test]
async fn daemon_without_schema_version_fails_migrate_clearly() {
    let old = fake_daemon(|id| {
        encode(map(vec![
            ("id", id),
            ("ok", Value::Boolean(true)),
            (
                "result",
                map(vec![
                    ("version", Value::from("0.0.9")),
                    ("protocol", Value::from(1)),
                ]),
            ),
        ]))
    });
    let provider = ToriidRepositoryProvider::connect(Config::new([old])).unwrap();
    provider
        .health_check()
        .await
        .expect("protocol 1 is healthy");
    let err = provider.migrate().await.unwrap_err();
    assert!(
        err.to_string()
            .contains("does not report its schema version"),
        "{err}"
    );
}

#[tokio::test]
async fn malformed_replies() {
    // A reply of the right id but the wrong shape.
    let wrong_shape = fake_daemon(|id| {
        encode(map(vec![
            ("id", id),
            ("ok", Value::Boolean(true)),
            ("result", Value::from("not a user")),
        ]))
    });
    let client = Config::new([wrong_shape]).connect().unwrap();
    let err = client
        .get_user("6af69e92-7b68-53eb-b1a6-0f7f935d8f4b")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::MalformedReply, "{err}");
    assert!(err.to_string().contains("get_user"), "{err}");
    let err = client.ping().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::MalformedReply, "{err}");

    let no_ok = fake_daemon(|id| encode(map(vec![("id", id), ("result", Value::Nil)])));
    let client = Config::new([no_ok]).connect().unwrap();
    let err = client.ping().await.unwrap_err();
    assert!(err.to_string().contains("no boolean `ok`"), "{err}");

    // Bytes that are not msgpack at all cannot be matched to a request:
    // they are dropped and the request ends at its deadline.
    let garbage = fake_daemon(|_| vec![0xc1, 0xff, 0x00]);
    let client = Config::new([garbage])
        .with_timeout(Duration::from_millis(300))
        .connect()
        .unwrap();
    let err = client.ping().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
}

/// A fake daemon that answers reads (`ping`: protocol 1) and, on its first
/// write, closes its socket without replying: a daemon dying mid-write.
fn dies_on_write() -> String {
    let ctx = zmq::Context::new();
    let router = ctx.socket(zmq::ROUTER).unwrap();
    router.set_linger(0).unwrap();
    let endpoint = format!("tcp://127.0.0.1:{}", support::free_port());
    router.bind(&endpoint).unwrap();
    std::thread::spawn(move || {
        while let Ok(mut frames) = router.recv_multipart(0) {
            let body = frames.pop().unwrap_or_default();
            let req = rmpv::decode::read_value(&mut &body[..]).unwrap_or(Value::Nil);
            let get = |k: &str| match &req {
                Value::Map(m) => m
                    .iter()
                    .find(|(key, _)| key.as_str() == Some(k))
                    .map(|(_, v)| v.clone())
                    .unwrap_or(Value::Nil),
                _ => Value::Nil,
            };
            if get("op").as_str() != Some("ping") {
                break; // drops the socket (and so the connection) unanswered
            }
            let result = map(vec![
                ("version", Value::from("fake")),
                ("protocol", Value::from(1)),
            ]);
            frames.push(encode(map(vec![
                ("id", get("id")),
                ("ok", Value::Boolean(true)),
                ("result", result),
            ])));
            if router.send_multipart(frames, 0).is_err() {
                break;
            }
        }
        drop(router);
        drop(ctx);
    });
    endpoint
}

#[tokio::test]
async fn a_write_whose_daemon_drops_is_not_resent_and_reads_go_on() {
    let a = dies_on_write();
    let b = dies_on_write();
    let client = Config::new([a, b])
        .with_timeout(Duration::from_secs(5))
        .connect()
        .unwrap();
    client.ping().await.expect("a read");
    // The write reaches one daemon, which dies: the outcome is unknown, so
    // the client says so at once instead of resending it to the other.
    let started = Instant::now();
    let err = client
        .delete_user("6af69e92-7b68-53eb-b1a6-0f7f935d8f4b")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(
        matches!(err, toriid_client::Error::ConnectionLost { .. }),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "waited {:?}",
        started.elapsed()
    );
    // Reads go on through the live one.
    for _ in 0..3 {
        client
            .ping()
            .await
            .expect("a read after the loss of one daemon");
    }
}
