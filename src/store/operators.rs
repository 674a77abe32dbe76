//! What the store keeps about operators: their certificates, the audit trail of what they did,
//! the routes they hold, and the views of senders and routes they act on. The types here and
//! the [`OperatorStore`] contract; the SQL is in `operators_sql`, once for both backends. Bulk
//! jobs are in `jobs`.

use async_trait::async_trait;

use crate::domain::{Cvr, LetterState, OperatorName, RejectReason, Route};

use super::StoreError;

/// A route an operator holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteHold {
    pub route: Route,
    pub operator: String,
    pub reason: String,
    pub since_ms: i64,
}

/// A hold that ended: letters' maximum age leaves this time out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeldSpan {
    pub route: Route,
    pub from_ms: i64,
    pub to_ms: i64,
}

/// One sender in detail, for the drill-down.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SenderActivity {
    pub by_state: Vec<(LetterState, u64)>,
    /// When the oldest letter still waiting became due (unix ms).
    pub oldest_waiting_since_ms: Option<i64>,
    pub accepted_last_minute: u64,
    pub accepted_last_hour: u64,
    pub rejections: Vec<(RejectReason, u64)>,
    /// The newest delivery error on a letter waiting or failed.
    pub last_error: Option<String>,
}

/// One operator certificate as the store knows it (never the certificate or its key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorCert {
    pub fingerprint: [u8; 32],
    pub name: OperatorName,
    pub issued_at_ms: i64,
    pub expires_at_ms: i64,
    pub revoked_at_ms: Option<i64>,
}

/// Which operator certificates to revoke.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OperatorRevocation {
    /// The certificate in use of the operator with this name.
    Name(OperatorName),
    /// One certificate, by the fingerprint `operators list` shows.
    Fingerprint([u8; 32]),
}

/// One operator action to record. Texts say what was done to which selection; they never hold
/// letter content or recipient ids (selections are by sender, route, state, batch and age).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAudit {
    /// Who: an operator's name, or `local:<user>` for a command run against the store.
    pub operator: String,
    /// What, e.g. `retry`, `hold`, `operators add`.
    pub action: String,
    /// On what, e.g. `sender=29403473 state=FAILED`.
    pub selection: String,
    /// How many letters it touched (0 when it touches none).
    pub letters: u64,
    /// How it ended, e.g. `ok`, `started job …`, `refused: …`.
    pub result: String,
    pub at_ms: i64,
}

/// A recorded operator action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    /// Increasing with every entry: the order actions were recorded in.
    pub id: i64,
    pub entry: NewAudit,
}

#[async_trait]
pub trait OperatorStore: Send + Sync {
    /// Records a newly issued operator certificate. Refuses (`OperatorExists`, nothing
    /// changed) when an operator of this name already has a certificate in use, also when two
    /// adds of one name race. Durable on return.
    async fn add_operator(&self, cert: &OperatorCert) -> Result<(), StoreError>;

    /// Every operator certificate ever issued, oldest first.
    async fn operator_certs(&self) -> Result<Vec<OperatorCert>, StoreError>;

    /// Revokes certificates and returns the fingerprints it revoked (none when they were
    /// revoked already: idempotent). `UnknownOperator` when no certificate matches. Durable on
    /// return; running gateways refuse them within their refresh interval.
    async fn revoke_operator(
        &self,
        which: &OperatorRevocation,
        at_ms: i64,
    ) -> Result<Vec<[u8; 32]>, StoreError>;

    /// Appends one entry to the audit trail. Durable on return.
    async fn record_audit(&self, entry: &NewAudit) -> Result<i64, StoreError>;

    /// The newest `limit` audit entries with an id below `before` (all when `None`), newest
    /// first.
    async fn audit(&self, before: Option<i64>, limit: u32) -> Result<Vec<AuditEntry>, StoreError>;

    /// Holds a route; `false` (and nothing changed) if it is held already. Durable on return.
    async fn hold_route(&self, hold: &RouteHold) -> Result<bool, StoreError>;

    /// Releases a route, recording the span it was held; the hold that ended, if any.
    async fn release_route(
        &self,
        route: Route,
        at_ms: i64,
    ) -> Result<Option<RouteHold>, StoreError>;

    /// The routes held now and the spans of holds that ended after `since_ms`.
    async fn route_holds(
        &self,
        since_ms: i64,
    ) -> Result<(Vec<RouteHold>, Vec<HeldSpan>), StoreError>;

    /// One sender's letters and activity, as of `now_ms`.
    async fn sender_activity(&self, sender: Cvr, now_ms: i64)
    -> Result<SenderActivity, StoreError>;

    /// Per route with letters waiting and due, when the oldest of them became due (unix ms).
    async fn oldest_waiting(&self, now_ms: i64) -> Result<Vec<(Route, i64)>, StoreError>;
}
