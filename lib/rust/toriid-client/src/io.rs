//! The I/O thread: ZeroMQ sockets are not thread-safe and the `zmq` crate
//! is blocking, so one thread per [`crate::Client`] owns every socket (one
//! DEALER per endpoint, each with a socket monitor when there are several)
//! and talks to async callers through a channel (requests in) and oneshot
//! senders (replies out). An inproc PAIR socket wakes it up when a request
//! is queued, so it can sleep in `zmq::poll` on all its sockets at once.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rmpv::Value;
use tokio::sync::oneshot;

use crate::curve::read_key_file;
use crate::error::{Error, Result};

/// One request handed to the I/O thread.
pub(crate) struct Request {
    pub id: u64,
    pub op: String,
    pub body: Vec<u8>,
    pub idempotent: bool,
    pub timeout: Duration,
    pub deadline: Instant,
    pub reply: oneshot::Sender<Result<Value>>,
}

enum Command {
    Request(Request),
    Shutdown,
}

/// CURVE keys, raw 32 bytes each.
#[derive(Clone)]
pub(crate) struct CurveKeys {
    pub server_public: Vec<u8>,
    pub client_public: Vec<u8>,
    pub client_secret: Vec<u8>,
}

impl CurveKeys {
    /// The three Z85 key files `torii keygen` writes: the daemon's public
    /// key and this side's key pair.
    pub fn from_files(
        server_public: impl AsRef<Path>,
        client_public: impl AsRef<Path>,
        client_secret: impl AsRef<Path>,
    ) -> Result<CurveKeys> {
        Ok(CurveKeys {
            server_public: read_key_file(server_public)?,
            client_public: read_key_file(client_public)?,
            client_secret: read_key_file(client_secret)?,
        })
    }
}

pub(crate) struct Io {
    tx: Mutex<mpsc::Sender<Command>>,
    wake: Mutex<zmq::Socket>,
    thread: Mutex<Option<JoinHandle<()>>>,
    next_id: AtomicU64,
}

static INSTANCE: AtomicU64 = AtomicU64::new(0);

const MONITOR_EVENTS: i32 = zmq_sys_events::HANDSHAKE_SUCCEEDED | zmq_sys_events::DISCONNECTED;

/// libzmq's event numbers (zmq.h), the two the client watches.
mod zmq_sys_events {
    pub const DISCONNECTED: i32 = 0x0200;
    pub const HANDSHAKE_SUCCEEDED: i32 = 0x1000;
}

impl Io {
    pub(crate) fn start(endpoints: &[String], curve: Option<CurveKeys>) -> Result<Io> {
        if endpoints.is_empty() {
            return Err(Error::Config("no endpoint given".into()));
        }
        let ctx = zmq::Context::new();
        let instance = INSTANCE.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let wake_ep = format!("inproc://toriid-client-wake-{pid}-{instance}");
        let wake_rx = ctx.socket(zmq::PAIR)?;
        wake_rx.bind(&wake_ep)?;
        let wake_tx = ctx.socket(zmq::PAIR)?;
        wake_tx.connect(&wake_ep)?;
        let watch = endpoints.len() > 1;
        let mut eps = Vec::with_capacity(endpoints.len());
        for (i, ep) in endpoints.iter().enumerate() {
            let socket = ctx.socket(zmq::DEALER)?;
            socket.set_linger(0)?;
            socket.set_sndhwm(100_000)?;
            socket.set_rcvhwm(100_000)?;
            if let Some(keys) = &curve {
                socket.set_curve_serverkey(&keys.server_public)?;
                socket.set_curve_publickey(&keys.client_public)?;
                socket.set_curve_secretkey(&keys.client_secret)?;
            }
            let monitor = if watch {
                let mon_ep = format!("inproc://toriid-client-monitor-{pid}-{instance}-{i}");
                socket.monitor(&mon_ep, MONITOR_EVENTS)?;
                let mon = ctx.socket(zmq::PAIR)?;
                mon.connect(&mon_ep)?;
                Some(mon)
            } else {
                None
            };
            socket
                .connect(ep)
                .map_err(|e| Error::Config(format!("cannot connect to endpoint {ep}: {e}")))?;
            eps.push(Endpoint {
                socket,
                monitor,
                connected: !watch,
            });
        }
        let (tx, rx) = mpsc::channel();
        let worker = Worker {
            _ctx: ctx,
            wake: wake_rx,
            rx,
            endpoints: eps,
            pending: HashMap::new(),
            waiting: VecDeque::new(),
            next_endpoint: 0,
        };
        let thread = std::thread::Builder::new()
            .name("toriid-client-io".into())
            .spawn(move || worker.run())
            .map_err(|e| Error::Config(format!("cannot start the I/O thread: {e}")))?;
        Ok(Io {
            tx: Mutex::new(tx),
            wake: Mutex::new(wake_tx),
            thread: Mutex::new(Some(thread)),
            next_id: AtomicU64::new(1),
        })
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn command(&self, cmd: Command) -> Result<()> {
        self.tx
            .lock()
            .map_err(|_| Error::Closed)?
            .send(cmd)
            .map_err(|_| Error::Closed)?;
        let wake = self.wake.lock().map_err(|_| Error::Closed)?;
        // One byte is enough: the thread drains the channel on any wake-up.
        // EAGAIN (a full pipe) means a wake-up is already pending.
        match wake.send(&b"w"[..], zmq::DONTWAIT) {
            Ok(()) | Err(zmq::Error::EAGAIN) => Ok(()),
            Err(e) => Err(Error::Zmq(e)),
        }
    }

    pub(crate) fn submit(&self, req: Request) -> Result<()> {
        self.command(Command::Request(req))
    }
}

impl Drop for Io {
    fn drop(&mut self) {
        let _ = self.command(Command::Shutdown);
        if let Ok(mut t) = self.thread.lock() {
            if let Some(t) = t.take() {
                let _ = t.join();
            }
        }
    }
}

struct Endpoint {
    socket: zmq::Socket,
    monitor: Option<zmq::Socket>,
    connected: bool,
}

struct Pending {
    req: Request,
    endpoint: usize,
    hedge_at: Option<Instant>,
}

struct Worker {
    _ctx: zmq::Context,
    wake: zmq::Socket,
    rx: mpsc::Receiver<Command>,
    endpoints: Vec<Endpoint>,
    pending: HashMap<u64, Pending>,
    waiting: VecDeque<Request>,
    next_endpoint: usize,
}

fn timeout_error(req: &Request) -> Error {
    Error::Timeout {
        op: req.op.clone(),
        deadline: req.timeout,
    }
}

impl Worker {
    fn run(mut self) {
        loop {
            self.expire(Instant::now());
            let wait = self.poll_timeout(Instant::now());
            let n = self.endpoints.len();
            let (wake_ready, ready, mon_ready) = {
                let mut items = Vec::with_capacity(1 + 2 * n);
                items.push(self.wake.as_poll_item(zmq::POLLIN));
                for ep in &self.endpoints {
                    items.push(ep.socket.as_poll_item(zmq::POLLIN));
                }
                for ep in &self.endpoints {
                    if let Some(m) = &ep.monitor {
                        items.push(m.as_poll_item(zmq::POLLIN));
                    }
                }
                if zmq::poll(&mut items, wait).is_err() {
                    // EINTR or a closed context: look again after expiring.
                    continue;
                }
                let wake_ready = items[0].is_readable();
                let ready: Vec<bool> = items[1..=n].iter().map(|i| i.is_readable()).collect();
                let mon_ready: Vec<bool> = items[1 + n..].iter().map(|i| i.is_readable()).collect();
                (wake_ready, ready, mon_ready)
            };
            if wake_ready {
                while self.wake.recv_bytes(zmq::DONTWAIT).is_ok() {}
                loop {
                    match self.rx.try_recv() {
                        Ok(Command::Request(req)) => self.dispatch(req),
                        Ok(Command::Shutdown) | Err(mpsc::TryRecvError::Disconnected) => {
                            self.shutdown();
                            return;
                        }
                        Err(mpsc::TryRecvError::Empty) => break,
                    }
                }
            }
            for (i, r) in ready.iter().enumerate() {
                if *r {
                    self.read_replies(i);
                }
            }
            let mut m = 0;
            for i in 0..n {
                if self.endpoints[i].monitor.is_some() {
                    if mon_ready.get(m).copied().unwrap_or(false) {
                        self.read_monitor(i);
                    }
                    m += 1;
                }
            }
        }
    }

    fn shutdown(&mut self) {
        for (_, p) in self.pending.drain() {
            let _ = p.req.reply.send(Err(Error::Closed));
        }
        for r in self.waiting.drain(..) {
            let _ = r.reply.send(Err(Error::Closed));
        }
    }

    fn poll_timeout(&self, now: Instant) -> i64 {
        let mut next: Option<Instant> = None;
        let mut consider = |t: Instant| {
            next = Some(match next {
                Some(n) if n < t => n,
                _ => t,
            })
        };
        for p in self.pending.values() {
            consider(p.req.deadline);
            if let Some(h) = p.hedge_at {
                consider(h);
            }
        }
        for r in &self.waiting {
            consider(r.deadline);
        }
        match next {
            None => 1000,
            Some(t) => {
                let ms = t.saturating_duration_since(now).as_millis();
                // Round up so a deadline is not polled for in a busy loop.
                (ms as i64 + 1).min(1000)
            }
        }
    }

    fn expire(&mut self, now: Instant) {
        let expired: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.req.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(p) = self.pending.remove(&id) {
                let err = timeout_error(&p.req);
                let _ = p.req.reply.send(Err(err));
            }
        }
        while let Some(pos) = self.waiting.iter().position(|r| r.deadline <= now) {
            if let Some(r) = self.waiting.remove(pos) {
                let err = timeout_error(&r);
                let _ = r.reply.send(Err(err));
            }
        }
        // A read with no reply at half its deadline also goes to another
        // connected daemon (one that hangs without dropping the connection).
        let hedge: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.hedge_at.is_some_and(|h| h <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in hedge {
            let Some(from) = self.pending.get_mut(&id).map(|p| {
                p.hedge_at = None;
                p.endpoint
            }) else {
                continue;
            };
            if let Some(to) = self.pick_other(from) {
                if let Some(p) = self.pending.get(&id) {
                    if self.send_on(to, &p.req.body).is_ok() {
                        if let Some(p) = self.pending.get_mut(&id) {
                            p.endpoint = to;
                        }
                    }
                }
            }
        }
    }

    fn pick(&mut self) -> Option<usize> {
        let n = self.endpoints.len();
        for k in 0..n {
            let i = (self.next_endpoint + k) % n;
            if self.endpoints[i].connected {
                self.next_endpoint = (i + 1) % n;
                return Some(i);
            }
        }
        None
    }

    fn pick_other(&mut self, not: usize) -> Option<usize> {
        let n = self.endpoints.len();
        (1..n)
            .map(|k| (not + k) % n)
            .find(|&i| self.endpoints[i].connected)
    }

    fn send_on(&self, i: usize, body: &[u8]) -> std::result::Result<(), zmq::Error> {
        let frames: [&[u8]; 2] = [b"", body];
        self.endpoints[i]
            .socket
            .send_multipart(frames, zmq::DONTWAIT)
    }

    fn dispatch(&mut self, req: Request) {
        if req.deadline <= Instant::now() {
            let err = timeout_error(&req);
            let _ = req.reply.send(Err(err));
            return;
        }
        match self.pick() {
            Some(i) => self.send(i, req),
            None => self.waiting.push_back(req),
        }
    }

    fn send(&mut self, i: usize, req: Request) {
        match self.send_on(i, &req.body) {
            Ok(()) => {
                let hedge_at = (self.endpoints.len() > 1 && req.idempotent)
                    .then(|| req.deadline - req.timeout / 2);
                self.pending.insert(
                    req.id,
                    Pending {
                        req,
                        endpoint: i,
                        hedge_at,
                    },
                );
            }
            Err(e) => {
                let err = Error::Daemon {
                    op: req.op.clone(),
                    code: "overloaded".into(),
                    message: format!("the client could not queue the request ({e}); retry later"),
                };
                let _ = req.reply.send(Err(err));
            }
        }
    }

    fn read_replies(&mut self, i: usize) {
        while let Ok(frames) = self.endpoints[i].socket.recv_multipart(zmq::DONTWAIT) {
            let Some(body) = frames.last() else { continue };
            let Ok(value) = rmpv::decode::read_value(&mut &body[..]) else {
                continue; // undecodable: no id to match it to; dropped
            };
            let Some(id) = field(&value, "id").and_then(Value::as_u64) else {
                continue;
            };
            if let Some(p) = self.pending.remove(&id) {
                let outcome = interpret(&p.req.op, value);
                let _ = p.req.reply.send(outcome);
            }
        }
    }

    fn read_monitor(&mut self, i: usize) {
        loop {
            let frames = match self.endpoints[i].monitor.as_ref() {
                Some(m) => match m.recv_multipart(zmq::DONTWAIT) {
                    Ok(f) => f,
                    Err(_) => return,
                },
                None => return,
            };
            let Some(first) = frames.first().filter(|f| f.len() >= 2) else {
                continue;
            };
            let event = i32::from(u16::from_ne_bytes([first[0], first[1]]));
            if event == zmq_sys_events::HANDSHAKE_SUCCEEDED {
                self.endpoints[i].connected = true;
                while let Some(req) = self.waiting.pop_front() {
                    self.dispatch(req);
                }
            } else if event == zmq_sys_events::DISCONNECTED {
                self.endpoints[i].connected = false;
                self.fail_over(i);
            }
        }
    }

    /// Endpoint `i` dropped its connection: reads in flight on it go to
    /// another connected endpoint under the same id and deadline; writes
    /// fail at once, their outcome unknown.
    fn fail_over(&mut self, i: usize) {
        let ids: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.endpoint == i)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let Some(p) = self.pending.remove(&id) else {
                continue;
            };
            if p.req.idempotent {
                match self.pick_other(i) {
                    Some(to) => self.send(to, p.req),
                    None => self.waiting.push_back(p.req),
                }
            } else {
                let err = Error::ConnectionLost {
                    op: p.req.op.clone(),
                };
                let _ = p.req.reply.send(Err(err));
            }
        }
    }
}

pub(crate) fn field<'a>(map: &'a Value, key: &str) -> Option<&'a Value> {
    match map {
        Value::Map(m) => m
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v),
        _ => None,
    }
}

/// A reply body (already matched by id) → the result or the error.
fn interpret(op: &str, reply: Value) -> Result<Value> {
    match field(&reply, "ok").and_then(Value::as_bool) {
        Some(true) => Ok(field(&reply, "result").cloned().unwrap_or(Value::Nil)),
        Some(false) => {
            let err = field(&reply, "error");
            let code = err.and_then(|e| field(e, "code")).and_then(Value::as_str);
            let message = err
                .and_then(|e| field(e, "message"))
                .and_then(Value::as_str)
                .unwrap_or("");
            match code {
                Some(code) => Err(Error::Daemon {
                    op: op.to_string(),
                    code: code.to_string(),
                    message: message.to_string(),
                }),
                None => Err(Error::malformed(op, "an error reply without a code")),
            }
        }
        None => Err(Error::malformed(op, "the reply has no boolean `ok`")),
    }
}
