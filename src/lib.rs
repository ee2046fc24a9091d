//! `runbook`: disaster-recovery runbooks as checked, resumable programs.

pub mod diagnostic;
pub mod duration;
pub mod inventory;
pub mod runbook;
pub mod source;
pub mod transport;
pub mod yaml;
