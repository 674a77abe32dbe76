//! Letters sealed for real, and the imports every topic module shares (glob-imported, so a
//! module uses what it needs of them).

pub use std::collections::{HashMap, HashSet};
pub use std::sync::Arc;
pub use std::time::{Duration, Instant};

pub use brevdue::domain::{
    Cvr, Document, Letter, LetterId, LetterState, MessageUuid, Priority, RecipientId,
    RecipientStatus, Route, SenderInfo, SenderKind,
};
pub use brevdue::seal::{
    Binding, KekId, KeyRing, Pseudonymizer, RecipientTag, RowCipher, body, open, seal,
};
pub use brevdue::store::{InsertOutcome, LetterKey, NewLetter, PostgresStore, Store, StoreError};

pub use crate::harness::{Backend, with_postgres, with_sqlite};

pub fn cvr(s: &str) -> Cvr {
    s.parse().expect("valid CVR")
}

pub const AUTHORITY: &str = "29403473";
pub const BANK: &str = "10103940";

pub fn ring() -> KeyRing {
    KeyRing::from_keys(KekId(1), [(KekId(1), [3u8; 32])]).expect("key ring")
}

pub fn plain_letter(uuid: MessageUuid, text: &str, size: usize) -> Letter {
    let mut content = format!("%PDF-1.4\n{text}\n").into_bytes();
    content.resize(size.max(content.len()), b'x');
    Letter {
        message_uuid: uuid,
        recipient: "0101901234".parse().expect("CPR"),
        title: "Contract test letter".into(),
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

/// A letter as the pipeline hands it to the store: digested, fingerprinted and sealed.
pub fn sealed_letter(
    ring: &KeyRing,
    sender: Cvr,
    uuid: MessageUuid,
    tag: RecipientTag,
    text: &str,
    size: usize,
) -> NewLetter {
    let letter = plain_letter(uuid, text, size);
    let letter_id = LetterId::new();
    let lid = letter_id.to_string();
    let content = body::content_digest(&letter);
    let sealed = seal(
        ring,
        &Binding {
            letter_id: &lid,
            sender,
            recipient: &tag,
        },
        body::encode(&letter),
    )
    .expect("seal");
    NewLetter {
        letter_id,
        sender,
        message_uuid: uuid,
        recipient_tag: tag,
        fingerprint: body::fingerprint(&letter, &content),
        content_sha256: content,
        route: Route::Mailbox,
        priority: Priority::Normal,
        sealed,
        accepted_at_ms: 1_700_000_000_000,
        not_before_ms: None,
        batch_id: None,
        sender_reference: String::new(),
    }
}

pub fn letter(sender: Cvr, text: &str) -> NewLetter {
    sealed_letter(&ring(), sender, MessageUuid::random(), [1u8; 32], text, 256)
}

pub fn existing(outcome: &InsertOutcome) -> &brevdue::store::LetterRecord {
    match outcome {
        InsertOutcome::Existing(r) => r,
        InsertOutcome::Inserted => panic!("expected Existing, got Inserted"),
    }
}

pub async fn state_of(store: &Arc<dyn Store>, l: &NewLetter) -> LetterState {
    store
        .letter(l.sender, LetterKey::LetterId(l.letter_id))
        .await
        .expect("letter")
        .expect("letter exists")
        .state
}
