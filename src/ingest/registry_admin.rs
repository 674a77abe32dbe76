//! The `brevdue.v1.RegistryAdmin` service: registry changes from an operator's systems. The
//! door let in an operator certificate only; here the changes are checked and made through the
//! same path as `brevdue registry apply` (`directory::apply`), and recorded in the audit trail.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::directory::Directory;
use crate::directory::apply::{ApplyError, apply_changes};
use crate::operators::{Console, audit};
use crate::registry::change::{ChangeProblems, RawChange};

use super::identity::operator;
use super::pb;
use super::pb::registry_admin_server::{RegistryAdmin, RegistryAdminServer};
use super::status::AuthError;

/// Largest ApplyChanges request the door reads (about 30,000 changes): operators are known
/// before a byte of it is read, and a month's changes go in a few calls.
pub const MAX_CHANGES_BYTES: usize = 2 << 20;

pub struct RegistryAdminService {
    directory: Arc<Directory>,
    console: Arc<Console>,
}

impl RegistryAdminService {
    pub fn server(
        directory: Arc<Directory>,
        console: Arc<Console>,
    ) -> RegistryAdminServer<RegistryAdminService> {
        RegistryAdminServer::new(RegistryAdminService { directory, console })
            .max_decoding_message_size(MAX_CHANGES_BYTES + 1024)
    }

    /// The operator behind the call, checked again now (a certificate revoked since the call
    /// began is refused).
    fn operator_now<T>(&self, request: &Request<T>) -> Result<crate::ingest::Operator, Status> {
        let op = operator(request)?;
        if self
            .console
            .roster
            .operator_by_cert(&op.fingerprint)
            .is_none()
        {
            return Err(AuthError::UnknownOperator.into());
        }
        Ok(op)
    }
}

fn raw(c: pb::RegistryChange) -> RawChange {
    let some = |s: String| (!s.is_empty()).then_some(s);
    RawChange {
        change: c.change,
        id_type: c.id_type,
        id: c.id,
        sender_cvr: some(c.sender_cvr),
        status: some(c.status),
    }
}

#[tonic::async_trait]
impl RegistryAdmin for RegistryAdminService {
    async fn apply_changes(
        &self,
        request: Request<pb::RegistryChanges>,
    ) -> Result<Response<pb::ChangesApplied>, Status> {
        let op = self.operator_now(&request)?;
        let raws = request.into_inner().changes;
        let count = raws.len();
        let mut problems = ChangeProblems::default();
        let mut changes = Vec::with_capacity(count);
        for (i, c) in raws.into_iter().enumerate() {
            match raw(c).check(i as u64 + 1) {
                Ok(change) => changes.push(change),
                Err(p) => problems.add(i as u64 + 1, p),
            }
        }
        let store = &*self.console.store;
        let result = apply_changes(
            store,
            self.directory.secrets(),
            |cvr| self.directory.sender(cvr),
            &changes,
            problems,
            "request",
            &format!("operator {}", op.name),
        )
        .await;
        let (outcome, reply) = match result {
            Ok(applied) => (
                format!("ok: changes {} to {}", applied.first_seq, applied.last_seq),
                Ok(pb::ChangesApplied {
                    first_seq: applied.first_seq,
                    last_seq: applied.last_seq,
                    count: applied.count as u32,
                }),
            ),
            Err(ApplyError::Refused(e)) => (
                "refused: bad changes".to_string(),
                Err(Status::invalid_argument(e.to_string())),
            ),
            Err(e) => {
                tracing::warn!(error = %e, "could not apply registry changes");
                (
                    "failed".to_string(),
                    Err(Status::unavailable(
                        "the registry changes could not be made now; nothing was changed, try again",
                    )),
                )
            }
        };
        // On record before the answer goes out; a change the store made is never unrecorded.
        audit::record(
            store,
            &op.name.to_string(),
            "registry apply",
            &format!("{count} change(s)"),
            0,
            &outcome,
        )
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "could not record a registry change in the audit trail");
            Status::unavailable("the audit trail could not be written; try again")
        })?;
        if reply.is_ok() {
            // This gateway routes by the changes at once; the others within their poll.
            if let Err(e) = self.directory.follow_registry().await {
                tracing::warn!(error = %e, "could not apply registry changes to the index yet");
            }
        }
        reply.map(Response::new)
    }

    async fn get_registry_state(
        &self,
        request: Request<pb::RegistryStateRequest>,
    ) -> Result<Response<pb::RegistryState>, Status> {
        self.operator_now(&request)?;
        let t = self.directory.registry_telemetry();
        let head = self.console.store.registry_head().await.map_err(|e| {
            tracing::warn!(error = %e, "could not read the registry's head");
            Status::unavailable("the store is unavailable")
        })?;
        Ok(Response::new(pb::RegistryState {
            recipients: t.recipients as u64,
            applied_seq: t.applied_seq,
            newest_seq: head.seq,
            index_bytes: t.index_bytes as u64,
            overlay: t.overlay as u64,
        }))
    }
}
