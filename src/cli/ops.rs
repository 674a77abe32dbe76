//! `brevdue ops …`: the operator's commands over the operator API (`brevdue.v1.Operations`),
//! with an operator's certificate directory, so they work against any gateway, a remote
//! PostgreSQL-backed cluster included, without opening its store. Bulk jobs show a progress
//! bar until done; a job that left letters unchanged says which and why, and exits 1.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use tonic::Request;

use crate::domain::{Cvr, LetterState};
use crate::ingest::pb;

use super::operators::{OpsClient, connect};

/// Where the gateway is and who the operator is.
#[derive(Args, Clone)]
pub struct OpsArgs {
    /// Directory with ca.pem, operator.pem and operator.key (from `brevdue operators add`).
    #[arg(long, env = "BREVDUE_OPERATOR_CERT_DIR", global = true)]
    cert_dir: Option<PathBuf>,
    /// Gateway address.
    #[arg(
        long,
        env = "BREVDUE_SERVER",
        default_value = "https://127.0.0.1:50051",
        global = true
    )]
    server: String,
    #[command(subcommand)]
    command: OpsCommand,
}

/// Which letters (every flag given must match).
#[derive(Args, Clone, Default)]
pub struct SelectionArgs {
    /// Only this sender's letters (CVR).
    #[arg(long)]
    sender: Option<Cvr>,
    /// Only letters of this route: mailbox or print.
    #[arg(long, value_parser = parse_route)]
    route: Option<pb::DeliveryRoute>,
    /// Only letters in this state (repeat for several); the default depends on the command.
    #[arg(long = "state", value_parser = parse_state)]
    states: Vec<LetterState>,
    /// Only letters of this batch.
    #[arg(long)]
    batch: Option<String>,
    /// Only letters accepted at least this long ago, e.g. `2h`, `3days`.
    #[arg(long, value_parser = humantime::parse_duration)]
    older_than: Option<Duration>,
}

#[derive(Subcommand, Clone)]
enum OpsCommand {
    /// Who the certificate says you are.
    Whoami,
    /// Dead letters (and, with --state, other letters), oldest first.
    Dead {
        #[command(subcommand)]
        command: DeadOps,
    },
    /// Put dead letters back in the queue for a fresh round of attempts (a bulk job).
    Retry(JobArgs),
    /// Cancel waiting letters (a bulk job): they end CANCELLED and their content is destroyed.
    Cancel(JobArgs),
    /// Destroy dead letters' content for good (a bulk job); they stay FAILED on record.
    Purge(JobArgs),
    /// The newest bulk jobs.
    Jobs {
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// One job's progress and failures.
    Job { id: String },
    /// Hold a route (mailbox or print): its letters wait, none is tried or fails.
    Hold {
        #[arg(value_parser = parse_route)]
        route: pb::DeliveryRoute,
        /// Why, for the audit trail and the dashboard.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Release a held route: its letters are delivered again.
    Release {
        #[arg(value_parser = parse_route)]
        route: pb::DeliveryRoute,
    },
    /// The routes held now.
    Holds,
    /// One sender in detail: letters by state, oldest waiting, rate, rejections, last error.
    Sender { cvr: Cvr },
    /// Refuse a sender's calls until resumed.
    Suspend { cvr: Cvr },
    /// Let a suspended sender send again.
    Resume { cvr: Cvr },
    /// Who did what, newest first.
    Audit {
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

#[derive(Subcommand, Clone)]
enum DeadOps {
    List {
        #[command(flatten)]
        selection: SelectionArgs,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
}

#[derive(Args, Clone)]
pub struct JobArgs {
    #[command(flatten)]
    selection: SelectionArgs,
    /// Start the job and print its id without waiting for it.
    #[arg(long)]
    no_wait: bool,
    /// Your id for this request: the same id again returns the job it started [default: new].
    #[arg(long)]
    request_id: Option<String>,
}

fn parse_route(s: &str) -> Result<pb::DeliveryRoute, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "mailbox" => Ok(pb::DeliveryRoute::Mailbox),
        "print" => Ok(pb::DeliveryRoute::Print),
        _ => Err(format!("{s:?} is not a route: give mailbox or print")),
    }
}

fn parse_state(s: &str) -> Result<LetterState, String> {
    LetterState::parse_name(s.trim()).ok_or_else(|| {
        let names: Vec<&str> = LetterState::ALL.iter().map(|s| s.as_str()).collect();
        format!(
            "{s:?} is not a letter state: give one of {}",
            names.join(", ")
        )
    })
}

fn state_to_pb(s: LetterState) -> i32 {
    pb::LetterState::from_str_name(s.as_str())
        .map(|s| s as i32)
        .unwrap_or(0)
}

fn state_name(v: i32) -> &'static str {
    pb::LetterState::try_from(v)
        .map(|s| s.as_str_name())
        .unwrap_or("UNKNOWN")
}

fn route_name(v: i32) -> &'static str {
    match pb::DeliveryRoute::try_from(v) {
        Ok(pb::DeliveryRoute::Mailbox) => "mailbox",
        Ok(pb::DeliveryRoute::Print) => "print",
        _ => "-",
    }
}

impl SelectionArgs {
    fn to_pb(&self) -> pb::Selection {
        pb::Selection {
            sender_cvr: self.sender.map(|c| c.to_string()).unwrap_or_default(),
            route: self.route.map(|r| r as i32).unwrap_or(0),
            states: self.states.iter().map(|s| state_to_pb(*s)).collect(),
            batch_id: self.batch.clone().unwrap_or_default(),
            older_than_ms: self
                .older_than
                .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
                .unwrap_or(0),
        }
    }
}

/// A status from the gateway as one sentence for stderr.
fn refused(what: &str, s: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{what}: {} ({:?})", s.message(), s.code())
}

/// Runs one `brevdue ops` command.
pub async fn run(args: OpsArgs) -> Result<ExitCode> {
    let Some(cert_dir) = args.cert_dir.clone() else {
        bail!(
            "give --cert-dir DIR (the directory `brevdue operators add --out DIR` wrote) or set BREVDUE_OPERATOR_CERT_DIR"
        );
    };
    let mut ops = connect(&args.server, &cert_dir)
        .await
        .with_context(|| format!("cannot reach the operator API at {}", args.server))?;
    match args.command {
        OpsCommand::Whoami => {
            let me = ops
                .who_am_i(pb::WhoAmIRequest {})
                .await
                .map_err(|s| refused("whoami", s))?
                .into_inner();
            println!("operator {} (certificate {})", me.name, me.fingerprint);
        }
        OpsCommand::Dead {
            command: DeadOps::List { selection, limit },
        } => dead_list(&mut ops, &selection, limit).await?,
        OpsCommand::Retry(job) => return run_job(&mut ops, pb::JobKind::JobRetry, job).await,
        OpsCommand::Cancel(job) => return run_job(&mut ops, pb::JobKind::JobCancel, job).await,
        OpsCommand::Purge(job) => return run_job(&mut ops, pb::JobKind::JobPurge, job).await,
        OpsCommand::Jobs { limit } => {
            let jobs = ops
                .list_jobs(pb::ListJobsRequest { limit })
                .await
                .map_err(|s| refused("jobs", s))?
                .into_inner()
                .jobs;
            if jobs.is_empty() {
                println!("no jobs");
            }
            for j in &jobs {
                print_job_line(j);
            }
        }
        OpsCommand::Job { id } => {
            let j = ops
                .get_job(pb::JobQuery { job_id: id })
                .await
                .map_err(|s| refused("job", s))?
                .into_inner();
            print_job_line(&j);
            print_failures(&j);
        }
        OpsCommand::Hold { route, reason } => {
            let holds = ops
                .hold_route(pb::RouteRequest {
                    route: route as i32,
                    reason,
                })
                .await
                .map_err(|s| refused("hold", s))?
                .into_inner();
            println!(
                "{} is held: its letters wait until released",
                route_name(route as i32)
            );
            print_holds(&holds);
        }
        OpsCommand::Release { route } => {
            let holds = ops
                .release_route(pb::RouteRequest {
                    route: route as i32,
                    reason: String::new(),
                })
                .await
                .map_err(|s| refused("release", s))?
                .into_inner();
            println!(
                "{} is released: its letters are delivered again",
                route_name(route as i32)
            );
            print_holds(&holds);
        }
        OpsCommand::Holds => {
            let holds = ops
                .list_holds(pb::ListHoldsRequest {})
                .await
                .map_err(|s| refused("holds", s))?
                .into_inner();
            print_holds(&holds);
        }
        OpsCommand::Sender { cvr } => {
            let r = ops
                .get_sender(sender_req(cvr))
                .await
                .map_err(|s| refused("sender", s))?
                .into_inner();
            print_sender(&r);
        }
        OpsCommand::Suspend { cvr } => {
            let r = ops
                .suspend_sender(sender_req(cvr))
                .await
                .map_err(|s| refused("suspend", s))?
                .into_inner();
            println!("sender {cvr} is suspended: its calls are refused until resumed");
            print_sender(&r);
        }
        OpsCommand::Resume { cvr } => {
            let r = ops
                .resume_sender(sender_req(cvr))
                .await
                .map_err(|s| refused("resume", s))?
                .into_inner();
            println!("sender {cvr} may send again");
            print_sender(&r);
        }
        OpsCommand::Audit { limit } => {
            let page = ops
                .list_audit(pb::AuditQuery {
                    limit,
                    before_id: 0,
                })
                .await
                .map_err(|s| refused("audit", s))?
                .into_inner();
            if page.entries.is_empty() {
                println!("the audit trail is empty");
            }
            for a in &page.entries {
                println!(
                    "{}  {:<20} {:<16} {:>7} letters  {}  -> {}",
                    time_of(a.at_unix_ms),
                    a.operator,
                    a.action,
                    a.letters,
                    a.selection,
                    a.result
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn sender_req(cvr: Cvr) -> pb::SenderRequest {
    pb::SenderRequest {
        sender_cvr: cvr.to_string(),
    }
}

async fn dead_list(ops: &mut OpsClient, selection: &SelectionArgs, limit: u32) -> Result<()> {
    let mut token = String::new();
    let mut shown = 0u32;
    let mut total = 0;
    println!(
        "{:<36} {:<9} {:<7} {:<13} {:>8} {:>10}  last error",
        "letter", "sender", "route", "state", "attempts", "age"
    );
    while shown < limit {
        let page = ops
            .list_dead_letters(pb::DeadLetterQuery {
                selection: Some(selection.to_pb()),
                page_size: (limit - shown).min(500),
                page_token: token.clone(),
            })
            .await
            .map_err(|s| refused("dead letters", s))?
            .into_inner();
        total = page.total;
        for l in &page.letters {
            println!(
                "{:<36} {:<9} {:<7} {:<13} {:>8} {:>10}  {}",
                l.letter_id,
                l.sender_cvr,
                route_name(l.route),
                state_name(l.state),
                l.attempts,
                humantime::format_duration(Duration::from_secs(
                    u64::try_from(l.age_ms / 1000).unwrap_or(0)
                ))
                .to_string(),
                l.last_error
            );
        }
        shown += page.letters.len() as u32;
        if page.next_page_token.is_empty() || page.letters.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    println!("{shown} shown of {total} matching");
    Ok(())
}

/// Starts a job and, unless told not to, follows it with a progress bar until done.
async fn run_job(ops: &mut OpsClient, kind: pb::JobKind, args: JobArgs) -> Result<ExitCode> {
    let request_id = args
        .request_id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let mut job = ops
        .start_job(Request::new(pb::JobRequest {
            kind: kind as i32,
            selection: Some(args.selection.to_pb()),
            request_id,
        }))
        .await
        .map_err(|s| refused("the job was not started", s))?
        .into_inner();
    println!("job {} ({} letters)", job.job_id, job.total);
    if args.no_wait {
        println!("follow it with `brevdue ops job {}`", job.job_id);
        return Ok(ExitCode::SUCCESS);
    }
    let bar = super::send::progress_bar(job.total);
    while job.state != pb::JobState::JobDone as i32 {
        bar.set_position(job.done);
        tokio::time::sleep(Duration::from_millis(250)).await;
        job = ops
            .get_job(pb::JobQuery {
                job_id: job.job_id.clone(),
            })
            .await
            .map_err(|s| refused("progress", s))?
            .into_inner();
    }
    bar.set_position(job.done);
    bar.finish();
    println!(
        "done: {} changed, {} left as they were",
        job.done.saturating_sub(job.failed),
        job.failed
    );
    print_failures(&job);
    Ok(if job.failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn kind_name(v: i32) -> &'static str {
    match pb::JobKind::try_from(v) {
        Ok(pb::JobKind::JobRetry) => "retry",
        Ok(pb::JobKind::JobCancel) => "cancel",
        Ok(pb::JobKind::JobPurge) => "purge",
        _ => "-",
    }
}

fn print_job_line(j: &pb::Job) {
    let state = if j.state == pb::JobState::JobDone as i32 {
        "done"
    } else {
        "running"
    };
    println!(
        "{}  {:<6} {:<7} {:>7}/{:<7} failed {:<6} by {:<16} started {}",
        j.job_id,
        kind_name(j.kind),
        state,
        j.done,
        j.total,
        j.failed,
        j.operator,
        time_of(j.created_at_unix_ms)
    );
}

fn print_failures(j: &pb::Job) {
    for f in &j.failures {
        println!("  {}  {}", f.letter_id, f.reason);
    }
    if j.failed > j.failures.len() as u64 {
        println!("  … {} in all", j.failed);
    }
}

fn print_holds(holds: &pb::RouteHolds) {
    if holds.holds.is_empty() {
        println!("no route is held");
    }
    for h in &holds.holds {
        println!(
            "held: {:<7} since {} by {}{}",
            route_name(h.route),
            time_of(h.held_since_unix_ms),
            h.operator,
            if h.reason.is_empty() {
                String::new()
            } else {
                format!(" ({})", h.reason)
            }
        );
    }
}

fn print_sender(r: &pb::SenderReport) {
    println!(
        "{} {} ({}){}",
        r.sender_cvr,
        r.name,
        r.kind,
        if r.suspended { ", SUSPENDED" } else { "" }
    );
    let states: Vec<String> = r
        .letters_by_state
        .iter()
        .map(|c| format!("{} {}", c.name, c.count))
        .collect();
    println!(
        "  letters:        {}",
        if states.is_empty() {
            "none".to_string()
        } else {
            states.join(", ")
        }
    );
    if r.oldest_waiting_ms > 0 {
        println!(
            "  oldest waiting: {}",
            humantime::format_duration(Duration::from_secs(
                u64::try_from(r.oldest_waiting_ms / 1000).unwrap_or(0)
            ))
        );
    }
    println!(
        "  accepted:       {} in the last minute, {} in the last hour",
        r.accepted_last_minute, r.accepted_last_hour
    );
    let rejected: Vec<String> = r
        .rejections_by_reason
        .iter()
        .map(|c| format!("{} {}", c.name, c.count))
        .collect();
    if !rejected.is_empty() {
        println!("  rejected:       {}", rejected.join(", "));
    }
    if !r.last_error.is_empty() {
        println!("  last error:     {}", r.last_error);
    }
}

fn time_of(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}
