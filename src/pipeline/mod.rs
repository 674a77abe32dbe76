//! The acceptance pipeline for one letter: validate → route → seal → store and queue (through
//! the group committer) → receipt. `ingest` calls it; it knows nothing of gRPC.

use std::sync::Arc;
use std::time::Instant;

use crate::clock::now_ms;
use crate::directory::Directory;
use crate::domain::{BatchId, LetterId, RecipientId, RejectReason, Route, SenderInfo};
use crate::follow::{Follow, RejectionLog};
use crate::route::{Decision, SenderRef};
use crate::seal::{Binding, ContentDigest, body, seal};
use crate::store::{BatchRejection, LetterKey, LetterRecord, NewLetter, Store};
use crate::telemetry::{self, Stage};
use crate::validate::{Draft, Limits, Rejection, validate};

mod committer;
mod error;

pub use committer::{CommitError, Committed, Committer, CommitterConfig};
pub use error::{Backend, BackendError, RETRY_AFTER, SubmitError};

/// Letters above this size are sealed on the blocking pool so they do not stall other streams.
const SEAL_INLINE_MAX: usize = 1 << 20;

/// The outcome a receipt reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Accepted(Route),
    Rejected(RejectReason),
}

/// The answer for one submitted letter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// As the sender wrote it (normalised when it parsed), for correlation.
    pub message_uuid: String,
    pub letter_id: Option<LetterId>,
    pub outcome: Outcome,
    pub detail: String,
    pub duplicate: bool,
    pub content_sha256: Option<ContentDigest>,
    pub accepted_at_ms: i64,
}

impl Receipt {
    fn rejected(message_uuid: String, r: Rejection) -> Self {
        Receipt {
            message_uuid,
            letter_id: None,
            outcome: Outcome::Rejected(r.reason),
            detail: r.detail,
            duplicate: false,
            content_sha256: None,
            accepted_at_ms: 0,
        }
    }

    fn from_record(rec: &LetterRecord, duplicate: bool) -> Self {
        Receipt {
            message_uuid: rec.message_uuid.to_string(),
            letter_id: Some(rec.letter_id),
            outcome: Outcome::Accepted(rec.route),
            detail: String::new(),
            duplicate,
            content_sha256: Some(rec.content_sha256),
            accepted_at_ms: rec.accepted_at_ms,
        }
    }
}

pub struct Gateway {
    pub directory: Arc<Directory>,
    pub store: Arc<dyn Store>,
    /// Events, batches, recall and listing for senders following their letters.
    pub follow: Arc<Follow>,
    committer: Committer,
    limits: Limits,
    rejections: RejectionLog,
}

impl Gateway {
    pub fn new(
        directory: Arc<Directory>,
        store: Arc<dyn Store>,
        committer: Committer,
        limits: Limits,
        follow: Arc<Follow>,
        rejections: RejectionLog,
    ) -> Self {
        Gateway {
            directory,
            store,
            follow,
            committer,
            limits,
            rejections,
        }
    }

    /// The receipt for a letter the transport skipped unread because it was over the message
    /// limit (`size` bytes as sent, `limit` the most a letter may take on the wire): TOO_LARGE,
    /// like any letter over the limits, and nothing of it was kept.
    pub fn skipped_too_large(
        &self,
        sender: &SenderInfo,
        message_uuid: String,
        size: u64,
        limit: u64,
    ) -> Receipt {
        let r = Rejection::new(
            RejectReason::TooLarge,
            format!(
                "the letter is {size} bytes as sent, {} bytes over the {limit} bytes a letter may                  take on the wire (documents up to {}); it was not read",
                size.saturating_sub(limit),
                self.limits.max_letter_size.display().si()
            ),
        );
        telemetry::letter_rejected(sender, r.reason);
        Receipt::rejected(message_uuid, r)
    }

    /// Takes one letter through the pipeline. Per-letter problems are rejected receipts; an
    /// error means nothing was accepted and the letter may be sent again.
    pub async fn submit(&self, sender: &SenderInfo, draft: Draft) -> Result<Receipt, SubmitError> {
        let mut draft = draft;
        let batch_text = std::mem::take(&mut draft.batch_id);
        let batch = if batch_text.is_empty() {
            None
        } else {
            match batch_text.parse::<BatchId>() {
                Ok(b) => Some(b),
                Err(e) => {
                    telemetry::letter_rejected(sender, RejectReason::InvalidLetter);
                    return Ok(Receipt::rejected(
                        draft.message_uuid,
                        Rejection::new(RejectReason::InvalidLetter, e.to_string()),
                    ));
                }
            }
        };
        let result = self.accept(sender, draft, batch.clone()).await;
        match &result {
            Err(_) => telemetry::letter_unavailable(sender),
            Ok(receipt) => {
                if let (Some(batch), Outcome::Rejected(reason)) = (batch, receipt.outcome) {
                    self.rejections.record(BatchRejection {
                        sender: sender.cvr,
                        batch_id: batch,
                        message_uuid: receipt.message_uuid.clone(),
                        reason,
                        at_ms: now_ms(),
                    });
                }
            }
        }
        result
    }

    async fn accept(
        &self,
        sender: &SenderInfo,
        draft: Draft,
        batch_id: Option<BatchId>,
    ) -> Result<Receipt, SubmitError> {
        let started = Instant::now();
        let raw_uuid = draft.message_uuid.clone();
        if let Some(r) = over_sender_size(sender, &draft, &self.limits) {
            telemetry::letter_rejected(sender, r.reason);
            return Ok(Receipt::rejected(raw_uuid, r));
        }
        let mut draft = draft;
        let memo_xml = std::mem::take(&mut draft.memo_xml);
        let validated = if memo_xml.is_empty() {
            validate(draft, &self.limits).map(|l| (l, None, None))
        } else {
            crate::validate::memo::accept(sender, &raw_uuid, memo_xml, &self.limits)
                .map(|m| (m.letter, m.not_before_ms, Some(m.xml)))
        };
        telemetry::stage(Stage::Validate, started.elapsed());
        let (letter, not_before_ms, memo) = match validated {
            Ok(l) => l,
            Err(r) => {
                telemetry::letter_rejected(sender, r.reason);
                return Ok(Receipt::rejected(raw_uuid, r));
            }
        };
        let uuid = letter.message_uuid.to_string();
        let who = SenderRef {
            cvr: sender.cvr,
            kind: sender.kind,
        };
        let routing = Instant::now();
        let decision = crate::route::route(
            &self.directory.registry(),
            crate::clock::danish_today(),
            who,
            &letter.recipient,
            letter.print_fallback,
        );
        telemetry::stage(Stage::Route, routing.elapsed());
        let route = match decision {
            Decision::Deliver(route) => route,
            Decision::Reject(reason) => {
                telemetry::letter_rejected(sender, reason);
                return Ok(Receipt::rejected(
                    uuid,
                    Rejection::new(reason, reject_detail(reason)),
                ));
            }
        };

        let sealing = Instant::now();
        // A MeMo submission's digest is that of the message as sent, which the sender has.
        let content = match &memo {
            Some(xml) => crate::seal::sha256(xml),
            None => body::content_digest(&letter),
        };
        let fingerprint = body::fingerprint(&letter, &content);
        let letter_id = LetterId::new();
        let tag = self.directory.tag(&letter.recipient);
        let keyring = self.directory.keyring();
        let plaintext = body::encode_with_memo(&letter, memo.as_deref());
        let sender_cvr = sender.cvr;
        let do_seal = move || {
            let id = letter_id.to_string();
            let binding = Binding {
                letter_id: &id,
                sender: sender_cvr,
                recipient: &tag,
            };
            seal(&keyring, &binding, plaintext)
        };
        let sealed = if letter.content_len() > SEAL_INLINE_MAX {
            tokio::task::spawn_blocking(do_seal)
                .await
                .map_err(SubmitError::SealTask)?
        } else {
            do_seal()
        }
        .map_err(SubmitError::Seal)?;
        telemetry::stage(Stage::Seal, sealing.elapsed());

        let accepted_at_ms = now_ms();
        let new = NewLetter {
            letter_id,
            sender: sender.cvr,
            message_uuid: letter.message_uuid,
            recipient_tag: tag,
            fingerprint,
            content_sha256: content,
            route,
            priority: letter.priority,
            sealed,
            accepted_at_ms,
            not_before_ms,
            batch_id,
            sender_reference: letter.sender_reference.clone(),
        };
        let committed = self.committer.commit(new).await?;
        let receipt = match committed {
            Committed::Stored => {
                telemetry::letter_accepted(sender, route, started.elapsed());
                Receipt {
                    message_uuid: uuid,
                    letter_id: Some(letter_id),
                    outcome: Outcome::Accepted(route),
                    detail: String::new(),
                    duplicate: false,
                    content_sha256: Some(content),
                    accepted_at_ms,
                }
            }
            Committed::Existing(rec) if rec.fingerprint == fingerprint => {
                telemetry::letter_duplicate(sender);
                Receipt::from_record(&rec, true)
            }
            Committed::Existing(rec) => {
                telemetry::letter_rejected(sender, RejectReason::DuplicateConflict);
                Receipt::rejected(
                    uuid.clone(),
                    Rejection::new(
                        RejectReason::DuplicateConflict,
                        format!(
                            "message_uuid {uuid} was already used for a different letter (letter {}); \
                             a new letter needs a new message_uuid",
                            rec.letter_id
                        ),
                    ),
                )
            }
        };
        Ok(receipt)
    }

    /// One of the sender's own letters.
    pub async fn status(
        &self,
        sender: &SenderInfo,
        key: LetterKey,
    ) -> Result<Option<LetterRecord>, SubmitError> {
        Ok(self.store.letter(sender.cvr, key).await?)
    }

    /// Where a letter from `sender` to `recipient` would go.
    pub fn check(
        &self,
        sender: &SenderInfo,
        recipient: &RecipientId,
        print_fallback: bool,
    ) -> Decision {
        let who = SenderRef {
            cvr: sender.cvr,
            kind: sender.kind,
        };
        crate::route::route(
            &self.directory.registry(),
            crate::clock::danish_today(),
            who,
            recipient,
            print_fallback,
        )
    }
}

/// A letter over the sender's own size limit (set in the sender registry, below the gateway's):
/// documents for a letter, the whole message for MeMo.
fn over_sender_size(sender: &SenderInfo, draft: &Draft, limits: &Limits) -> Option<Rejection> {
    let max = sender.limits.max_letter_bytes?;
    if max >= limits.max_letter_size.as_u64() {
        return None;
    }
    let total: u64 = if draft.memo_xml.is_empty() {
        draft
            .main_document
            .iter()
            .chain(&draft.attachments)
            .map(|d| d.content.len() as u64)
            .sum()
    } else {
        draft.memo_xml.len() as u64
    };
    (total > max).then(|| {
        Rejection::new(
            RejectReason::TooLarge,
            format!(
                "the letter is {total} bytes, {} bytes over this sender's limit of {max} bytes ({}); \
                 the gateway operator sets it",
                total - max,
                bytesize::ByteSize(max).display().si()
            ),
        )
    })
}

/// What a routing rejection tells the sender. A private sender's NOT_REACHABLE never says why
/// (privacy rule); it says what the sender can do.
pub fn reject_detail(reason: RejectReason) -> &'static str {
    match reason {
        RejectReason::RecipientClosed => {
            "the recipient's mailbox is closed (deceased person or ceased company); the letter cannot be delivered"
        }
        RejectReason::NotReachable => {
            "the recipient cannot receive digital mail from this sender; send with print_fallback to have it printed"
        }
        _ => "",
    }
}
