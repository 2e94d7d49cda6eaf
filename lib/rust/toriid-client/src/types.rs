//! The records of PROTOCOL.md, decoded from replies.

use chrono::{DateTime, Utc};
use rmpv::Value;

use crate::error::Result;
use crate::value::Fields;

/// A user (PROTOCOL.md section 2, with section 5's `name` and `locked_at`).
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    /// The user's uuid.
    pub id: String,
    /// The email, in the case it was given.
    pub email: String,
    /// The display name.
    pub name: Option<String>,
    /// The stored password hash: `None` when the user has none, and always
    /// `None` from search and list results (the daemon leaves it out there).
    pub password_hash: Option<String>,
    /// When the email was verified.
    pub email_verified_at: Option<DateTime<Utc>>,
    /// When the user was locked (too many failed logins), if it is.
    pub locked_at: Option<DateTime<Utc>>,
    /// The user's metadata map (nil when the daemon sent none).
    pub metadata: Value,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last update time.
    pub updated_at: DateTime<Utc>,
}

impl User {
    pub(crate) fn decode(op: &str, v: &Value) -> Result<User> {
        let f = Fields::new(op, v)?;
        Ok(User {
            id: f.string("id")?,
            email: f.string("email")?,
            name: f.opt_string("name")?,
            password_hash: f.opt_string("password_hash")?,
            email_verified_at: f.opt_time("email_verified_at")?,
            locked_at: f.opt_time("locked_at")?,
            metadata: f.value("metadata"),
            created_at: f.time("created_at")?,
            updated_at: f.time("updated_at")?,
        })
    }

    /// A string value of the metadata map, e.g. `metadata_str("torii_id")`.
    pub fn metadata_str(&self, key: &str) -> Option<&str> {
        metadata_str(&self.metadata, key)
    }
}

pub(crate) fn metadata_str<'a>(metadata: &'a Value, key: &str) -> Option<&'a str> {
    match metadata {
        Value::Map(m) => m
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .and_then(|(_, v)| v.as_str()),
        _ => None,
    }
}

/// A session. `token` is set only in the result of `create_session`.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// The session's uuid (for management: listing, revoking).
    pub id: String,
    /// The owner's uuid.
    pub user_id: String,
    /// The bearer token: only from `create_session`, never stored in clear.
    pub token: Option<String>,
    /// Expiry time.
    pub expires_at: DateTime<Utc>,
    /// The client's user agent, if given.
    pub user_agent: Option<String>,
    /// The client's IP address, if given.
    pub ip_address: Option<String>,
    /// The session's metadata map.
    pub metadata: Value,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

impl Session {
    pub(crate) fn decode(op: &str, v: &Value) -> Result<Session> {
        let f = Fields::new(op, v)?;
        Ok(Session {
            id: f.string("id")?,
            user_id: f.string("user_id")?,
            token: f.opt_string("token")?,
            expires_at: f.time("expires_at")?,
            user_agent: f.opt_string("user_agent")?,
            ip_address: f.opt_string("ip_address")?,
            metadata: f.value("metadata"),
            created_at: f.time("created_at")?,
        })
    }

    /// A string value of the metadata map.
    pub fn metadata_str(&self, key: &str) -> Option<&str> {
        metadata_str(&self.metadata, key)
    }
}

/// An OAuth account link (provider, subject) → user.
#[derive(Debug, Clone, PartialEq)]
pub struct OAuthAccount {
    /// The user's uuid.
    pub user_id: String,
    /// The provider name, e.g. `github`.
    pub provider: String,
    /// The user's id at the provider.
    pub subject: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last update time.
    pub updated_at: DateTime<Utc>,
    /// The user's Torii id (`metadata.torii_id`), `None` when the user has
    /// none or the daemon predates this field (docs/protocol.md).
    pub user_torii_id: Option<String>,
}

impl OAuthAccount {
    pub(crate) fn decode(op: &str, v: &Value) -> Result<OAuthAccount> {
        let f = Fields::new(op, v)?;
        Ok(OAuthAccount {
            user_id: f.string("user_id")?,
            provider: f.string("provider")?,
            subject: f.string("subject")?,
            created_at: f.time("created_at")?,
            updated_at: f.time("updated_at")?,
            user_torii_id: f.opt_string("user_torii_id")?,
        })
    }
}

/// A passkey (WebAuthn) credential.
#[derive(Debug, Clone, PartialEq)]
pub struct Passkey {
    /// The credential id (1 to 1023 bytes).
    pub credential_id: Vec<u8>,
    /// The owner's uuid.
    pub user_id: String,
    /// The public key.
    pub public_key: Vec<u8>,
    /// A name for people.
    pub name: Option<String>,
    /// The WebAuthn signature counter.
    pub sign_count: i64,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// When it was last used to log in.
    pub last_used_at: Option<DateTime<Utc>>,
    /// The user's Torii id (`metadata.torii_id`), `None` when the user has
    /// none or the daemon predates this field (docs/protocol.md).
    pub user_torii_id: Option<String>,
}

impl Passkey {
    pub(crate) fn decode(op: &str, v: &Value) -> Result<Passkey> {
        let f = Fields::new(op, v)?;
        Ok(Passkey {
            credential_id: f.binary("credential_id")?,
            user_id: f.string("user_id")?,
            public_key: f.binary("public_key")?,
            name: f.opt_string("name")?,
            sign_count: f.i64("sign_count")?,
            created_at: f.time("created_at")?,
            last_used_at: f.opt_time("last_used_at")?,
            user_torii_id: f.opt_string("user_torii_id")?,
        })
    }
}

/// What a secure token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenPurpose {
    /// `magic_link`
    MagicLink,
    /// `password_reset`
    PasswordReset,
    /// `email_verification`
    EmailVerification,
}

impl TokenPurpose {
    /// The protocol's name of the purpose.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenPurpose::MagicLink => "magic_link",
            TokenPurpose::PasswordReset => "password_reset",
            TokenPurpose::EmailVerification => "email_verification",
        }
    }

    fn parse(s: &str) -> Option<TokenPurpose> {
        match s {
            "magic_link" => Some(TokenPurpose::MagicLink),
            "password_reset" => Some(TokenPurpose::PasswordReset),
            "email_verification" => Some(TokenPurpose::EmailVerification),
            _ => None,
        }
    }
}

/// A secure token (magic link, password reset, email verification).
/// `token` is set only in the result of `create_token`.
#[derive(Debug, Clone, PartialEq)]
pub struct SecureToken {
    /// The token's uuid.
    pub id: String,
    /// The owner's uuid.
    pub user_id: String,
    /// What it is for.
    pub purpose: TokenPurpose,
    /// The secret: only from `create_token`.
    pub token: Option<String>,
    /// Expiry time.
    pub expires_at: DateTime<Utc>,
    /// When it was used, if it was.
    pub used_at: Option<DateTime<Utc>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// The user's Torii id (`metadata.torii_id`), `None` when the user has
    /// none or the daemon predates this field (docs/protocol.md).
    pub user_torii_id: Option<String>,
}

impl SecureToken {
    pub(crate) fn decode(op: &str, v: &Value) -> Result<SecureToken> {
        let f = Fields::new(op, v)?;
        let purpose = f.string("purpose")?;
        Ok(SecureToken {
            id: f.string("id")?,
            user_id: f.string("user_id")?,
            purpose: TokenPurpose::parse(&purpose)
                .ok_or_else(|| crate::Error::malformed(op, "`purpose` is not a known purpose"))?,
            token: f.opt_string("token")?,
            expires_at: f.time("expires_at")?,
            used_at: f.opt_time("used_at")?,
            created_at: f.time("created_at")?,
            user_torii_id: f.opt_string("user_torii_id")?,
        })
    }
}

/// The result of `ping`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ping {
    /// The daemon's version, e.g. `0.1.0`.
    pub version: String,
    /// The protocol version it speaks (1).
    pub protocol: u64,
    /// The schema version it runs on (`None` from a daemon that predates
    /// this field).
    pub schema: Option<u64>,
}

/// The result of `record_login_failure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginFailure {
    /// Failures of this email within the window, this one included.
    pub failures: u64,
    /// Whether the limit was reached (and the user locked).
    pub locked: bool,
}

/// The result of `login_failures`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginFailures {
    /// Failures since the given time.
    pub count: u64,
    /// The latest one.
    pub latest_at: Option<DateTime<Utc>>,
}

/// A page of `list_users`.
#[derive(Debug, Clone, PartialEq)]
pub struct UserPage {
    /// The users, oldest first.
    pub users: Vec<User>,
    /// The cursor of the next page, `None` at the end.
    pub next: Option<String>,
}

/// A page of `list_audit`: the raw entries (maps) and the next cursor.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditPage {
    /// The entries, newest first, as msgpack maps (PROTOCOL.md's Audit).
    pub entries: Vec<Value>,
    /// The cursor of the next page, `None` at the end.
    pub next: Option<String>,
}

/// A page of `list_jwt_revocations`.
#[derive(Debug, Clone, PartialEq)]
pub struct JwtRevocations {
    /// Revoked JWT ids with their expiry.
    pub jtis: Vec<(String, DateTime<Utc>)>,
    /// Users whose JWTs issued before a time are revoked.
    pub users: Vec<(String, DateTime<Utc>)>,
    /// The cursor of the next page, `None` at the end.
    pub next: Option<String>,
}

/// A taken passkey challenge.
#[derive(Debug, Clone, PartialEq)]
pub struct PasskeyChallenge {
    /// The challenge bytes.
    pub challenge: Vec<u8>,
    /// The user it was made for, if any.
    pub user_id: Option<String>,
}
