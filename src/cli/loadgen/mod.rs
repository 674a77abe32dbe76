//! `brevdue loadgen`: durable end-to-end throughput, beside the raw ceilings measured in the same
//! run on the same machine: gRPC with no work, sealing alone, the store alone, the queue alone,
//! synced appends to the disk.
//!
//! Two ways to run the throughput scenario: in this process, on a fresh gateway (`throughput`;
//! the ceilings' home), or from outside, against gateways that run on their own (`--target`,
//! see `outside`): the figure that counts, as senders see it, with delivery and the gateway's
//! memory measured over the same window. The numbers are a measurement, not a test: nothing
//! here asserts a speed.
//!
//! `--scenario flood` measures something else on the same kind of gateway: urgent letters'
//! latency while one sender floods it (see `flood`). A new scenario is a variant of
//! [`Scenario`], a module, and one arm in [`run`].

mod ceilings;
mod flood;
mod gateway;
mod outside;
mod registry;
mod scrape;
mod server_proc;
mod streams;
mod throughput;
mod work;

use std::path::PathBuf;

use anyhow::{Result, bail};
use bytesize::ByteSize;

use crate::config::{QueueUrl, StoreUrl};
use crate::domain::{Document, Letter, MessageUuid, Priority, RecipientId};

/// What `brevdue loadgen` measures.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// Durable end-to-end throughput against the raw ceilings of this machine.
    Throughput,
    /// Month-end flood: URGENT letters' accept-to-delivered latency while one sender streams a
    /// large BULK batch, against the idle gateway; the flood's throughput against the sender
    /// alone; memory through the flood; the time its backlog takes to deliver. The queues of a
    /// `--queue` prefix are deleted at the end.
    Flood,
    /// The registry at national scale: a Denmark-sized registry imported by `registry import`
    /// in its own process, a gateway started on it in its own process (start time, memory),
    /// then changes applied while it routes, each batch's visibility timed.
    Registry,
}

#[derive(clap::Args, Clone)]
pub struct LoadgenArgs {
    /// What to measure.
    #[arg(long, value_enum, default_value_t = Scenario::Throughput)]
    pub scenario: Scenario,
    /// Letters per measurement (throughput scenario).
    #[arg(long, default_value_t = 20_000)]
    pub letters: usize,
    /// Size of each letter's document.
    #[arg(long, default_value = "10KB")]
    pub size: ByteSize,
    /// Concurrent SubmitBatch streams.
    #[arg(long, default_value_t = 4)]
    pub streams: usize,
    /// Data directory for the gateway under test [default: a fresh temporary one].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Store URL for the gateway under test (e.g. a scratch `postgres://…` database: the run
    /// writes letters and a synthetic registry into it) [default: SQLite in the data directory].
    #[arg(long)]
    pub store: Option<StoreUrl>,
    /// Queue URL for the gateway under test (e.g. `amqp://…?prefix=loadgen.`) [default: embedded].
    #[arg(long)]
    pub queue: Option<QueueUrl>,
    #[command(flatten)]
    pub flood: flood::FloodArgs,
    #[command(flatten)]
    pub outside: outside::OutsideArgs,
    #[command(flatten)]
    pub registry: registry::RegistryArgs,
}

pub async fn run(args: LoadgenArgs) -> Result<()> {
    if let Some(path) = &args.outside.write_recipients {
        return outside::write_recipients(path);
    }
    let from_outside = !args.outside.target.is_empty();
    match (args.scenario, from_outside) {
        (Scenario::Throughput, false) => throughput::run(&args).await,
        (Scenario::Throughput, true) => outside::run(&args).await,
        (Scenario::Flood, false) => flood::run(&args).await,
        (Scenario::Flood, true) => {
            bail!("--scenario flood runs its own gateway; --target drives the throughput scenario")
        }
        (Scenario::Registry, false) => registry::run(&args).await,
        (Scenario::Registry, true) => {
            bail!(
                "--scenario registry runs its own gateway; --target drives the throughput scenario"
            )
        }
    }
}

pub(super) fn sample_letter(id: RecipientId, size: usize) -> Letter {
    let mut content = b"%PDF-1.4\n".to_vec();
    content.resize(size, b'x');
    Letter {
        message_uuid: MessageUuid::random(),
        recipient: id,
        title: "Loadgen letter".into(),
        main_document: Document {
            filename: "a.pdf".into(),
            media_type: "application/pdf".into(),
            content,
        },
        attachments: vec![],
        print_fallback: false,
        priority: Priority::Normal,
        sender_reference: String::new(),
    }
}
