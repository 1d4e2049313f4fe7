//! The one error type of the crate.
//!
//! Domain code, the store and the engine all return [`Error`]; the gRPC layer
//! maps it to a `tonic::Status` in exactly one place (`api::status`), so the
//! wire code of every failure is decided here, by its variant, and nowhere
//! else. Messages are lowercase without a trailing period (C-GOOD-ERR).

/// Everything that can go wrong while serving a request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed: `field` names the offending field with a
    /// path such as `attempts[3].score`.
    #[error("invalid {field}: {reason}")]
    InvalidArgument {
        /// Path of the offending field in the request.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A named object does not exist (or is out of the caller's scope).
    #[error("{}{kind} '{id}' not found", field_prefix(.field))]
    NotFound {
        /// The kind of object, e.g. `learner`.
        kind: &'static str,
        /// The id that was asked for.
        id: String,
        /// Path of the request field that named it, when the request has
        /// several (`attempts[3].learner_id`): the caller learns which.
        field: Option<String>,
    },
    /// A write collides with a different object stored under the same id.
    #[error("{kind} '{id}' already exists: {reason}")]
    AlreadyExists {
        /// The kind of object, e.g. `attempt`.
        kind: &'static str,
        /// The colliding id.
        id: String,
        /// How the stored object differs.
        reason: String,
    },
    /// The request is valid but the state of the system does not allow it
    /// (for instance hard cohort constraints that cannot all hold).
    #[error("{0}")]
    FailedPrecondition(String),
    /// A stored value could not be decoded: never skipped silently.
    #[error("corrupt value in tree '{tree}' at key {key}: {reason}")]
    Corrupt {
        /// The sled tree holding the value.
        tree: &'static str,
        /// The key, printed for the operator.
        key: String,
        /// What the decoder said.
        reason: String,
    },
    /// The storage engine failed (I/O error, full disk...).
    #[error("storage failure: {0}")]
    Storage(String),
    /// The request carries no key, or one that is unknown or revoked.
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// The caller's key is valid but its role does not allow the call.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// The service is shutting down or overloaded; the caller may retry.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

impl Error {
    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`Error::NotFound`].
    pub fn not_found(kind: &'static str, id: impl Into<String>) -> Self {
        Error::NotFound {
            kind,
            id: id.into(),
            field: None,
        }
    }

    /// [`Error::NotFound`] naming the request field that held the id.
    pub fn not_found_at(
        field: impl Into<String>,
        kind: &'static str,
        id: impl Into<String>,
    ) -> Self {
        Error::NotFound {
            kind,
            id: id.into(),
            field: Some(field.into()),
        }
    }
}

/// `"<field>: "` before a message, or nothing.
fn field_prefix(field: &Option<String>) -> String {
    field.as_ref().map(|f| format!("{f}: ")).unwrap_or_default()
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
