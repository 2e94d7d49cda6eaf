//! The six repositories. Each method is one request; toriid's `not_found`
//! becomes Torii's `Ok(None)` / `Ok(())` where Torii's own backends answer
//! so (docs/torii.md).

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use torii_core::error::StorageError;
use torii_core::repositories::{
    OAuthRepository, PasskeyCredential, PasskeyRepository, PasswordRepository, SessionRepository,
    TokenRepository, UserRepository,
};
use torii_core::storage::{NewUser, SecureToken, TokenPurpose};
use torii_core::{Error, OAuthAccount, Session, SessionToken, User, UserId};
use toriid_client::{self as toriid, Client, ErrorKind, Expiry, SessionCache, SessionKey, Value};

use crate::ids::{needs_keeping_in, toriid_user_id_in, SESSION_USER_KEY, TORII_ID_KEY};

/// toriid's error as Torii's: constraint violations as `Constraint`, an
/// unreachable or slow daemon as `Connection`, the rest as `Database`. The
/// message is the client's (it never holds a secret).
pub(crate) fn storage_error(e: toriid::Error) -> Error {
    let msg = e.to_string();
    let se = match e.kind() {
        ErrorKind::Duplicate | ErrorKind::ForeignKey | ErrorKind::Conflict => {
            StorageError::Constraint(msg)
        }
        ErrorKind::Timeout
        | ErrorKind::Unavailable
        | ErrorKind::Overloaded
        | ErrorKind::Closed
        | ErrorKind::Config => StorageError::Connection(msg),
        ErrorKind::NotFound => StorageError::NotFound,
        _ => StorageError::Database(msg),
    };
    Error::Storage(se)
}

/// `not_found` → `Ok(None)`, other errors mapped.
fn optional<T>(r: toriid::Result<T>) -> Result<Option<T>, Error> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(storage_error(e)),
    }
}

/// `not_found` → `Ok(())`, other errors mapped.
fn absent_ok<T>(r: toriid::Result<T>) -> Result<(), Error> {
    optional(r).map(|_| ())
}

/// The uuid of a Torii user id in the tenant of `client`'s requests.
fn toriid_user_id(client: &Client, id: &UserId) -> String {
    toriid_user_id_in(Some(client.tenant()), id)
}

/// A one-key metadata map holding a Torii user id, or `None` when the id is
/// the uuid itself (nothing to keep).
fn keep_id(client: &Client, key: &str, id: &UserId) -> Option<Value> {
    needs_keeping_in(Some(client.tenant()), id)
        .then(|| Value::Map(vec![(Value::from(key), Value::from(id.as_str()))]))
}

/// Torii's id of a toriid user: `metadata.torii_id` when kept, else the uuid.
fn torii_user(u: toriid::User) -> User {
    let id = u
        .metadata_str(TORII_ID_KEY)
        .map(UserId::new)
        .unwrap_or_else(|| UserId::new(&u.id));
    User {
        id,
        name: u.name,
        email: u.email,
        email_verified_at: u.email_verified_at,
        created_at: u.created_at,
        updated_at: u.updated_at,
    }
}

fn std_duration(d: Duration) -> std::time::Duration {
    d.to_std().unwrap_or(std::time::Duration::ZERO)
}

/// Torii's `UserRepository` on toriid.
#[derive(Debug, Clone)]
pub struct ToriidUserRepository {
    client: Client,
}

impl ToriidUserRepository {
    /// The repository over `client`.
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl UserRepository for ToriidUserRepository {
    /// `create_user` with the UUIDv5 id, `metadata.torii_id`, name and
    /// `email_verified_at`. A taken email is a `Constraint` error.
    async fn create(&self, user: NewUser) -> Result<User, Error> {
        let created = self
            .client
            .create_user(toriid::NewUser {
                email: user.email,
                id: Some(toriid_user_id(&self.client, &user.id)),
                name: user.name,
                password_hash: None,
                metadata: keep_id(&self.client, TORII_ID_KEY, &user.id),
                email_verified_at: user.email_verified_at,
            })
            .await
            .map_err(storage_error)?;
        Ok(torii_user(created))
    }

    async fn find_by_id(&self, id: &UserId) -> Result<Option<User>, Error> {
        let u = optional(
            self.client
                .get_user(&toriid_user_id(&self.client, id))
                .await,
        )?;
        Ok(u.map(torii_user))
    }

    async fn find_by_email(&self, email: &str) -> Result<Option<User>, Error> {
        let u = optional(self.client.get_user_by_email(email).await)?;
        Ok(u.map(torii_user))
    }

    /// `get_or_create_user`: race-free; a new user gets a fresh Torii id.
    async fn find_or_create_by_email(&self, email: &str) -> Result<User, Error> {
        let id = UserId::new_random();
        let (user, _) = self
            .client
            .get_or_create_user(
                email,
                None,
                Some(&toriid_user_id(&self.client, &id)),
                keep_id(&self.client, TORII_ID_KEY, &id),
            )
            .await
            .map_err(storage_error)?;
        Ok(torii_user(user))
    }

    /// A full replace of email, name and `email_verified_at` (clearing
    /// included), as Torii's backends do. Absent user: `StorageError::NotFound`.
    async fn update(&self, user: &User) -> Result<User, Error> {
        let updated = self
            .client
            .update_user(
                &toriid_user_id(&self.client, &user.id),
                toriid::UserUpdate {
                    email: Some(user.email.clone()),
                    name: Some(user.name.clone()),
                    email_verified_at: Some(user.email_verified_at),
                    ..Default::default()
                },
            )
            .await
            .map_err(storage_error)?;
        Ok(torii_user(updated))
    }

    async fn delete(&self, id: &UserId) -> Result<(), Error> {
        absent_ok(
            self.client
                .delete_user(&toriid_user_id(&self.client, id))
                .await,
        )
    }

    async fn mark_email_verified(&self, user_id: &UserId) -> Result<(), Error> {
        absent_ok(
            self.client
                .verify_email(&toriid_user_id(&self.client, user_id), None)
                .await,
        )
    }
}

/// Torii's `PasswordRepository` on toriid (the user's `password_hash`).
#[derive(Debug, Clone)]
pub struct ToriidPasswordRepository {
    client: Client,
}

impl ToriidPasswordRepository {
    /// The repository over `client`.
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl PasswordRepository for ToriidPasswordRepository {
    async fn set_password_hash(&self, user_id: &UserId, hash: &str) -> Result<(), Error> {
        let update = toriid::UserUpdate {
            password_hash: Some(Some(hash.to_string())),
            ..Default::default()
        };
        absent_ok(
            self.client
                .update_user(&toriid_user_id(&self.client, user_id), update)
                .await,
        )
    }

    async fn get_password_hash(&self, user_id: &UserId) -> Result<Option<String>, Error> {
        let u = optional(
            self.client
                .get_user(&toriid_user_id(&self.client, user_id))
                .await,
        )?;
        Ok(u.and_then(|u| u.password_hash))
    }

    async fn remove_password_hash(&self, user_id: &UserId) -> Result<(), Error> {
        let update = toriid::UserUpdate {
            password_hash: Some(None),
            ..Default::default()
        };
        absent_ok(
            self.client
                .update_user(&toriid_user_id(&self.client, user_id), update)
                .await,
        )
    }
}

/// Torii's `SessionRepository` on toriid: opaque sessions, stored as the
/// token's SHA-256 digest.
#[derive(Debug, Clone)]
pub struct ToriidSessionRepository {
    client: Client,
    cache: Option<SessionCache>,
}

impl ToriidSessionRepository {
    /// The repository over `client`.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            cache: None,
        }
    }

    /// The repository answering `find_by_token` from `cache` while it
    /// serves (docs/torii.md, "The in-process session cache").
    pub fn with_session_cache(mut self, cache: SessionCache) -> Self {
        self.cache = Some(cache);
        self
    }

    /// The session cache, if one is set.
    pub fn session_cache(&self) -> Option<&SessionCache> {
        self.cache.as_ref()
    }

    /// `get_session` by token including an expired session (see
    /// `find_by_token`).
    async fn fetch(&self, token: &str) -> toriid::Result<toriid::Session> {
        let key = SessionKey::Token(token);
        match self.client.get_session_including_expired(key).await {
            Err(toriid::Error::Daemon { code, message, .. })
                if code == "invalid_argument" && message.contains("'include_expired'") =>
            {
                self.client.get_session(key).await
            }
            r => r,
        }
    }
}

fn torii_session(s: &toriid::Session, token: SessionToken) -> Session {
    let user_id = UserId::new(s.metadata_str(SESSION_USER_KEY).unwrap_or(&s.user_id));
    Session {
        token,
        user_id,
        user_agent: s.user_agent.clone(),
        ip_address: s.ip_address.clone(),
        created_at: s.created_at,
        updated_at: s.created_at,
        expires_at: s.expires_at,
    }
}

#[async_trait]
impl SessionRepository for ToriidSessionRepository {
    /// `create_session` with Torii's expiry, user agent and IP address. The
    /// token Torii drew is replaced by the daemon's (the same format: 32
    /// CSPRNG bytes, base64url), which the returned Session carries and
    /// Torii hands out; only its digest is stored.
    async fn create(&self, session: Session) -> Result<Session, Error> {
        let mut new = toriid::NewSession::new(
            toriid_user_id(&self.client, &session.user_id),
            Expiry::At(session.expires_at),
        );
        new.user_agent = session.user_agent.clone();
        new.ip_address = session.ip_address.clone();
        new.metadata = keep_id(&self.client, SESSION_USER_KEY, &session.user_id);
        let created = self
            .client
            .create_session(new)
            .await
            .map_err(storage_error)?;
        let token = created.token.clone().ok_or_else(|| {
            Error::Storage(StorageError::Database(
                "toriid's create_session reply has no token".into(),
            ))
        })?;
        let mut out = torii_session(&created, SessionToken::new(&token));
        out.user_id = session.user_id;
        Ok(out)
    }

    /// One `get_session` by token with `include_expired`: an expired
    /// session is returned (its `expires_at` in the past), as Torii's SQLite
    /// backend does, so Torii's own check reports `SessionError::Expired`
    /// and deletes it (docs/torii.md, "Expired sessions"). A daemon that
    /// predates the argument refuses it as unknown; then (a second request,
    /// only on such a daemon) the plain lookup, which hides expired rows.
    ///
    /// With a session cache: an unexpired session is answered from memory
    /// while the cache serves; otherwise this lookup, whose unexpired result
    /// the cache keeps when its rules allow. Torii's expiry rules are
    /// unchanged: the cache never serves an expired entry, and an expired
    /// session comes from the daemon as without a cache.
    async fn find_by_token(&self, token: &SessionToken) -> Result<Option<Session>, Error> {
        let t = token.as_str();
        if let Some(cache) = &self.cache {
            let r = cache
                .get_with(self.client.tenant(), t, || self.fetch(t))
                .await;
            return Ok(optional(r)?.map(|s| torii_session(&s, token.clone())));
        }
        let s = optional(self.fetch(t).await)?;
        Ok(s.map(|s| torii_session(&s, token.clone())))
    }

    async fn delete(&self, token: &SessionToken) -> Result<(), Error> {
        absent_ok(
            self.client
                .delete_session(SessionKey::Token(token.as_str()))
                .await,
        )
    }

    async fn delete_by_user_id(&self, user_id: &UserId) -> Result<(), Error> {
        self.client
            .delete_user_sessions(&toriid_user_id(&self.client, user_id), None)
            .await
            .map(|_| ())
            .map_err(storage_error)
    }

    async fn cleanup_expired(&self) -> Result<(), Error> {
        self.client
            .cleanup_expired_sessions()
            .await
            .map(|_| ())
            .map_err(storage_error)
    }
}

/// Torii's `OAuthRepository` on toriid.
#[derive(Debug, Clone)]
pub struct ToriidOAuthRepository {
    client: Client,
}

impl ToriidOAuthRepository {
    /// The repository over `client`.
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

/// Torii's id of the row's user: the one the caller gave, else the
/// `user_torii_id` the daemon joined into the result, else (a user with no
/// Torii id, or an older daemon) toriid's uuid, which maps to itself.
fn row_user_id(given: Option<&UserId>, torii_id: Option<&str>, uuid: &str) -> UserId {
    given
        .cloned()
        .or_else(|| torii_id.map(UserId::new))
        .unwrap_or_else(|| UserId::new(uuid))
}

fn torii_account(a: toriid::OAuthAccount, user_id: Option<&UserId>) -> OAuthAccount {
    OAuthAccount {
        user_id: row_user_id(user_id, a.user_torii_id.as_deref(), &a.user_id),
        provider: a.provider,
        subject: a.subject,
        created_at: a.created_at,
        updated_at: a.updated_at,
    }
}

#[async_trait]
impl OAuthRepository for ToriidOAuthRepository {
    async fn create_account(
        &self,
        provider: &str,
        subject: &str,
        user_id: &UserId,
    ) -> Result<OAuthAccount, Error> {
        let a = self
            .client
            .link_oauth_account(&toriid_user_id(&self.client, user_id), provider, subject)
            .await
            .map_err(storage_error)?;
        Ok(torii_account(a, Some(user_id)))
    }

    async fn find_user_by_provider(
        &self,
        provider: &str,
        subject: &str,
    ) -> Result<Option<User>, Error> {
        let u = optional(self.client.get_user_by_oauth(provider, subject).await)?;
        Ok(u.map(torii_user))
    }

    async fn find_account_by_provider(
        &self,
        provider: &str,
        subject: &str,
    ) -> Result<Option<OAuthAccount>, Error> {
        let a = optional(self.client.get_oauth_account(provider, subject).await)?;
        Ok(a.map(|a| torii_account(a, None)))
    }

    async fn link_account(
        &self,
        user_id: &UserId,
        provider: &str,
        subject: &str,
    ) -> Result<(), Error> {
        self.client
            .link_oauth_account(&toriid_user_id(&self.client, user_id), provider, subject)
            .await
            .map(|_| ())
            .map_err(storage_error)
    }

    async fn store_pkce_verifier(
        &self,
        csrf_state: &str,
        pkce_verifier: &str,
        expires_in: Duration,
    ) -> Result<(), Error> {
        self.client
            .put_oauth_state(csrf_state, pkce_verifier, std_duration(expires_in))
            .await
            .map(|_| ())
            .map_err(storage_error)
    }

    /// `take_oauth_state`: the verifier is read and deleted in one
    /// statement, so a second call (or a concurrent one) gets `None`.
    async fn get_pkce_verifier(&self, csrf_state: &str) -> Result<Option<String>, Error> {
        optional(self.client.take_oauth_state(csrf_state).await)
    }

    /// Nothing to do: `get_pkce_verifier` took it already.
    async fn delete_pkce_verifier(&self, _csrf_state: &str) -> Result<(), Error> {
        Ok(())
    }
}

/// Torii's `PasskeyRepository` on toriid.
#[derive(Debug, Clone)]
pub struct ToriidPasskeyRepository {
    client: Client,
}

impl ToriidPasskeyRepository {
    /// The repository over `client`.
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

fn torii_passkey(p: toriid::Passkey, user_id: Option<&UserId>) -> PasskeyCredential {
    PasskeyCredential {
        user_id: row_user_id(user_id, p.user_torii_id.as_deref(), &p.user_id),
        credential_id: p.credential_id,
        public_key: p.public_key,
        name: p.name,
        created_at: p.created_at,
        last_used_at: p.last_used_at,
    }
}

#[async_trait]
impl PasskeyRepository for ToriidPasskeyRepository {
    async fn add_credential(
        &self,
        user_id: &UserId,
        credential_id: Vec<u8>,
        public_key: Vec<u8>,
        name: Option<String>,
    ) -> Result<PasskeyCredential, Error> {
        let p = self
            .client
            .add_passkey(
                &toriid_user_id(&self.client, user_id),
                &credential_id,
                &public_key,
                name.as_deref(),
                None,
            )
            .await
            .map_err(storage_error)?;
        Ok(torii_passkey(p, Some(user_id)))
    }

    async fn get_credentials_for_user(
        &self,
        user_id: &UserId,
    ) -> Result<Vec<PasskeyCredential>, Error> {
        let list = self
            .client
            .list_passkeys(&toriid_user_id(&self.client, user_id))
            .await
            .map_err(storage_error)?;
        Ok(list
            .into_iter()
            .map(|p| torii_passkey(p, Some(user_id)))
            .collect())
    }

    async fn get_credential(
        &self,
        credential_id: &[u8],
    ) -> Result<Option<PasskeyCredential>, Error> {
        let p = optional(self.client.get_passkey(credential_id).await)?;
        Ok(p.map(|p| torii_passkey(p, None)))
    }

    /// `use_passkey` without a signature count (Torii 0.5 passes none).
    async fn update_last_used(&self, credential_id: &[u8]) -> Result<(), Error> {
        absent_ok(self.client.use_passkey(credential_id, None).await)
    }

    async fn delete_credential(&self, credential_id: &[u8]) -> Result<(), Error> {
        absent_ok(self.client.delete_passkey(credential_id).await)
    }

    async fn delete_all_for_user(&self, user_id: &UserId) -> Result<(), Error> {
        self.client
            .delete_user_passkeys(&toriid_user_id(&self.client, user_id))
            .await
            .map(|_| ())
            .map_err(storage_error)
    }
}

/// Torii's `TokenRepository` on toriid (magic links, password resets,
/// email verification).
#[derive(Debug, Clone)]
pub struct ToriidTokenRepository {
    client: Client,
}

impl ToriidTokenRepository {
    /// The repository over `client`.
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

fn purpose(p: TokenPurpose) -> toriid::TokenPurpose {
    match p {
        TokenPurpose::MagicLink => toriid::TokenPurpose::MagicLink,
        TokenPurpose::PasswordReset => toriid::TokenPurpose::PasswordReset,
        TokenPurpose::EmailVerification => toriid::TokenPurpose::EmailVerification,
    }
}

fn torii_token(
    t: toriid::SecureToken,
    token: String,
    p: TokenPurpose,
    user_id: Option<&UserId>,
) -> SecureToken {
    let updated_at: DateTime<Utc> = t.used_at.unwrap_or(t.created_at);
    SecureToken {
        user_id: row_user_id(user_id, t.user_torii_id.as_deref(), &t.user_id),
        token,
        purpose: p,
        used_at: t.used_at,
        expires_at: t.expires_at,
        created_at: t.created_at,
        updated_at,
    }
}

#[async_trait]
impl TokenRepository for ToriidTokenRepository {
    async fn create_token(
        &self,
        user_id: &UserId,
        p: TokenPurpose,
        expires_in: Duration,
    ) -> Result<SecureToken, Error> {
        let t = self
            .client
            .create_token(
                &toriid_user_id(&self.client, user_id),
                purpose(p),
                std_duration(expires_in),
            )
            .await
            .map_err(storage_error)?;
        let secret = t.token.clone().ok_or_else(|| {
            Error::Storage(StorageError::Database(
                "toriid's create_token reply has no token".into(),
            ))
        })?;
        Ok(torii_token(t, secret, p, Some(user_id)))
    }

    /// `use_token`: exactly once; used, expired, unknown or of another
    /// purpose is `Ok(None)`.
    async fn verify_token(
        &self,
        token: &str,
        p: TokenPurpose,
    ) -> Result<Option<SecureToken>, Error> {
        let t = optional(self.client.use_token(token, purpose(p)).await)?;
        Ok(t.map(|t| torii_token(t, token.to_string(), p, None)))
    }

    async fn check_token(&self, token: &str, p: TokenPurpose) -> Result<bool, Error> {
        Ok(optional(self.client.check_token(token, purpose(p)).await)?.is_some())
    }

    /// The daemon deletes expired tokens on its own schedule; this runs one
    /// cleanup pass now (it covers every table, tokens included).
    async fn cleanup_expired_tokens(&self) -> Result<(), Error> {
        self.client
            .cleanup_expired_sessions()
            .await
            .map(|_| ())
            .map_err(storage_error)
    }
}
