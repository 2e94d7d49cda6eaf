//! An asynchronous (tokio) client for **toriid**, the storage daemon of the
//! Torii authentication system: every operation of its wire protocol
//! (ZeroMQ + msgpack, see the project's PROTOCOL.md and docs/protocol.md)
//! as a typed method of a cheap-to-clone [`Client`].
//!
//! - Several endpoints (daemons on one database): reads fail over to another
//!   daemon within their deadline; writes are never resent.
//! - Deadlines: every request has one (5 s unless configured), sent to the
//!   daemon as `timeout_ms`; a dead daemon is a [`ErrorKind::Timeout`].
//! - CURVE: key files as `torii keygen` writes them
//!   ([`Config::with_curve_key_files`]).
//! - One error type, [`Error`], whose [`Error::kind`] carries the protocol's
//!   error code.
//!
//! ZeroMQ comes from the system's libzmq (through the `zmq` crate, which
//! links it with pkg-config), so CURVE works as libzmq was built; one I/O
//! thread per client owns the sockets.
//!
//! # Example
//!
//! A request to a daemon that is not there fails at its deadline with a
//! clear error, never a hang or a panic:
//!
//! ```
//! use std::time::Duration;
//! use toriid_client::{Config, ErrorKind};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), toriid_client::Error> {
//! let client = Config::new(["tcp://127.0.0.1:9"])
//!     .with_timeout(Duration::from_millis(200))
//!     .connect()?;
//! let err = client.ping().await.unwrap_err();
//! assert_eq!(err.kind(), ErrorKind::Timeout);
//! # Ok(())
//! # }
//! ```
//!
//! With a daemon running:
//!
//! ```no_run
//! use std::time::Duration;
//! use toriid_client::{Config, Expiry, NewSession, NewUser, SessionKey};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), toriid_client::Error> {
//! let client = Config::new(["tcp://127.0.0.1:7420"]).connect()?;
//! let user = client
//!     .create_user(NewUser { email: "ada@example.com".into(), ..Default::default() })
//!     .await?;
//! let session = client
//!     .create_session(NewSession::new(&user.id, Expiry::In(Duration::from_secs(3600))))
//!     .await?;
//! let token = session.token.expect("create_session returns the token");
//! let again = client.get_session(SessionKey::Token(&token)).await?;
//! assert_eq!(again.user_id, user.id);
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

mod client;
pub mod curve;
mod error;
mod io;
pub mod jwt_deny_list;
mod ops;
pub mod session_cache;
pub mod subscriber;
mod types;
mod value;

pub use client::{
    is_idempotent, is_tenant_name, Client, Config, Expiry, NewSession, NewUser, SessionKey,
    UserUpdate, DEFAULT_TENANT,
};
pub use error::{Error, ErrorKind, Result};
pub use jwt_deny_list::{
    jwt_token_id, JwtDenyList, JwtDenyListConfig, JwtDenyListStats, JwtVerdict,
};
pub use ops::{operation, Operation, OPERATIONS};
pub use rmpv::Value;
pub use session_cache::{SessionCache, SessionCacheConfig, SessionCacheStats};
pub use subscriber::{
    Event, EventStream, Listener, Notice, Position, StaleKind, StaleReason, Subscriber,
    SubscriberConfig, SubscriberStats,
};
pub use types::{
    AuditPage, JwtRevocations, LoginFailure, LoginFailures, OAuthAccount, Passkey,
    PasskeyChallenge, Ping, SecureToken, Session, TokenPurpose, User, UserPage,
};
pub use value::{timestamp_from_value, timestamp_value, Args};
