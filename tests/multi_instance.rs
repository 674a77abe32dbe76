//! Two gateways share one PostgreSQL, one RabbitMQ and one data directory (CA, keys, print
//! spool) and take halves of the same batch: every letter is stored and delivered exactly once,
//! and a letter resent through the other gateway is recognised as a duplicate.

mod common;

use brevdue::ingest::pb;
use brevdue::server;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_share_the_work_and_deliver_each_letter_once() {
    let mut h = Harness::prepare_on(Backend::Production).await;
    let second_config = h.config.clone();
    h.boot().await;
    let second = server::start(second_config)
        .await
        .expect("a second gateway starts on the same backends");
    let second_url = format!("https://{}", second.grpc_addr);

    let recipients = [ACTIVE_OTHER, EXEMPT, UNKNOWN, COMPANY];
    let letters: Vec<pb::Letter> = (0..1200)
        .map(|i| {
            letter(
                recipients[i % recipients.len()],
                "Halvdele",
                b"%PDF-1.4 shared",
            )
        })
        .collect();
    let (first_half, second_half) = letters.split_at(600);
    let mut a = h.client(AUTHORITY).await;
    let mut b = connect(&second_url, &h.cert_dir(AUTHORITY)).await;
    let (ra, rb) = tokio::join!(
        stream(&mut a, first_half.to_vec()),
        stream(&mut b, second_half.to_vec())
    );
    assert!(
        ra.iter()
            .chain(&rb)
            .all(|r| outcome(r) != pb::Outcome::Rejected && !r.duplicate)
    );

    // The first half again, through the other gateway: duplicates with the original ids.
    let again = stream(&mut b, first_half[..100].to_vec()).await;
    for (x, y) in again.iter().zip(&ra) {
        assert!(x.duplicate);
        assert_eq!(x.letter_id, y.letter_id);
    }

    let counts = h.wait_for_delivery().await;
    assert_eq!(counts.delivered + counts.print_spooled, 1200);
    let spooled = spooled_letters(h.data.path());
    assert_eq!(spooled.len() as u64, counts.print_spooled);
    assert!(
        spooled.values().all(|&n| n == 1),
        "a letter was printed twice"
    );
    assert_eq!(
        h.in_mailboxes(&[ACTIVE_OTHER, COMPANY]).await,
        counts.delivered
    );
    second.shutdown().await.expect("second gateway stops");
    h.stop().await;
}
