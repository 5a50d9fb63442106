//! The audit log and session history, as operators and UIs read them.
//!
//! The event table *is* the audit log (who approved which tool call, what an agent did in a
//! session, every failed input of the last hour). The SQL lives in [`crate::store::audit`];
//! this module holds what the HTTP endpoints and the CLI share on top of it:
//!
//! - [`params`]: filters parsed from `name=value` pairs (query strings and CLI flags alike);
//! - [`cursor`]: opaque keyset cursors;
//!
//! The `audit` command (`src/cli/audit.rs`, in the binary) prints them as tables, JSON Lines
//! or CSV.
//!
//! The data generator and the query and writer benchmarks are tools, beside the server:
//! `tools/bench` (`agent-webkit-bench generate|queries|writer`).

pub mod cursor;
pub mod params;

use crate::codes::ErrorCode;

/// A refused filter or cursor: a stable code and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParamError {
    pub code: ErrorCode,
    pub message: String,
}
