//! Retention as the running gateway applies it: letters handed to print lose their content once
//! `retention.delivered` has passed, their status stays answerable, and letters in a mailbox or
//! still waiting keep theirs.

mod common;

use std::time::Duration;

use brevdue::domain::LetterId;
use brevdue::ingest::pb;
use common::delivery::{status, wait_until};
use common::*;

async fn printed_content_goes_after_retention(backend: Backend) {
    let mut h = Harness::prepare_on(backend).await;
    h.config.retention.delivered = Duration::from_millis(1);
    h.config.retention.every = Duration::from_millis(200);
    h.boot().await;
    let mut c = h.client(AUTHORITY).await;
    let printed = c
        .submit_letter(letter(EXEMPT, "Til print", b"%PDF-1.4 print"))
        .await
        .expect("submit")
        .into_inner();
    assert_eq!(outcome(&printed), pb::Outcome::AcceptedPrint);
    let mailed = c
        .submit_letter(letter(ACTIVE_OTHER, "Til postkassen", b"%PDF-1.4 mailbox"))
        .await
        .expect("submit")
        .into_inner();
    assert_eq!(outcome(&mailed), pb::Outcome::AcceptedMailbox);
    h.wait_for_delivery().await;

    let store = h.store().await;
    let ids: Vec<LetterId> = [&printed, &mailed]
        .iter()
        .map(|r| r.letter_id.parse().expect("letter id"))
        .collect();
    let purged = wait_until(
        Duration::from_secs(30),
        "the printed letter's content is purged",
        || {
            let store = store.clone();
            let ids = ids.clone();
            async move {
                let loaded = store.load_for_delivery(&ids).await.expect("load");
                let p = loaded.iter().find(|s| s.record.letter_id == ids[0])?;
                p.sealed.ciphertext.is_empty().then(|| loaded.clone())
            }
        },
    )
    .await;
    let mailbox = purged
        .iter()
        .find(|s| s.record.letter_id == ids[1])
        .expect("the mailbox letter is stored");
    assert!(
        !mailbox.sealed.ciphertext.is_empty(),
        "a mailbox letter is the mailbox's: its content stays"
    );
    let s = status(&mut c, &printed.letter_id).await;
    assert_eq!(s.state, pb::LetterState::PrintSpooled as i32, "{s:?}");
    assert_eq!(
        s.content_sha256, printed.content_sha256,
        "the receipt's proof stays"
    );
    h.stop().await;
}
on_every_backend!(printed_content_goes_after_retention);
