//! The integration tests: one test binary (`cargo test --test it`), a module per area, all
//! over real HTTP on loopback ports. [`support`] starts the simulator and the handler and
//! holds the B2C-like client.
//!
//! Run one area with a filter: `cargo test --test it journey::`.

mod authy_client;
mod authy_replay;
mod bad_input;
mod client_cert;
mod conformance;
mod connection_limits;
mod corpus_replay;
mod deploy;
mod docs;
mod function_folders;
mod host_emulation;
mod journey;
mod languages;
mod layout;
mod policy_check;
mod policy_contract;
mod properties;
mod push_bombing;
mod push_limits;
mod shutdown;
mod simulator;
mod support;
mod upstream_faults;
mod wait_page_browser;
