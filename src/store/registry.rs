//! What the store keeps of the registry: one row per recipient (pseudonym, sealed index key,
//! status, the private senders it subscribed to) and the change log running gateways follow.
//! The types here and the [`RegistryStore`] contract; the SQL is in `registry_sqlite` and
//! `registry_pg`, whose bulk paths differ (multi-row statements, COPY).
//!
//! Change numbers (`seq`) commit in number order on every backend (one registry writer at a
//! time), and each entry holds the recipient's whole state after the change: a gateway that
//! applies the entries after the last one it saw, in order, ends with the store's registry, and
//! applying an entry twice changes nothing.

use async_trait::async_trait;

use crate::domain::{Cvr, RecipientStatus};
use crate::seal::{RecipientTag, SealedKey};

use std::collections::HashMap;

use super::StoreError;
use super::rows::{StoreRow, corrupt, status_from, tag_from};

/// What a change did, as the log records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// A CSV import: a new generation of the registry, which gateways load whole.
    Import,
    Subscribe,
    Unsubscribe,
    Status,
    Remove,
}

impl ChangeKind {
    pub(crate) fn code(self) -> i64 {
        match self {
            ChangeKind::Import => 0,
            ChangeKind::Subscribe => 1,
            ChangeKind::Unsubscribe => 2,
            ChangeKind::Status => 3,
            ChangeKind::Remove => 4,
        }
    }

    pub(crate) fn from_code(code: i64) -> Result<Self, StoreError> {
        Ok(match code {
            0 => ChangeKind::Import,
            1 => ChangeKind::Subscribe,
            2 => ChangeKind::Unsubscribe,
            3 => ChangeKind::Status,
            4 => ChangeKind::Remove,
            _ => return Err(corrupt("registry change kind")),
        })
    }
}

/// One recipient of an import, with its subscriptions when the subscriptions file names it.
#[derive(Clone, Copy, Debug)]
pub struct ImportRow {
    pub tag: RecipientTag,
    pub sealed_key: SealedKey,
    pub status: RecipientStatus,
    /// Its subscriptions in [`RegistryImport::senders`] (sorted, each once), or `None` when the
    /// subscriptions file does not name it: then a recipient already stored keeps its own.
    pub senders: Option<SenderRange>,
}

/// A slice of [`RegistryImport::senders`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SenderRange {
    pub start: u32,
    pub len: u32,
}

/// A recipient the subscriptions file names but the recipients file does not: it must be in
/// the registry already, and its subscriptions are replaced.
#[derive(Clone, Debug)]
pub struct SubscriberRow {
    pub tag: RecipientTag,
    pub senders: SenderRange,
    /// The subscriptions file's lines that name it (for the error when it is not registered).
    pub lines: Vec<u64>,
}

/// A whole import, prepared for the store: sorted by pseudonym (so rows go into the table's
/// B-tree in order), sealed, each recipient once.
#[derive(Clone, Debug, Default)]
pub struct RegistryImport {
    pub recipients: Vec<ImportRow>,
    pub subscribers: Vec<SubscriberRow>,
    /// Every subscription of the import, as CVR values, grouped per recipient.
    pub senders: Vec<u32>,
}

impl RegistryImport {
    pub fn senders_of(&self, range: SenderRange) -> &[u32] {
        let start = range.start as usize;
        self.senders
            .get(start..start + range.len as usize)
            .unwrap_or(&[])
    }

    /// Subscriptions in the import (recipients of both files).
    pub fn subscription_count(&self) -> usize {
        self.senders.len()
    }
}

/// One stored recipient, as a scan hands it over (borrowed: millions of them pass through).
#[derive(Clone, Copy, Debug)]
pub struct StoredRecipient<'a> {
    pub tag: &'a RecipientTag,
    pub sealed_key: &'a [u8],
    pub status: RecipientStatus,
    /// CVR values of the private senders it subscribed to, ascending.
    pub senders: &'a [u32],
}

/// One of `of` disjoint ranges of recipients by pseudonym (uniform: pseudonyms are HMACs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanPart {
    pub index: u8,
    pub of: u8,
}

impl ScanPart {
    pub const WHOLE: ScanPart = ScanPart { index: 0, of: 1 };

    /// The pseudonym range as (inclusive lower, exclusive upper) first bytes; `None` for no
    /// bound.
    pub(crate) fn bounds(self) -> (Option<[u8; 1]>, Option<[u8; 1]>) {
        let of = u16::from(self.of.max(1));
        let index = u16::from(self.index).min(of - 1);
        let first = |i: u16| (i * 256 / of) as u8;
        let lower = (index > 0).then(|| [first(index)]);
        let upper = (index + 1 < of).then(|| [first(index + 1)]);
        (lower, upper)
    }

    /// The `WHERE` clause of the range, with `$1`/`$2` (or `?`) for the bounds it has.
    pub(crate) fn predicate(self, numbered: bool) -> String {
        let p = |n: usize| {
            if numbered {
                format!("${n}")
            } else {
                "?".to_string()
            }
        };
        match self.bounds() {
            (None, None) => String::new(),
            (Some(_), None) => format!(" WHERE tag >= {}", p(1)),
            (None, Some(_)) => format!(" WHERE tag < {}", p(1)),
            (Some(_), Some(_)) => format!(" WHERE tag >= {} AND tag < {}", p(1), p(2)),
        }
    }
}

/// One change to make.
#[derive(Clone, Copy, Debug)]
pub struct ChangeRequest {
    pub kind: ChangeKind,
    pub tag: RecipientTag,
    /// The id sealed afresh: stored when the change adds the recipient (a status change of an
    /// unknown recipient); a recipient already stored keeps its sealed key.
    pub sealed_key: SealedKey,
    /// The new status (`Status` changes).
    pub status: Option<RecipientStatus>,
    /// The private sender (`Subscribe`, `Unsubscribe`).
    pub sender: Option<Cvr>,
}

/// Why a change cannot be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChangeProblem {
    #[error("the recipient is not in the registry")]
    NotRegistered,
    #[error("the change names no {0}")]
    Incomplete(&'static str),
}

/// The numbers a batch of changes got in the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppliedChanges {
    pub first_seq: i64,
    pub last_seq: i64,
    pub count: usize,
}

/// A recipient's state after a logged change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedState {
    pub tag: RecipientTag,
    pub sealed_key: Vec<u8>,
    /// `None`: the change removed the recipient.
    pub now: Option<(RecipientStatus, Vec<u32>)>,
}

/// One entry of the change log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedChange {
    pub seq: i64,
    pub at_ms: i64,
    pub kind: ChangeKind,
    /// The recipient's state after the change; `None` for an import.
    pub state: Option<LoggedState>,
}

/// The change log after a number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangePage {
    /// The entries after it, in order (empty at the present).
    Changes(Vec<LoggedChange>),
    /// Entries after it were pruned: the reader must load the registry whole.
    Pruned,
}

/// Where the registry stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RegistryHead {
    /// The newest change's number (0: no change ever).
    pub seq: i64,
    pub recipients: u64,
}

/// How many problems a refused change batch reports (the count is always whole).
pub const MAX_CHANGE_PROBLEMS: usize = 50;

#[async_trait]
pub trait RegistryStore: Send + Sync {
    /// Upserts the import's recipients (their status; their subscriptions when named) and
    /// replaces the subscriptions of `subscribers`, in one transaction, and logs the import as
    /// a new generation. All or nothing: a subscriber not in the registry fails the whole import
    /// with `UnknownSubscribers` and the lines naming it. `progress` is told the recipients
    /// written so far. Returns the import's change number.
    async fn import_registry(
        &self,
        import: &RegistryImport,
        origin: &str,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<i64, StoreError>;

    /// Hands every stored recipient of `part` to `each`, streamed (never all in memory), from
    /// one snapshot, and returns the number of the newest change that snapshot holds. Parts
    /// split the recipients by pseudonym into disjoint ranges, so several scans can run at
    /// once on several connections; [`ScanPart::WHOLE`] is all of them.
    async fn scan_registry(
        &self,
        part: ScanPart,
        each: &mut (dyn for<'a> FnMut(StoredRecipient<'a>) -> Result<(), StoreError> + Send),
    ) -> Result<i64, StoreError>;

    /// Makes the changes in order, in one transaction with their log entries. All or nothing:
    /// a change that cannot be made refuses the batch with `RegistryChanges` (each problem with
    /// the change's index in `changes`).
    async fn apply_registry_changes(
        &self,
        changes: &[ChangeRequest],
        origin: &str,
    ) -> Result<AppliedChanges, StoreError>;

    /// Up to `limit` log entries after `after`, in order.
    async fn registry_changes_after(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<ChangePage, StoreError>;

    async fn registry_head(&self) -> Result<RegistryHead, StoreError>;

    /// About how many recipients the registry holds, without counting them (the last import's
    /// size): what a gateway sizes its index by at start.
    async fn registry_size_hint(&self) -> Result<u64, StoreError>;

    /// The newest change's number (0: none), cheaply: for lag figures.
    async fn registry_newest_seq(&self) -> Result<i64, StoreError>;

    /// Deletes log entries older than `before_ms`, keeping the newest; gateways that had not
    /// read them load the registry whole. Returns how many went.
    async fn prune_registry_changes(&self, before_ms: i64) -> Result<u64, StoreError>;
}

/// The stored form of a subscription set: ascending CVR numbers, comma-separated.
pub(crate) fn senders_text(senders: &[u32]) -> Option<String> {
    if senders.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(senders.len() * 9);
    for (i, s) in senders.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&s.to_string());
    }
    Some(out)
}

/// Reads a stored subscription set into `out` (cleared first), sorted and each once.
pub(crate) fn parse_senders(text: Option<&str>, out: &mut Vec<u32>) -> Result<(), StoreError> {
    out.clear();
    let Some(text) = text else { return Ok(()) };
    for part in text.split(',').filter(|p| !p.is_empty()) {
        let value: u32 = part
            .parse()
            .map_err(|_| corrupt("registry subscriptions"))?;
        out.push(value);
    }
    out.sort_unstable();
    out.dedup();
    Ok(())
}

/// A recipient's state while a change batch is worked out: `None` when not registered.
pub(crate) type Working = Option<(Vec<u8>, RecipientStatus, Vec<u32>)>;

/// Works out one change on the recipient's current state (the rules both backends share).
pub(crate) fn change_state(
    current: &mut Working,
    change: &ChangeRequest,
) -> Result<(), ChangeProblem> {
    match change.kind {
        ChangeKind::Subscribe | ChangeKind::Unsubscribe => {
            let sender = change.sender.ok_or(ChangeProblem::Incomplete("sender"))?;
            let (_, _, senders) = current.as_mut().ok_or(ChangeProblem::NotRegistered)?;
            let value = sender.value();
            match (change.kind, senders.binary_search(&value)) {
                (ChangeKind::Subscribe, Err(at)) => senders.insert(at, value),
                (ChangeKind::Unsubscribe, Ok(at)) => {
                    senders.remove(at);
                }
                _ => {}
            }
        }
        ChangeKind::Status => {
            let status = change.status.ok_or(ChangeProblem::Incomplete("status"))?;
            match current {
                Some((_, s, _)) => *s = status,
                None => *current = Some((change.sealed_key.to_vec(), status, Vec::new())),
            }
        }
        ChangeKind::Remove => {
            if current.is_none() {
                return Err(ChangeProblem::NotRegistered);
            }
            *current = None;
        }
        ChangeKind::Import => return Err(ChangeProblem::Incomplete("recipient change")),
    }
    Ok(())
}

/// A batch of changes worked out on the current states of the recipients it touches.
pub(crate) struct ChangePlan {
    /// Every touched recipient's state after the whole batch (`None`: not registered).
    pub writes: Vec<(RecipientTag, Working)>,
    /// One log entry per change, in order.
    pub log: Vec<LogEntry>,
}

/// A log entry to write: the recipient's state after its change.
pub(crate) struct LogEntry {
    pub kind: ChangeKind,
    pub tag: RecipientTag,
    pub sealed_key: Vec<u8>,
    pub now: Option<(RecipientStatus, Option<String>)>,
}

/// Works out `changes` in order on `current` (every touched recipient's stored state, `None`
/// for those not stored). All or nothing: any change that cannot be made refuses the batch.
pub(crate) fn plan_changes(
    changes: &[ChangeRequest],
    mut current: HashMap<RecipientTag, Working>,
) -> Result<ChangePlan, StoreError> {
    let mut problems = Vec::new();
    let mut total = 0usize;
    let mut log = Vec::with_capacity(changes.len());
    for (i, change) in changes.iter().enumerate() {
        let state = current.entry(change.tag).or_insert(None);
        let sealed_before = state.as_ref().map(|(k, _, _)| k.clone());
        if let Err(problem) = change_state(state, change) {
            total += 1;
            if problems.len() < MAX_CHANGE_PROBLEMS {
                problems.push((i, problem));
            }
            continue;
        }
        let sealed_key = match state {
            Some((k, _, _)) => k.clone(),
            None => sealed_before.unwrap_or_else(|| change.sealed_key.to_vec()),
        };
        log.push(LogEntry {
            kind: change.kind,
            tag: change.tag,
            sealed_key,
            now: state
                .as_ref()
                .map(|(_, status, senders)| (*status, senders_text(senders))),
        });
    }
    if total > 0 {
        return Err(StoreError::RegistryChanges { problems, total });
    }
    let mut seen = std::collections::HashSet::with_capacity(changes.len());
    let writes = changes
        .iter()
        .filter(|c| seen.insert(c.tag))
        .map(|c| (c.tag, current.remove(&c.tag).unwrap_or(None)))
        .collect();
    Ok(ChangePlan { writes, log })
}

/// Reads one log entry (the columns `seq, at_ms, kind, tag, sealed_key, status, senders`).
pub(crate) fn logged_change_from(row: &impl StoreRow) -> Result<LoggedChange, StoreError> {
    let kind = ChangeKind::from_code(row.int("kind")?)?;
    let state = match kind {
        ChangeKind::Import => None,
        _ => {
            let tag = tag_from(
                row.opt_bytes("tag")?
                    .ok_or_else(|| corrupt("registry change recipient"))?,
            )?;
            let sealed_key = row
                .opt_bytes("sealed_key")?
                .ok_or_else(|| corrupt("registry change sealed key"))?;
            let now = match row.opt_int("status")? {
                None => None,
                Some(code) => {
                    let mut senders = Vec::new();
                    parse_senders(row.opt_text("senders")?.as_deref(), &mut senders)?;
                    Some((status_from(code)?, senders))
                }
            };
            Some(LoggedState {
                tag,
                sealed_key,
                now,
            })
        }
    };
    Ok(LoggedChange {
        seq: row.int("seq")?,
        at_ms: row.int("at_ms")?,
        kind,
        state,
    })
}

/// The columns [`logged_change_from`] reads.
pub(crate) const CHANGE_COLUMNS: &str = "seq, at_ms, kind, tag, sealed_key, status, senders";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn senders_round_trip_sorted_and_once() {
        let text = senders_text(&[10103940, 25313763]).unwrap();
        assert_eq!(text, "10103940,25313763");
        let mut out = Vec::new();
        parse_senders(Some("25313763,10103940,25313763"), &mut out).unwrap();
        assert_eq!(out, vec![10103940, 25313763]);
        parse_senders(None, &mut out).unwrap();
        assert!(out.is_empty());
        assert!(senders_text(&[]).is_none());
        assert!(parse_senders(Some("12x"), &mut out).is_err());
    }

    #[test]
    fn scan_parts_cover_every_pseudonym_once() {
        for of in 1..=5u8 {
            let parts: Vec<_> = (0..of)
                .map(|index| ScanPart { index, of }.bounds())
                .collect();
            for first in 0..=255u8 {
                let tag = [first, 7];
                let holding = parts
                    .iter()
                    .filter(|(lo, hi)| {
                        lo.is_none_or(|l| tag.as_slice() >= l.as_slice())
                            && hi.is_none_or(|h| tag.as_slice() < h.as_slice())
                    })
                    .count();
                assert_eq!(holding, 1, "first byte {first} of {of} parts");
            }
        }
        assert_eq!(ScanPart::WHOLE.predicate(true), "");
    }

    #[test]
    fn change_rules() {
        let cvr: Cvr = "10103940".parse().unwrap();
        let req = |kind, status, sender| ChangeRequest {
            kind,
            tag: [1; 32],
            sealed_key: [2; 36],
            status,
            sender,
        };
        let mut state: Working = None;
        assert_eq!(
            change_state(&mut state, &req(ChangeKind::Subscribe, None, Some(cvr))),
            Err(ChangeProblem::NotRegistered)
        );
        change_state(
            &mut state,
            &req(ChangeKind::Status, Some(RecipientStatus::Active), None),
        )
        .unwrap();
        change_state(&mut state, &req(ChangeKind::Subscribe, None, Some(cvr))).unwrap();
        change_state(&mut state, &req(ChangeKind::Subscribe, None, Some(cvr))).unwrap();
        assert_eq!(state.as_ref().unwrap().2, vec![cvr.value()]);
        assert_eq!(state.as_ref().unwrap().0, vec![2; 36]);
        change_state(&mut state, &req(ChangeKind::Unsubscribe, None, Some(cvr))).unwrap();
        assert!(state.as_ref().unwrap().2.is_empty());
        change_state(&mut state, &req(ChangeKind::Remove, None, None)).unwrap();
        assert!(state.is_none());
        assert_eq!(
            change_state(&mut state, &req(ChangeKind::Remove, None, None)),
            Err(ChangeProblem::NotRegistered)
        );
    }
}
