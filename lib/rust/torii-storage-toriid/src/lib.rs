//! A [Torii](https://crates.io/crates/torii) storage provider backed by
//! **toriid**, the storage daemon: [`ToriidRepositoryProvider`] implements
//! torii-core 0.5.2's `RepositoryProvider` (users, sessions, passwords,
//! OAuth, passkeys, secure tokens), one request to the daemon per Torii
//! method, over [`toriid_client`].
//!
//! Switching a Torii application's storage to toriid:
//!
//! ```no_run
//! use std::sync::Arc;
//! use torii_storage_toriid::ToriidRepositoryProvider;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let provider = ToriidRepositoryProvider::connect(
//!     toriid_client::Config::new(["tcp://127.0.0.1:7420"]),
//! )?;
//! // with torii = "0.5.3": let torii = torii::Torii::new(Arc::new(provider));
//! # let _ = Arc::new(provider);
//! # Ok(())
//! # }
//! ```
//!
//! **Tenants** (one daemon serving several applications or customers):
//! one provider per tenant, over a client built with
//! [`Config::with_tenant`](toriid_client::Config::with_tenant). It sees only
//! that tenant's users, sessions, accounts and tokens, and maps Torii's ids
//! with that tenant's rule ([`toriid_user_id_in`]), the one `torii migrate
//! --tenant` uses.
//!
//! Where Torii's semantics and toriid's differ, the provider gives Torii's
//! (docs/torii.md in the toriid repository lists each case, the choice and
//! the test):
//!
//! - a missing row is `Ok(None)` / `Ok(())`, not an error;
//! - Torii's string user ids (`usr_…`) map to toriid's uuids by the UUIDv5
//!   rule ([`toriid_user_id`]) and come back from `metadata.torii_id`
//!   (users) and the session's `metadata.torii_user_id` (sessions), with no
//!   extra request;
//! - the session token is the daemon's (Torii hands out what `create`
//!   returns), so only its SHA-256 digest is stored.
//!
//! # Example
//!
//! The provider is built without contacting the daemon; a dead daemon shows
//! up as a clear error at the configured deadline:
//!
//! ```
//! use std::time::Duration;
//! use torii_core::RepositoryProvider;
//! use torii_storage_toriid::ToriidRepositoryProvider;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let config = toriid_client::Config::new(["tcp://127.0.0.1:9"])
//!     .with_timeout(Duration::from_millis(200));
//! let provider = ToriidRepositoryProvider::connect(config).unwrap();
//! let err = provider.health_check().await.unwrap_err();
//! assert!(err.to_string().contains("no reply from toriid"), "{err}");
//! # }
//! ```
#![warn(missing_docs)]

mod ids;
mod repos;

pub use ids::{
    toriid_user_id, toriid_user_id_in, SESSION_USER_KEY, TORII_ID_KEY, TORII_ID_NAMESPACE,
};
pub use repos::{
    ToriidOAuthRepository, ToriidPasskeyRepository, ToriidPasswordRepository,
    ToriidSessionRepository, ToriidTokenRepository, ToriidUserRepository,
};

use async_trait::async_trait;
use torii_core::error::StorageError;
use torii_core::{Error, RepositoryProvider};
use toriid_client::{Client, Config};

/// The lowest schema version (toriid's `ping` → `schema`) this provider
/// works with: 0011 added secure tokens and the login guard.
pub const MIN_SCHEMA_VERSION: u64 = 11;

/// Torii's `RepositoryProvider` on toriid. Cheap to build from a
/// [`toriid_client::Client`]; give it to `Torii::new(Arc::new(provider))`.
#[derive(Debug, Clone)]
pub struct ToriidRepositoryProvider {
    client: Client,
    user: ToriidUserRepository,
    session: ToriidSessionRepository,
    password: ToriidPasswordRepository,
    oauth: ToriidOAuthRepository,
    passkey: ToriidPasskeyRepository,
    token: ToriidTokenRepository,
}

impl ToriidRepositoryProvider {
    /// A provider over an existing client (its endpoints, deadline, CURVE
    /// keys and tenant apply to every request).
    pub fn new(client: Client) -> Self {
        ToriidRepositoryProvider {
            user: ToriidUserRepository::new(client.clone()),
            session: ToriidSessionRepository::new(client.clone()),
            password: ToriidPasswordRepository::new(client.clone()),
            oauth: ToriidOAuthRepository::new(client.clone()),
            passkey: ToriidPasskeyRepository::new(client.clone()),
            token: ToriidTokenRepository::new(client.clone()),
            client,
        }
    }

    /// Connects a client with `config` and builds the provider on it.
    pub fn connect(config: Config) -> Result<Self, toriid_client::Error> {
        Ok(Self::new(config.connect()?))
    }

    /// Answers Torii's session checks (`Torii::get_session`) from `cache`,
    /// an in-process [`toriid_client::SessionCache`], while it serves (its
    /// subscriber is live); otherwise, and for a session not cached, one
    /// request as without it. Torii's expiry rules are unchanged.
    /// docs/torii.md, "The in-process session cache", says what it
    /// guarantees.
    pub fn with_session_cache(mut self, cache: toriid_client::SessionCache) -> Self {
        self.session = self.session.with_session_cache(cache);
        self
    }

    /// The session cache, if one is set.
    pub fn session_cache(&self) -> Option<&toriid_client::SessionCache> {
        self.session.session_cache()
    }

    /// The client, for toriid operations Torii 0.5 has no method for
    /// (listing sessions, unlinking OAuth accounts, the login guard, …).
    pub fn client(&self) -> &Client {
        &self.client
    }
}

#[async_trait]
impl RepositoryProvider for ToriidRepositoryProvider {
    type User = ToriidUserRepository;
    type Session = ToriidSessionRepository;
    type Password = ToriidPasswordRepository;
    type OAuth = ToriidOAuthRepository;
    type Passkey = ToriidPasskeyRepository;
    type Token = ToriidTokenRepository;

    fn user(&self) -> &Self::User {
        &self.user
    }
    fn session(&self) -> &Self::Session {
        &self.session
    }
    fn password(&self) -> &Self::Password {
        &self.password
    }
    fn oauth(&self) -> &Self::OAuth {
        &self.oauth
    }
    fn passkey(&self) -> &Self::Passkey {
        &self.passkey
    }
    fn token(&self) -> &Self::Token {
        &self.token
    }

    /// Never migrates: the daemon applies its own migrations at start. This
    /// checks (one `ping`) that the daemon speaks protocol 1 and runs on a
    /// schema at least [`MIN_SCHEMA_VERSION`].
    async fn migrate(&self) -> Result<(), Error> {
        let ping = self.client.ping().await.map_err(repos::storage_error)?;
        check_protocol(ping.protocol)?;
        match ping.schema {
            Some(v) if v >= MIN_SCHEMA_VERSION => Ok(()),
            Some(v) => Err(StorageError::Migration(format!(
                "toriid runs on schema version {v}, this provider needs {MIN_SCHEMA_VERSION} or later: \
                 upgrade toriid (it migrates its database itself at start)"
            ))
            .into()),
            None => Err(StorageError::Migration(format!(
                "toriid {} does not report its schema version (ping has no `schema`): \
                 upgrade toriid",
                ping.version
            ))
            .into()),
        }
    }

    /// One `ping`: the daemon answers and speaks protocol 1.
    async fn health_check(&self) -> Result<(), Error> {
        let ping = self.client.ping().await.map_err(repos::storage_error)?;
        check_protocol(ping.protocol)
    }
}

fn check_protocol(protocol: u64) -> Result<(), Error> {
    if protocol == 1 {
        Ok(())
    } else {
        Err(StorageError::Connection(format!(
            "toriid speaks protocol {protocol}, this provider speaks 1"
        ))
        .into())
    }
}
