//! `runbook`: disaster-recovery runbooks as checked, resumable programs.
//!
//! Data flows one way: text ([`source`], [`yaml`]) → [`runbook`] → [`plan`] → execution
//! ([`executor`] over a [`transport`]) → [`event`]s → [`journal`] and reports.
//! [`cli`] is the edge that parses arguments and prints errors.

pub mod cli;
pub mod condition;
pub mod diagnostic;
pub mod duration;
pub mod error;
pub mod event;
pub mod executor;
pub mod host_info;
pub mod inventory;
pub mod journal;
pub mod load;
pub mod lock;
pub mod logging;
pub mod plan;
pub mod preview;
pub mod probe;
pub mod progress;
pub mod report;
pub mod resume;
pub mod rollback;
pub mod runbook;
pub mod schema;
pub mod secrets;
pub mod session;
pub mod source;
pub mod state;
pub mod status;
pub mod store;
pub mod template;
pub mod transport;
pub mod yaml;
