//! Drives the example service over real HTTP (a plain HTTP/1.1 client on a
//! TCP socket) against a real toriid and PostgreSQL.

#[path = "../../../torii-storage-toriid/tests/support/mod.rs"]
mod support;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

async fn http(
    addr: &str,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    form: Option<&str>,
) -> Reply {
    let mut s = TcpStream::connect(addr)
        .await
        .expect("connect to the service");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(c) = cookie {
        req.push_str(&format!("Cookie: {c}\r\n"));
    }
    let body = form.unwrap_or("");
    if form.is_some() {
        req.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP reply");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_up_log_in_protected_route_log_out() {
    let daemon = support::Daemon::start().await;
    let auth = torii_axum_example::connect(&daemon.endpoint).unwrap();
    auth.migrate().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let _ = axum::serve(listener, torii_axum_example::app(auth)).await;
    });

    let form = "email=web%40example.com&password=s3cret+pass";
    let r = http(&addr, "POST", "/signup", None, Some(form)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(r.body.starts_with("usr_"), "{}", r.body);
    assert_eq!(
        http(&addr, "POST", "/signup", None, Some(form))
            .await
            .status,
        409
    );

    assert_eq!(http(&addr, "GET", "/me", None, None).await.status, 401);
    let bad = "email=web%40example.com&password=wrong";
    assert_eq!(
        http(&addr, "POST", "/login", None, Some(bad)).await.status,
        401
    );

    let r = http(&addr, "POST", "/login", None, Some(form)).await;
    assert_eq!(r.status, 200);
    let set = r
        .header("set-cookie")
        .expect("a session cookie")
        .to_string();
    assert!(set.contains("HttpOnly"), "{set}");
    let cookie = set.split(';').next().unwrap().to_string();

    let r = http(&addr, "GET", "/me", Some(&cookie), None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "hello web@example.com");
    assert_eq!(
        http(
            &addr,
            "GET",
            "/me",
            Some("session=forged-forged-forged-forged-forged-forg"),
            None
        )
        .await
        .status,
        401
    );

    assert_eq!(
        http(&addr, "POST", "/logout", Some(&cookie), None)
            .await
            .status,
        204
    );
    assert_eq!(
        http(&addr, "GET", "/me", Some(&cookie), None).await.status,
        401
    );
}
