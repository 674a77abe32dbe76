//! 200 open `follow` streams whose readers do not read hold the gateway's memory to their
//! bounds: each stream keeps at most one page of events plus a channel of the same size
//! (`events.page_events`), and the transport at most the client's HTTP/2 window, whatever the
//! backlog behind them in the store. The gateway runs as its own process and its resident
//! memory is read from /proc.
//!
//! Embedded backend only: the bound is the stream's, the same on every backend, and 200
//! streams against a shared broker's per-test queues would add nothing but load.

mod common;

use std::process::Command;
use std::time::Duration;

use brevdue::cli::client::Client;
use brevdue::ingest::pb;
use brevdue::ingest::pb::letter_gateway_client::LetterGatewayClient;
use common::follow::*;
use common::*;

const STREAMS: usize = 200;
const PAGE_EVENTS: u64 = 64;
const LETTERS: usize = 3000;

fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

/// Stream window of the test's clients: what a gateway may send a stream before its reader
/// reads.
const CLIENT_STREAM_WINDOW: u32 = 64 * 1024;

async fn connect_small_windows(server: &str, cert_dir: &std::path::Path) -> Client {
    use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
    let read = |name: &str| std::fs::read(cert_dir.join(name)).expect("certificate file");
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read("ca.pem")))
        .identity(Identity::from_pem(read("sender.pem"), read("sender.key")))
        .domain_name("localhost");
    let channel = Channel::from_shared(server.to_string())
        .expect("server URL")
        .tls_config(tls)
        .expect("tls")
        .initial_stream_window_size(Some(CLIENT_STREAM_WINDOW))
        .initial_connection_window_size(Some(16 * CLIENT_STREAM_WINDOW))
        .connect()
        .await
        .expect("connect");
    LetterGatewayClient::new(channel)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_follow_streams_stay_within_their_bounds() {
    let h = Harness::prepare_on(Backend::Embedded).await;
    let config = h.outside.path().join("brevdue.toml");
    std::fs::write(
        &config,
        format!("[events]\nmax_streams_per_sender = {STREAMS}\npage_events = {PAGE_EVENTS}\n"),
    )
    .expect("config");
    let mut command = Command::new(env!("CARGO_BIN_EXE_brevdue"));
    command
        .args(h.serve_args(0, 0))
        .args(["--config", config.to_str().expect("utf8")])
        .env("BREVDUE_LOG", "warn");
    let (gateway, server) = spawn_serve(command);
    let pid = gateway.id();

    // A backlog far larger than the bound: every stream starts at the oldest event.
    let mut c = connect(&server, &h.cert_dir(AUTHORITY)).await;
    let recipients = [ACTIVE_OTHER, UNKNOWN];
    let receipts = stream(
        &mut c,
        (0..LETTERS)
            .map(|i| letter(recipients[i % 2], "Hukommelse", b"%PDF-1.4 memory"))
            .collect(),
    )
    .await;
    assert!(receipts.iter().all(|r| outcome(r) != pb::Outcome::Rejected));
    let backlog = events_now(&mut c, "", false).await.len();
    let before = vm_rss_kib(pid);

    // Clients with small HTTP/2 windows, so that the backlog cannot drain into them and every
    // stream's task in the gateway really waits on its reader. Ten streams a connection:
    // unread streams hold their connection's window, which must leave room for all of them.
    // Each stream gives one event, which proves it is open and has read its first page, and
    // then is left unread.
    let mut clients = Vec::new();
    for _ in 0..STREAMS / 10 {
        clients.push(connect_small_windows(&server, &h.cert_dir(AUTHORITY)).await);
    }
    let mut streams = Vec::with_capacity(STREAMS);
    for i in 0..STREAMS {
        let n = clients.len();
        let mut s = follow(&mut clients[i % n], "", false).await;
        next_event(&mut s, Duration::from_secs(60)).await;
        streams.push(s);
    }
    // The peak over a few seconds of the streams pushing into their full windows.
    let mut peak = 0;
    for _ in 0..30 {
        peak = peak.max(vm_rss_kib(pid));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let grown = peak.saturating_sub(before);

    // Per stream: a page and a channel of events, at a generous 1 KiB each in memory (an event
    // is some 200 bytes), and 256 KiB of transport (what the client's 64 KiB window lets
    // through, the encoder's buffer, TLS records, a share of the connection), where the whole
    // backlog would be a megabyte or more a stream.
    let per_stream_kib = 2 * PAGE_EVENTS + 256;
    let bound_kib = STREAMS as u64 * per_stream_kib;
    eprintln!(
        "{STREAMS} follow streams over a backlog of {backlog} events: resident {before} KiB before, \
         {peak} KiB at the peak, grown {grown} KiB ({} KiB a stream); bound {bound_kib} KiB",
        grown / STREAMS as u64
    );
    // Every acceptance is in the log before its receipt; deliveries add to it meanwhile.
    assert!(backlog >= LETTERS, "{backlog}");
    assert!(
        grown <= bound_kib,
        "{STREAMS} streams grew the gateway by {grown} KiB, above their bound of {bound_kib} KiB"
    );
    // Readers that do read get their events: a stream paced is not a stream stuck.
    let mut first = streams.swap_remove(0);
    for _ in 0..(4 * PAGE_EVENTS) {
        next_event(&mut first, Duration::from_secs(60)).await;
    }
    drop(streams);
    drop(first);
    drop(gateway);
}
