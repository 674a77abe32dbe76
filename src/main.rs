//! The `brevdue` command: parses arguments, sets up logging, runs one command, and exits with 0
//! (success), 1 (runtime failure) or 2 (usage error or bad configuration).

use std::process::ExitCode;

use brevdue::cli::command::{Cli, run};
use brevdue::config::ConfigError;
use clap::Parser;

/// jemalloc hands a long-running gateway's heap back once a backlog drains, which glibc's malloc
/// did not, and costs less CPU per letter-sized buffer (see Cargo.toml).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, which it reads from this symbol when it starts (a C string). Allocations
/// above 1 MiB (large letters, their MeMo messages) go to an arena that hands pages back when
/// they are freed, and freed pages are returned within a second rather than ten: with the
/// defaults, delivering 2 MiB letters kept freed ones mapped and the gateway's peak rose from
/// 89 to 132 MiB (`tests/delivery_memory.rs`). Setting `_RJEM_MALLOC_CONF` overrides it.
#[unsafe(export_name = "_rjem_malloc_conf")]
static MALLOC_CONF: &[u8; 64] =
    b"oversize_threshold:1048576,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

fn main() -> ExitCode {
    // clap exits with 2 itself on a usage error.
    let cli = Cli::parse();
    let default_filter = if cli.talks_to_a_person() {
        "warn,sqlx=error"
    } else {
        "info,sqlx=warn"
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BREVDUE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .with_writer(std::io::stderr)
        .init();
    // Another provider already installed is fine: it is the same one (ring) in this binary.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("brevdue: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli, shutdown_signal())) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("brevdue: {e:#}");
            if e.downcast_ref::<ConfigError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

/// Completes on SIGTERM or Ctrl-C: the one signal future the gateway is given.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    // Without a SIGTERM handler, Ctrl-C alone stops the gateway; if even that cannot be
    // installed, the gateway runs until killed.
    if ctrl_c.await.is_err() {
        std::future::pending::<()>().await;
    }
}
