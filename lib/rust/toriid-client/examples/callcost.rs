//! CPU per call of this crate's client against a raw DEALER doing the same
//! request (tools/bench-capacity, "What a client costs"). Blocking calls one
//! after another for a number of seconds, then one line:
//! `calls N cpu_us U` (the whole process's user + system CPU, every thread).
//!
//!   callcost client|raw ENDPOINT ping|get_session TOKEN SECONDS
use std::time::{Duration, Instant};

use toriid_client::{Config, SessionKey};

/// utime + stime of this process in microseconds (/proc/self/stat, in
/// clock ticks of 10 ms, the Linux default).
fn cpu_us() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
    (ticks(11) + ticks(12)) * 10_000 // fields 14 and 15 of stat
}

fn raw(endpoint: &str, op: &str, token: &str, until: Instant) -> u64 {
    let ctx = zmq::Context::new();
    let s = ctx.socket(zmq::DEALER).expect("socket");
    s.set_linger(0).expect("linger");
    s.connect(endpoint).expect("connect");
    let mut calls = 0u64;
    let mut body = Vec::new();
    while Instant::now() < until {
        let mut m = vec![
            (rmpv::Value::from("op"), rmpv::Value::from(op)),
            (rmpv::Value::from("id"), rmpv::Value::from(calls)),
        ];
        if op == "get_session" {
            m.push((
                rmpv::Value::from("args"),
                rmpv::Value::Map(vec![(rmpv::Value::from("token"), rmpv::Value::from(token))]),
            ));
        }
        body.clear();
        rmpv::encode::write_value(&mut body, &rmpv::Value::Map(m)).expect("encode");
        s.send_multipart([&b""[..], &body[..]], 0).expect("send");
        let parts = s.recv_multipart(0).expect("receive");
        let reply = rmpv::decode::read_value(&mut &parts[parts.len() - 1][..]).expect("decode");
        let ok = reply
            .as_map()
            .and_then(|m| m.iter().find(|(k, _)| k.as_str() == Some("ok")))
            .and_then(|(_, v)| v.as_bool());
        assert_eq!(ok, Some(true), "reply {reply}");
        calls += 1;
    }
    calls
}

fn client(endpoint: &str, op: &str, token: &str, until: Instant) -> u64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let c = Config::new([endpoint]).connect().expect("connect");
        let mut calls = 0u64;
        while Instant::now() < until {
            if op == "get_session" {
                c.get_session(SessionKey::Token(token))
                    .await
                    .expect("get_session");
            } else {
                c.ping().await.expect("ping");
            }
            calls += 1;
        }
        calls
    })
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() != 6 {
        eprintln!("usage: callcost client|raw ENDPOINT ping|get_session TOKEN SECONDS");
        std::process::exit(2);
    }
    let secs: f64 = a[5].parse().expect("seconds");
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let cpu0 = cpu_us();
    let calls = match a[1].as_str() {
        "raw" => raw(&a[2], &a[3], &a[4], until),
        _ => client(&a[2], &a[3], &a[4], until),
    };
    println!("calls {calls} cpu_us {}", cpu_us() - cpu0);
}
