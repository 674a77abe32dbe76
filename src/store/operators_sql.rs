//! The SQL of [`OperatorStore`], one text for both backends, as one impl for every
//! [`Backend`] (like `shared`'s `Store` impl).

use async_trait::async_trait;
use sqlx::{Database, Encode, Executor, IntoArguments, Type};

use crate::domain::OperatorName;

use super::operators::{AuditEntry, NewAudit, OperatorCert, OperatorRevocation, OperatorStore};
use super::rows::{StoreRow, corrupt};
use super::shared::{Backend, RowsAffected};
use super::{Rule, StoreError};

const CERT_COLUMNS: &str = "fingerprint, name, issued_at, expires_at, revoked_at";

fn cert_from(row: &impl StoreRow) -> Result<OperatorCert, StoreError> {
    Ok(OperatorCert {
        fingerprint: row
            .bytes("fingerprint")?
            .try_into()
            .map_err(|_| corrupt("operator fingerprint"))?,
        name: row
            .text("name")?
            .parse::<OperatorName>()
            .map_err(|_| corrupt("operator name"))?,
        issued_at_ms: row.int("issued_at")?,
        expires_at_ms: row.int("expires_at")?,
        revoked_at_ms: row.opt_int("revoked_at")?,
    })
}

fn audit_from(row: &impl StoreRow) -> Result<AuditEntry, StoreError> {
    Ok(AuditEntry {
        id: row.int("id")?,
        entry: NewAudit {
            operator: row.text("operator")?,
            action: row.text("action")?,
            selection: row.text("selection")?,
            letters: u64::try_from(row.int("letters")?).map_err(|_| corrupt("audit count"))?,
            result: row.text("result")?,
            at_ms: row.int("at")?,
        },
    })
}

#[async_trait]
impl<B: Backend> OperatorStore for B
where
    for<'c> &'c mut <B::Db as Database>::Connection: Executor<'c, Database = B::Db>,
    <B::Db as Database>::Arguments: IntoArguments<B::Db>,
    <B::Db as Database>::Row: StoreRow,
    for<'q> i64: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> Option<i64>: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> String: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> &'q str: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> &'q [u8]: Encode<'q, B::Db> + Type<B::Db>,
    <B::Db as Database>::QueryResult: RowsAffected,
{
    async fn add_operator(&self, cert: &OperatorCert) -> Result<(), StoreError> {
        let inserted = sqlx::query::<B::Db>(
            "INSERT INTO operator_certs (fingerprint, name, issued_at, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&cert.fingerprint[..])
        .bind(cert.name.as_str())
        .bind(cert.issued_at_ms)
        .bind(cert.expires_at_ms)
        .execute(self.pool())
        .await;
        match inserted {
            Ok(_) => Ok(()),
            // The partial unique index on names in use: this name has a live certificate.
            Err(e) => match StoreError::from(e) {
                StoreError::Constraint {
                    rule: Rule::Unique, ..
                } => Err(StoreError::OperatorExists(cert.name.to_string())),
                other => Err(other),
            },
        }
    }

    async fn operator_certs(&self) -> Result<Vec<OperatorCert>, StoreError> {
        let rows = sqlx::query::<B::Db>(sqlx::AssertSqlSafe(format!(
            "SELECT {CERT_COLUMNS} FROM operator_certs ORDER BY issued_at, fingerprint"
        )))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(cert_from).collect()
    }

    async fn revoke_operator(
        &self,
        which: &OperatorRevocation,
        at_ms: i64,
    ) -> Result<Vec<[u8; 32]>, StoreError> {
        let mut tx = self.pool().begin_with(B::BEGIN_WRITE).await?;
        let (matching, unknown) = match which {
            OperatorRevocation::Name(name) => (
                sqlx::query::<B::Db>(sqlx::AssertSqlSafe(format!(
                    "SELECT {CERT_COLUMNS} FROM operator_certs WHERE name = $1"
                )))
                .bind(name.as_str())
                .fetch_all(&mut *tx)
                .await?,
                name.to_string(),
            ),
            OperatorRevocation::Fingerprint(fp) => (
                sqlx::query::<B::Db>(sqlx::AssertSqlSafe(format!(
                    "SELECT {CERT_COLUMNS} FROM operator_certs WHERE fingerprint = $1"
                )))
                .bind(&fp[..])
                .fetch_all(&mut *tx)
                .await?,
                crate::pki::hex(fp),
            ),
        };
        if matching.is_empty() {
            return Err(StoreError::UnknownOperator(unknown));
        }
        let mut revoked = Vec::new();
        for cert in matching.iter().map(cert_from) {
            let cert = cert?;
            let n = sqlx::query::<B::Db>(
                "UPDATE operator_certs SET revoked_at = $1 \
                 WHERE fingerprint = $2 AND revoked_at IS NULL",
            )
            .bind(at_ms)
            .bind(&cert.fingerprint[..])
            .execute(&mut *tx)
            .await?;
            if n.rows_affected() > 0 {
                revoked.push(cert.fingerprint);
            }
        }
        tx.commit().await?;
        Ok(revoked)
    }

    async fn record_audit(&self, e: &NewAudit) -> Result<i64, StoreError> {
        let row = sqlx::query::<B::Db>(
            "INSERT INTO audit (at, operator, action, selection, letters, result) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(e.at_ms)
        .bind(e.operator.as_str())
        .bind(e.action.as_str())
        .bind(e.selection.as_str())
        .bind(i64::try_from(e.letters).unwrap_or(i64::MAX))
        .bind(e.result.as_str())
        .fetch_one(self.pool())
        .await?;
        row.int("id")
    }

    async fn audit(&self, before: Option<i64>, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query::<B::Db>(
            "SELECT id, at, operator, action, selection, letters, result FROM audit \
             WHERE ($1 IS NULL OR id < $1) ORDER BY id DESC LIMIT $2",
        )
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(audit_from).collect()
    }
}
