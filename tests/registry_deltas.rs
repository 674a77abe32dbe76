//! The index a running gateway keeps by applying the change log as deltas is the index a
//! gateway started afresh builds from the same store: a property over random change sequences
//! (applied in random batches, some refused whole), on the embedded store.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use brevdue::directory::Directory;
use brevdue::domain::{Cvr, RecipientId, RecipientStatus};
use brevdue::registry::LiveRegistry;
use brevdue::registry::change::{ChangeAction, RegistryChange};
use brevdue::store::{SqliteStore, Store, StoreError};
use proptest::prelude::*;

const PEOPLE: [&str; 8] = [
    "0101801111",
    "0202802222",
    "0303803333",
    "0404804444",
    "0505805555",
    "0606806666",
    "61126228",
    "10150817",
];
const SENDERS: [&str; 3] = ["10103940", "25313763", "29403473"];

fn any_change() -> impl Strategy<Value = (usize, u8, usize, u8)> {
    (0..PEOPLE.len(), 0u8..4, 0..SENDERS.len(), 0u8..3)
}

fn to_change(line: u64, (who, kind, sender, status): (usize, u8, usize, u8)) -> RegistryChange {
    let id: RecipientId = PEOPLE[who].parse().expect("id");
    let cvr: Cvr = SENDERS[sender].parse().expect("cvr");
    let status = match (status, id) {
        (0, _) => RecipientStatus::Active,
        (1, RecipientId::Cpr(_)) => RecipientStatus::Exempt,
        (1, RecipientId::Cvr(_)) => RecipientStatus::Active,
        _ => RecipientStatus::Closed,
    };
    let action = match kind {
        0 => ChangeAction::Subscribe(cvr),
        1 => ChangeAction::Unsubscribe(cvr),
        2 => ChangeAction::Status(status),
        _ => ChangeAction::Remove,
    };
    RegistryChange { line, id, action }
}

/// Every person's entry as (status, subscriptions), or absent.
fn view(r: &LiveRegistry) -> HashMap<&'static str, Option<(RecipientStatus, Vec<u32>)>> {
    PEOPLE
        .iter()
        .map(|p| {
            let id: RecipientId = p.parse().expect("id");
            (
                *p,
                r.lookup(&id)
                    .map(|e| (e.status, e.subscriptions().to_vec())),
            )
        })
        .collect()
}

async fn run(batches: Vec<Vec<(usize, u8, usize, u8)>>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&dir.path().join("brevdue.db"))
            .await
            .expect("store"),
    );
    let keys = dir.path().join("keys");
    let live = Directory::load(store.clone(), &keys)
        .await
        .expect("directory");
    for batch in batches {
        let changes: Vec<RegistryChange> = batch
            .into_iter()
            .enumerate()
            .map(|(i, c)| to_change(i as u64 + 1, c))
            .collect();
        let requests: Vec<_> = changes
            .iter()
            .map(|c| live.secrets().change_request(c).expect("seal"))
            .collect();
        match store.apply_registry_changes(&requests, "property").await {
            Ok(_) | Err(StoreError::RegistryChanges { .. }) => {}
            Err(e) => panic!("store: {e}"),
        }
        live.follow_registry().await.expect("follow");
    }
    let fresh = Directory::load(store.clone(), &keys)
        .await
        .expect("fresh directory");
    let (followed, rebuilt) = (live.registry(), fresh.registry());
    prop_assert_eq!(view(&followed), view(&rebuilt));
    prop_assert_eq!(followed.len(), rebuilt.len());
    prop_assert_eq!(live.registry_seq(), fresh.registry_seq());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn deltas_equal_a_rebuild(batches in prop::collection::vec(prop::collection::vec(any_change(), 1..12), 1..8)) {
        common::init();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(run(batches))?;
    }
}
