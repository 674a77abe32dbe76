//! The SQL of [`OperatorStore`], one text for both backends, as one impl for every
//! [`Backend`] (like `shared`'s `Store` impl).

use async_trait::async_trait;
use sqlx::{Database, Encode, Executor, IntoArguments, Type};

use crate::db::{route_code, route_from_code};
use crate::domain::{Cvr, LetterState, OperatorName, RejectReason, Route};

use super::operators::{
    AuditEntry, HeldSpan, NewAudit, OperatorCert, OperatorRevocation, OperatorStore, RouteHold,
    SenderActivity,
};
use super::rows::{StoreRow, corrupt, count_from, cvr_code};
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

fn hold_from(row: &impl StoreRow) -> Result<RouteHold, StoreError> {
    Ok(RouteHold {
        route: route_from_code(row.int("route")?),
        operator: row.text("operator")?,
        reason: row.text("reason")?,
        since_ms: row.int("held_since")?,
    })
}

/// When a waiting letter became due: accepted, or its scheduled time if later.
const DUE: &str = "CASE WHEN not_before IS NOT NULL AND not_before > accepted_at \
     THEN not_before ELSE accepted_at END";

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

    async fn hold_route(&self, hold: &RouteHold) -> Result<bool, StoreError> {
        let n = sqlx::query::<B::Db>(
            "INSERT INTO route_holds (route, operator, reason, held_since) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (route) DO NOTHING",
        )
        .bind(route_code(hold.route))
        .bind(hold.operator.as_str())
        .bind(hold.reason.as_str())
        .bind(hold.since_ms)
        .execute(self.pool())
        .await?;
        Ok(n.rows_affected() > 0)
    }

    async fn release_route(
        &self,
        route: Route,
        at_ms: i64,
    ) -> Result<Option<RouteHold>, StoreError> {
        let mut tx = self.pool().begin_with(B::BEGIN_WRITE).await?;
        let row = sqlx::query::<B::Db>(
            "DELETE FROM route_holds WHERE route = $1 \
             RETURNING route, operator, reason, held_since",
        )
        .bind(route_code(route))
        .fetch_optional(&mut *tx)
        .await?;
        let hold = row.as_ref().map(hold_from).transpose()?;
        if let Some(h) = &hold {
            sqlx::query::<B::Db>(
                "INSERT INTO route_hold_spans (route, held_from, held_to) VALUES ($1, $2, $3)",
            )
            .bind(route_code(route))
            .bind(h.since_ms)
            .bind(at_ms.max(h.since_ms))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(hold)
    }

    async fn route_holds(
        &self,
        since_ms: i64,
    ) -> Result<(Vec<RouteHold>, Vec<HeldSpan>), StoreError> {
        let mut tx = self.pool().begin_with(B::BEGIN_SNAPSHOT).await?;
        let holds = sqlx::query::<B::Db>(
            "SELECT route, operator, reason, held_since FROM route_holds ORDER BY route",
        )
        .fetch_all(&mut *tx)
        .await?;
        let spans = sqlx::query::<B::Db>(
            "SELECT route, held_from, held_to FROM route_hold_spans WHERE held_to > $1 \
             ORDER BY held_from",
        )
        .bind(since_ms)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((
            holds.iter().map(hold_from).collect::<Result<_, _>>()?,
            spans
                .iter()
                .map(|r| {
                    Ok(HeldSpan {
                        route: route_from_code(r.int("route")?),
                        from_ms: r.int("held_from")?,
                        to_ms: r.int("held_to")?,
                    })
                })
                .collect::<Result<_, StoreError>>()?,
        ))
    }

    async fn sender_activity(
        &self,
        sender: Cvr,
        now_ms: i64,
    ) -> Result<SenderActivity, StoreError> {
        let cvr = cvr_code(sender);
        let mut tx = self.pool().begin_with(B::BEGIN_SNAPSHOT).await?;
        let states = sqlx::query::<B::Db>(
            "SELECT state, COUNT(*) AS n FROM letters WHERE sender_cvr = $1 GROUP BY state",
        )
        .bind(cvr)
        .fetch_all(&mut *tx)
        .await?;
        let oldest = sqlx::query::<B::Db>(sqlx::AssertSqlSafe(format!(
            "SELECT MIN({DUE}) AS due FROM letters WHERE sender_cvr = $1 AND state IN (1, 2) \
             AND (not_before IS NULL OR not_before <= $2)"
        )))
        .bind(cvr)
        .bind(now_ms)
        .fetch_one(&mut *tx)
        .await?;
        let recent = sqlx::query::<B::Db>(
            "SELECT COUNT(CASE WHEN accepted_at >= $2 THEN 1 END) AS minute, COUNT(*) AS hour \
             FROM letters WHERE sender_cvr = $1 AND accepted_at >= $3",
        )
        .bind(cvr)
        .bind(now_ms - 60_000)
        .bind(now_ms - 3_600_000)
        .fetch_one(&mut *tx)
        .await?;
        let rejections = sqlx::query::<B::Db>(
            "SELECT reason, COUNT(*) AS n FROM batch_rejections WHERE sender_cvr = $1 \
             GROUP BY reason ORDER BY reason",
        )
        .bind(cvr)
        .fetch_all(&mut *tx)
        .await?;
        let last_error = sqlx::query::<B::Db>(
            "SELECT detail FROM letters WHERE sender_cvr = $1 AND state IN (1, 2, 5) \
             AND detail <> '' ORDER BY accepted_at DESC LIMIT 1",
        )
        .bind(cvr)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut a = SenderActivity::default();
        for r in &states {
            a.by_state.push((
                LetterState::from_code(r.int("state")?).ok_or_else(|| corrupt("state"))?,
                count_from(r.int("n")?)?,
            ));
        }
        a.by_state.sort_by_key(|(s, _)| s.code());
        a.oldest_waiting_since_ms = oldest.opt_int("due")?;
        a.accepted_last_minute = count_from(recent.int("minute")?)?;
        a.accepted_last_hour = count_from(recent.int("hour")?)?;
        for r in &rejections {
            a.rejections.push((
                RejectReason::from_code(r.int("reason")?)
                    .ok_or_else(|| corrupt("reject reason"))?,
                count_from(r.int("n")?)?,
            ));
        }
        a.last_error = last_error.map(|r| r.text("detail")).transpose()?;
        Ok(a)
    }

    async fn oldest_waiting(&self, now_ms: i64) -> Result<Vec<(Route, i64)>, StoreError> {
        let rows = sqlx::query::<B::Db>(sqlx::AssertSqlSafe(format!(
            "SELECT route, MIN({DUE}) AS due FROM letters WHERE state IN (1, 2) \
             AND (not_before IS NULL OR not_before <= $1) GROUP BY route ORDER BY route"
        )))
        .bind(now_ms)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((route_from_code(r.int("route")?), r.int("due")?)))
            .collect()
    }
}
