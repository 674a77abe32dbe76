//! The registry: all-or-nothing imports, replaced subscriptions, the streamed round trip, and
//! the change log every gateway follows.

use brevdue::directory::Secrets;
use brevdue::store::{
    ChangeKind, ChangePage, ChangeProblem, ChangeRequest, LoggedChange, RegistryImport, ScanPart,
};

use crate::fixtures::*;

contract!(
    import_registry_is_all_or_nothing,
    import_registry_replaces_subscriptions,
    scan_registry_round_trip,
    changes_are_made_in_order_and_logged_with_whole_states,
    a_change_batch_with_a_bad_change_changes_nothing,
    pruned_changes_tell_the_reader_to_reload,
);

fn secrets() -> Secrets {
    Secrets {
        pseudonyms: Pseudonymizer::new(&[5; 32]),
        rows: RowCipher::new(&[6; 32]).expect("row cipher"),
    }
}

fn id(s: &str) -> RecipientId {
    s.parse().expect("recipient id")
}

fn import(
    s: &Secrets,
    recipients: &[(&str, RecipientStatus)],
    subscriptions: &[(u64, &str, &str)],
) -> RegistryImport {
    let recipients: Vec<(RecipientId, RecipientStatus)> =
        recipients.iter().map(|(r, st)| (id(r), *st)).collect();
    let subscriptions: Vec<(u64, RecipientId, Cvr)> = subscriptions
        .iter()
        .map(|(line, r, s)| (*line, id(r), cvr(s)))
        .collect();
    s.import_of(&recipients, &subscriptions)
        .expect("prepare import")
}

/// The stored registry as (index key, status, senders), opened with the registry key.
async fn stored(
    store: &Arc<dyn Store>,
    s: &Secrets,
) -> (HashSet<(u64, RecipientStatus, Vec<u32>)>, i64) {
    let mut out = HashSet::new();
    let mut bad = 0;
    let seq = store
        .scan_registry(ScanPart::WHOLE, &mut |r| {
            match s.rows.open_key(r.sealed_key, r.tag) {
                Ok(key) => {
                    out.insert((key, r.status, r.senders.to_vec()));
                }
                Err(_) => bad += 1,
            }
            Ok(())
        })
        .await
        .expect("scan registry");
    assert_eq!(bad, 0, "every sealed id opens under its own tag");
    (out, seq)
}

fn key(s: &str) -> u64 {
    id(s).index_key()
}

const ANNA: &str = "0101901111";
const BO: &str = "0101902222";
const CARL: &str = "0101903333";
const COMPANY: &str = "61126228";
const OTHER_BANK: &str = "25313763";

async fn import_registry_is_all_or_nothing(b: Backend) {
    let store = b.open().await;
    let s = secrets();
    store
        .import_registry(
            &import(&s, &[(ANNA, RecipientStatus::Active)], &[(2, ANNA, BANK)]),
            "test",
            &|_| {},
        )
        .await
        .expect("first import");
    let before = stored(&store, &s).await;

    // BO is new in this file, CARL and COMPANY are nowhere: the whole import fails, BO included.
    let result = store
        .import_registry(
            &import(
                &s,
                &[
                    (BO, RecipientStatus::Exempt),
                    (ANNA, RecipientStatus::Closed),
                ],
                &[
                    (2, BO, BANK),
                    (3, CARL, BANK),
                    (4, ANNA, AUTHORITY),
                    (5, COMPANY, BANK),
                    (6, CARL, AUTHORITY),
                ],
            ),
            "test",
            &|_| {},
        )
        .await;
    match result {
        Err(StoreError::UnknownSubscribers(lines)) => assert_eq!(lines, vec![3, 5, 6]),
        other => panic!("expected UnknownSubscribers, got {other:?}"),
    }
    assert_eq!(
        stored(&store, &s).await,
        before,
        "nothing changed, no change logged"
    );
}

async fn import_registry_replaces_subscriptions(b: Backend) {
    let store = b.open().await;
    let s = secrets();
    let first = store
        .import_registry(
            &import(
                &s,
                &[
                    (ANNA, RecipientStatus::Active),
                    (BO, RecipientStatus::Active),
                ],
                &[(2, ANNA, BANK), (3, ANNA, OTHER_BANK), (4, BO, BANK)],
            ),
            "test",
            &|n| assert!(n <= 2),
        )
        .await
        .expect("first import");
    // ANNA now subscribes to the authority only, listed twice; BO is not named, so BO keeps its
    // subscriptions; ANNA's status changes. CARL is named only in the subscriptions.
    let second = store
        .import_registry(
            &import(
                &s,
                &[
                    (ANNA, RecipientStatus::Exempt),
                    (CARL, RecipientStatus::Active),
                ],
                &[(2, ANNA, AUTHORITY), (3, ANNA, AUTHORITY)],
            ),
            "test",
            &|_| {},
        )
        .await
        .expect("second import");
    assert!(second > first);
    let third = store
        .import_registry(&import(&s, &[], &[(2, CARL, OTHER_BANK)]), "test", &|_| {})
        .await
        .expect("subscriptions of a registered recipient alone");
    let (rows, seq) = stored(&store, &s).await;
    assert_eq!(seq, third);
    let expected: HashSet<(u64, RecipientStatus, Vec<u32>)> = [
        (
            key(ANNA),
            RecipientStatus::Exempt,
            vec![cvr(AUTHORITY).value()],
        ),
        (key(BO), RecipientStatus::Active, vec![cvr(BANK).value()]),
        (
            key(CARL),
            RecipientStatus::Active,
            vec![cvr(OTHER_BANK).value()],
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(rows, expected);
    // Every import is a new generation in the log.
    let ChangePage::Changes(log) = store.registry_changes_after(0, 100).await.expect("log") else {
        panic!("nothing was pruned");
    };
    assert_eq!(
        log.iter().map(|c| (c.seq, c.kind)).collect::<Vec<_>>(),
        vec![
            (first, ChangeKind::Import),
            (second, ChangeKind::Import),
            (third, ChangeKind::Import)
        ]
    );
}

async fn scan_registry_round_trip(b: Backend) {
    let store = b.open().await;
    let s = secrets();
    let people = [
        (ANNA, RecipientStatus::Active),
        (BO, RecipientStatus::Exempt),
        (CARL, RecipientStatus::Closed),
        (COMPANY, RecipientStatus::Active),
    ];
    // Enough recipients for several statements per import.
    let mut many: Vec<(RecipientId, RecipientStatus)> = (0..20_000u64)
        .map(|i| {
            let cpr = format!(
                "{:02}{:02}85{:04}",
                1 + i % 28,
                1 + (i / 28) % 12,
                i % 10_000
            );
            (id(&cpr), RecipientStatus::Active)
        })
        .collect();
    many.sort_by_key(|r| r.0.index_key());
    many.dedup_by_key(|r| r.0.index_key());
    many.extend(people.iter().map(|(r, st)| (id(r), *st)));
    let subs = vec![
        (2, id(ANNA), cvr(BANK)),
        (3, id(COMPANY), cvr(BANK)),
        (4, id(COMPANY), cvr(OTHER_BANK)),
    ];
    store
        .import_registry(
            &s.import_of(&many, &subs).expect("prepare"),
            "test",
            &|_| {},
        )
        .await
        .expect("import");
    let (rows, _) = stored(&store, &s).await;
    assert_eq!(rows.len(), many.len());
    assert!(rows.contains(&(key(ANNA), RecipientStatus::Active, vec![cvr(BANK).value()])));
    assert!(rows.contains(&(
        key(COMPANY),
        RecipientStatus::Active,
        vec![cvr(BANK).value(), cvr(OTHER_BANK).value()]
    )));
    assert!(rows.contains(&(key(CARL), RecipientStatus::Closed, vec![])));
    assert_eq!(
        store.registry_head().await.expect("head").recipients,
        many.len() as u64
    );
    // And a second instance (another gateway) reads the same.
    let other = b.open().await;
    assert_eq!(stored(&other, &s).await.0, rows);
    // Parts of a scan are disjoint and together the whole.
    for of in [2u8, 3] {
        let mut seen = Vec::new();
        for index in 0..of {
            store
                .scan_registry(ScanPart { index, of }, &mut |r| {
                    seen.push(*r.tag);
                    Ok(())
                })
                .await
                .expect("scan part");
        }
        let unique: HashSet<RecipientTag> = seen.iter().copied().collect();
        assert_eq!(seen.len(), rows.len(), "{of} parts");
        assert_eq!(unique.len(), rows.len(), "{of} parts");
    }
}

fn change(
    s: &Secrets,
    kind: ChangeKind,
    who: &str,
    status: Option<RecipientStatus>,
    sender: Option<&str>,
) -> ChangeRequest {
    let rid = id(who);
    let tag = s.pseudonyms.tag(&rid);
    let mut sealed = Vec::new();
    s.rows
        .seal_keys(&[(rid.index_key(), tag)], &mut sealed)
        .expect("seal");
    ChangeRequest {
        kind,
        tag,
        sealed_key: sealed[0],
        status,
        sender: sender.map(cvr),
    }
}

async fn changes_are_made_in_order_and_logged_with_whole_states(b: Backend) {
    let store = b.open().await;
    let s = secrets();
    let base = store
        .import_registry(
            &import(
                &s,
                &[
                    (ANNA, RecipientStatus::Active),
                    (BO, RecipientStatus::Active),
                ],
                &[(2, BO, BANK)],
            ),
            "test",
            &|_| {},
        )
        .await
        .expect("import");
    let applied = store
        .apply_registry_changes(
            &[
                change(&s, ChangeKind::Subscribe, ANNA, None, Some(BANK)),
                change(&s, ChangeKind::Subscribe, ANNA, None, Some(OTHER_BANK)),
                change(&s, ChangeKind::Unsubscribe, ANNA, None, Some(BANK)),
                change(
                    &s,
                    ChangeKind::Status,
                    CARL,
                    Some(RecipientStatus::Exempt),
                    None,
                ),
                change(
                    &s,
                    ChangeKind::Status,
                    COMPANY,
                    Some(RecipientStatus::Closed),
                    None,
                ),
                change(&s, ChangeKind::Remove, BO, None, None),
            ],
            "operator test",
        )
        .await
        .expect("changes");
    assert_eq!(applied.count, 6);
    assert_eq!(applied.last_seq - applied.first_seq, 5);
    assert!(applied.first_seq > base);

    let (rows, seq) = stored(&store, &s).await;
    assert_eq!(seq, applied.last_seq);
    let expected: HashSet<(u64, RecipientStatus, Vec<u32>)> = [
        (
            key(ANNA),
            RecipientStatus::Active,
            vec![cvr(OTHER_BANK).value()],
        ),
        (key(CARL), RecipientStatus::Exempt, vec![]),
        (key(COMPANY), RecipientStatus::Closed, vec![]),
    ]
    .into_iter()
    .collect();
    assert_eq!(rows, expected);

    let ChangePage::Changes(log) = store.registry_changes_after(base, 100).await.expect("log")
    else {
        panic!("nothing was pruned");
    };
    let kinds: Vec<ChangeKind> = log.iter().map(|c| c.kind).collect();
    assert_eq!(
        kinds,
        vec![
            ChangeKind::Subscribe,
            ChangeKind::Subscribe,
            ChangeKind::Unsubscribe,
            ChangeKind::Status,
            ChangeKind::Status,
            ChangeKind::Remove
        ]
    );
    let state = |c: &LoggedChange| {
        let st = c.state.as_ref().expect("a recipient change has a state");
        (
            s.rows.open_key(&st.sealed_key, &st.tag).expect("opens"),
            st.now.clone(),
        )
    };
    assert_eq!(
        state(&log[1]),
        (
            key(ANNA),
            Some((
                RecipientStatus::Active,
                vec![cvr(BANK).value(), cvr(OTHER_BANK).value()]
            ))
        )
    );
    assert_eq!(state(&log[5]), (key(BO), None));
    assert_eq!(
        log.iter().map(|c| c.seq).collect::<Vec<_>>(),
        (applied.first_seq..=applied.last_seq).collect::<Vec<_>>()
    );
    // Paging.
    let ChangePage::Changes(page) = store
        .registry_changes_after(log[2].seq, 2)
        .await
        .expect("page")
    else {
        panic!("nothing was pruned");
    };
    assert_eq!(page, log[3..5].to_vec());
}

async fn a_change_batch_with_a_bad_change_changes_nothing(b: Backend) {
    let store = b.open().await;
    let s = secrets();
    store
        .import_registry(
            &import(&s, &[(ANNA, RecipientStatus::Active)], &[]),
            "test",
            &|_| {},
        )
        .await
        .expect("import");
    let before = stored(&store, &s).await;
    let result = store
        .apply_registry_changes(
            &[
                change(
                    &s,
                    ChangeKind::Status,
                    BO,
                    Some(RecipientStatus::Active),
                    None,
                ),
                change(&s, ChangeKind::Subscribe, CARL, None, Some(BANK)),
                change(&s, ChangeKind::Subscribe, ANNA, None, Some(BANK)),
                change(&s, ChangeKind::Remove, COMPANY, None, None),
            ],
            "operator test",
        )
        .await;
    match result {
        Err(StoreError::RegistryChanges { problems, total }) => {
            assert_eq!(total, 2);
            assert_eq!(
                problems,
                vec![
                    (1, ChangeProblem::NotRegistered),
                    (3, ChangeProblem::NotRegistered)
                ]
            );
        }
        other => panic!("expected RegistryChanges, got {other:?}"),
    }
    assert_eq!(
        stored(&store, &s).await,
        before,
        "nothing changed, nothing logged"
    );
}

async fn pruned_changes_tell_the_reader_to_reload(b: Backend) {
    let store = b.open().await;
    let s = secrets();
    let first = store
        .import_registry(
            &import(&s, &[(ANNA, RecipientStatus::Active)], &[]),
            "test",
            &|_| {},
        )
        .await
        .expect("import");
    let applied = store
        .apply_registry_changes(
            &[change(&s, ChangeKind::Subscribe, ANNA, None, Some(BANK))],
            "test",
        )
        .await
        .expect("change");
    // Everything older than the future goes, but the newest entry stays.
    let gone = store
        .prune_registry_changes(brevdue::clock::now_ms() + 60_000)
        .await
        .expect("prune");
    assert_eq!(gone, 1);
    assert_eq!(
        store.registry_changes_after(0, 10).await.expect("after 0"),
        ChangePage::Pruned
    );
    assert_eq!(
        store
            .registry_changes_after(first - 1, 10)
            .await
            .expect("before the import"),
        ChangePage::Pruned
    );
    let ChangePage::Changes(rest) = store
        .registry_changes_after(first, 10)
        .await
        .expect("after")
    else {
        panic!("a reader that saw the pruned entries is not told to reload");
    };
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].seq, applied.last_seq);
}
