//! Making registry changes: the one path a change file (`brevdue registry apply`) and an
//! operator's gRPC call share. Every change is checked (ids, statuses, the sender registered
//! and private) before the store sees any; the store then makes them all in one transaction
//! with their change-log entries, or none.

use crate::domain::{Cvr, SenderInfo};
use crate::registry::change::{ChangeFileError, ChangeProblems, RegistryChange, check_senders};
use crate::seal::SealError;
use crate::store::{AppliedChanges, Store, StoreError};

use super::Secrets;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Changes that cannot be made, by line: none was made.
    #[error(transparent)]
    Refused(#[from] ChangeFileError),
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Seal(#[from] SealError),
}

/// Checks and makes `changes` (named `source` in messages, recorded as `origin` in the log).
/// `problems` holds what reading them found already (bad lines): they refuse the batch with
/// whatever this finds, in one report.
pub async fn apply_changes(
    store: &dyn Store,
    secrets: &Secrets,
    sender: impl Fn(Cvr) -> Option<SenderInfo>,
    changes: &[RegistryChange],
    mut problems: ChangeProblems,
    source: &str,
    origin: &str,
) -> Result<AppliedChanges, ApplyError> {
    check_senders(changes, sender, &mut problems);
    if problems.is_empty() && changes.is_empty() {
        return Err(ChangeFileError::Empty {
            file: source.to_string(),
        }
        .into());
    }
    if !problems.is_empty() {
        return Err(problems.into_error(source).into());
    }
    let requests = changes
        .iter()
        .map(|c| secrets.change_request(c))
        .collect::<Result<Vec<_>, _>>()?;
    match store.apply_registry_changes(&requests, origin).await {
        Ok(applied) => Ok(applied),
        Err(StoreError::RegistryChanges {
            problems: found,
            total,
        }) => {
            let mut problems = ChangeProblems::default();
            for (index, problem) in &found {
                let line = changes.get(*index).map_or(0, |c| c.line);
                problems.add(line, problem);
            }
            // Problems past the store's report are counted, not named.
            problems.add_unlisted(total.saturating_sub(found.len()));
            Err(problems.into_error(source).into())
        }
        Err(e) => Err(ApplyError::Store(e)),
    }
}
