//! `runbook`: disaster-recovery runbooks as checked, resumable programs.

pub mod condition;
pub mod diagnostic;
pub mod duration;
pub mod host_info;
pub mod inventory;
pub mod journal;
pub mod lock;
pub mod runbook;
pub mod source;
pub mod template;
pub mod transport;
pub mod yaml;
