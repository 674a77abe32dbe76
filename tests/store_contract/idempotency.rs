//! A resend is never stored twice: the (sender, message uuid) key, within a batch, across
//! senders and across two gateway instances at once.

use crate::fixtures::*;

contract!(
    insert_then_resend_is_existing,
    same_uuid_twice_in_one_batch,
    same_uuid_from_two_senders,
    concurrent_instances_store_each_pair_once,
);

async fn insert_then_resend_is_existing(b: Backend) {
    let store = b.open().await;
    let ring = ring();
    let sender = cvr(AUTHORITY);
    let uuid = MessageUuid::random();
    let first = sealed_letter(&ring, sender, uuid, [1; 32], "original", 512);
    let out = store
        .insert_letters(std::slice::from_ref(&first))
        .await
        .expect("insert");
    assert_eq!(out, vec![InsertOutcome::Inserted]);
    let stored = store
        .letter(sender, LetterKey::MessageUuid(uuid))
        .await
        .expect("letter")
        .expect("stored");
    assert_eq!(stored.letter_id, first.letter_id);
    assert_eq!(stored.fingerprint, first.fingerprint);
    assert_eq!(stored.content_sha256, first.content_sha256);
    assert_eq!(stored.state, LetterState::Accepted);
    assert_eq!(stored.attempts, 0);

    // The same letter again, under the new letter id a gateway would give it.
    let same = sealed_letter(&ring, sender, uuid, [1; 32], "original", 512);
    let out = store.insert_letters(&[same]).await.expect("resend");
    assert_eq!(existing(&out[0]), &stored);

    // Other content under the same uuid: the store still returns the original, unchanged;
    // telling the two apart by fingerprint is the caller's job.
    let changed = sealed_letter(&ring, sender, uuid, [1; 32], "changed", 512);
    assert_ne!(changed.fingerprint, first.fingerprint);
    let out = store.insert_letters(&[changed]).await.expect("conflict");
    assert_eq!(existing(&out[0]), &stored);
    assert_eq!(existing(&out[0]).fingerprint, first.fingerprint);
    assert_eq!(store.state_counts().await.expect("counts").accepted, 1);
}

async fn same_uuid_twice_in_one_batch(b: Backend) {
    let store = b.open().await;
    let ring = ring();
    let sender = cvr(AUTHORITY);
    let uuid = MessageUuid::random();
    let a = sealed_letter(&ring, sender, uuid, [1; 32], "a", 256);
    let again = sealed_letter(&ring, sender, uuid, [1; 32], "a, other content", 256);
    let other = letter(sender, "other");
    let out = store
        .insert_letters(&[a.clone(), again, other.clone(), a.clone()])
        .await
        .expect("insert");
    assert_eq!(out.len(), 4);
    assert_eq!(out[0], InsertOutcome::Inserted);
    assert_eq!(existing(&out[1]).letter_id, a.letter_id);
    assert_eq!(existing(&out[1]).fingerprint, a.fingerprint);
    assert_eq!(out[2], InsertOutcome::Inserted);
    // The very same letter (same letter id) twice: still stored once.
    assert_eq!(existing(&out[3]).letter_id, a.letter_id);
    assert_eq!(store.state_counts().await.expect("counts").accepted, 2);
    assert!(store.insert_letters(&[]).await.expect("empty").is_empty());
}

async fn same_uuid_from_two_senders(b: Backend) {
    let store = b.open().await;
    let ring = ring();
    let uuid = MessageUuid::random();
    let from_authority = sealed_letter(&ring, cvr(AUTHORITY), uuid, [1; 32], "x", 256);
    let from_bank = sealed_letter(&ring, cvr(BANK), uuid, [1; 32], "x", 256);
    let out = store
        .insert_letters(&[from_authority.clone(), from_bank.clone()])
        .await
        .expect("insert");
    assert_eq!(out, vec![InsertOutcome::Inserted, InsertOutcome::Inserted]);
    for l in [&from_authority, &from_bank] {
        let r = store
            .letter(l.sender, LetterKey::MessageUuid(uuid))
            .await
            .expect("letter")
            .expect("stored");
        assert_eq!(r.letter_id, l.letter_id);
        assert_eq!(r.sender, l.sender);
    }
}

/// Two store instances (two gateways) get the same 500 (sender, uuid) pairs at the same time,
/// in opposite orders and overlapping batches: each pair is stored once, and exactly one of the
/// two is told `Inserted`.
async fn concurrent_instances_store_each_pair_once(b: Backend) {
    let one = b.open().await;
    let two = b.open().await;
    let ring = ring();
    let senders = [cvr(AUTHORITY), cvr(BANK)];
    let pairs: Vec<(Cvr, MessageUuid)> = (0..500)
        .map(|i| (senders[i % 2], MessageUuid::random()))
        .collect();
    // Each gateway seals its own copy, with its own letter id.
    let build = |order: &mut dyn Iterator<Item = &(Cvr, MessageUuid)>| -> Vec<NewLetter> {
        order
            .map(|(s, u)| sealed_letter(&ring, *s, *u, [1; 32], "same letter", 256))
            .collect()
    };
    let forward = build(&mut pairs.iter());
    let backward = build(&mut pairs.iter().rev());

    // Each gateway commits its letters as several batches at once, as its committer would
    // under load from several streams: batches of the two gateways overlap in time.
    async fn insert_all(
        store: Arc<dyn Store>,
        letters: Vec<NewLetter>,
    ) -> Vec<(NewLetter, InsertOutcome)> {
        let batches: Vec<_> = letters
            .chunks(100)
            .map(|chunk| {
                let (store, chunk) = (store.clone(), chunk.to_vec());
                tokio::spawn(async move {
                    let outcomes = store.insert_letters(&chunk).await.expect("insert");
                    assert_eq!(outcomes.len(), chunk.len());
                    chunk.into_iter().zip(outcomes).collect::<Vec<_>>()
                })
            })
            .collect();
        let mut out = Vec::with_capacity(letters.len());
        for batch in batches {
            out.extend(batch.await.expect("batch"));
        }
        out
    }
    let (a, c) = tokio::join!(
        insert_all(one.clone(), forward),
        insert_all(two.clone(), backward)
    );

    let mut by_pair: HashMap<(Cvr, MessageUuid), Vec<(NewLetter, InsertOutcome)>> = HashMap::new();
    for (l, o) in a.into_iter().chain(c) {
        by_pair
            .entry((l.sender, l.message_uuid))
            .or_default()
            .push((l, o));
    }
    assert_eq!(by_pair.len(), 500);
    for (pair, results) in &by_pair {
        assert_eq!(results.len(), 2);
        let inserted: Vec<&NewLetter> = results
            .iter()
            .filter(|(_, o)| *o == InsertOutcome::Inserted)
            .map(|(l, _)| l)
            .collect();
        assert_eq!(
            inserted.len(),
            1,
            "{pair:?} inserted {} times",
            inserted.len()
        );
        let winner = inserted[0].letter_id;
        for (_, o) in results {
            if let InsertOutcome::Existing(r) = o {
                assert_eq!(r.letter_id, winner, "Existing names the stored letter");
            }
        }
        let stored = one
            .letter(pair.0, LetterKey::MessageUuid(pair.1))
            .await
            .expect("letter")
            .expect("stored");
        assert_eq!(stored.letter_id, winner);
    }
    assert_eq!(two.state_counts().await.expect("counts").accepted, 500);
}
