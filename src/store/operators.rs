//! What the store keeps about operators: their certificates and the audit trail of what they
//! did. The types here and the [`OperatorStore`] contract; the SQL is in `operators_sql`, once
//! for both backends.

use async_trait::async_trait;

use crate::domain::OperatorName;

use super::StoreError;

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
}
