//! One `SubmitBatch` stream: letters in, one receipt per letter out, in order.
//!
//! Each letter, as it is read: the sender is checked again by the door's rule (a sender
//! suspended while the stream is open is refused at its next letter, and the stream ends
//! PERMISSION_DENIED after the receipts already due); a letter the door skipped as too large
//! is answered TOO_LARGE and the stream goes on; the others wait for admission one at a time,
//! which is the stream's back-pressure, and then join the letters in flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;
use tonic::{Status, Streaming};

use crate::admission::{Admission, Admitted, StreamSlot};
use crate::domain::{Priority, SenderInfo};
use crate::pipeline::{Gateway, Receipt, SubmitError};
use crate::telemetry;

use super::convert::{draft_from_letter, receipt_to_pb};
use super::frames::{Held, Ledger};
use super::identity::{Caller, recheck};
use super::pb;
use super::status::RequestError;

/// What a letter weighs in the pipeline: its encoded size, which is what it occupies in memory
/// once decoded.
pub(super) fn letter_bytes(letter: &pb::Letter) -> usize {
    prost::Message::encoded_len(letter)
}

pub(super) fn letter_priority(letter: &pb::Letter) -> Priority {
    match pb::Priority::try_from(letter.priority) {
        Ok(pb::Priority::Urgent) => Priority::Urgent,
        Ok(pb::Priority::Bulk) => Priority::Bulk,
        _ => Priority::Normal,
    }
}

/// Keeps the open-streams gauge right however a stream ends.
struct StreamGuard;

impl StreamGuard {
    fn new() -> Self {
        telemetry::stream_opened();
        StreamGuard
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        telemetry::stream_closed();
    }
}

/// A letter read from the stream, and what comes of it.
enum Step {
    /// Answered without the pipeline (skipped as too large).
    Answered(Receipt),
    /// Admitted: goes through the pipeline holding its places.
    /// (Boxed: a letter's fields are large and most steps are this one; the box is one
    /// allocation per letter beside the letter's own.)
    Admitted(Box<LetIn>),
}

/// A letter let in, with its places in the pipeline and its bytes of the budget.
struct LetIn {
    sender: SenderInfo,
    letter: pb::Letter,
    admitted: Admitted,
    held: Option<Held>,
}

/// Everything one stream needs.
pub(super) struct Batch {
    pub gateway: Arc<Gateway>,
    pub admission: Arc<Admission>,
    pub caller: Caller,
    pub slot: StreamSlot,
    pub ledger: Arc<Ledger>,
    pub shutdown: CancellationToken,
    pub in_flight: usize,
    /// The most a letter may take on the wire (what the door skips above).
    pub wire_limit: u64,
}

pub(super) fn receipts(
    batch: Batch,
    letters: Streaming<pb::Letter>,
) -> impl Stream<Item = Result<pb::Receipt, Status>> + Send + 'static {
    let Batch {
        gateway,
        admission,
        caller,
        slot,
        ledger,
        shutdown,
        in_flight,
        wire_limit,
    } = batch;
    let guard = StreamGuard::new();
    // On shutdown the stream stops reading: letters already read are finished and
    // receipted, then the stream ends UNAVAILABLE so the sender resends the rest.
    let cut = Arc::new(AtomicBool::new(false));
    let cut_when_stopping = cut.clone();
    let stopping = async move {
        shutdown.cancelled().await;
        cut_when_stopping.store(true, Ordering::SeqCst);
    };
    // Set when the sender is refused: nothing more is read from the stream.
    let refused = Arc::new(AtomicBool::new(false));
    let reading = refused.clone();
    let pipeline = gateway.clone();
    letters
        .take_until(stopping)
        .enumerate()
        .take_while(move |_| futures::future::ready(!reading.load(Ordering::SeqCst)))
        // One letter at a time through admission, before it joins the letters in flight:
        // while a letter waits here the stream reads no further, which is the back-pressure
        // (HTTP/2 flow control then holds the client).
        .then(move |(index, item)| {
            let gateway = gateway.clone();
            let admission = admission.clone();
            let caller = caller.clone();
            let ledger = ledger.clone();
            let refused = refused.clone();
            async move {
                let letter = item.map_err(|status| {
                    Status::from(RequestError::MalformedStream(status.message().to_string()))
                })?;
                let taken = ledger.take(index as u64);
                // The rule of the door, again: the sender as it is now (suspension, limits).
                let check = || {
                    recheck(&gateway.directory, &caller).map_err(|e| {
                        refused.store(true, Ordering::SeqCst);
                        Status::from(e)
                    })
                };
                let sender = check()?;
                telemetry::letter_received(&sender);
                if let Some(size) = taken.oversized {
                    return Ok(Step::Answered(gateway.skipped_too_large(
                        &sender,
                        letter.message_uuid,
                        size,
                        wire_limit,
                    )));
                }
                let admitted = admission
                    .wait(&sender, letter_priority(&letter), letter_bytes(&letter))
                    .await;
                // The wait may have been long: a suspension during it counts too.
                let sender = check()?;
                Ok::<_, Status>(Step::Admitted(Box::new(LetIn {
                    sender,
                    letter,
                    admitted,
                    held: taken.held,
                })))
            }
        })
        .map(move |step| {
            let gateway = pipeline.clone();
            async move {
                match step? {
                    Step::Answered(receipt) => Ok(receipt_to_pb(receipt)),
                    Step::Admitted(step) => {
                        let LetIn {
                            sender,
                            letter,
                            admitted,
                            held,
                        } = *step;
                        let receipt = gateway
                            .submit(&sender, draft_from_letter(letter))
                            .await
                            .map(receipt_to_pb)
                            .map_err(Status::from);
                        // The letter's places and bytes are free once it has its receipt.
                        drop((admitted, held));
                        receipt
                    }
                }
            }
        })
        .buffered(in_flight.max(1))
        .chain(
            futures::stream::once(async move { cut.load(Ordering::SeqCst) }).filter_map(
                |was_cut| async move { was_cut.then(|| Err(Status::from(SubmitError::ShuttingDown))) },
            ),
        )
        .map(move |r| {
            let _ = (&guard, &slot);
            r
        })
}
