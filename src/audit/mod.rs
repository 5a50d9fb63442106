//! The audit log and session history, as operators and UIs read them.
//!
//! The event table *is* the audit log (who approved which tool call, what an agent did in a
//! session, every failed input of the last hour). The SQL lives in [`crate::store::audit`];
//! this module holds what the HTTP endpoints and the CLI share on top of it:
//!
//! - [`params`]: filters parsed from `name=value` pairs (query strings and CLI flags alike);
//! - [`cursor`]: opaque keyset cursors;
//! - [`format`]: table / JSON Lines / CSV output of the CLI;
//! - [`cli`]: `agent-webkit-server audit events|inputs|sessions`, with `--follow`;
//! - [`generate`]: a synthetic data set (≥ 1M events) for the benchmarks;
//! - [`bench`]: each API query's plan (which index) and latency, for BENCHMARKS.md and tests;
//! - [`writer_bench`]: the group-commit writer's append rate with the audit columns and indexes.

pub mod bench;
pub mod cli;
pub mod cursor;
pub mod format;
pub mod generate;
pub mod params;
pub mod writer_bench;
