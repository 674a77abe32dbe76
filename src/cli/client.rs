//! The sender side: connecting with a sender's certificate directory and streaming a batch.
//!
//! Streaming keeps a window of letters in flight and matches receipts to letters in order. If
//! the stream breaks (the gateway restarts, UNAVAILABLE), the letters without a receipt are sent
//! again on a new stream: resending is safe because the gateway deduplicates by message_uuid.

use std::collections::VecDeque;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use crate::ingest::pb;
use crate::ingest::pb::letter_gateway_client::LetterGatewayClient;

pub type Client = LetterGatewayClient<Channel>;

/// Connects to `server` (https://host:port) as the sender whose files are in `cert_dir`
/// (`ca.pem`, `sender.pem`, `sender.key`, as `brevdue senders add` wrote them).
pub async fn connect(server: &str, cert_dir: &Path) -> Result<Client> {
    let channel = channel(server, cert_dir, "sender.pem", "sender.key").await?;
    Ok(LetterGatewayClient::new(channel)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(256 << 20))
}

/// A mutual-TLS channel to `server` with the certificate `cert` and key `key` from
/// `cert_dir`, trusting the gateway CA in `cert_dir/ca.pem`.
pub async fn channel(server: &str, cert_dir: &Path, cert: &str, key: &str) -> Result<Channel> {
    let read = |name: &str| {
        let p = cert_dir.join(name);
        std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()))
    };
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read("ca.pem")?))
        .identity(Identity::from_pem(read(cert)?, read(key)?))
        .domain_name("localhost");
    let server = if server.contains("://") {
        server.to_string()
    } else {
        format!("https://{server}")
    };
    Channel::from_shared(server.clone())
        .with_context(|| format!("{server} is not a server address"))?
        .tls_config(tls)?
        .initial_connection_window_size(Some(16 << 20))
        .initial_stream_window_size(Some(8 << 20))
        .tcp_nodelay(true)
        .connect()
        .await
        .with_context(|| format!("cannot connect to the gateway at {server}"))
}

/// How many letters one stream keeps unanswered.
pub const WINDOW: usize = 1024;
const ATTEMPTS: u32 = 6;

/// Streams letters (each with a caller's tag, e.g. its line number) and calls `on_receipt`
/// once per letter, in order. Breaks in the stream are retried with back-off.
pub async fn stream_batch<T: Clone + Send + 'static>(
    client: &mut Client,
    letters: impl Iterator<Item = (T, pb::Letter)> + Send,
    mut on_receipt: impl FnMut(T, pb::Receipt),
) -> Result<()> {
    let mut source = letters.peekable();
    let mut unanswered: VecDeque<(T, pb::Letter)> = VecDeque::new();
    let mut attempt = 0;
    loop {
        if unanswered.is_empty() && source.peek().is_none() {
            return Ok(());
        }
        // The channel holds a whole window, and never more than the window is unanswered, so
        // sending into it never waits; receipts come back in the order letters went in.
        let (tx, rx) = mpsc::channel::<pb::Letter>(WINDOW);
        // Resend what the last stream left unanswered, first.
        for (_, l) in &unanswered {
            // The channel holds a whole batch's worth; a full one means the stream already
            // ended, and the letters stay unanswered for the next round.
            let _ = tx.try_send(l.clone());
        }
        let response = client.submit_batch(ReceiverStream::new(rx)).await;
        let mut receipts = match response {
            Ok(r) => r.into_inner(),
            Err(status) => {
                attempt += 1;
                if attempt >= ATTEMPTS || !retryable(&status) {
                    bail!("the gateway refused the batch: {}", describe(&status));
                }
                backoff(attempt).await;
                continue;
            }
        };
        let mut sender = Some(tx);
        let mut broken = None;
        loop {
            // Top up the window from the source while there is room.
            if let Some(tx) = &sender {
                let mut closed = false;
                while unanswered.len() < WINDOW {
                    match source.next() {
                        Some((tag, letter)) => {
                            closed = tx.send(letter.clone()).await.is_err();
                            // Unanswered even if it did not go out: the gateway stopped reading
                            // (an error ends the stream after the receipts before it), and the
                            // next stream sends it again rather than losing it.
                            unanswered.push_back((tag, letter));
                            if closed {
                                break;
                            }
                        }
                        None => break,
                    }
                }
                if closed || source.peek().is_none() {
                    sender = None; // close our side: no more letters on this stream
                }
            }
            if unanswered.is_empty() && sender.is_none() {
                break;
            }
            match receipts.message().await {
                Ok(Some(receipt)) => {
                    if let Some((tag, _)) = unanswered.pop_front() {
                        on_receipt(tag, receipt);
                        attempt = 0;
                    }
                }
                Ok(None) => {
                    if !unanswered.is_empty() {
                        broken = Some(tonic::Status::unavailable("the stream ended early"));
                    }
                    break;
                }
                Err(status) => {
                    broken = Some(status);
                    break;
                }
            }
        }
        match broken {
            None if unanswered.is_empty() && source.peek().is_none() => return Ok(()),
            None => continue,
            Some(status) => {
                attempt += 1;
                if attempt >= ATTEMPTS || !retryable(&status) {
                    bail!(
                        "the batch stopped with {} letters unanswered: {}",
                        unanswered.len(),
                        describe(&status)
                    );
                }
                tracing::warn!(status = %describe(&status), unanswered = unanswered.len(), "stream broke; resending the unanswered letters");
                backoff(attempt).await;
            }
        }
    }
}

fn retryable(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::Unavailable
            | tonic::Code::ResourceExhausted
            | tonic::Code::Cancelled
            | tonic::Code::Unknown
    )
}

async fn backoff(attempt: u32) {
    tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(attempt.min(5)))).await;
}

pub fn describe(status: &tonic::Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

pub fn outcome_name(o: i32) -> &'static str {
    match pb::Outcome::try_from(o) {
        Ok(pb::Outcome::AcceptedMailbox) => "ACCEPTED_MAILBOX",
        Ok(pb::Outcome::AcceptedPrint) => "ACCEPTED_PRINT",
        Ok(pb::Outcome::Rejected) => "REJECTED",
        _ => "UNSPECIFIED",
    }
}

pub fn reason_name(r: i32) -> &'static str {
    pb::RejectReason::try_from(r)
        .map(|r| r.as_str_name())
        .unwrap_or("UNKNOWN")
}
