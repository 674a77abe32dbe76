//! The registry: all-or-nothing imports, replaced subscriptions and the round trip.

use crate::fixtures::*;

contract!(
    import_registry_is_all_or_nothing,
    import_registry_replaces_subscriptions,
    load_registry_round_trip,
);

struct Registry {
    pseudonyms: Pseudonymizer,
    rows: RowCipher,
}

impl Registry {
    fn new() -> Registry {
        Registry {
            pseudonyms: Pseudonymizer::new(&[5; 32]),
            rows: RowCipher::new(&[6; 32]).expect("row cipher"),
        }
    }

    fn recipient(&self, id: &str, status: RecipientStatus) -> RecipientRow {
        let id: RecipientId = id.parse().expect("recipient id");
        let tag = self.pseudonyms.tag(&id);
        RecipientRow {
            sealed_key: self.rows.seal_key(id.index_key(), &tag).expect("seal key"),
            tag,
            status,
        }
    }

    fn subscription(&self, line: u64, id: &str, sender: &str) -> SubscriptionRow {
        let id: RecipientId = id.parse().expect("recipient id");
        SubscriptionRow {
            line,
            tag: self.pseudonyms.tag(&id),
            sender: cvr(sender),
        }
    }

    fn tag(&self, id: &str) -> RecipientTag {
        self.pseudonyms.tag(&id.parse().expect("recipient id"))
    }
}

/// The stored registry as comparable sets: (tag, id's index key, status), (tag, sender).
type RegistrySets = (
    HashSet<(RecipientTag, u64, RecipientStatus)>,
    HashSet<(RecipientTag, Cvr)>,
);

async fn registry_sets(store: &Arc<dyn Store>, reg: &Registry) -> RegistrySets {
    let stored = store.load_registry().await.expect("load registry");
    let recipients = stored
        .recipients
        .iter()
        .map(|(tag, sealed, status)| (*tag, reg.rows.open_key(sealed, tag).expect("open"), *status))
        .collect();
    let subscriptions = stored
        .subscriptions
        .iter()
        .map(|(tag, sealed, sender)| {
            reg.rows
                .open_key(sealed, tag)
                .expect("subscriber key opens");
            (*tag, *sender)
        })
        .collect();
    (recipients, subscriptions)
}

const ANNA: &str = "0101901111";
const BO: &str = "0101902222";
const CARL: &str = "0101903333";
const COMPANY: &str = "61126228";

async fn import_registry_is_all_or_nothing(b: Backend) {
    let store = b.open().await;
    let reg = Registry::new();
    store
        .import_registry(
            &[reg.recipient(ANNA, RecipientStatus::Active)],
            &[reg.subscription(2, ANNA, BANK)],
        )
        .await
        .expect("first import");
    let before = registry_sets(&store, &reg).await;
    let g = store.generations().await.expect("generations");

    // BO is new in this file, CARL is nowhere: the whole import fails, BO included.
    let result = store
        .import_registry(
            &[
                reg.recipient(BO, RecipientStatus::Exempt),
                reg.recipient(ANNA, RecipientStatus::Closed),
            ],
            &[
                reg.subscription(2, BO, BANK),
                reg.subscription(3, CARL, BANK),
                reg.subscription(4, ANNA, AUTHORITY),
                reg.subscription(5, COMPANY, BANK),
                reg.subscription(6, CARL, AUTHORITY),
            ],
        )
        .await;
    match result {
        Err(StoreError::UnknownSubscribers(lines)) => assert_eq!(lines, vec![3, 5, 6]),
        other => panic!("expected UnknownSubscribers, got {other:?}"),
    }
    assert_eq!(registry_sets(&store, &reg).await, before, "nothing changed");
    assert_eq!(store.generations().await.expect("generations"), g);
}

async fn import_registry_replaces_subscriptions(b: Backend) {
    let store = b.open().await;
    let reg = Registry::new();
    let other_bank = "25313763";
    store
        .import_registry(
            &[
                reg.recipient(ANNA, RecipientStatus::Active),
                reg.recipient(BO, RecipientStatus::Active),
            ],
            &[
                reg.subscription(2, ANNA, BANK),
                reg.subscription(3, ANNA, other_bank),
                reg.subscription(4, BO, BANK),
            ],
        )
        .await
        .expect("first import");
    let g = store.generations().await.expect("generations");
    // ANNA (known from before) now subscribes to the authority only, listed twice; BO is not
    // named, so BO's subscriptions stay; ANNA's status changes.
    store
        .import_registry(
            &[reg.recipient(ANNA, RecipientStatus::Exempt)],
            &[
                reg.subscription(2, ANNA, AUTHORITY),
                reg.subscription(3, ANNA, AUTHORITY),
            ],
        )
        .await
        .expect("second import");
    assert_eq!(
        store.generations().await.expect("generations").registry,
        g.registry + 1
    );
    let (recipients, subscriptions) = registry_sets(&store, &reg).await;
    let statuses: HashMap<RecipientTag, RecipientStatus> =
        recipients.iter().map(|(t, _, s)| (*t, *s)).collect();
    assert_eq!(statuses.len(), 2);
    assert_eq!(statuses[&reg.tag(ANNA)], RecipientStatus::Exempt);
    assert_eq!(statuses[&reg.tag(BO)], RecipientStatus::Active);
    let expected: HashSet<(RecipientTag, Cvr)> =
        [(reg.tag(ANNA), cvr(AUTHORITY)), (reg.tag(BO), cvr(BANK))]
            .into_iter()
            .collect();
    assert_eq!(subscriptions, expected);
}

async fn load_registry_round_trip(b: Backend) {
    let store = b.open().await;
    let reg = Registry::new();
    let people = [
        (ANNA, RecipientStatus::Active),
        (BO, RecipientStatus::Exempt),
        (CARL, RecipientStatus::Closed),
        (COMPANY, RecipientStatus::Active),
    ];
    let rows: Vec<RecipientRow> = people
        .iter()
        .map(|(id, status)| reg.recipient(id, *status))
        .collect();
    // A recipient listed twice ends with the last status.
    let mut with_repeat = rows.clone();
    with_repeat.push(reg.recipient(BO, RecipientStatus::Active));
    store
        .import_registry(
            &with_repeat,
            &[
                reg.subscription(2, ANNA, BANK),
                reg.subscription(3, COMPANY, BANK),
                reg.subscription(4, COMPANY, "25313763"),
            ],
        )
        .await
        .expect("import");
    let (recipients, subscriptions) = registry_sets(&store, &reg).await;
    let expected: HashSet<(RecipientTag, u64, RecipientStatus)> = people
        .iter()
        .map(|(id, status)| {
            let rid: RecipientId = id.parse().expect("id");
            let status = if *id == BO {
                RecipientStatus::Active
            } else {
                *status
            };
            (reg.tag(id), rid.index_key(), status)
        })
        .collect();
    assert_eq!(recipients, expected);
    let expected: HashSet<(RecipientTag, Cvr)> = [
        (reg.tag(ANNA), cvr(BANK)),
        (reg.tag(COMPANY), cvr(BANK)),
        (reg.tag(COMPANY), cvr("25313763")),
    ]
    .into_iter()
    .collect();
    assert_eq!(subscriptions, expected);
    // And a second instance (another gateway) reads the same.
    let other = b.open().await;
    assert_eq!(registry_sets(&other, &reg).await.0, recipients);
}
