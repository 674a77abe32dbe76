//! The `brevdue.v1.Operations` service: the operator the door identified, extract, call the
//! console ([`crate::operators::Console`]), convert.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::operators::Console;

use super::identity::operator;
use super::pb;
use super::pb::operations_server::{Operations, OperationsServer};

pub struct OperationsService {
    console: Arc<Console>,
}

impl OperationsService {
    pub fn server(console: Arc<Console>) -> OperationsServer<OperationsService> {
        OperationsServer::new(OperationsService { console })
    }
}

fn not_yet(what: &str) -> Status {
    Status::unimplemented(format!("{what} is not available on this gateway yet"))
}

#[tonic::async_trait]
impl Operations for OperationsService {
    async fn who_am_i(
        &self,
        request: Request<pb::WhoAmIRequest>,
    ) -> Result<Response<pb::OperatorIdentity>, Status> {
        let op = operator(&request)?;
        // Checked again now: a certificate revoked since the call began is refused.
        if self
            .console
            .roster
            .operator_by_cert(&op.fingerprint)
            .is_none()
        {
            return Err(super::status::AuthError::UnknownOperator.into());
        }
        Ok(Response::new(pb::OperatorIdentity {
            name: op.name.to_string(),
            fingerprint: crate::pki::hex(&op.fingerprint),
        }))
    }

    async fn list_dead_letters(
        &self,
        _request: Request<pb::DeadLetterQuery>,
    ) -> Result<Response<pb::DeadLetterPage>, Status> {
        Err(not_yet("ListDeadLetters"))
    }

    async fn start_job(
        &self,
        _request: Request<pb::JobRequest>,
    ) -> Result<Response<pb::Job>, Status> {
        Err(not_yet("StartJob"))
    }

    async fn get_job(&self, _request: Request<pb::JobQuery>) -> Result<Response<pb::Job>, Status> {
        Err(not_yet("GetJob"))
    }

    async fn list_jobs(
        &self,
        _request: Request<pb::ListJobsRequest>,
    ) -> Result<Response<pb::JobList>, Status> {
        Err(not_yet("ListJobs"))
    }

    async fn suspend_sender(
        &self,
        _request: Request<pb::SenderRequest>,
    ) -> Result<Response<pb::SenderReport>, Status> {
        Err(not_yet("SuspendSender"))
    }

    async fn resume_sender(
        &self,
        _request: Request<pb::SenderRequest>,
    ) -> Result<Response<pb::SenderReport>, Status> {
        Err(not_yet("ResumeSender"))
    }

    async fn hold_route(
        &self,
        _request: Request<pb::RouteRequest>,
    ) -> Result<Response<pb::RouteHolds>, Status> {
        Err(not_yet("HoldRoute"))
    }

    async fn release_route(
        &self,
        _request: Request<pb::RouteRequest>,
    ) -> Result<Response<pb::RouteHolds>, Status> {
        Err(not_yet("ReleaseRoute"))
    }

    async fn list_holds(
        &self,
        _request: Request<pb::ListHoldsRequest>,
    ) -> Result<Response<pb::RouteHolds>, Status> {
        Err(not_yet("ListHolds"))
    }

    async fn get_sender(
        &self,
        _request: Request<pb::SenderRequest>,
    ) -> Result<Response<pb::SenderReport>, Status> {
        Err(not_yet("GetSender"))
    }

    async fn list_audit(
        &self,
        _request: Request<pb::AuditQuery>,
    ) -> Result<Response<pb::AuditPage>, Status> {
        Err(not_yet("ListAudit"))
    }
}
