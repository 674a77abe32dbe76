//! A letter over the message limit in the middle of a SubmitBatch stream gets a TOO_LARGE
//! receipt, correlated by its message_uuid, and the letters after it are accepted; the same
//! letter sent alone gets the same receipt.

mod common;

use brevdue::ingest::pb;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_letter_mid_stream_is_too_large_and_the_rest_goes_on() {
    let mut h = Harness::prepare().await;
    // Letters up to 1 MB: the transport takes up to 1 MB and the envelope room (4 MiB).
    h.config.limits.max_letter_size = bytesize::ByteSize::mb(1);
    h.boot().await;
    let mut bank = h.client(BANK).await;
    let huge = letter(ACTIVE_SUBSCRIBED, "For stort", &vec![b'x'; 12 << 20]);
    let mut letters: Vec<pb::Letter> = (0..6)
        .map(|i| letter(ACTIVE_SUBSCRIBED, &format!("Brev {i}"), b"%PDF-1.4"))
        .collect();
    letters.insert(2, huge.clone());
    let uuids: Vec<String> = letters.iter().map(|l| l.message_uuid.clone()).collect();

    let mut receipts = bank
        .submit_batch(futures::stream::iter(letters))
        .await
        .expect("the stream opens")
        .into_inner();
    let mut got = Vec::new();
    while let Some(r) = receipts.message().await.expect("the stream goes on") {
        got.push(r);
    }
    assert_eq!(got.len(), uuids.len(), "one receipt per letter");
    for (r, uuid) in got.iter().zip(&uuids) {
        assert_eq!(&r.message_uuid, uuid);
        if *uuid == huge.message_uuid {
            assert_eq!(outcome(r), pb::Outcome::Rejected);
            assert_eq!(reason(r), pb::RejectReason::TooLarge);
            assert!(r.detail.contains("bytes over"), "{}", r.detail);
        } else {
            assert_eq!(outcome(r), pb::Outcome::AcceptedMailbox, "{}", r.detail);
        }
    }

    // Alone, the same letter gets the same answer.
    let r = bank
        .submit_letter(huge)
        .await
        .expect("a receipt, not a transport error")
        .into_inner();
    assert_eq!(reason(&r), pb::RejectReason::TooLarge);
    let counts = h.wait_for_delivery().await;
    assert_eq!(counts.delivered, 6);
    h.stop().await;
}
