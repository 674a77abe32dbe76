//! Routing: the pure per-letter decision of where a letter goes.
//!
//! No I/O and no allocation: the router reads the registry entry it is handed and answers
//! MAILBOX, PRINT or a rejection with its reason. The table it implements is SPEC §1:
//!
//! | sender  | recipient          | condition                 | outcome                          |
//! |---------|--------------------|---------------------------|----------------------------------|
//! | PUBLIC  | CLOSED             |                           | REJECTED (RECIPIENT_CLOSED)      |
//! | PUBLIC  | ACTIVE             |                           | MAILBOX                          |
//! | PUBLIC  | EXEMPT or UNKNOWN  |                           | PRINT                            |
//! | PRIVATE | ACTIVE or EXEMPT   | subscribed to this sender | MAILBOX                          |
//! | PRIVATE | any other (CLOSED too) | `print_fallback`      | PRINT                            |
//! | PRIVATE | any other (CLOSED too) | no `print_fallback`   | REJECTED (NOT_REACHABLE)         |
//!
//! Privacy: a PRIVATE sender never learns why a recipient cannot be reached. For every recipient
//! that has not subscribed to it (CLOSED included, subscribed once or not: SPEC §1 as amended),
//! the decision is the one for a recipient the registry has never heard of, so its receipts and
//! `CheckRecipient` answers cannot tell a deceased person from an unsubscribed one. A closed
//! recipient's letter with `print_fallback` goes to print, where the print house handles estates.

use crate::domain::{Cvr, RecipientId, RecipientStatus, RejectReason, Route, SenderKind};
use time::Date;

use crate::registry::{LiveRegistry, RecipientEntry};

/// Age from which Digital Post is mandatory.
pub const DIGITAL_POST_AGE: u32 = 15;

/// The router's answer for one letter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Decision {
    Deliver(Route),
    Reject(RejectReason),
}

/// The sender facts routing needs.
#[derive(Clone, Copy, Debug)]
pub struct SenderRef {
    pub cvr: Cvr,
    pub kind: SenderKind,
}

/// Decides one letter. `entry` is the registry's record of the recipient, if any.
///
/// A recipient missing from the registry is UNKNOWN. That includes every citizen under 15,
/// registered or not (see [`entry_on`]): Digital Post becomes mandatory at 15, so for a public
/// sender their letters go to print and for a private sender they are not reachable.
pub fn decide(
    sender: SenderRef,
    entry: Option<RecipientEntry<'_>>,
    print_fallback: bool,
) -> Decision {
    let status = entry.map(|e| e.status);
    let subscribed = entry.is_some_and(|e| e.is_subscribed_to(sender.cvr));
    match (sender.kind, status) {
        (SenderKind::Public, Some(RecipientStatus::Closed)) => {
            Decision::Reject(RejectReason::RecipientClosed)
        }
        (SenderKind::Public, Some(RecipientStatus::Active)) => Decision::Deliver(Route::Mailbox),
        (SenderKind::Public, Some(RecipientStatus::Exempt) | None) => {
            Decision::Deliver(Route::Print)
        }
        // A closed recipient's subscription no longer counts (its mailbox is gone), and it falls
        // through to the arms below like any unsubscribed recipient.
        (SenderKind::Private, Some(RecipientStatus::Active | RecipientStatus::Exempt))
            if subscribed =>
        {
            Decision::Deliver(Route::Mailbox)
        }
        (SenderKind::Private, _) if print_fallback => Decision::Deliver(Route::Print),
        (SenderKind::Private, _) => Decision::Reject(RejectReason::NotReachable),
    }
}

/// One letter to route.
#[derive(Clone, Copy, Debug)]
pub struct RouteQuery {
    pub sender: SenderRef,
    pub recipient: RecipientId,
    pub print_fallback: bool,
}

/// Letters looked up together: enough to keep the memory system busy, few enough to stay in L1.
const CHUNK: usize = 64;

/// Whether a registered recipient counts as registered on `today` (the Danish calendar day):
/// a citizen under 15 does not, whatever the registry holds. Digital Post becomes mandatory on
/// the 15th birthday, so a registered child's letters start routing as an adult's that day
/// with no change in the registry.
#[inline]
fn counts_on(recipient: &RecipientId, today: Date) -> bool {
    match recipient {
        RecipientId::Cpr(c) => c.age_on(today) >= DIGITAL_POST_AGE,
        RecipientId::Cvr(_) => true,
    }
}

/// The registry's record of a recipient as routing sees it on `today`.
pub fn entry_on<'a>(
    registry: &'a LiveRegistry,
    recipient: &RecipientId,
    today: Date,
) -> Option<RecipientEntry<'a>> {
    registry
        .lookup(recipient)
        .filter(|_| counts_on(recipient, today))
}

/// Routes many letters at once, appending one decision per query to `out`, in order.
///
/// Equivalent to calling [`route`] per letter, and several times faster on a large registry: a
/// lookup is one or two cache misses, and deciding right after each lookup makes the decision's
/// data-dependent branches stall the misses of the next letters behind them. Here each chunk is
/// looked up first (independent loads the CPU overlaps), its subscription lists are touched next
/// (again independent), and only then decided, from cache. Recipients changed since the packed
/// index was built are answered by the registry's overlay.
pub fn route_batch(
    registry: &LiveRegistry,
    today: Date,
    queries: &[RouteQuery],
    out: &mut Vec<Decision>,
) {
    const ABSENT: u32 = u32::MAX;
    let index = registry.base();
    let changes = registry.has_changes();
    let mut packed = [ABSENT; CHUNK];
    out.reserve(queries.len());
    for chunk in queries.chunks(CHUNK) {
        for (p, q) in packed.iter_mut().zip(chunk) {
            *p = index.packed(&q.recipient).unwrap_or(ABSENT);
        }
        let mut touched = 0u32;
        for &p in &packed[..chunk.len()] {
            touched ^= index.arena_head(if p == ABSENT { 0 } else { p });
        }
        std::hint::black_box(touched);
        for (q, &p) in chunk.iter().zip(&packed) {
            let changed = if changes {
                registry.changed(q.recipient.index_key())
            } else {
                None
            };
            let entry = match changed {
                Some(entry) => entry,
                None => (p != ABSENT).then(|| index.entry(p)),
            }
            .filter(|_| counts_on(&q.recipient, today));
            out.push(decide(q.sender, entry, q.print_fallback));
        }
    }
}

/// Looks the recipient up and decides: the whole routing stage for one letter.
pub fn route(
    registry: &LiveRegistry,
    today: Date,
    sender: SenderRef,
    recipient: &RecipientId,
    print_fallback: bool,
) -> Decision {
    decide(sender, entry_on(registry, recipient, today), print_fallback)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::RegistryBuilder;
    use proptest::prelude::*;

    const BANK: &str = "10103940";
    const OTHER_BANK: &str = "25313763";
    const AUTHORITY: &str = "29403473";

    fn sender(kind: SenderKind, cvr: &str) -> SenderRef {
        SenderRef {
            cvr: cvr.parse().unwrap(),
            kind,
        }
    }

    /// A registry with one recipient per interesting standing.
    /// The day the tests route on.
    const TODAY: Date = time::macros::date!(2026 - 12 - 02);

    fn registry() -> LiveRegistry {
        let mut b = RegistryBuilder::default();
        let add = |b: &mut RegistryBuilder, id: &str, st, subs: &[&str]| {
            let id: RecipientId = id.parse().unwrap();
            b.insert(id, st).unwrap();
            for s in subs {
                b.subscribe(id, s.parse().unwrap()).unwrap();
            }
        };
        add(&mut b, "0101901111", RecipientStatus::Active, &[BANK]);
        add(&mut b, "0101902222", RecipientStatus::Active, &[OTHER_BANK]);
        add(&mut b, "0101903333", RecipientStatus::Exempt, &[BANK]);
        add(&mut b, "0101904444", RecipientStatus::Exempt, &[]);
        add(&mut b, "0101905555", RecipientStatus::Closed, &[BANK]);
        add(&mut b, "61126228", RecipientStatus::Active, &[BANK]);
        add(&mut b, "10150817", RecipientStatus::Closed, &[]);
        // Registered children: turning 15 on 3 December 2026, and on 2 December 2026.
        add(&mut b, "0312114321", RecipientStatus::Active, &[BANK]);
        add(&mut b, "0212114321", RecipientStatus::Active, &[BANK]);
        LiveRegistry::from(b.build().unwrap())
    }

    fn go(kind: SenderKind, cvr: &str, to: &str, fallback: bool) -> Decision {
        route(
            &registry(),
            TODAY,
            sender(kind, cvr),
            &to.parse().unwrap(),
            fallback,
        )
    }

    const MAILBOX: Decision = Decision::Deliver(Route::Mailbox);
    const PRINT: Decision = Decision::Deliver(Route::Print);
    const UNREACHABLE: Decision = Decision::Reject(RejectReason::NotReachable);
    const CLOSED: Decision = Decision::Reject(RejectReason::RecipientClosed);

    use SenderKind::{Private, Public};

    #[test]
    fn closed_recipients_are_rejected_for_public_senders() {
        for fallback in [false, true] {
            assert_eq!(go(Public, AUTHORITY, "0101905555", fallback), CLOSED);
            assert_eq!(go(Public, AUTHORITY, "10150817", fallback), CLOSED);
        }
    }

    #[test]
    fn closed_recipients_route_like_unsubscribed_ones_for_private_senders() {
        // Subscribed once, and still never delivered to a closed mailbox; with print_fallback
        // the letter goes to print exactly as for a recipient nobody knows.
        for to in ["0101905555", "10150817"] {
            assert_eq!(go(Private, BANK, to, false), UNREACHABLE, "{to}");
            assert_eq!(go(Private, BANK, to, true), PRINT, "{to}");
            for fallback in [false, true] {
                let unknown = route(
                    &LiveRegistry::default(),
                    TODAY,
                    sender(Private, BANK),
                    &to.parse().unwrap(),
                    fallback,
                );
                assert_eq!(go(Private, BANK, to, fallback), unknown, "{to}");
            }
        }
    }

    #[test]
    fn public_senders_reach_active_mailboxes_and_print_the_rest() {
        for fallback in [false, true] {
            assert_eq!(go(Public, AUTHORITY, "0101901111", fallback), MAILBOX);
            assert_eq!(go(Public, AUTHORITY, "61126228", fallback), MAILBOX);
            assert_eq!(go(Public, AUTHORITY, "0101904444", fallback), PRINT); // exempt
            assert_eq!(go(Public, AUTHORITY, "0101909999", fallback), PRINT); // unknown
        }
    }

    #[test]
    fn public_senders_print_to_unregistered_children() {
        // Born 1 June 2015: 11 years old in 2026, never registered.
        assert_eq!(go(Public, AUTHORITY, "0106154321", false), PRINT);
        assert_eq!(go(Private, BANK, "0106154321", false), UNREACHABLE);
        assert_eq!(go(Private, BANK, "0106154321", true), PRINT);
    }

    #[test]
    fn registered_children_route_as_adults_from_their_15th_birthday() {
        // 14 today, 15 tomorrow: unknown until then, whatever the registry holds.
        assert_eq!(go(Public, AUTHORITY, "0312114321", false), PRINT);
        assert_eq!(go(Private, BANK, "0312114321", false), UNREACHABLE);
        let tomorrow = TODAY.next_day().unwrap();
        let who = sender(Private, BANK);
        let child: RecipientId = "0312114321".parse().unwrap();
        assert_eq!(route(&registry(), tomorrow, who, &child, false), MAILBOX);
        // 15 today: an adult.
        assert_eq!(go(Public, AUTHORITY, "0212114321", false), MAILBOX);
        assert_eq!(go(Private, BANK, "0212114321", false), MAILBOX);
        let mut out = Vec::new();
        let q = |to: &str| RouteQuery {
            sender: who,
            recipient: to.parse().unwrap(),
            print_fallback: false,
        };
        route_batch(
            &registry(),
            TODAY,
            &[q("0312114321"), q("0212114321")],
            &mut out,
        );
        assert_eq!(out, vec![UNREACHABLE, MAILBOX]);
    }

    #[test]
    fn private_senders_need_a_subscription() {
        for fallback in [false, true] {
            assert_eq!(go(Private, BANK, "0101901111", fallback), MAILBOX);
            assert_eq!(go(Private, BANK, "0101903333", fallback), MAILBOX); // exempt, subscribed
            assert_eq!(go(Private, BANK, "61126228", fallback), MAILBOX);
        }
        for to in ["0101902222", "0101904444", "0101909999"] {
            assert_eq!(go(Private, BANK, to, false), UNREACHABLE, "{to}");
            assert_eq!(go(Private, BANK, to, true), PRINT, "{to}");
        }
    }

    /// Valid CPR numbers (real dates, every century digit) and valid CVR numbers.
    fn any_valid_id() -> impl Strategy<Value = RecipientId> {
        let cpr = (1u32..=28, 1u32..=12, 0u32..=99, 0u32..=9999).prop_map(|(d, m, y, s)| {
            RecipientId::detect(&format!("{d:02}{m:02}{y:02}{s:04}")).expect("a real date")
        });
        let cvr = (1_000_000u32..=9_999_999).prop_filter_map("no CVR check digit", |n| {
            crate::domain::complete_cvr(n).map(RecipientId::Cvr)
        });
        prop_oneof![cpr, cvr]
    }

    fn any_status() -> impl Strategy<Value = Option<RecipientStatus>> {
        prop_oneof![
            Just(None),
            Just(Some(RecipientStatus::Active)),
            Just(Some(RecipientStatus::Exempt)),
            Just(Some(RecipientStatus::Closed)),
        ]
    }

    fn one_entry(
        status: Option<RecipientStatus>,
        subscribed: bool,
        id: RecipientId,
    ) -> LiveRegistry {
        let mut b = RegistryBuilder::default();
        if let Some(st) = status {
            // A company cannot be exempt; treat that draw as an active company.
            let st = if matches!(id, RecipientId::Cvr(_)) && st == RecipientStatus::Exempt {
                RecipientStatus::Active
            } else {
                st
            };
            b.insert(id, st).unwrap();
            if subscribed {
                b.subscribe(id, BANK.parse().unwrap()).unwrap();
            }
        }
        LiveRegistry::from(b.build().unwrap())
    }

    #[test]
    fn batch_routing_equals_single_routing() {
        let index = registry();
        let ids = [
            "0101901111",
            "0101902222",
            "0101903333",
            "0101904444",
            "0101905555",
            "61126228",
            "10150817",
            "0101909999",
            "0106154321",
            "0312114321",
            "0212114321",
        ];
        let mut queries = Vec::new();
        for (i, id) in ids.iter().cycle().take(200).enumerate() {
            let s = match i % 3 {
                0 => sender(Public, AUTHORITY),
                1 => sender(Private, BANK),
                _ => sender(Private, OTHER_BANK),
            };
            queries.push(RouteQuery {
                sender: s,
                recipient: id.parse().unwrap(),
                print_fallback: i % 2 == 0,
            });
        }
        let mut out = Vec::new();
        route_batch(&index, TODAY, &queries, &mut out);
        assert_eq!(out.len(), queries.len());
        for (q, d) in queries.iter().zip(&out) {
            assert_eq!(
                *d,
                route(&index, TODAY, q.sender, &q.recipient, q.print_fallback)
            );
        }
        // And with changes in the overlay.
        let changed = index
            .with_changes([(
                "0101902222".parse::<RecipientId>().unwrap().index_key(),
                Some(crate::registry::Delta {
                    status: RecipientStatus::Active,
                    senders: vec![BANK.parse::<crate::domain::Cvr>().unwrap().value()].into(),
                }),
            )])
            .unwrap();
        out.clear();
        route_batch(&changed, TODAY, &queries, &mut out);
        for (q, d) in queries.iter().zip(&out) {
            assert_eq!(
                *d,
                route(&changed, TODAY, q.sender, &q.recipient, q.print_fallback)
            );
        }
        assert_eq!(
            route(
                &changed,
                TODAY,
                sender(Private, BANK),
                &"0101902222".parse().unwrap(),
                false
            ),
            MAILBOX
        );
    }

    proptest! {
        /// A private sender's rejections always read NOT_REACHABLE, and without a live
        /// subscription it cannot tell a closed, exempt, unsubscribed or unknown recipient apart.
        #[test]
        fn private_senders_learn_nothing(
            status in any_status(),
            subscribed in any::<bool>(),
            fallback in any::<bool>(),
            value in 0u64..10_000_000_000,
        ) {
            let id = Cpr::from_value(value).map(RecipientId::Cpr)
                .unwrap_or_else(|_| "0101901234".parse().unwrap());
            let index = one_entry(status, subscribed, id);
            let d = route(&index, TODAY, sender(Private, BANK), &id, fallback);
            if let Decision::Reject(reason) = d {
                prop_assert_eq!(reason, RejectReason::NotReachable);
            }
            if !subscribed || status == Some(RecipientStatus::Closed) {
                let unknown = route(&LiveRegistry::default(), TODAY, sender(Private, BANK), &id, fallback);
                prop_assert_eq!(d, unknown);
            }
        }

        /// Routing is total and table-driven: for any valid id, any registry state and any
        /// sender, looking up and deciding gives exactly what the table gives for the status
        /// the registry holds, one by one and in a batch alike.
        #[test]
        fn routing_follows_the_table_for_every_id(
            status in any_status(),
            subscribed in any::<bool>(),
            fallback in any::<bool>(),
            public in any::<bool>(),
            id in any_valid_id(),
        ) {
            let index = one_entry(status, subscribed, id);
            let kind = if public { Public } else { Private };
            let who = sender(kind, if public { AUTHORITY } else { BANK });
            let d = route(&index, TODAY, who, &id, fallback);
            // The table, for the recipient as it stands today: a registered child counts as
            // unknown until its 15th birthday.
            let adult = match id {
                RecipientId::Cpr(c) => c.age_on(TODAY) >= DIGITAL_POST_AGE,
                RecipientId::Cvr(_) => true,
            };
            prop_assert_eq!(d, decide(who, index.lookup(&id).filter(|_| adult), fallback));
            // The entry the index holds is the one drawn (a CVR drawn exempt is stored active).
            let held = index.lookup(&id).map(|e| e.status);
            prop_assert_eq!(held.is_some(), status.is_some());
            let mut batch = Vec::new();
            route_batch(&index, TODAY, &[RouteQuery { sender: who, recipient: id, print_fallback: fallback }], &mut batch);
            prop_assert_eq!(batch, vec![d]);
        }
    }

    use crate::domain::Cpr;
}
