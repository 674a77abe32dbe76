//! Helpers for the tests of following letters: reading a sender's events to the present, or
//! from a `follow` stream with a deadline that only fails the test.

use std::collections::HashMap;
use std::time::Duration;

use brevdue::cli::client::Client;
use brevdue::ingest::pb;
use futures::StreamExt;
use tonic::Streaming;

/// The sender's events after `after`, to the present (a stream without `follow`).
pub async fn events_now(c: &mut Client, after: &str, terminal_only: bool) -> Vec<pb::LetterEvent> {
    let mut s = c
        .watch_events(pb::WatchRequest {
            after_cursor: after.to_string(),
            terminal_only,
            follow: false,
        })
        .await
        .expect("watch")
        .into_inner();
    let mut out = Vec::new();
    while let Some(e) = s.next().await {
        out.push(e.expect("event"));
    }
    out
}

/// A `follow` stream of the sender's events after `after`.
pub async fn follow(
    c: &mut Client,
    after: &str,
    terminal_only: bool,
) -> Streaming<pb::LetterEvent> {
    c.watch_events(pb::WatchRequest {
        after_cursor: after.to_string(),
        terminal_only,
        follow: true,
    })
    .await
    .expect("watch")
    .into_inner()
}

/// The next event of a `follow` stream; `within` only fails the test when nothing comes.
pub async fn next_event(s: &mut Streaming<pb::LetterEvent>, within: Duration) -> pb::LetterEvent {
    tokio::time::timeout(within, s.next())
        .await
        .expect("an event before the deadline")
        .expect("the stream stays open")
        .expect("an event, not an error")
}

pub fn state(e: &pb::LetterEvent) -> pb::LetterState {
    pb::LetterState::try_from(e.state).expect("known state")
}

pub fn is_terminal(s: pb::LetterState) -> bool {
    matches!(
        s,
        pb::LetterState::Delivered
            | pb::LetterState::PrintSpooled
            | pb::LetterState::Failed
            | pb::LetterState::Cancelled
    )
}

/// Per letter, the states its events report, in stream order.
pub fn states_by_letter(events: &[pb::LetterEvent]) -> HashMap<String, Vec<pb::LetterState>> {
    let mut by: HashMap<String, Vec<pb::LetterState>> = HashMap::new();
    for e in events {
        by.entry(e.letter_id.clone()).or_default().push(state(e));
    }
    by
}
