//! `runbook`: disaster-recovery runbooks as checked, resumable programs.

pub mod condition;
pub mod diagnostic;
pub mod inventory;
pub mod source;
pub mod template;
pub mod transport;
pub mod yaml;
