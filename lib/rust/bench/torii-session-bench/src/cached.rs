//! Case 5: the toriid provider with the in-process session cache, its
//! revocation delay and its memory. Needs the Rust `SessionCache` of
//! issue 25, which this build does not have yet.

use crate::{Args, BoxError, Plan};

pub async fn run(_a: &Args, _label: &str, _plan: &Plan, _tasks: &[usize]) -> Result<(), BoxError> {
    Err("unavailable: this build has no toriid_client SessionCache".into())
}

pub async fn cmd_rss(_a: &Args) -> Result<(), BoxError> {
    Err("unavailable: this build has no toriid_client SessionCache".into())
}
