//! Certificates can be taken back: after a re-issue the old certificate keeps working until it is
//! revoked; once revoked, every running gateway refuses it within the refresh interval while the
//! new one works; `reissue --revoke-old` does both in one step; the store lists each
//! certificate with its expiry and state.

mod common;

use std::time::{Duration, Instant};

use brevdue::cli::admin::{senders_reissue, senders_revoke};
use brevdue::domain::Cvr;
use brevdue::ingest::pb;
use brevdue::store::{Revocation, StoreError};
use common::*;
use tonic::Code;

/// What a call with the certificate in `dir` gets: Ok, or the gRPC code it was refused with.
async fn call_with(h: &Harness, dir: &std::path::Path) -> Result<(), Code> {
    let mut c = connect(&h.server_url(), dir).await;
    c.check_recipient(pb::RecipientQuery {
        recipient: Some(pb::RecipientId {
            r#type: pb::IdType::Cpr as i32,
            id: ACTIVE_SUBSCRIBED.into(),
        }),
        print_fallback: false,
    })
    .await
    .map(|_| ())
    .map_err(|s| s.code())
}

/// Waits (with a deadline that only fails the test) until the certificate gets `want`.
async fn until(h: &Harness, dir: &std::path::Path, want: Result<(), Code>, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = call_with(h, dir).await;
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: still {got:?} after 20 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn a_revoked_certificate_is_refused_and_the_new_one_works(backend: Backend) {
    let h = Harness::start_on(backend).await;
    let bank: Cvr = BANK.parse().expect("cvr");
    let old = h.cert_dir(BANK);
    assert_eq!(call_with(&h, &old).await, Ok(()));

    // A re-issue: both work until the old one is revoked.
    let new = h.outside.path().join("bank-new");
    senders_reissue(&h.config, bank, &new, false)
        .await
        .expect("reissue");
    until(&h, &new, Ok(()), "the new certificate").await;
    assert_eq!(call_with(&h, &old).await, Ok(()), "the old one still works");

    let store = h.store().await;
    let listed: Vec<_> = store
        .certificates()
        .await
        .expect("list")
        .into_iter()
        .filter(|c| c.cvr == bank)
        .collect();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed.iter().all(|c| c.revoked_at_ms.is_none()));
    let recorded: Vec<_> = listed.iter().filter_map(|c| c.expires_at_ms).collect();
    assert!(
        recorded
            .iter()
            .all(|&e| e > brevdue::clock::now_ms() + 300 * 86_400_000),
        "re-issued certificates are valid about a year: {recorded:?}"
    );

    // Revoked while the gateway runs: refused within the refresh interval.
    senders_revoke(&h.config, bank, Revocation::AllButNewest)
        .await
        .expect("revoke");
    until(
        &h,
        &old,
        Err(Code::Unauthenticated),
        "the revoked certificate",
    )
    .await;
    assert_eq!(call_with(&h, &new).await, Ok(()), "the newest still works");
    let states: Vec<_> = store
        .certificates()
        .await
        .expect("list")
        .into_iter()
        .filter(|c| c.cvr == bank)
        .map(|c| c.revoked_at_ms.is_some())
        .collect();
    assert_eq!(states.iter().filter(|r| **r).count(), 1, "{states:?}");

    // Revoking again changes nothing; an unknown fingerprint is refused with a reason.
    let again = store
        .revoke_certs(bank, Revocation::AllButNewest)
        .await
        .expect("idempotent");
    assert!(again.is_empty());
    let unknown = store
        .revoke_certs(bank, Revocation::Fingerprint([7u8; 32]))
        .await;
    assert!(
        matches!(unknown, Err(StoreError::UnknownCertificate(c)) if c == bank),
        "{unknown:?}"
    );

    // Renewal in one step: a third certificate, and the second refused.
    let third = h.outside.path().join("bank-third");
    senders_reissue(&h.config, bank, &third, true)
        .await
        .expect("reissue --revoke-old");
    until(&h, &third, Ok(()), "the renewed certificate").await;
    until(
        &h,
        &new,
        Err(Code::Unauthenticated),
        "the certificate it replaced",
    )
    .await;
    // Another sender is untouched by all of it.
    assert_eq!(call_with(&h, &h.cert_dir(AUTHORITY)).await, Ok(()));
}

on_every_backend!(a_revoked_certificate_is_refused_and_the_new_one_works);
