//! A sender's own limits from the sender registry, changed while the gateway runs: its rate
//! (a unary caller over it gets RESOURCE_EXHAUSTED with a retry hint, a stream is paced), its
//! letters in flight, its largest letter. And the gateway's own bounds: open streams, and load
//! shedding when the pipeline stays full. Nothing refused is ever half-accepted.

mod common;

use std::time::Duration;

use brevdue::cli::admin::{LimitsChange, senders_limits};
use brevdue::cli::client::Client;
use brevdue::ingest::pb;
use common::*;
use tonic::Code;

fn change() -> LimitsChange {
    LimitsChange {
        weight: None,
        rate: None,
        burst: None,
        in_flight: None,
        max_size: None,
    }
}

fn retry_after_ms(status: &tonic::Status) -> u64 {
    status
        .metadata()
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no retry-after-ms on {status:?}"))
}

/// True when the gateway has no letter with this message uuid from this sender.
async fn not_stored(client: &mut Client, uuid: &str) -> bool {
    let r = client
        .get_status(pb::StatusRequest {
            key: Some(pb::status_request::Key::MessageUuid(uuid.to_string())),
        })
        .await;
    matches!(r, Err(s) if s.code() == Code::NotFound)
}

/// Sends `n` letters at once, each its own unary call; every one must be accepted or refused
/// with RESOURCE_EXHAUSTED, a retry hint and a message containing `why`. Returns how many were
/// accepted and the message uuids of those refused.
async fn all_at_once(bank: &Client, n: usize, why: &str) -> (usize, Vec<String>) {
    let calls = (0..n).map(|i| {
        let mut c = bank.clone();
        async move {
            let l = letter(ACTIVE_SUBSCRIBED, &format!("Samtidig {i}"), b"%PDF-1.4");
            let uuid = l.message_uuid.clone();
            (uuid, c.submit_letter(l).await)
        }
    });
    let mut accepted = 0;
    let mut refused = Vec::new();
    for (uuid, r) in futures::future::join_all(calls).await {
        match r {
            Ok(r) => {
                assert_eq!(outcome(r.get_ref()), pb::Outcome::AcceptedMailbox);
                accepted += 1;
            }
            Err(s) => {
                assert_eq!(s.code(), Code::ResourceExhausted, "{s:?}");
                assert!(s.message().contains(why), "{}", s.message());
                assert!(retry_after_ms(&s) > 0);
                refused.push(uuid);
            }
        }
    }
    (accepted, refused)
}

/// Sends letters one by one until one is refused; returns the refusal and the refused letter.
async fn until_refused(client: &mut Client, to: &str) -> (tonic::Status, pb::Letter) {
    for i in 0..500 {
        let l = letter(to, &format!("Brev {i}"), b"%PDF-1.4");
        match client.submit_letter(l.clone()).await {
            Ok(r) => assert_eq!(outcome(&r.into_inner()), pb::Outcome::AcceptedMailbox),
            Err(s) => return (s, l),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("500 letters went through: the limit never took effect");
}

async fn rate_limits_refuse_unary_pace_streams_and_change_live(backend: Backend) {
    let h = Harness::start_on(backend).await;
    let mut authority = h.client(AUTHORITY).await;
    let cvr = AUTHORITY.parse().expect("cvr");

    // Set while the gateway runs; it picks the change up from the registry.
    senders_limits(
        &h.config,
        cvr,
        LimitsChange {
            rate: Some(Some(5)),
            burst: Some(Some(5)),
            ..change()
        },
    )
    .await
    .expect("limits set");
    let (refused, refused_letter) = until_refused(&mut authority, ACTIVE_OTHER).await;
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused.message().contains("rate of 5 letters/s"),
        "{}",
        refused.message()
    );
    let wait = retry_after_ms(&refused);
    assert!(wait > 0 && wait <= 1000, "retry after {wait} ms");
    assert!(
        not_stored(&mut authority, &refused_letter.message_uuid).await,
        "a refused letter is not accepted"
    );
    // Resent after the hint, the same letter is taken.
    tokio::time::sleep(Duration::from_millis(wait + 50)).await;
    let again = authority
        .submit_letter(refused_letter.clone())
        .await
        .expect("taken after the retry hint")
        .into_inner();
    assert_eq!(outcome(&again), pb::Outcome::AcceptedMailbox);
    assert!(!again.duplicate);

    // A stream over the rate is slowed, not refused: every letter gets its receipt.
    let letters: Vec<pb::Letter> = (0..15)
        .map(|i| letter(ACTIVE_OTHER, &format!("Strøm {i}"), b"%PDF-1.4"))
        .collect();
    let receipts = stream(&mut authority, letters).await;
    assert_eq!(receipts.len(), 15);
    assert!(
        receipts
            .iter()
            .all(|r| outcome(r) == pb::Outcome::AcceptedMailbox)
    );

    // Lifted while running: a quick run of letters goes through once the change is picked up.
    senders_limits(
        &h.config,
        cvr,
        LimitsChange {
            rate: Some(None),
            ..change()
        },
    )
    .await
    .expect("limits lifted");
    let mut lifted = false;
    for _ in 0..100 {
        let mut all = true;
        for i in 0..20 {
            let l = letter(ACTIVE_OTHER, &format!("Efter {i}"), b"%PDF-1.4");
            if authority.submit_letter(l).await.is_err() {
                all = false;
                break;
            }
        }
        if all {
            lifted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(lifted, "20 letters in a row still met the old rate");
    // Other senders never had a limit.
    let mut bank = h.client(BANK).await;
    let r = bank
        .submit_letter(letter(ACTIVE_SUBSCRIBED, "Kontoudtog", b"%PDF-1.4"))
        .await
        .expect("bank unaffected")
        .into_inner();
    assert_eq!(outcome(&r), pb::Outcome::AcceptedMailbox);
}
on_every_backend!(rate_limits_refuse_unary_pace_streams_and_change_live);

async fn in_flight_and_size_limits(backend: Backend) {
    let h = Harness::start_on(backend).await;
    let cvr = BANK.parse().expect("cvr");
    senders_limits(
        &h.config,
        cvr,
        LimitsChange {
            in_flight: Some(Some(1)),
            max_size: Some(Some(2000)),
            ..change()
        },
    )
    .await
    .expect("limits set");
    let bank = h.client(BANK).await;

    // The size limit is a per-letter rejection that names the limit and the excess.
    let mut too_big = None;
    // Letters taken before the gateway picked the limit up.
    let mut before_limit = 0;
    for _ in 0..100 {
        let mut c = bank.clone();
        let r = c
            .submit_letter(letter(ACTIVE_SUBSCRIBED, "Stort brev", &[b'x'; 3000]))
            .await;
        match r {
            Ok(r) if outcome(r.get_ref()) == pb::Outcome::Rejected => {
                too_big = Some(r.into_inner());
                break;
            }
            Ok(_) => {
                before_limit += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(s) => panic!("{s:?}"),
        }
    }
    let too_big = too_big.expect("the size limit took effect");
    assert_eq!(reason(&too_big), pb::RejectReason::TooLarge);
    assert!(
        too_big
            .detail
            .contains("1000 bytes over this sender's limit of 2000 bytes"),
        "{}",
        too_big.detail
    );

    // One letter in flight: of many sent at once, some are told to wait for receipts.
    let (accepted, refused) = all_at_once(&bank, 40, "letters in flight").await;
    assert!(accepted >= 1, "at least the first is taken");
    assert!(
        !refused.is_empty(),
        "40 at once with room for one: some wait"
    );
    let mut c = bank.clone();
    for uuid in &refused {
        assert!(not_stored(&mut c, uuid).await, "refused {uuid} was stored");
    }
    let counts = h.wait_for_delivery().await;
    assert_eq!(counts.delivered as usize, accepted + before_limit);
}
on_every_backend!(in_flight_and_size_limits);

/// The gateway's own bounds: a stream past `max_streams` is refused at the start, and when the
/// pipeline stays full longer than `unary_wait` a unary letter is shed with a retry hint; every
/// letter either has an accepted receipt and is stored, or was refused and is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_sheds_with_clear_errors_and_loses_nothing() {
    let mut h = Harness::prepare().await;
    h.config.admission.max_streams = 1;
    h.config.admission.max_letters_in_flight = 2;
    h.config.admission.unary_wait = Duration::from_millis(1);
    h.boot().await;
    let bank = h.client(BANK).await;

    // One stream open (kept open, its first receipt in), a second one refused.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut first = bank.clone();
    tx.send(letter(ACTIVE_SUBSCRIBED, "Første strøm", b"%PDF-1.4"))
        .await
        .expect("send");
    let mut receipts = first
        .submit_batch(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .expect("first stream")
        .into_inner();
    let r = receipts
        .message()
        .await
        .expect("receipt")
        .expect("one receipt");
    assert_eq!(outcome(&r), pb::Outcome::AcceptedMailbox);
    let mut second = bank.clone();
    let (_tx2, rx2) = tokio::sync::mpsc::channel::<pb::Letter>(1);
    let refused = second
        .submit_batch(tokio_stream::wrappers::ReceiverStream::new(rx2))
        .await
        .expect_err("a second stream is refused while the first is open");
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert!(
        refused.message().contains("streams open"),
        "{}",
        refused.message()
    );
    assert!(retry_after_ms(&refused) > 0);
    drop(tx);
    assert!(
        matches!(receipts.message().await, Ok(None)),
        "the first stream ends cleanly"
    );

    // Far more unary letters at once than the pipeline holds.
    let (accepted, shed) = all_at_once(&bank, 150, "at capacity").await;
    assert!(
        !shed.is_empty(),
        "150 at once into room for 2: some are shed"
    );
    assert!(accepted > 0);
    let mut c = bank.clone();
    for uuid in &shed {
        assert!(not_stored(&mut c, uuid).await);
    }
    let counts = h.wait_for_delivery().await;
    assert_eq!(counts.delivered as usize, accepted + 1);
}
