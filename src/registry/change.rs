//! Registry changes as operators send them: one JSON object per line of a change file
//! (`brevdue registry apply FILE`), or the same fields in a gRPC call.
//!
//! ```text
//! {"change":"subscribe","id_type":"CPR","id":"0101901234","sender_cvr":"10103940"}
//! {"change":"unsubscribe","id_type":"CPR","id":"0101901234","sender_cvr":"10103940"}
//! {"change":"status","id_type":"CVR","id":"61126228","status":"closed"}
//! {"change":"remove","id_type":"CPR","id":"0101901234"}
//! ```
//!
//! Every line is checked before anything is applied: a file with one bad line changes nothing,
//! and the message names each bad line. What needs the store (is the recipient registered?)
//! is checked in the store's transaction; what needs the sender directory (is the sender a
//! registered private sender?) by the caller, with [`check_senders`].

use std::fmt;
use std::io::BufRead;

use serde::Deserialize;

use crate::domain::{Cvr, IdType, RecipientId, RecipientStatus, SenderInfo, SenderKind};

/// What a change does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeAction {
    /// The recipient subscribes to a private sender ("tilmelding").
    Subscribe(Cvr),
    /// The recipient unsubscribes from a private sender ("afmelding").
    Unsubscribe(Cvr),
    /// The recipient's status becomes this (added when not registered).
    Status(RecipientStatus),
    /// The recipient leaves the registry.
    Remove,
}

/// One checked change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegistryChange {
    /// Where it came from: the file's line, or the call's position (1-based).
    pub line: u64,
    pub id: RecipientId,
    pub action: ChangeAction,
}

/// A change as written, before it is checked.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawChange {
    pub change: String,
    pub id_type: String,
    pub id: String,
    #[serde(default)]
    pub sender_cvr: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
}

/// A bad change and where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeLineProblem {
    pub line: u64,
    pub problem: String,
}

/// Why a batch of changes was refused: nothing of it was applied.
#[derive(Debug, thiserror::Error)]
pub enum ChangeFileError {
    #[error("{file}: cannot be read: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", render(file, problems, *total))]
    Lines {
        file: String,
        problems: Vec<ChangeLineProblem>,
        total: usize,
    },
    #[error("{file}: holds no changes")]
    Empty { file: String },
}

const MAX_REPORTED: usize = 50;

fn render(file: &str, problems: &[ChangeLineProblem], total: usize) -> String {
    let mut out = format!("{file}: {total} bad change(s), nothing applied");
    for p in problems {
        out.push_str(&format!("\n  line {}: {}", p.line, p.problem));
    }
    if total > problems.len() {
        out.push_str(&format!("\n  … and {} more", total - problems.len()));
    }
    out
}

/// Collects problems, keeping the first few and counting all.
#[derive(Default)]
pub struct ChangeProblems {
    kept: Vec<ChangeLineProblem>,
    total: usize,
}

impl ChangeProblems {
    pub fn add(&mut self, line: u64, problem: impl fmt::Display) {
        self.total += 1;
        if self.kept.len() < MAX_REPORTED {
            self.kept.push(ChangeLineProblem {
                line,
                problem: problem.to_string(),
            });
        }
    }

    /// Counts `n` more problems that are not listed one by one.
    pub fn add_unlisted(&mut self, n: usize) {
        self.total += n;
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    pub fn into_error(mut self, file: &str) -> ChangeFileError {
        self.kept.sort_by_key(|p| p.line);
        ChangeFileError::Lines {
            file: file.to_string(),
            problems: self.kept,
            total: self.total,
        }
    }
}

impl RawChange {
    /// Checks one change on its own (the rules that need nothing but the change).
    pub fn check(&self, line: u64) -> Result<RegistryChange, String> {
        let id_type: IdType = self
            .id_type
            .parse()
            .map_err(|_| format!("id_type {:?} is neither CPR nor CVR", self.id_type))?;
        let id = RecipientId::parse_as(id_type, &self.id).map_err(|e| e.to_string())?;
        let sender = || -> Result<Cvr, String> {
            let raw = self
                .sender_cvr
                .as_deref()
                .ok_or_else(|| format!("a {} change needs sender_cvr", self.change))?;
            raw.parse::<Cvr>().map_err(|e| format!("sender_cvr: {e}"))
        };
        let no_sender = || match self.sender_cvr {
            Some(_) => Err(format!("a {} change takes no sender_cvr", self.change)),
            None => Ok(()),
        };
        let no_status = || match self.status {
            Some(_) => Err(format!("a {} change takes no status", self.change)),
            None => Ok(()),
        };
        let action = match self.change.to_ascii_lowercase().as_str() {
            "subscribe" => {
                no_status()?;
                ChangeAction::Subscribe(sender()?)
            }
            "unsubscribe" => {
                no_status()?;
                ChangeAction::Unsubscribe(sender()?)
            }
            "status" => {
                no_sender()?;
                let raw = self
                    .status
                    .as_deref()
                    .ok_or("a status change needs status (active, exempt or closed)")?;
                let status: RecipientStatus = raw
                    .parse()
                    .map_err(|e: crate::domain::StatusParseError| e.to_string())?;
                if matches!(id, RecipientId::Cvr(_)) && status == RecipientStatus::Exempt {
                    return Err(super::RegistryError::ExemptCompany.to_string());
                }
                ChangeAction::Status(status)
            }
            "remove" => {
                no_sender()?;
                no_status()?;
                ChangeAction::Remove
            }
            other => {
                return Err(format!(
                    "change {other:?} is none of subscribe, unsubscribe, status, remove"
                ));
            }
        };
        Ok(RegistryChange { line, id, action })
    }
}

/// Longest line a change file may have: a change is a few dozen bytes.
const MAX_LINE: usize = 4_096;

/// Reads and checks a change file: JSON lines, blank lines and `#` comments skipped. Any bad
/// line refuses the whole file.
pub fn read_changes<R: BufRead>(
    input: R,
    file: &str,
) -> Result<Vec<RegistryChange>, ChangeFileError> {
    let (changes, problems) = parse_changes(input, file)?;
    if !problems.is_empty() {
        return Err(problems.into_error(file));
    }
    if changes.is_empty() {
        return Err(ChangeFileError::Empty {
            file: file.to_string(),
        });
    }
    Ok(changes)
}

/// Reads a change file into the good changes and the problems of the bad lines, so that later
/// checks (the senders) can add theirs and the file is reported once, whole.
pub fn parse_changes<R: BufRead>(
    mut input: R,
    file: &str,
) -> Result<(Vec<RegistryChange>, ChangeProblems), ChangeFileError> {
    let mut problems = ChangeProblems::default();
    let mut changes = Vec::new();
    let mut buf = Vec::new();
    let mut line = 0u64;
    loop {
        buf.clear();
        let n = input
            .read_until(b'\n', &mut buf)
            .map_err(|source| ChangeFileError::Io {
                file: file.to_string(),
                source,
            })?;
        if n == 0 {
            break;
        }
        line += 1;
        if buf.len() > MAX_LINE {
            problems.add(line, format!("longer than {MAX_LINE} bytes"));
            continue;
        }
        let text = match std::str::from_utf8(&buf) {
            Ok(t) => t.trim(),
            Err(_) => {
                problems.add(line, "not UTF-8");
                continue;
            }
        };
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        match serde_json::from_str::<RawChange>(text) {
            Ok(raw) => match raw.check(line) {
                Ok(c) => changes.push(c),
                Err(p) => problems.add(line, p),
            },
            Err(e) => problems.add(line, format!("not a change: {e}")),
        }
    }
    Ok((changes, problems))
}

/// Checks that every subscription change names a registered private sender (SPEC §1: a
/// recipient subscribes to private senders; public senders need no subscription).
pub fn check_senders(
    changes: &[RegistryChange],
    sender: impl Fn(Cvr) -> Option<SenderInfo>,
    problems: &mut ChangeProblems,
) {
    for c in changes {
        let cvr = match c.action {
            ChangeAction::Subscribe(cvr) | ChangeAction::Unsubscribe(cvr) => cvr,
            _ => continue,
        };
        match sender(cvr) {
            None => problems.add(c.line, format!("sender {cvr} is not a registered sender")),
            Some(s) if s.kind != SenderKind::Private => problems.add(
                c.line,
                format!("sender {cvr} is a public sender: subscriptions are to private senders"),
            ),
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_kind_of_change() {
        let file = r#"
# a comment
{"change":"subscribe","id_type":"CPR","id":"010190-1234","sender_cvr":"10103940"}
{"change":"unsubscribe","id_type":"cpr","id":"0101901234","sender_cvr":"10103940"}
{"change":"status","id_type":"CVR","id":"61126228","status":"closed"}
{"change":"Status","id_type":"CPR","id":"0202801234","status":"EXEMPT"}
{"change":"remove","id_type":"CPR","id":"0101901234"}
"#;
        let changes = read_changes(file.as_bytes(), "c.jsonl").unwrap();
        assert_eq!(changes.len(), 5);
        assert_eq!(changes[0].line, 3);
        assert_eq!(changes[0].id.to_string(), "CPR:0101901234");
        assert_eq!(
            changes[0].action,
            ChangeAction::Subscribe("10103940".parse().unwrap())
        );
        assert_eq!(
            changes[2].action,
            ChangeAction::Status(RecipientStatus::Closed)
        );
        assert_eq!(
            changes[3].action,
            ChangeAction::Status(RecipientStatus::Exempt)
        );
        assert_eq!(changes[4].action, ChangeAction::Remove);
    }

    #[test]
    fn every_bad_line_is_named_and_nothing_is_returned() {
        let file = r#"{"change":"subscribe","id_type":"CPR","id":"0101901234","sender_cvr":"10103940"}
{"change":"status","id_type":"CVR","id":"61126228","status":"exempt"}
{"change":"subscribe","id_type":"CPR","id":"3102901234","sender_cvr":"10103940"}
{"change":"subscribe","id_type":"CPR","id":"0101901234"}
{"change":"wave","id_type":"CPR","id":"0101901234"}
not json
{"change":"status","id_type":"CPR","id":"0101901234","status":"sleeping"}
{"change":"remove","id_type":"CPR","id":"0101901234","colour":"red"}
{"change":"subscribe","id_type":"CPR","id":"0101901234","sender_cvr":"10103941"}
"#;
        let err = read_changes(file.as_bytes(), "c.jsonl").unwrap_err();
        let text = err.to_string();
        let ChangeFileError::Lines {
            problems, total, ..
        } = &err
        else {
            panic!("{err}");
        };
        assert_eq!(*total, 8, "{text}");
        let lines: Vec<u64> = problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, vec![2, 3, 4, 5, 6, 7, 8, 9]);
        assert!(text.contains("nothing applied"), "{text}");
        assert!(
            text.contains("line 2: a company (CVR) cannot be exempt"),
            "{text}"
        );
        assert!(text.contains("31 February is not a date"), "{text}");
        assert!(
            text.contains("line 4: a subscribe change needs sender_cvr"),
            "{text}"
        );
        assert!(text.contains("line 5: change \"wave\""), "{text}");
        assert!(text.contains("line 9: sender_cvr: CVR 10103941"), "{text}");
    }

    #[test]
    fn subscriptions_name_registered_private_senders() {
        let changes = read_changes(
            r#"{"change":"subscribe","id_type":"CPR","id":"0101901234","sender_cvr":"10103940"}
{"change":"subscribe","id_type":"CPR","id":"0101901234","sender_cvr":"29403473"}
{"change":"unsubscribe","id_type":"CPR","id":"0101901234","sender_cvr":"25313763"}
"#
            .as_bytes(),
            "c.jsonl",
        )
        .unwrap();
        let directory = |cvr: Cvr| -> Option<SenderInfo> {
            let kind = match cvr.to_string().as_str() {
                "10103940" => SenderKind::Private,
                "29403473" => SenderKind::Public,
                _ => return None,
            };
            Some(SenderInfo {
                cvr,
                name: "x".into(),
                kind,
                suspended: false,
                limits: Default::default(),
            })
        };
        let mut problems = ChangeProblems::default();
        check_senders(&changes, directory, &mut problems);
        let text = problems.into_error("c.jsonl").to_string();
        assert!(text.contains("2 bad change(s)"), "{text}");
        assert!(
            text.contains("line 2: sender 29403473 is a public sender"),
            "{text}"
        );
        assert!(
            text.contains("line 3: sender 25313763 is not a registered sender"),
            "{text}"
        );
    }

    #[test]
    fn an_empty_file_is_refused() {
        assert!(matches!(
            read_changes("\n# nothing\n".as_bytes(), "c.jsonl"),
            Err(ChangeFileError::Empty { .. })
        ));
    }
}
