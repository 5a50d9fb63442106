//! Integration tests: real PostgreSQL, real HTTP on loopback, the real server.

mod support;

mod audit;
mod audit_cli;
mod bad_input;
mod durability;
mod fixtures;
mod plans;
mod principals;
mod protocol;
mod resume;
mod retention;
