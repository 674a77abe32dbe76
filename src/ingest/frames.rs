//! The gRPC frames of a request body, read at the door before tonic decodes them.
//!
//! Every gRPC message travels as a 5-byte header (a compression flag and the length) and the
//! message bytes. Reading the header is enough to know what a message will cost, so it is here
//! that the gateway decides, before a byte of the message is buffered:
//! - a message over the method's limit is refused (status and reachability questions are a few
//!   bytes: a large one is not a question) or, for letters, skipped: its bytes are dropped as
//!   they arrive and, in its place, tonic gets a letter that holds only its `message_uuid`
//!   (read from the first bytes); the [`Ledger`] tells the service to answer it TOO_LARGE, and
//!   the rest of the stream goes on;
//! - a letter within the limit first takes its size from the gateway-wide byte [`Budget`]
//!   (`admission.max_bytes_in_flight`), and only then are its bytes handed on. The letter holds
//!   those bytes until its receipt, so letters decoded and waiting at the admission gate are
//!   counted as well as those inside the pipeline. While it waits for the budget the stream
//!   reads no further and HTTP/2 flow control holds the client.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame};
use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};
use tonic::Status;

use super::pb;
use super::status::RequestError;

/// A gRPC message header: compression flag and a big-endian u32 length.
const HEADER: usize = 5;
/// How much of a skipped letter is kept to find its `message_uuid` (field 1, written first).
const PREFIX: usize = 128;

/// What happens to a message over the method's limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverLimit {
    /// The call is refused (INVALID_ARGUMENT).
    Refuse,
    /// The message is skipped and answered TOO_LARGE by the service (letters).
    Skip,
}

/// Bytes of the gateway-wide budget that one decoded letter holds until its receipt.
pub struct Held(#[allow(dead_code)] OwnedSemaphorePermit);

/// What the door learned about one message of a call.
#[derive(Default)]
pub struct Taken {
    /// The message was skipped: its size as sent.
    pub oversized: Option<u64>,
    /// Its share of the byte budget; dropped with the letter's receipt.
    pub held: Option<Held>,
}

/// What the door learned about a call's messages, by position in the call (0 for unary);
/// shared with the handler through the request's extensions.
#[derive(Default)]
pub struct Ledger {
    entries: Mutex<HashMap<u64, Taken>>,
}

impl Ledger {
    fn with<R>(&self, f: impl FnOnce(&mut HashMap<u64, Taken>) -> R) -> R {
        let mut g = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    /// Takes what is known about message `index` (nothing: an ordinary message).
    pub fn take(&self, index: u64) -> Taken {
        self.with(|m| m.remove(&index)).unwrap_or_default()
    }

    fn oversized(&self, index: u64, size: u64) {
        self.with(|m| m.entry(index).or_default().oversized = Some(size));
    }

    fn hold(&self, index: u64, held: Held) {
        self.with(|m| m.entry(index).or_default().held = Some(held));
    }
}

/// The bytes decoded letters may hold at once, counted in KiB (a semaphore counts in u32).
#[derive(Clone)]
pub struct Budget {
    kib: Arc<Semaphore>,
    total_kib: u32,
}

impl Budget {
    pub fn new(bytes: u64) -> Self {
        let total_kib = u32::try_from(bytes.div_ceil(1024).max(1)).unwrap_or(u32::MAX >> 4);
        Budget {
            kib: Arc::new(Semaphore::new(total_kib as usize)),
            total_kib,
        }
    }

    /// KiB held by a letter of `len` bytes; a letter larger than the whole budget takes all of
    /// it (it goes alone rather than never).
    fn units(&self, len: usize) -> u32 {
        u32::try_from(len.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, self.total_kib)
    }

    /// KiB free now (for tests and the metrics).
    pub fn free_kib(&self) -> usize {
        self.kib.available_permits()
    }
}

type Reservation = Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send>>;

enum State {
    Header {
        buf: [u8; HEADER],
        have: usize,
    },
    Reserving {
        header: [u8; HEADER],
        len: usize,
        wait: Reservation,
    },
    Message {
        remaining: usize,
    },
    Skip {
        remaining: usize,
        declared: usize,
        prefix: Vec<u8>,
    },
}

impl State {
    fn header() -> Self {
        State::Header {
            buf: [0; HEADER],
            have: 0,
        }
    }
}

/// A request body whose gRPC messages are checked against a limit as their headers arrive.
pub struct LimitedFrames {
    inner: tonic::body::Body,
    method: &'static str,
    limit: usize,
    over: OverLimit,
    ledger: Arc<Ledger>,
    budget: Option<Budget>,
    state: State,
    /// Position of the message being read.
    index: u64,
    /// Bytes read from the client and not yet handed on.
    input: Bytes,
    out: VecDeque<Bytes>,
    trailers: Option<http::HeaderMap>,
    done: bool,
}

impl LimitedFrames {
    pub fn new(
        inner: tonic::body::Body,
        method: &'static str,
        limit: usize,
        over: OverLimit,
        ledger: Arc<Ledger>,
        budget: Option<Budget>,
    ) -> Self {
        LimitedFrames {
            inner,
            method,
            limit,
            over,
            ledger,
            budget,
            state: State::header(),
            index: 0,
            input: Bytes::new(),
            out: VecDeque::new(),
            trailers: None,
            done: false,
        }
    }

    fn message_done(&mut self) {
        self.index += 1;
        self.state = State::header();
    }

    /// Works through the bytes read so far; pending only while a letter waits for the budget.
    fn advance(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        loop {
            match &mut self.state {
                State::Reserving { header, len, wait } => {
                    // The budget is never closed; an error would only mean there is none.
                    if let Ok(permit) = ready!(wait.as_mut().poll(cx)) {
                        self.ledger.hold(self.index, Held(permit));
                    }
                    self.out.push_back(Bytes::copy_from_slice(header));
                    self.state = State::Message { remaining: *len };
                }
                _ if self.input.is_empty() => return Poll::Ready(Ok(())),
                State::Header { buf, have } => {
                    let n = (HEADER - *have).min(self.input.len());
                    buf[*have..*have + n].copy_from_slice(&self.input[..n]);
                    self.input.advance(n);
                    *have += n;
                    if *have < HEADER {
                        continue;
                    }
                    let header = *buf;
                    let len =
                        u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
                    if len > self.limit {
                        match self.over {
                            OverLimit::Refuse => {
                                return Poll::Ready(Err(Status::from(
                                    RequestError::MessageTooLarge {
                                        method: self.method,
                                        size: len as u64,
                                        limit: self.limit as u64,
                                    },
                                )));
                            }
                            OverLimit::Skip => {
                                self.state = State::Skip {
                                    remaining: len,
                                    declared: len,
                                    prefix: Vec::new(),
                                };
                            }
                        }
                    } else if len == 0 {
                        self.out.push_back(Bytes::copy_from_slice(&header));
                        self.message_done();
                    } else if let Some(budget) = &self.budget {
                        let units = budget.units(len);
                        let kib = budget.kib.clone();
                        self.state = State::Reserving {
                            header,
                            len,
                            wait: Box::pin(kib.acquire_many_owned(units)),
                        };
                    } else {
                        self.out.push_back(Bytes::copy_from_slice(&header));
                        self.state = State::Message { remaining: len };
                    }
                }
                State::Message { remaining } => {
                    let n = (*remaining).min(self.input.len());
                    *remaining -= n;
                    let done = *remaining == 0;
                    self.out.push_back(self.input.split_to(n));
                    if done {
                        self.message_done();
                    }
                }
                State::Skip {
                    remaining,
                    declared,
                    prefix,
                } => {
                    let n = (*remaining).min(self.input.len());
                    let chunk = self.input.split_to(n);
                    let keep = (PREFIX - prefix.len().min(PREFIX)).min(chunk.len());
                    prefix.extend_from_slice(&chunk[..keep]);
                    *remaining -= n;
                    if *remaining == 0 {
                        let uuid = message_uuid(prefix);
                        let declared = *declared as u64;
                        self.ledger.oversized(self.index, declared);
                        tracing::info!(
                            method = self.method,
                            bytes = declared,
                            limit = self.limit,
                            "skipped a letter over the message limit; it is answered TOO_LARGE"
                        );
                        self.out.push_back(stand_in(uuid));
                        self.message_done();
                    }
                }
            }
        }
    }
}

/// The `message_uuid` at the start of an encoded `Letter` (field 1, length-delimited, which
/// encoders write first); empty when it is not there.
fn message_uuid(prefix: &[u8]) -> String {
    let [0x0a, len, rest @ ..] = prefix else {
        return String::new();
    };
    let len = *len as usize;
    // A one-byte length: every UUID spelling is under 128 bytes.
    if len >= 0x80 || rest.len() < len {
        return String::new();
    }
    std::str::from_utf8(&rest[..len])
        .map(str::to_string)
        .unwrap_or_default()
}

/// The frame handed on for a skipped letter: a letter with only its `message_uuid`.
fn stand_in(message_uuid: String) -> Bytes {
    let body = prost::Message::encode_to_vec(&pb::Letter {
        message_uuid,
        ..Default::default()
    });
    let mut frame = Vec::with_capacity(HEADER + body.len());
    frame.push(0);
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    Bytes::from(frame)
}

impl Body for LimitedFrames {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.get_mut();
        loop {
            if let Some(data) = this.out.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
            if let Err(status) = ready!(this.advance(cx)) {
                this.done = true;
                this.input.clear();
                return Poll::Ready(Some(Err(status)));
            }
            if !this.out.is_empty() {
                continue;
            }
            if let Some(t) = this.trailers.take() {
                return Poll::Ready(Some(Ok(Frame::trailers(t))));
            }
            if this.done {
                return Poll::Ready(None);
            }
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                None => this.done = true,
                Some(Err(e)) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => this.input = data,
                    Err(frame) => {
                        if let Ok(t) = frame.into_trailers() {
                            this.trailers = Some(t);
                        }
                    }
                },
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.out.is_empty() && self.input.is_empty() && self.trailers.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut f = vec![0];
        f.extend_from_slice(&(body.len() as u32).to_be_bytes());
        f.extend_from_slice(body);
        f
    }

    fn letter(uuid: &str, content: usize) -> Vec<u8> {
        prost::Message::encode_to_vec(&pb::Letter {
            message_uuid: uuid.into(),
            title: "x".repeat(content),
            ..Default::default()
        })
    }

    /// Feeds `bytes` in chunks of `chunk` through the limiter; what comes out, or the error.
    async fn run(
        bytes: Vec<u8>,
        chunk: usize,
        limit: usize,
        over: OverLimit,
        budget: Option<Budget>,
    ) -> (Result<Vec<u8>, Status>, Arc<Ledger>) {
        let chunks: Vec<Result<Frame<Bytes>, Status>> = bytes
            .chunks(chunk)
            .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
            .collect();
        let inner = tonic::body::Body::new(http_body_util::StreamBody::new(futures::stream::iter(
            chunks,
        )));
        let ledger = Arc::new(Ledger::default());
        let body = LimitedFrames::new(inner, "test", limit, over, ledger.clone(), budget);
        let out = body.collect().await.map(|c| c.to_bytes().to_vec());
        (out, ledger)
    }

    #[tokio::test]
    async fn messages_within_the_limit_pass_unchanged_in_any_chunking() {
        let mut all = frame(&letter("a", 10));
        all.extend(frame(&letter("b", 300)));
        all.extend(frame(&[]));
        for chunk in [1, 3, 5, 7, 64, 10_000] {
            let (out, _) = run(all.clone(), chunk, 1000, OverLimit::Refuse, None).await;
            assert_eq!(out.unwrap(), all, "chunk {chunk}");
        }
    }

    #[tokio::test]
    async fn an_oversized_letter_is_skipped_and_stood_in_for() {
        let uuid = "0b5f3c2e-8f0e-4d6a-9c61-0f6f4d8f2a11";
        let mut all = frame(&letter("first", 10));
        all.extend(frame(&letter(uuid, 5000)));
        all.extend(frame(&letter("third", 10)));
        for chunk in [1, 13, 4096] {
            let (out, ledger) = run(all.clone(), chunk, 1000, OverLimit::Skip, None).await;
            let mut expected = frame(&letter("first", 10));
            expected.extend(frame(&letter(uuid, 0)));
            expected.extend(frame(&letter("third", 10)));
            assert_eq!(out.unwrap(), expected, "chunk {chunk}");
            assert_eq!(ledger.take(0).oversized, None);
            assert_eq!(
                ledger.take(1).oversized,
                Some(letter(uuid, 5000).len() as u64)
            );
            assert_eq!(ledger.take(2).oversized, None);
        }
    }

    #[tokio::test]
    async fn an_oversized_question_is_refused() {
        let (out, _) = run(frame(&[7; 5000]), 512, 4096, OverLimit::Refuse, None).await;
        assert_eq!(out.unwrap_err().code(), tonic::Code::InvalidArgument);
    }

    #[tokio::test]
    async fn letters_hold_their_bytes_of_the_budget_until_taken() {
        let budget = Budget::new(64 * 1024);
        let mut all = frame(&letter("a", 10 * 1024));
        all.extend(frame(&letter("b", 20 * 1024)));
        let (out, ledger) = run(
            all.clone(),
            4096,
            1 << 20,
            OverLimit::Skip,
            Some(budget.clone()),
        )
        .await;
        assert_eq!(out.unwrap(), all);
        assert_eq!(budget.free_kib(), 64 - 11 - 21);
        let a = ledger.take(0);
        assert!(a.held.is_some());
        drop(a);
        drop(ledger.take(1));
        assert_eq!(budget.free_kib(), 64);
    }
}
