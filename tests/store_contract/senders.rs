//! Senders, their certificates, suspension, limits and the change counters.

use crate::fixtures::*;

contract!(senders_and_generations,);

async fn senders_and_generations(b: Backend) {
    let store = b.open().await;
    let g0 = store.generations().await.expect("generations");
    let bank = SenderInfo {
        cvr: cvr(BANK),
        name: "Banken A/S".into(),
        kind: SenderKind::Private,
        suspended: false,
        limits: Default::default(),
    };
    store.add_sender(&bank, [1; 32]).await.expect("add");
    let g1 = store.generations().await.expect("generations");
    assert_eq!(g1.senders, g0.senders + 1);

    let again = store.add_sender(&bank, [2; 32]).await;
    assert!(
        matches!(again, Err(StoreError::SenderExists(c)) if c == bank.cvr),
        "{again:?}"
    );
    assert_eq!(store.generations().await.expect("generations"), g1);

    store
        .add_sender_cert(bank.cvr, [3; 32])
        .await
        .expect("re-issue");
    let unknown = store.add_sender_cert(cvr(AUTHORITY), [4; 32]).await;
    assert!(
        matches!(unknown, Err(StoreError::UnknownSender(_))),
        "{unknown:?}"
    );
    store.set_suspended(bank.cvr, true).await.expect("suspend");
    let unknown = store.set_suspended(cvr(AUTHORITY), true).await;
    assert!(
        matches!(unknown, Err(StoreError::UnknownSender(_))),
        "{unknown:?}"
    );
    assert_eq!(
        store.generations().await.expect("generations").senders,
        g0.senders + 3
    );

    let authority = SenderInfo {
        cvr: cvr(AUTHORITY),
        name: "Styrelsen".into(),
        kind: SenderKind::Public,
        suspended: false,
        limits: Default::default(),
    };
    store.add_sender(&authority, [5; 32]).await.expect("add");
    let (mut senders, mut certs) = store.senders().await.expect("senders");
    senders.sort_by_key(|s| s.cvr);
    certs.sort();
    let mut suspended_bank = bank.clone();
    suspended_bank.suspended = true;
    let mut expected = vec![suspended_bank, authority.clone()];
    expected.sort_by_key(|s| s.cvr);
    assert_eq!(senders, expected);
    assert_eq!(
        certs,
        vec![
            ([1; 32], bank.cvr),
            ([3; 32], bank.cvr),
            ([5; 32], authority.cvr)
        ]
    );

    // Every change counts, also when several store instances change at once.
    let other = b.open().await;
    let (x, y) = tokio::join!(
        store.set_suspended(bank.cvr, false),
        other.set_suspended(authority.cvr, true)
    );
    x.expect("unsuspend");
    y.expect("suspend");
    assert_eq!(
        other.generations().await.expect("generations").senders,
        g0.senders + 6
    );
}
