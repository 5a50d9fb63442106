//! Integration tests: real PostgreSQL, real HTTP on loopback, the real server.

mod support;

mod audit;
mod audit_cli;
mod bad_input;
mod bench;
mod claude;
mod connections;
mod console;
mod durability;
mod failover;
mod fencing;
mod fixtures;
mod followers;
mod fuzz_findings;
mod ha;
mod harness;
mod hostile;
mod js_client;
mod limits;
mod load;
mod metrics;
mod openapi;
mod plans;
mod principals;
mod protocol;
mod resume;
mod retention;
mod schemathesis;
mod stream_conn;
mod traces;
mod typed_client;
