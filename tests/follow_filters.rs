//! What a reader asks for is what it gets: `terminal_only` gives exactly the events into
//! DELIVERED, PRINT_SPOOLED, FAILED and CANCELLED, in the order of the whole log, now and
//! when following; and a cursor whose events retention has pruned is OUT_OF_RANGE with a
//! message saying from when events are kept, while the newest cursor still resumes.

mod common;

use std::time::Duration;

use brevdue::ingest::pb;
use common::follow::*;
use common::*;
use futures::StreamExt;
use tonic::Code;

async fn terminal_only_gives_exactly_the_ends(backend: Backend) {
    let mut h = Harness::prepare_on(backend).await;
    h.config.delivery.enabled = false;
    h.boot().await;
    let mut c = h.client(AUTHORITY).await;
    let receipts = stream(
        &mut c,
        [ACTIVE_OTHER, UNKNOWN, COMPANY, EXEMPT]
            .iter()
            .map(|to| letter(to, "Kun slutningen", b"%PDF-1.4 end"))
            .collect(),
    )
    .await;
    c.cancel_letter(pb::CancelRequest {
        key: Some(pb::cancel_request::Key::LetterId(
            receipts[0].letter_id.clone(),
        )),
    })
    .await
    .expect("cancel");
    h.stop().await;
    h.config.delivery.enabled = true;
    h.boot().await;
    let mut c = h.client(AUTHORITY).await;
    let mut ends = follow(&mut c, "", true).await;
    let mut followed = Vec::new();
    while followed.len() < receipts.len() {
        followed.push(next_event(&mut ends, Duration::from_secs(60)).await);
    }
    drop(ends);

    let all = events_now(&mut c, "", false).await;
    let expected: Vec<pb::LetterEvent> = all
        .iter()
        .filter(|e| is_terminal(state(e)))
        .cloned()
        .collect();
    assert_eq!(all.len(), 2 * receipts.len(), "{all:?}");
    assert_eq!(events_now(&mut c, "", true).await, expected);
    assert_eq!(followed, expected);
    assert_eq!(state(&expected[0]), pb::LetterState::Cancelled);
    // From a cursor in the middle: only the ends after it.
    let mid = &all[all.len() / 2].cursor;
    let after_mid: Vec<pb::LetterEvent> = all[all.len() / 2 + 1..]
        .iter()
        .filter(|e| is_terminal(state(e)))
        .cloned()
        .collect();
    assert_eq!(events_now(&mut c, mid, true).await, after_mid);
    h.stop().await;
}
on_every_backend!(terminal_only_gives_exactly_the_ends);

/// The call's error, whether the gateway gives it at once or as the stream's first item.
async fn watch_error(c: &mut brevdue::cli::client::Client, after: &str) -> Option<tonic::Status> {
    let r = c
        .watch_events(pb::WatchRequest {
            after_cursor: after.to_string(),
            terminal_only: false,
            follow: false,
        })
        .await;
    match r {
        Err(status) => Some(status),
        Ok(s) => {
            let mut s = s.into_inner();
            while let Some(e) = s.next().await {
                if let Err(status) = e {
                    return Some(status);
                }
            }
            None
        }
    }
}

async fn an_expired_cursor_is_out_of_range(backend: Backend) {
    let mut h = Harness::prepare_on(backend).await;
    // A retention of a second: the pruner runs every tenth of it.
    h.config.events.retention = Duration::from_secs(1);
    h.config.delivery.enabled = false;
    h.boot().await;
    let mut c = h.client(AUTHORITY).await;
    stream(
        &mut c,
        (0..3)
            .map(|_| letter(ACTIVE_OTHER, "Udløber", b"%PDF-1.4 old"))
            .collect(),
    )
    .await;
    let first = events_now(&mut c, "", false).await;
    assert_eq!(first.len(), 3);

    // Wait for the pruner, with a deadline that only fails the test. The three events carry
    // their own times, so one pass of the pruner may take the first two and leave the third
    // for its next pass: wait until the cursor after the second is behind the pruned part
    // (pruning goes forward only, so the cursor after the first is then behind it too).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let expired = loop {
        if let Some(status) = watch_error(&mut c, &first[1].cursor).await {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the events were never pruned"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(expired.code(), Code::OutOfRange, "{expired:?}");
    assert!(
        expired.message().contains("kept"),
        "says from when events are kept: {}",
        expired.message()
    );
    assert_eq!(
        watch_error(&mut c, &first[0].cursor)
            .await
            .map(|s| s.code()),
        Some(Code::OutOfRange)
    );
    // The newest cursor is not behind anything pruned: it resumes at the present.
    assert!(
        watch_error(&mut c, &first[2].cursor).await.is_none(),
        "the newest cursor must still resume"
    );
    assert!(events_now(&mut c, &first[2].cursor, false).await.is_empty());
    h.stop().await;
}
on_every_backend!(an_expired_cursor_is_out_of_range);
