//! Integration tests: real PostgreSQL, real HTTP on loopback, the real server.

mod support;

mod bad_input;
mod claude;
mod durability;
mod failover;
mod fencing;
mod fixtures;
mod limits;
mod load;
mod metrics;
mod protocol;
mod resume;
mod traces;
