//! Running the gateway: wires the stages together on bound listeners and runs until the
//! shutdown future completes, then drains within the grace period.
//!
//! Order of shutdown: the gRPC server stops taking calls and finishes the ones in flight (their
//! letters are committed and receipted), then the committer drains, then delivery and the
//! background tasks stop. Queued deliveries stay in the queue for the next start.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::{self, AdminState, Sampler};
use crate::config::Config;
use crate::datadir::DataDir;
use crate::deliver::{Deliverer, MailboxOutbox, PrintSpool};
use crate::directory::Directory;
use crate::ingest::{GrpcSettings, TlsMaterial, capped, grpc_server};
use crate::pipeline::Committer;
use crate::pipeline::Gateway;
use crate::pki::Pki;
use crate::queue::{self, Queue};
use crate::store::{self, Store};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    DataDir(#[from] crate::datadir::DataDirError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Queue(#[from] queue::QueueError),
    #[error(transparent)]
    Sweep(#[from] crate::outbox::SweepError),
    #[error(transparent)]
    Directory(#[from] crate::directory::DirectoryError),
    #[error(transparent)]
    Pki(#[from] crate::pki::PkiError),
    #[error(transparent)]
    Delivery(#[from] crate::deliver::DeliverError),
    #[error("the gateway stopped while starting")]
    StoppedStarting,
    #[error("gateway task")]
    Task(#[from] tokio::task::JoinError),
    #[error("gRPC server: {0}")]
    Grpc(#[from] tonic::transport::Error),
    #[error("operator HTTP server: {0}")]
    Admin(std::io::Error),
    #[error(transparent)]
    AdminToken(#[from] admin::TokenError),
}

/// Re-queues every stored letter still waiting whose delivery is not known to be queued
/// (idempotent; see [`crate::outbox`]). Covers a crash between a batch's store commit and its
/// queue commit, without publishing again what the queue holds.
pub async fn requeue_undelivered(
    store: &dyn Store,
    queue: &dyn Queue,
    config: &crate::outbox::OutboxConfig,
) -> Result<usize, ServerError> {
    Ok(crate::outbox::recover(store, queue, config).await?)
}

/// Runs a gateway on the given listeners until `shutdown` completes.
pub async fn run(
    config: Config,
    grpc: TcpListener,
    admin_listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    run_signalling(config, grpc, admin_listener, shutdown, None).await
}

async fn run_signalling(
    config: Config,
    grpc: TcpListener,
    admin_listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    ready: Option<tokio::sync::oneshot::Sender<()>>,
) -> Result<(), ServerError> {
    config.validate()?;
    let data = DataDir::create(&config.data_dir)?;
    // The embedded store and queue are files of this process alone; the production backends
    // are shared by design (several gateways, one database, one broker, one data directory).
    let (store_url, queue_url) = (config.store_url(), config.queue_url());
    let embedded = store_url.is_embedded() || queue_url.is_embedded();
    let _lock = if embedded { Some(data.lock()?) } else { None };
    let store = store::open_with(&store_url, &config.database).await?;
    // An embedded queue file that is not there yet holds nothing the store's publish markers
    // may vouch for (a new data directory, or one whose queue was removed).
    let queue_is_new = matches!(&queue_url, crate::backend::QueueUrl::Embedded(p) if !p.exists());
    let queue = queue::open_with(&queue_url, true, &config.database, config.broker).await?;
    tracing::info!(store = %store_url, queue = %queue_url, "backends open");
    let token = match &config.admin_token_file {
        Some(path) => admin::AdminToken::from_file(path)?,
        None => admin::AdminToken::none(),
    };
    let directory = Directory::load(store.clone(), &data.keys()).await?;
    let pki = Pki::open_or_create(&data.pki())?;
    let (cert_pem, key_pem) = pki.server_identity()?;
    let tls = TlsMaterial {
        cert_pem,
        key_pem,
        ca_pem: pki.ca_pem()?,
    };

    let holds = crate::operators::Holds::load(store.clone()).await?;
    let spool = PrintSpool::open(&data.print_spool(), &data.print_staging())
        .map_err(crate::deliver::DeliverError::from)?;
    let deliverer = Arc::new(Deliverer {
        store: store.clone(),
        queue: queue.clone(),
        directory: directory.clone(),
        mailbox: MailboxOutbox::open(&data.mailbox_outbox(), &spool)
            .map_err(crate::deliver::DeliverError::from)?,
        spool,
        config: config.delivery.clone(),
        memo: config.memo.clone(),
        holds: holds.clone(),
        mailbox_order: Default::default(),
    });
    deliverer.recover_spool().await?;
    queue.set_senders(&directory.shares()).await?;
    if queue_is_new {
        store.forget_all_marks().await?;
    }
    let requeued = requeue_undelivered(&*store, &*queue, &config.outbox).await?;

    let tracker = TaskTracker::new();
    let work = CancellationToken::new();
    let commit_stop = CancellationToken::new();
    // The committer enqueues through the outbox, which marks what the queue confirmed.
    let marked = crate::outbox::Marked::new(queue.clone(), store.clone());
    let marks_stop = CancellationToken::new();
    crate::outbox::spawn(
        marked.clone(),
        store.clone(),
        config.outbox.clone(),
        &tracker,
        marks_stop.clone(),
    );
    let committer = Committer::spawn(
        store.clone(),
        marked.clone(),
        config.commit.clone(),
        &tracker,
        commit_stop.clone(),
    );
    if config.delivery.enabled {
        deliverer.spawn(&tracker, work.clone());
    } else {
        tracing::info!(
            "delivery is disabled on this instance: letters are accepted and queued only"
        );
    }
    crate::retention::spawn(
        store.clone(),
        config.retention.clone(),
        &tracker,
        work.clone(),
    );
    let sampler = Sampler::new(queue.clone());
    sampler.spawn(&tracker, work.clone());
    tracker.spawn(maintain(
        directory.clone(),
        store.clone(),
        queue.clone(),
        committer.clone(),
        config.refresh_interval,
        config.outbox.clone(),
        work.clone(),
    ));

    crate::directory::spawn_follower(
        directory.clone(),
        config.registry.clone(),
        &tracker,
        work.clone(),
    );

    let follow = crate::follow::Follow::new(store.clone(), config.events.clone());
    crate::follow::spawn_pruner(
        store.clone(),
        config.events.retention,
        &tracker,
        work.clone(),
    );
    let rejections = crate::follow::RejectionLog::spawn(store.clone(), &tracker, work.clone());
    let gateway = Arc::new(Gateway::new(
        directory,
        store.clone(),
        committer,
        config.limits.clone(),
        follow,
        rejections,
    ));
    let admission = crate::admission::Admission::new(config.admission.clone());
    tracker.spawn(report_admission(admission.clone(), work.clone()));
    let stop = CancellationToken::new();
    let roster = crate::operators::Roster::load(store.clone()).await?;
    tracker.spawn(
        roster
            .clone()
            .keep_fresh(config.refresh_interval, work.clone()),
    );
    let jobs =
        crate::operators::JobRunner::new(store.clone(), queue.clone(), config.operations.clone());
    tracker.spawn(jobs.clone().run(work.clone()));
    tracker.spawn(
        holds
            .clone()
            .keep_fresh(config.refresh_interval, work.clone()),
    );
    tracker.spawn(crate::operators::gauges::run(
        store.clone(),
        holds.clone(),
        work.clone(),
    ));
    let console = Arc::new(crate::operators::Console {
        store: store.clone(),
        directory: gateway.directory.clone(),
        roster,
        holds,
        jobs,
    });
    let router = grpc_server(
        gateway,
        admission,
        console.clone(),
        stop.clone(),
        GrpcSettings {
            tls: &tls,
            max_letter_bytes: usize::try_from(config.limits.max_letter_size.as_u64())
                .unwrap_or(usize::MAX),
            in_flight_per_stream: config.stream_in_flight,
            max_bytes_in_flight: config.admission.max_bytes_in_flight.as_u64(),
            transport: &config.grpc,
        },
    )
    .await?;

    let readiness = admin::Readiness::default();
    // The first verdict before serving, so a probe right after start-up is answered truly.
    readiness.probe(&*store, &*queue).await;
    tracker.spawn(
        readiness
            .clone()
            .run(store.clone(), queue.clone(), work.clone()),
    );
    let admin_app = admin::router(AdminState {
        store: store.clone(),
        queue: queue.clone(),
        metrics: crate::telemetry::prometheus(),
        sampler,
        ready: readiness,
        token,
        console,
    });
    let dashboard = admin_listener
        .local_addr()
        .map(|a| format!("http://{a}/dashboard"))
        .unwrap_or_default();
    let admin_stop = stop.clone();
    let admin_task = tracker.spawn(async move {
        axum::serve(admin_listener, admin_app)
            .with_graceful_shutdown(async move { admin_stop.cancelled().await })
            .await
    });

    tracing::info!(
        grpc = %grpc.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        dashboard = %dashboard,
        requeued,
        "brevdue gateway serving"
    );
    let grpc_stop = stop.clone();
    let incoming = capped(grpc, config.grpc.max_connections);
    let serve =
        router.serve_with_incoming_shutdown(incoming, async move { grpc_stop.cancelled().await });
    tokio::pin!(serve);
    if let Some(ready) = ready {
        // The starter may have stopped waiting; serving goes on regardless.
        let _ = ready.send(());
    }
    let stop_on_signal = stop.clone();
    tracker.spawn(async move {
        tokio::select! {
            () = shutdown => stop_on_signal.cancel(),
            // Stopped another way (the server failed): nothing left to wait for.
            () = stop_on_signal.cancelled() => {}
        }
    });
    let served = tokio::select! {
        r = &mut serve => Some(r),
        () = stop.cancelled() => None,
    };
    // One deadline for the whole drain, from the moment the stop came: open streams finish
    // and receipt what they read, then the committer and delivery finish, all within
    // `shutdown_grace` (which the deploy files give the process, with a margin).
    let deadline = tokio::time::Instant::now() + config.shutdown_grace;
    let served = match served {
        Some(r) => r,
        None => match tokio::time::timeout_at(deadline, &mut serve).await {
            Ok(r) => r,
            Err(_) => {
                tracing::warn!("shutdown grace period over; closing the remaining streams");
                Ok(())
            }
        },
    };
    stop.cancel();
    tracing::info!("gRPC server stopped; draining the committer and delivery");
    commit_stop.cancel();
    work.cancel();
    tracker.close();
    if tokio::time::timeout_at(deadline, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("background tasks did not finish within the grace period");
    }
    // The committer is done: the markers of its last batches, so the next start publishes
    // nothing again.
    marks_stop.cancel();
    if let Err(e) = marked.flush().await {
        tracing::warn!(error = %crate::error_report::chain(&e), "could not write the last publish markers; the next start queues those letters again");
    }
    // Past the deadline the admin server is left behind, not waited for.
    if !admin_task.is_finished() {
        admin_task.abort();
    }
    match admin_task.await {
        Err(e) if e.is_cancelled() => {}
        Ok(Err(e)) => return Err(ServerError::Admin(e)),
        Err(e) => return Err(ServerError::Admin(std::io::Error::other(e))),
        Ok(Ok(())) => {}
    }
    served?;
    tracing::info!("brevdue gateway stopped");
    Ok(())
}

/// Publishes the admission gate's load every second (waiting letters, letters and bytes in the
/// pipeline).
async fn report_admission(admission: Arc<crate::admission::Admission>, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            _ = tick.tick() => crate::telemetry::admission_load(admission.load()),
        }
    }
}

/// Periodic upkeep: pick up admin changes, re-queue after a queue outage. (Queue depth is
/// published by the dashboard's sampler, every second.)
async fn maintain(
    directory: Arc<Directory>,
    store: Arc<dyn Store>,
    queue: Arc<dyn Queue>,
    committer: Committer,
    every: Duration,
    outbox: crate::outbox::OutboxConfig,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        match directory.refresh().await {
            Ok(true) => {
                if let Err(e) = queue.set_senders(&directory.shares()).await {
                    tracing::warn!(error = %e, "could not pass the new sender shares to the queue");
                }
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "could not refresh senders, registry or keys; keeping the current ones");
            }
        }
        if let Err(e) = queue.tidy().await {
            tracing::warn!(error = %crate::error_report::chain(&e), "queue upkeep failed; tried again at the next refresh");
        }
        if committer.needs_resync.swap(false, Ordering::SeqCst) {
            match requeue_undelivered(&*store, &*queue, &outbox).await {
                Ok(n) => tracing::info!(
                    letters = n,
                    "re-queued waiting letters after a queue outage"
                ),
                Err(e) => {
                    committer.needs_resync.store(true, Ordering::SeqCst);
                    tracing::warn!(error = %e, "re-queueing failed; will try again");
                }
            }
        }
    }
}

/// A gateway running in this process (the demo, the load generator and the tests use it).
pub struct Running {
    pub grpc_addr: std::net::SocketAddr,
    pub admin_addr: std::net::SocketAddr,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), ServerError>>,
}

impl Running {
    /// Stops the gateway the way SIGTERM does and waits for it.
    pub async fn shutdown(self) -> Result<(), ServerError> {
        self.stop.cancel();
        self.task.await?
    }

    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

/// Binds the configured addresses (port 0 picks a free port) and starts a gateway in the
/// background; returns once it serves (or with the error that stopped it starting).
pub async fn start(config: Config) -> Result<Running, ServerError> {
    let grpc = TcpListener::bind(config.listen)
        .await
        .map_err(ServerError::Admin)?;
    let admin = TcpListener::bind(config.admin_listen)
        .await
        .map_err(ServerError::Admin)?;
    let grpc_addr = grpc.local_addr().map_err(ServerError::Admin)?;
    let admin_addr = admin.local_addr().map_err(ServerError::Admin)?;
    let stop = CancellationToken::new();
    let signal = stop.clone();
    let (ready, is_ready) = tokio::sync::oneshot::channel();
    let mut task = tokio::spawn(run_signalling(
        config,
        grpc,
        admin,
        async move { signal.cancelled().await },
        Some(ready),
    ));
    if is_ready.await.is_err() {
        // The signal was dropped: the gateway stopped before serving; report why.
        return match (&mut task).await {
            Ok(Err(e)) => Err(e),
            Ok(Ok(())) => Err(ServerError::StoppedStarting),
            Err(e) => Err(ServerError::Task(e)),
        };
    }
    Ok(Running {
        grpc_addr,
        admin_addr,
        stop,
        task,
    })
}
