//! The audit trail as operator actions write it: one entry per action, recorded durably before
//! the action's answer goes out (so an action the caller saw succeed is always on record), and
//! also when the action was refused or failed.

use crate::store::{NewAudit, Store, StoreError};

/// Who ran a command against the store directly (not through the operator API): the local
/// account, as `local:<user>`.
pub fn local_actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".to_string());
    format!("local:{user}")
}

/// Records one action. The texts must hold no letter content and no recipient id: callers
/// pass selections by sender, route, state, batch and age only.
pub async fn record(
    store: &dyn Store,
    operator: &str,
    action: &str,
    selection: &str,
    letters: u64,
    result: &str,
) -> Result<i64, StoreError> {
    crate::telemetry::operator_action(action);
    store
        .record_audit(&NewAudit {
            operator: operator.to_string(),
            action: action.to_string(),
            selection: selection.to_string(),
            letters,
            result: result.to_string(),
            at_ms: crate::clock::now_ms(),
        })
        .await
}
