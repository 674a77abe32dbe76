//! The `brevdue.v1.Operations` service: the operator the door identified, extract, call the
//! console ([`crate::operators::Console`]), convert ([`super::ops_convert`]).

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::clock::now_ms;
use crate::operators::Console;

use super::identity::{Operator, operator};
use super::ops_convert as c;
use super::pb;
use super::pb::operations_server::{Operations, OperationsServer};
use super::status::AuthError;

pub struct OperationsService {
    console: Arc<Console>,
}

impl OperationsService {
    pub fn server(console: Arc<Console>) -> OperationsServer<OperationsService> {
        OperationsServer::new(OperationsService { console })
    }

    /// The door's operator, checked again now: a certificate revoked since the call began
    /// (or since the connection opened) is refused.
    fn operator<T>(&self, request: &Request<T>) -> Result<Operator, Status> {
        let op = operator(request)?;
        match self.console.roster.operator_by_cert(&op.fingerprint) {
            Some(_) => Ok(op),
            None => Err(AuthError::UnknownOperator.into()),
        }
    }
}

#[tonic::async_trait]
impl Operations for OperationsService {
    async fn who_am_i(
        &self,
        request: Request<pb::WhoAmIRequest>,
    ) -> Result<Response<pb::OperatorIdentity>, Status> {
        let op = self.operator(&request)?;
        Ok(Response::new(pb::OperatorIdentity {
            name: op.name.to_string(),
            fingerprint: crate::pki::hex(&op.fingerprint),
        }))
    }

    async fn list_dead_letters(
        &self,
        request: Request<pb::DeadLetterQuery>,
    ) -> Result<Response<pb::DeadLetterPage>, Status> {
        self.operator(&request)?;
        let q = request.into_inner();
        let now = now_ms();
        let selection = c::selection_from(q.selection, now)?;
        let after = c::page_from(&q.page_token)?;
        let limit = if q.page_size == 0 { 100 } else { q.page_size };
        let (letters, total) = self.console.letters(selection, after, limit).await?;
        let next_page_token =
            if letters.len() as u32 >= limit.min(crate::operators::console::MAX_PAGE) {
                letters.last().map(c::page_token).unwrap_or_default()
            } else {
                String::new()
            };
        Ok(Response::new(pb::DeadLetterPage {
            letters: letters
                .into_iter()
                .map(|l| c::letter_to_pb(l, now))
                .collect(),
            next_page_token,
            total,
        }))
    }

    async fn start_job(
        &self,
        request: Request<pb::JobRequest>,
    ) -> Result<Response<pb::Job>, Status> {
        let op = self.operator(&request)?;
        let q = request.into_inner();
        let kind = c::kind_from(q.kind)?;
        let selection = c::selection_from(q.selection, now_ms())?;
        let job = self
            .console
            .start_job(
                op.name.as_str(),
                kind,
                selection,
                Some(q.request_id.as_str()),
            )
            .await?;
        Ok(Response::new(c::job_to_pb(job)))
    }

    async fn get_job(&self, request: Request<pb::JobQuery>) -> Result<Response<pb::Job>, Status> {
        self.operator(&request)?;
        let job = self.console.job(request.get_ref().job_id.trim()).await?;
        Ok(Response::new(c::job_to_pb(job)))
    }

    async fn list_jobs(
        &self,
        request: Request<pb::ListJobsRequest>,
    ) -> Result<Response<pb::JobList>, Status> {
        self.operator(&request)?;
        let limit = match request.get_ref().limit {
            0 => 20,
            n => n,
        };
        let jobs = self.console.jobs(limit).await?;
        Ok(Response::new(pb::JobList {
            jobs: jobs.into_iter().map(c::job_to_pb).collect(),
        }))
    }

    async fn suspend_sender(
        &self,
        request: Request<pb::SenderRequest>,
    ) -> Result<Response<pb::SenderReport>, Status> {
        let op = self.operator(&request)?;
        let cvr = c::cvr_from("sender_cvr", &request.get_ref().sender_cvr)?;
        let report = self.console.suspend(op.name.as_str(), cvr, true).await?;
        Ok(Response::new(c::sender_to_pb(report, now_ms())))
    }

    async fn resume_sender(
        &self,
        request: Request<pb::SenderRequest>,
    ) -> Result<Response<pb::SenderReport>, Status> {
        let op = self.operator(&request)?;
        let cvr = c::cvr_from("sender_cvr", &request.get_ref().sender_cvr)?;
        let report = self.console.suspend(op.name.as_str(), cvr, false).await?;
        Ok(Response::new(c::sender_to_pb(report, now_ms())))
    }

    async fn hold_route(
        &self,
        request: Request<pb::RouteRequest>,
    ) -> Result<Response<pb::RouteHolds>, Status> {
        let op = self.operator(&request)?;
        let q = request.into_inner();
        let route = c::route_required(q.route)?;
        let holds = self
            .console
            .hold(op.name.as_str(), route, &q.reason)
            .await?;
        Ok(Response::new(c::holds_to_pb(holds)))
    }

    async fn release_route(
        &self,
        request: Request<pb::RouteRequest>,
    ) -> Result<Response<pb::RouteHolds>, Status> {
        let op = self.operator(&request)?;
        let route = c::route_required(request.get_ref().route)?;
        let holds = self.console.release(op.name.as_str(), route).await?;
        Ok(Response::new(c::holds_to_pb(holds)))
    }

    async fn list_holds(
        &self,
        request: Request<pb::ListHoldsRequest>,
    ) -> Result<Response<pb::RouteHolds>, Status> {
        self.operator(&request)?;
        Ok(Response::new(c::holds_to_pb(self.console.holds())))
    }

    async fn get_sender(
        &self,
        request: Request<pb::SenderRequest>,
    ) -> Result<Response<pb::SenderReport>, Status> {
        self.operator(&request)?;
        let cvr = c::cvr_from("sender_cvr", &request.get_ref().sender_cvr)?;
        let report = self.console.sender(cvr).await?;
        Ok(Response::new(c::sender_to_pb(report, now_ms())))
    }

    async fn list_audit(
        &self,
        request: Request<pb::AuditQuery>,
    ) -> Result<Response<pb::AuditPage>, Status> {
        self.operator(&request)?;
        let q = request.into_inner();
        let before = (q.before_id > 0).then_some(q.before_id);
        let limit = if q.limit == 0 { 100 } else { q.limit };
        let entries = self.console.audit(before, limit).await?;
        Ok(Response::new(c::audit_to_pb(entries)))
    }
}
