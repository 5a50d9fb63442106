//! Integration tests: real PostgreSQL, real HTTP on loopback, the real server.

mod support;

mod bad_input;
mod bench;
mod durability;
mod fixtures;
mod protocol;
mod resume;
