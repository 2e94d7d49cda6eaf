//! [`Client`]: configuration, the generic call, and one typed method per
//! operation of PROTOCOL.md.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rmpv::Value;
use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::io::{CurveKeys, Io, Request};
use crate::types::*;
use crate::value::{Args, Fields};

/// How to reach the daemon(s). Build one with [`Config::new`] and the
/// `with_*` methods, then [`Config::connect`].
#[derive(Clone)]
pub struct Config {
    endpoints: Vec<String>,
    timeout: Duration,
    curve: Option<CurveKeys>,
    tenant: Option<String>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No key material, not even the public keys.
        f.debug_struct("Config")
            .field("endpoints", &self.endpoints)
            .field("timeout", &self.timeout)
            .field("curve", &self.curve.is_some())
            .field("tenant", &self.tenant)
            .finish()
    }
}

impl Config {
    /// One or more `requests` endpoints (`tcp://…` or `ipc://…`) of daemons
    /// on one database. With several, reads fail over between them.
    pub fn new<I, S>(endpoints: I) -> Config
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Config {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            timeout: Duration::from_secs(5),
            curve: None,
            tenant: None,
        }
    }

    /// The default deadline of a request (5 s unless set). It is sent as
    /// `timeout_ms`, so the daemon gives up at the same time.
    pub fn with_timeout(mut self, timeout: Duration) -> Config {
        self.timeout = timeout;
        self
    }

    /// The tenant every request acts in (PROTOCOL.md section 6), sent as
    /// the request's `tenant` key. Unset, no key is sent: the daemon uses
    /// the default tenant (or the one this client's CURVE key is bound to),
    /// and the bytes on the wire are those of a client without tenants.
    /// One client per tenant. [`Config::connect`] refuses a name that is not
    /// 1 to 64 bytes of `[a-z0-9_.-]`; whether the tenant exists is the
    /// daemon's answer (`not_found` on the first request).
    pub fn with_tenant(mut self, tenant: impl Into<String>) -> Config {
        self.tenant = Some(tenant.into());
        self
    }

    /// Turns CURVE on with three Z85 key files as `torii keygen` writes
    /// them: the daemon's public key and this client's key pair.
    pub fn with_curve_key_files(
        mut self,
        server_public: impl AsRef<Path>,
        client_public: impl AsRef<Path>,
        client_secret: impl AsRef<Path>,
    ) -> Result<Config> {
        self.curve = Some(CurveKeys::from_files(
            server_public,
            client_public,
            client_secret,
        )?);
        Ok(self)
    }

    /// Creates the sockets and the I/O thread. Connecting does not wait for
    /// a daemon: a request to an unreachable one times out at its deadline.
    pub fn connect(self) -> Result<Client> {
        if let Some(tenant) = &self.tenant {
            if !is_tenant_name(tenant) {
                return Err(Error::Config(format!("tenant: {TENANT_NAME_RULE}")));
            }
        }
        let io = Io::start(&self.endpoints, self.curve)?;
        Ok(Client {
            inner: Arc::new(Inner {
                io,
                tenant: self.tenant,
            }),
            timeout: self.timeout,
            actor: None,
        })
    }
}

struct Inner {
    io: Io,
    tenant: Option<String>,
}

/// The tenant of a request that names none (PROTOCOL.md section 6).
pub const DEFAULT_TENANT: &str = "default";

const TENANT_NAME_RULE: &str = "a tenant name is 1 to 64 bytes of [a-z0-9_.-]";

/// Whether `name` is a tenant name: 1 to 64 bytes of `[a-z0-9_.-]`.
pub fn is_tenant_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-'))
}

/// An asynchronous client of toriid. Cheap to clone (an `Arc`): clones share
/// the sockets and the I/O thread, which stop when the last clone is dropped.
///
/// Every method is one request. Reads (see [`is_idempotent`]) are resent to
/// another daemon when theirs drops the connection or has not answered at
/// half the deadline; writes are never resent, and a write whose daemon
/// dropped the connection fails with [`Error::ConnectionLost`] (outcome
/// unknown).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    timeout: Duration,
    actor: Option<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("timeout", &self.timeout)
            .field("actor", &self.actor)
            .finish()
    }
}

/// Whether `op` only reads, so it may be sent to a second daemon when the
/// first one fails: its `retry_safe` in the protocol's operation table
/// ([`OPERATIONS`](crate::OPERATIONS), the same rows as the C++
/// `torii::Operations()`). An unknown name is not.
pub fn is_idempotent(op: &str) -> bool {
    crate::ops::operation(op).is_some_and(|o| o.retry_safe)
}

/// Which session: by its bearer token or by its uuid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKey<'a> {
    /// The bearer token a client keeps in its cookie.
    Token(&'a str),
    /// The session's uuid.
    Id(&'a str),
}

impl SessionKey<'_> {
    fn add(self, args: Args) -> Args {
        match self {
            SessionKey::Token(t) => args.str("token", t),
            SessionKey::Id(id) => args.str("id", id),
        }
    }
}

/// When a session ends: a lifetime from now or a point in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Seconds from now (`ttl_s`); rounded up to whole seconds, at least 1.
    In(Duration),
    /// A point in time (`expires_at`), which must be in the future.
    At(DateTime<Utc>),
}

impl Expiry {
    fn add(self, args: Args) -> Args {
        match self {
            Expiry::In(d) => args.int("ttl_s", ttl_secs(d)),
            Expiry::At(t) => args.time("expires_at", t),
        }
    }
}

fn ttl_secs(d: Duration) -> i64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    i64::try_from(secs.max(1)).unwrap_or(i64::MAX)
}

/// The arguments of `create_user` (only `email` is required).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewUser {
    /// The email (unique, case-insensitively).
    pub email: String,
    /// A uuid to use; random when `None`.
    pub id: Option<String>,
    /// A display name.
    pub name: Option<String>,
    /// A password hash, stored as given.
    pub password_hash: Option<String>,
    /// A metadata map.
    pub metadata: Option<Value>,
    /// Create the user verified (a toriid addition to PROTOCOL.md).
    pub email_verified_at: Option<DateTime<Utc>>,
}

/// The arguments of `update_user`: `None` leaves a field alone; for the
/// `Option<Option<_>>` fields `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserUpdate {
    /// A new email.
    pub email: Option<String>,
    /// A new name, or `Some(None)` to clear it.
    pub name: Option<Option<String>>,
    /// A new password hash, or `Some(None)` to remove it.
    pub password_hash: Option<Option<String>>,
    /// Lock (`Some(Some(t))`) or unlock (`Some(None)`).
    pub locked_at: Option<Option<DateTime<Utc>>>,
    /// Set (`Some(Some(t))`) or clear (`Some(None)`) the email verification
    /// time (a toriid addition to PROTOCOL.md).
    pub email_verified_at: Option<Option<DateTime<Utc>>>,
    /// Replaces the metadata map.
    pub metadata: Option<Value>,
    /// Merged into the stored metadata map (top-level keys).
    pub metadata_merge: Option<Value>,
}

/// The arguments of `create_session`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSession {
    /// The owner's uuid.
    pub user_id: String,
    /// When it expires.
    pub expiry: Expiry,
    /// A uuid to use; random when `None`.
    pub id: Option<String>,
    /// The client's user agent.
    pub user_agent: Option<String>,
    /// The client's IP address.
    pub ip_address: Option<String>,
    /// A metadata map.
    pub metadata: Option<Value>,
}

impl NewSession {
    /// A session of `user_id` that expires as `expiry` says.
    pub fn new(user_id: impl Into<String>, expiry: Expiry) -> NewSession {
        NewSession {
            user_id: user_id.into(),
            expiry,
            id: None,
            user_agent: None,
            ip_address: None,
            metadata: None,
        }
    }
}

fn opt_value(args: Args, key: &str, v: Option<Value>) -> Args {
    match v {
        Some(v) => args.value(key, v),
        None => args,
    }
}

fn deleted(op: &str, v: &Value) -> Result<u64> {
    Fields::new(op, v)?.u64("deleted")
}

impl Client {
    /// A clone whose requests act on behalf of user `actor` (a uuid): they
    /// run under row-level security and see only that user's rows.
    pub fn as_actor(&self, actor: impl Into<String>) -> Client {
        Client {
            actor: Some(actor.into()),
            ..self.clone()
        }
    }

    /// A clone with another default deadline.
    pub fn with_timeout(&self, timeout: Duration) -> Client {
        Client {
            timeout,
            ..self.clone()
        }
    }

    /// The deadline of this client's requests.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The tenant this client's requests act in (`default` unless set).
    pub fn tenant(&self) -> &str {
        self.inner.tenant.as_deref().unwrap_or("default")
    }

    /// Sends any operation with its arguments and returns its `result`.
    /// The typed methods below are built on it.
    pub async fn call(&self, op: &str, args: Args) -> Result<Value> {
        let io = &self.inner.io;
        let id = io.next_id();
        let timeout_ms = u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX);
        let mut body = vec![
            (Value::from("op"), Value::from(op)),
            (Value::from("args"), args.into_value()),
            (Value::from("id"), Value::from(id)),
            (Value::from("v"), Value::from(1)),
            (Value::from("timeout_ms"), Value::from(timeout_ms)),
        ];
        if let Some(actor) = &self.actor {
            body.push((Value::from("actor"), Value::from(actor.as_str())));
        }
        if let Some(tenant) = &self.inner.tenant {
            body.push((Value::from("tenant"), Value::from(tenant.as_str())));
        }
        let mut bytes = Vec::new();
        rmpv::encode::write_value(&mut bytes, &Value::Map(body))
            .map_err(|e| Error::Config(format!("cannot encode the {op} request: {e}")))?;
        let (tx, rx) = oneshot::channel();
        io.submit(Request {
            id,
            op: op.to_string(),
            body: bytes,
            idempotent: is_idempotent(op),
            timeout: self.timeout,
            deadline: Instant::now() + self.timeout,
            reply: tx,
        })?;
        rx.await.map_err(|_| Error::Closed)?
    }

    // ---- daemon ----

    /// `ping`: the daemon's version and protocol.
    pub async fn ping(&self) -> Result<Ping> {
        let v = self.call("ping", Args::new()).await?;
        let f = Fields::new("ping", &v)?;
        Ok(Ping {
            version: f.string("version")?,
            protocol: f.u64("protocol")?,
            schema: f.get("schema").and_then(Value::as_u64),
        })
    }

    /// `stats`: the daemon's counters, as a msgpack map.
    pub async fn stats(&self) -> Result<Value> {
        self.call("stats", Args::new()).await
    }

    // ---- users ----

    /// `create_user`.
    pub async fn create_user(&self, user: NewUser) -> Result<User> {
        let args = Args::new()
            .str("email", &user.email)
            .opt_str("id", user.id)
            .opt_str("name", user.name)
            .opt_str("password_hash", user.password_hash)
            .opt_time("email_verified_at", user.email_verified_at);
        let args = opt_value(args, "metadata", user.metadata);
        User::decode("create_user", &self.call("create_user", args).await?)
    }

    /// `get_user` by uuid.
    pub async fn get_user(&self, id: &str) -> Result<User> {
        let v = self.call("get_user", Args::new().str("id", id)).await?;
        User::decode("get_user", &v)
    }

    /// `get_user_by_email` (case-insensitive).
    pub async fn get_user_by_email(&self, email: &str) -> Result<User> {
        let v = self
            .call("get_user_by_email", Args::new().str("email", email))
            .await?;
        User::decode("get_user_by_email", &v)
    }

    /// `get_or_create_user`: the user and whether this call created it.
    pub async fn get_or_create_user(
        &self,
        email: &str,
        name: Option<&str>,
        id: Option<&str>,
        metadata: Option<Value>,
    ) -> Result<(User, bool)> {
        let args = Args::new()
            .str("email", email)
            .opt_str("name", name)
            .opt_str("id", id);
        let v = self
            .call("get_or_create_user", opt_value(args, "metadata", metadata))
            .await?;
        let f = Fields::new("get_or_create_user", &v)?;
        let user = User::decode("get_or_create_user", f.get("user").unwrap_or(&Value::Nil))?;
        Ok((user, f.bool("created")?))
    }

    /// `update_user`: changes only the fields given.
    pub async fn update_user(&self, id: &str, update: UserUpdate) -> Result<User> {
        let mut args = Args::new().str("id", id).opt_str("email", update.email);
        if let Some(name) = update.name {
            args = match name {
                Some(n) => args.str("name", n),
                None => args.nil("name"),
            };
        }
        if let Some(hash) = update.password_hash {
            args = match hash {
                Some(h) => args.str("password_hash", h),
                None => args.nil("password_hash"),
            };
        }
        if let Some(locked_at) = update.locked_at {
            args = args.time_or_nil("locked_at", locked_at);
        }
        if let Some(at) = update.email_verified_at {
            args = args.time_or_nil("email_verified_at", at);
        }
        args = opt_value(args, "metadata", update.metadata);
        args = opt_value(args, "metadata_merge", update.metadata_merge);
        User::decode("update_user", &self.call("update_user", args).await?)
    }

    /// `verify_email`: sets `email_verified_at` to `at` (default: now).
    pub async fn verify_email(&self, id: &str, at: Option<DateTime<Utc>>) -> Result<User> {
        let args = Args::new().str("id", id).opt_time("at", at);
        User::decode("verify_email", &self.call("verify_email", args).await?)
    }

    /// `delete_user` (its sessions, accounts, passkeys and tokens go too).
    pub async fn delete_user(&self, id: &str) -> Result<u64> {
        let v = self.call("delete_user", Args::new().str("id", id)).await?;
        deleted("delete_user", &v)
    }

    /// `search_users`: web-search syntax over email and metadata.
    pub async fn search_users(
        &self,
        query: &str,
        limit: Option<i64>,
        offset: Option<i64>,
    ) -> Result<Vec<User>> {
        let args = Args::new()
            .str("query", query)
            .opt_int("limit", limit)
            .opt_int("offset", offset);
        let v = self.call("search_users", args).await?;
        let f = Fields::new("search_users", &v)?;
        f.list("users")?
            .iter()
            .map(|u| User::decode("search_users", u))
            .collect()
    }

    /// `list_users`: one page, oldest first.
    pub async fn list_users(&self, limit: Option<i64>, after: Option<&str>) -> Result<UserPage> {
        let args = Args::new().opt_int("limit", limit).opt_str("after", after);
        let v = self.call("list_users", args).await?;
        let f = Fields::new("list_users", &v)?;
        Ok(UserPage {
            users: f
                .list("users")?
                .iter()
                .map(|u| User::decode("list_users", u))
                .collect::<Result<_>>()?,
            next: f.opt_string("next")?,
        })
    }

    // ---- sessions ----

    /// `create_session`: the result carries the bearer `token`, once.
    pub async fn create_session(&self, s: NewSession) -> Result<Session> {
        let args = s
            .expiry
            .add(Args::new().str("user_id", &s.user_id))
            .opt_str("id", s.id)
            .opt_str("user_agent", s.user_agent)
            .opt_str("ip_address", s.ip_address);
        let args = opt_value(args, "metadata", s.metadata);
        let v = self.call("create_session", args).await?;
        Session::decode("create_session", &v)
    }

    /// `get_session`: only while unexpired (else `not_found`).
    pub async fn get_session(&self, key: SessionKey<'_>) -> Result<Session> {
        let v = self.call("get_session", key.add(Args::new())).await?;
        Session::decode("get_session", &v)
    }

    /// `get_session` with `include_expired`: the session even when it has
    /// expired (its `expires_at` is then in the past), for a caller that
    /// judges expiry itself. One request, never answered from the daemon's
    /// session cache; `not_found` only when there is no such session.
    pub async fn get_session_including_expired(&self, key: SessionKey<'_>) -> Result<Session> {
        let v = self
            .call(
                "get_session",
                key.add(Args::new()).bool("include_expired", true),
            )
            .await?;
        Session::decode("get_session", &v)
    }

    /// `extend_session`: a new expiry for an unexpired session (Torii's
    /// `refresh`); an expired one is `not_found` and stays expired.
    pub async fn extend_session(&self, key: SessionKey<'_>, expiry: Expiry) -> Result<Session> {
        let v = self
            .call("extend_session", expiry.add(key.add(Args::new())))
            .await?;
        Session::decode("extend_session", &v)
    }

    /// `delete_session`.
    pub async fn delete_session(&self, key: SessionKey<'_>) -> Result<u64> {
        let v = self.call("delete_session", key.add(Args::new())).await?;
        deleted("delete_session", &v)
    }

    /// `list_sessions`: a user's unexpired sessions, newest first.
    pub async fn list_sessions(&self, user_id: &str) -> Result<Vec<Session>> {
        let v = self
            .call("list_sessions", Args::new().str("user_id", user_id))
            .await?;
        let f = Fields::new("list_sessions", &v)?;
        f.list("sessions")?
            .iter()
            .map(|s| Session::decode("list_sessions", s))
            .collect()
    }

    /// `delete_user_sessions`, keeping the session `except` if given.
    pub async fn delete_user_sessions(&self, user_id: &str, except: Option<&str>) -> Result<u64> {
        let args = Args::new()
            .str("user_id", user_id)
            .opt_str("except", except);
        let v = self.call("delete_user_sessions", args).await?;
        deleted("delete_user_sessions", &v)
    }

    /// `cleanup_expired_sessions`: one cleanup pass now.
    pub async fn cleanup_expired_sessions(&self) -> Result<u64> {
        let v = self.call("cleanup_expired_sessions", Args::new()).await?;
        deleted("cleanup_expired_sessions", &v)
    }

    /// `list_audit`: one page, newest first.
    pub async fn list_audit(
        &self,
        record_id: Option<&str>,
        table: Option<&str>,
        limit: Option<i64>,
        before: Option<&str>,
    ) -> Result<AuditPage> {
        let args = Args::new()
            .opt_str("record_id", record_id)
            .opt_str("table", table)
            .opt_int("limit", limit)
            .opt_str("before", before);
        let v = self.call("list_audit", args).await?;
        let f = Fields::new("list_audit", &v)?;
        Ok(AuditPage {
            entries: f.list("entries")?.to_vec(),
            next: f.opt_string("next")?,
        })
    }

    // ---- OAuth ----

    /// `link_oauth_account`: idempotent for the same triple; the pair linked
    /// to another user is `duplicate`.
    pub async fn link_oauth_account(
        &self,
        user_id: &str,
        provider: &str,
        subject: &str,
    ) -> Result<OAuthAccount> {
        let args = Args::new()
            .str("user_id", user_id)
            .str("provider", provider)
            .str("subject", subject);
        let v = self.call("link_oauth_account", args).await?;
        OAuthAccount::decode("link_oauth_account", &v)
    }

    /// `get_oauth_account`.
    pub async fn get_oauth_account(&self, provider: &str, subject: &str) -> Result<OAuthAccount> {
        let args = Args::new()
            .str("provider", provider)
            .str("subject", subject);
        let v = self.call("get_oauth_account", args).await?;
        OAuthAccount::decode("get_oauth_account", &v)
    }

    /// `get_user_by_oauth`.
    pub async fn get_user_by_oauth(&self, provider: &str, subject: &str) -> Result<User> {
        let args = Args::new()
            .str("provider", provider)
            .str("subject", subject);
        let v = self.call("get_user_by_oauth", args).await?;
        User::decode("get_user_by_oauth", &v)
    }

    /// `list_oauth_accounts`: a user's accounts, oldest first.
    pub async fn list_oauth_accounts(&self, user_id: &str) -> Result<Vec<OAuthAccount>> {
        let v = self
            .call("list_oauth_accounts", Args::new().str("user_id", user_id))
            .await?;
        let f = Fields::new("list_oauth_accounts", &v)?;
        f.list("accounts")?
            .iter()
            .map(|a| OAuthAccount::decode("list_oauth_accounts", a))
            .collect()
    }

    /// `unlink_oauth_account`: one subject, or every account of `provider`.
    pub async fn unlink_oauth_account(
        &self,
        user_id: &str,
        provider: &str,
        subject: Option<&str>,
    ) -> Result<u64> {
        let args = Args::new()
            .str("user_id", user_id)
            .str("provider", provider)
            .opt_str("subject", subject);
        let v = self.call("unlink_oauth_account", args).await?;
        deleted("unlink_oauth_account", &v)
    }

    /// `put_oauth_state`: stores a PKCE verifier under a CSRF state.
    pub async fn put_oauth_state(
        &self,
        state: &str,
        verifier: &str,
        ttl: Duration,
    ) -> Result<DateTime<Utc>> {
        let args = Args::new()
            .str("state", state)
            .str("verifier", verifier)
            .int("ttl_s", ttl_secs(ttl));
        let v = self.call("put_oauth_state", args).await?;
        Fields::new("put_oauth_state", &v)?.time("expires_at")
    }

    /// `take_oauth_state`: the verifier, at most once.
    pub async fn take_oauth_state(&self, state: &str) -> Result<String> {
        let v = self
            .call("take_oauth_state", Args::new().str("state", state))
            .await?;
        Fields::new("take_oauth_state", &v)?.string("verifier")
    }

    // ---- passkeys ----

    /// `add_passkey`.
    pub async fn add_passkey(
        &self,
        user_id: &str,
        credential_id: &[u8],
        public_key: &[u8],
        name: Option<&str>,
        sign_count: Option<i64>,
    ) -> Result<Passkey> {
        let args = Args::new()
            .str("user_id", user_id)
            .bin("credential_id", credential_id)
            .bin("public_key", public_key)
            .opt_str("name", name)
            .opt_int("sign_count", sign_count);
        Passkey::decode("add_passkey", &self.call("add_passkey", args).await?)
    }

    /// `get_passkey`.
    pub async fn get_passkey(&self, credential_id: &[u8]) -> Result<Passkey> {
        let args = Args::new().bin("credential_id", credential_id);
        Passkey::decode("get_passkey", &self.call("get_passkey", args).await?)
    }

    /// `list_passkeys`: a user's passkeys, oldest first.
    pub async fn list_passkeys(&self, user_id: &str) -> Result<Vec<Passkey>> {
        let v = self
            .call("list_passkeys", Args::new().str("user_id", user_id))
            .await?;
        let f = Fields::new("list_passkeys", &v)?;
        f.list("passkeys")?
            .iter()
            .map(|p| Passkey::decode("list_passkeys", p))
            .collect()
    }

    /// `use_passkey`: records a login; a signature counter that does not
    /// increase is `conflict`.
    pub async fn use_passkey(
        &self,
        credential_id: &[u8],
        sign_count: Option<i64>,
    ) -> Result<Passkey> {
        let args = Args::new()
            .bin("credential_id", credential_id)
            .opt_int("sign_count", sign_count);
        Passkey::decode("use_passkey", &self.call("use_passkey", args).await?)
    }

    /// `delete_passkey`.
    pub async fn delete_passkey(&self, credential_id: &[u8]) -> Result<u64> {
        let args = Args::new().bin("credential_id", credential_id);
        deleted("delete_passkey", &self.call("delete_passkey", args).await?)
    }

    /// `delete_user_passkeys`.
    pub async fn delete_user_passkeys(&self, user_id: &str) -> Result<u64> {
        let v = self
            .call("delete_user_passkeys", Args::new().str("user_id", user_id))
            .await?;
        deleted("delete_user_passkeys", &v)
    }

    /// `put_passkey_challenge`.
    pub async fn put_passkey_challenge(
        &self,
        challenge_id: &str,
        challenge: &[u8],
        ttl: Duration,
        user_id: Option<&str>,
    ) -> Result<DateTime<Utc>> {
        let args = Args::new()
            .str("challenge_id", challenge_id)
            .bin("challenge", challenge)
            .int("ttl_s", ttl_secs(ttl))
            .opt_str("user_id", user_id);
        let v = self.call("put_passkey_challenge", args).await?;
        Fields::new("put_passkey_challenge", &v)?.time("expires_at")
    }

    /// `take_passkey_challenge`: at most once.
    pub async fn take_passkey_challenge(&self, challenge_id: &str) -> Result<PasskeyChallenge> {
        let args = Args::new().str("challenge_id", challenge_id);
        let v = self.call("take_passkey_challenge", args).await?;
        let f = Fields::new("take_passkey_challenge", &v)?;
        Ok(PasskeyChallenge {
            challenge: f.binary("challenge")?,
            user_id: f.opt_string("user_id")?,
        })
    }

    // ---- secure tokens ----

    /// `create_token`: the result carries the secret `token`, once.
    pub async fn create_token(
        &self,
        user_id: &str,
        purpose: TokenPurpose,
        ttl: Duration,
    ) -> Result<SecureToken> {
        let args = Args::new()
            .str("user_id", user_id)
            .str("purpose", purpose.as_str())
            .int("ttl_s", ttl_secs(ttl));
        SecureToken::decode("create_token", &self.call("create_token", args).await?)
    }

    /// `check_token`: valid now (unused, unexpired, this purpose)? Does not
    /// use it.
    pub async fn check_token(&self, token: &str, purpose: TokenPurpose) -> Result<SecureToken> {
        let args = Args::new()
            .str("token", token)
            .str("purpose", purpose.as_str());
        SecureToken::decode("check_token", &self.call("check_token", args).await?)
    }

    /// `use_token`: exactly once.
    pub async fn use_token(&self, token: &str, purpose: TokenPurpose) -> Result<SecureToken> {
        let args = Args::new()
            .str("token", token)
            .str("purpose", purpose.as_str());
        SecureToken::decode("use_token", &self.call("use_token", args).await?)
    }

    /// `delete_user_tokens`, of one purpose or all.
    pub async fn delete_user_tokens(
        &self,
        user_id: &str,
        purpose: Option<TokenPurpose>,
    ) -> Result<u64> {
        let args = Args::new()
            .str("user_id", user_id)
            .opt_str("purpose", purpose.map(TokenPurpose::as_str));
        deleted(
            "delete_user_tokens",
            &self.call("delete_user_tokens", args).await?,
        )
    }

    // ---- login guard (Torii's brute-force protection) ----

    /// `record_login_failure`.
    pub async fn record_login_failure(
        &self,
        email: &str,
        ip_address: Option<&str>,
        window: Option<Duration>,
        max_failures: Option<i64>,
    ) -> Result<LoginFailure> {
        let args = Args::new()
            .str("email", email)
            .opt_str("ip_address", ip_address)
            .opt_int("window_s", window.map(ttl_secs))
            .opt_int("max_failures", max_failures);
        let v = self.call("record_login_failure", args).await?;
        let f = Fields::new("record_login_failure", &v)?;
        Ok(LoginFailure {
            failures: f.u64("failures")?,
            locked: f.bool("locked")?,
        })
    }

    /// `login_failures` since `since` (default: the last 900 s).
    pub async fn login_failures(
        &self,
        email: &str,
        since: Option<DateTime<Utc>>,
    ) -> Result<LoginFailures> {
        let args = Args::new().str("email", email).opt_time("since", since);
        let v = self.call("login_failures", args).await?;
        let f = Fields::new("login_failures", &v)?;
        Ok(LoginFailures {
            count: f.u64("count")?,
            latest_at: f.opt_time("latest_at")?,
        })
    }

    /// `clear_login_failures`.
    pub async fn clear_login_failures(&self, email: &str) -> Result<u64> {
        let v = self
            .call("clear_login_failures", Args::new().str("email", email))
            .await?;
        deleted("clear_login_failures", &v)
    }

    /// `set_user_lock`: lock (`Some`) or unlock (`None`) by email.
    pub async fn set_user_lock(&self, email: &str, locked_at: Option<DateTime<Utc>>) -> Result<()> {
        let args = Args::new()
            .str("email", email)
            .time_or_nil("locked_at", locked_at);
        self.call("set_user_lock", args).await.map(|_| ())
    }

    /// `get_user_lock`: `None` when unlocked or no such user.
    pub async fn get_user_lock(&self, email: &str) -> Result<Option<DateTime<Utc>>> {
        let v = self
            .call("get_user_lock", Args::new().str("email", email))
            .await?;
        Fields::new("get_user_lock", &v)?.opt_time("locked_at")
    }

    // ---- JWT revocation ----

    /// `revoke_jwt`.
    pub async fn revoke_jwt(
        &self,
        jti: &str,
        expires_at: DateTime<Utc>,
        user_id: Option<&str>,
    ) -> Result<()> {
        let args = Args::new()
            .str("jti", jti)
            .time("expires_at", expires_at)
            .opt_str("user_id", user_id);
        self.call("revoke_jwt", args).await.map(|_| ())
    }

    /// `revoke_user_jwts`: every JWT of the user issued before the time.
    pub async fn revoke_user_jwts(
        &self,
        user_id: &str,
        issued_before: Option<DateTime<Utc>>,
    ) -> Result<()> {
        let args = Args::new()
            .str("user_id", user_id)
            .opt_time("issued_before", issued_before);
        self.call("revoke_user_jwts", args).await.map(|_| ())
    }

    /// `is_jwt_revoked`.
    pub async fn is_jwt_revoked(
        &self,
        jti: &str,
        user_id: Option<&str>,
        issued_at: Option<DateTime<Utc>>,
    ) -> Result<bool> {
        let args = Args::new()
            .str("jti", jti)
            .opt_str("user_id", user_id)
            .opt_time("issued_at", issued_at);
        let v = self.call("is_jwt_revoked", args).await?;
        Fields::new("is_jwt_revoked", &v)?.bool("revoked")
    }

    /// `list_jwt_revocations`: one page of the unexpired deny-list.
    pub async fn list_jwt_revocations(
        &self,
        after: Option<&str>,
        limit: Option<i64>,
    ) -> Result<JwtRevocations> {
        let op = "list_jwt_revocations";
        let args = Args::new().opt_str("after", after).opt_int("limit", limit);
        let v = self.call(op, args).await?;
        let f = Fields::new(op, &v)?;
        let pairs = |key: &str, a: &str, b: &str| -> Result<Vec<(String, DateTime<Utc>)>> {
            f.list(key)?
                .iter()
                .map(|e| {
                    let e = Fields::new(op, e)?;
                    Ok((e.string(a)?, e.time(b)?))
                })
                .collect()
        };
        Ok(JwtRevocations {
            jtis: pairs("jtis", "jti", "expires_at")?,
            users: pairs("users", "user_id", "issued_before")?,
            next: f.opt_string("next")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_round_up_to_whole_seconds() {
        assert_eq!(ttl_secs(Duration::from_millis(1)), 1);
        assert_eq!(ttl_secs(Duration::from_millis(1500)), 2);
        assert_eq!(ttl_secs(Duration::from_secs(60)), 60);
        assert!(is_idempotent("get_session"));
        assert!(!is_idempotent("take_oauth_state"));
    }

    #[test]
    fn tenant_names_are_checked_before_connecting() {
        for bad in ["", "Acme", "acme corp", "a/b", "@acme", "*", "jörg"] {
            let err = Config::new(["tcp://127.0.0.1:9"])
                .with_tenant(bad)
                .connect()
                .unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::Config, "{bad}");
            assert!(err.to_string().contains("[a-z0-9_.-]"), "{err}");
        }
        let long = "a".repeat(65);
        assert!(Config::new(["tcp://127.0.0.1:9"])
            .with_tenant(long)
            .connect()
            .is_err());
        let client = Config::new(["tcp://127.0.0.1:9"])
            .with_tenant("a".repeat(64))
            .connect()
            .unwrap();
        assert_eq!(client.tenant(), "a".repeat(64).as_str());
        let plain = Config::new(["tcp://127.0.0.1:9"]).connect().unwrap();
        assert_eq!(plain.tenant(), "default");
        assert!(is_tenant_name(DEFAULT_TENANT));
    }

    #[test]
    fn config_without_endpoints_is_refused() {
        let err = Config::new(Vec::<String>::new()).connect().unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Config);
    }
}
