//! The one error type of the crate.

use std::fmt;

/// Everything a cache command can fail with.
///
/// Variants are meant to be matched on: a caller that wants "set if absent" semantics matches
/// [`Error::KeyExists`], a fail-open caller treats every variant as a miss.
///
/// ```
/// use cache_runtime::{Cache, Error, Ttl};
///
/// let cache = Cache::memory();
/// cache.add("k", &1u32, Ttl::Default).unwrap();
/// assert!(matches!(cache.add("k", &2u32, Ttl::Default), Err(Error::KeyExists { .. })));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `add` found the key already present; the stored value is untouched.
    #[error("key `{key}` already exists")]
    KeyExists {
        /// The key as given to the command (without namespace).
        key: String,
    },
    /// `increment` found a value that is not an integer; the stored value is untouched.
    #[error("value at key `{key}` is not an integer")]
    NotAnInteger {
        /// The key as given to the command (without namespace).
        key: String,
    },
    /// The backend did not answer within the command's timeout.
    #[error("`{command}` timed out after {timeout:?}")]
    Timeout {
        /// The command that timed out.
        command: &'static str,
        /// The timeout in force.
        timeout: std::time::Duration,
    },
    /// A value could not be encoded by the cache's serializer.
    #[error("cannot serialize value with `{serializer}`: {message}")]
    Serialize {
        /// The serializer's name.
        serializer: String,
        /// What the serializer said.
        message: String,
    },
    /// Stored bytes could not be decoded as the requested type; the stored bytes are untouched.
    #[error("cannot deserialize value with `{serializer}`: {message}")]
    Deserialize {
        /// The serializer's name.
        serializer: String,
        /// What the serializer said.
        message: String,
    },
    /// A configuration is invalid: unknown alias, field, backend, serializer or plugin, or a bad value.
    #[error("invalid cache configuration: {0}")]
    Config(String),
    /// Input to a command is invalid (for example a TTL of zero).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The backend cannot perform this command.
    #[error("`{command}` is not supported by the `{backend}` backend: {reason}")]
    Unsupported {
        /// The command.
        command: &'static str,
        /// The backend's name.
        backend: String,
        /// Why, and what to use instead.
        reason: String,
    },
    /// [`OptimisticLock::cas`](crate::OptimisticLock::cas) found the value changed since the lock was taken.
    #[error("value at key `{key}` changed since the optimistic lock was taken")]
    OptimisticLock {
        /// The locked key.
        key: String,
    },
    /// The backend failed (connection refused, protocol error, server error, ...).
    #[error("backend `{backend}` failed: {message}")]
    Backend {
        /// The backend's name.
        backend: String,
        /// What went wrong, credentials redacted.
        message: String,
    },
}

impl Error {
    /// A [`Error::Config`] error.
    pub fn config(message: impl fmt::Display) -> Self {
        Error::Config(message.to_string())
    }

    /// A [`Error::Backend`] error for the named backend.
    pub fn backend(backend: impl Into<String>, message: impl fmt::Display) -> Self {
        Error::Backend {
            backend: backend.into(),
            message: message.to_string(),
        }
    }

    /// A [`Error::Unsupported`] error.
    pub fn unsupported(
        command: &'static str,
        backend: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Error::Unsupported {
            command,
            backend: backend.into(),
            reason: reason.into(),
        }
    }

    /// A [`Error::Serialize`] error.
    pub fn serialize(serializer: impl Into<String>, message: impl fmt::Display) -> Self {
        Error::Serialize {
            serializer: serializer.into(),
            message: message.to_string(),
        }
    }

    /// A [`Error::Deserialize`] error.
    pub fn deserialize(serializer: impl Into<String>, message: impl fmt::Display) -> Self {
        Error::Deserialize {
            serializer: serializer.into(),
            message: message.to_string(),
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
