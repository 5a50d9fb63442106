//! agent-webkit-server: durable Claude agent sessions over HTTP + SSE (wire protocol 1.0),
//! with Postgres as the source of truth.
#![forbid(unsafe_code)]

pub mod agent;
pub mod app;
pub mod audit;
pub mod codes;
pub mod config;
pub mod echo;
pub mod frame;
pub mod http;
pub mod metrics;
pub mod session;
pub mod store;
pub mod telemetry;
pub mod text;

/// The wire protocol this server speaks.
pub const PROTOCOL_VERSION: &str = "1.0";
