//! The one error type of the client, and its kind.

use std::time::Duration;

/// What went wrong, independent of the message text: the protocol's error
/// code for an error reply, or one of the client's own failures.
///
/// Match on this rather than on [`Error`]'s variants when only the category
/// matters, e.g. `err.kind() == ErrorKind::NotFound`.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// `bad_request`: the body was not a well-formed request.
    BadRequest,
    /// `unsupported_version`: the daemon speaks another protocol version.
    UnsupportedVersion,
    /// `unknown_op`: the daemon does not know the operation (an older daemon).
    UnknownOp,
    /// `invalid_argument`: well-formed but not acceptable.
    InvalidArgument,
    /// `not_found`: no such record (or not visible to the actor).
    NotFound,
    /// `duplicate`: a unique value is taken (e.g. an email).
    Duplicate,
    /// `foreign_key`: a referenced record is missing (e.g. the user).
    ForeignKey,
    /// `forbidden`: refused by row-level security or the daemon's checks.
    Forbidden,
    /// `conflict`: the request contradicts the stored state.
    Conflict,
    /// `timeout`: the deadline passed (the daemon's or the client's own).
    Timeout,
    /// `overloaded`: the daemon's queue is full; retry later.
    Overloaded,
    /// `unavailable`: the database cannot be reached, or the connection to
    /// the daemon dropped with a write in flight (its outcome is unknown).
    Unavailable,
    /// `storage`: any other database error.
    Storage,
    /// `internal`: a bug in the daemon.
    Internal,
    /// An error code this client does not know (a newer daemon).
    Other,
    /// The reply could not be decoded or did not have the expected shape.
    MalformedReply,
    /// The client's configuration is unusable (endpoints, CURVE keys).
    Config,
    /// The client's I/O thread has stopped.
    Closed,
}

impl ErrorKind {
    /// The kind of a protocol error code (`"not_found"` → `NotFound`);
    /// [`ErrorKind::Other`] for a code this client does not know.
    pub fn from_code(code: &str) -> ErrorKind {
        match code {
            "bad_request" => ErrorKind::BadRequest,
            "unsupported_version" => ErrorKind::UnsupportedVersion,
            "unknown_op" => ErrorKind::UnknownOp,
            "invalid_argument" => ErrorKind::InvalidArgument,
            "not_found" => ErrorKind::NotFound,
            "duplicate" => ErrorKind::Duplicate,
            "foreign_key" => ErrorKind::ForeignKey,
            "forbidden" => ErrorKind::Forbidden,
            "conflict" => ErrorKind::Conflict,
            "timeout" => ErrorKind::Timeout,
            "overloaded" => ErrorKind::Overloaded,
            "unavailable" => ErrorKind::Unavailable,
            "storage" => ErrorKind::Storage,
            "internal" => ErrorKind::Internal,
            _ => ErrorKind::Other,
        }
    }
}

/// Everything a request can fail with.
///
/// Secrets never appear in it: the daemon's messages never echo a submitted
/// value, and the client's own messages name files and operations only.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The daemon answered with an error reply.
    #[error("toriid refused {op}: {code}: {message}")]
    Daemon {
        /// The operation that was refused.
        op: String,
        /// The protocol's error code, e.g. `not_found`.
        code: String,
        /// The daemon's human-readable message.
        message: String,
    },
    /// No reply came within the request's deadline. ZeroMQ cannot tell a
    /// dead daemon from a slow one: an unreachable daemon is a timeout too.
    #[error("{op}: no reply from toriid within {deadline:?}")]
    Timeout {
        /// The operation.
        op: String,
        /// The deadline that passed.
        deadline: Duration,
    },
    /// The connection to the daemon dropped while a write was in flight:
    /// it may or may not have been applied. Writes are never resent.
    #[error("{op}: the connection to toriid dropped before the reply; the write may or may not have been applied")]
    ConnectionLost {
        /// The operation.
        op: String,
    },
    /// The reply was not what the protocol promises.
    #[error("{op}: malformed reply from toriid: {detail}")]
    MalformedReply {
        /// The operation.
        op: String,
        /// What was wrong with it.
        detail: String,
    },
    /// The configuration cannot be used (no endpoint, a bad key file).
    #[error("toriid client configuration: {0}")]
    Config(String),
    /// ZeroMQ refused to create or configure a socket.
    #[error("zeromq: {0}")]
    Zmq(#[from] zmq::Error),
    /// The client's I/O thread has stopped (it panicked or was shut down).
    #[error("the toriid client's I/O thread has stopped")]
    Closed,
}

impl Error {
    /// The category of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Daemon { code, .. } => ErrorKind::from_code(code),
            Error::Timeout { .. } => ErrorKind::Timeout,
            Error::ConnectionLost { .. } => ErrorKind::Unavailable,
            Error::MalformedReply { .. } => ErrorKind::MalformedReply,
            Error::Config(_) | Error::Zmq(_) => ErrorKind::Config,
            Error::Closed => ErrorKind::Closed,
        }
    }

    /// The protocol's error code of an error reply (`Some("not_found")`),
    /// `None` for the client's own failures.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Daemon { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Shorthand for `self.kind() == ErrorKind::NotFound`.
    pub fn is_not_found(&self) -> bool {
        self.kind() == ErrorKind::NotFound
    }

    pub(crate) fn malformed(op: &str, detail: impl Into<String>) -> Error {
        Error::MalformedReply {
            op: op.to_string(),
            detail: detail.into(),
        }
    }
}

/// The client's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_codes() {
        assert_eq!(ErrorKind::from_code("not_found"), ErrorKind::NotFound);
        assert_eq!(ErrorKind::from_code("conflict"), ErrorKind::Conflict);
        assert_eq!(ErrorKind::from_code("brand_new"), ErrorKind::Other);
        let e = Error::Daemon {
            op: "get_user".into(),
            code: "not_found".into(),
            message: "no such user".into(),
        };
        assert!(e.is_not_found());
        assert_eq!(e.code(), Some("not_found"));
    }
}
