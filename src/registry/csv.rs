//! Reading the operator's registry files.
//!
//! Recipients: `id_type,id,status` (id_type `CPR`|`CVR`, status `active`|`exempt`|`closed`,
//! case-insensitive). Subscriptions: `recipient_id,sender_cvr`. Every bad row is reported with its
//! line number; a file with any bad row yields no rows at all, so nothing is ever half-imported.

use std::collections::HashMap;
use std::fmt;
use std::io::Read;

use crate::domain::{Cvr, IdType, RecipientId};

use crate::domain::RecipientStatus;

/// One bad row: where it is and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowProblem {
    pub line: u64,
    pub problem: String,
}

/// Everything wrong with a file, or why it could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    #[error("{file}: cannot be read: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: the header must be {expected:?}, found {found:?}")]
    Header {
        file: String,
        expected: &'static str,
        found: String,
    },
    #[error("{}", render_rows(file, problems, *total))]
    Rows {
        file: String,
        problems: Vec<RowProblem>,
        total: usize,
    },
}

/// How many row problems are kept for the message; the total is always counted.
const MAX_REPORTED: usize = 50;

fn render_rows(file: &str, problems: &[RowProblem], total: usize) -> String {
    let mut out = format!("{file}: {total} bad row(s), nothing imported");
    for p in problems {
        out.push_str(&format!("\n  line {}: {}", p.line, p.problem));
    }
    if total > problems.len() {
        out.push_str(&format!("\n  … and {} more", total - problems.len()));
    }
    out
}

struct Problems {
    file: String,
    kept: Vec<RowProblem>,
    total: usize,
}

impl Problems {
    fn new(file: &str) -> Self {
        Problems {
            file: file.to_string(),
            kept: Vec::new(),
            total: 0,
        }
    }

    fn add(&mut self, line: u64, problem: impl fmt::Display) {
        self.total += 1;
        if self.kept.len() < MAX_REPORTED {
            self.kept.push(RowProblem {
                line,
                problem: problem.to_string(),
            });
        }
    }

    fn finish<T>(self, value: T) -> Result<T, CsvError> {
        if self.total == 0 {
            Ok(value)
        } else {
            Err(CsvError::Rows {
                file: self.file,
                problems: self.kept,
                total: self.total,
            })
        }
    }
}

fn reader<R: Read>(input: R) -> ::csv::Reader<R> {
    ::csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(::csv::Trim::All)
        .flexible(true)
        .comment(Some(b'#'))
        .from_reader(input)
}

fn check_header<R: Read>(
    rdr: &mut ::csv::Reader<R>,
    file: &str,
    expected: &'static str,
) -> Result<(), CsvError> {
    let headers = rdr.headers().map_err(|e| csv_io(file, e))?;
    let found: Vec<String> = headers.iter().map(|h| h.to_ascii_lowercase()).collect();
    let want: Vec<&str> = expected.split(',').collect();
    if found != want {
        return Err(CsvError::Header {
            file: file.to_string(),
            expected,
            found: headers.iter().collect::<Vec<_>>().join(","),
        });
    }
    Ok(())
}

fn csv_io(file: &str, e: ::csv::Error) -> CsvError {
    CsvError::Io {
        file: file.to_string(),
        source: std::io::Error::other(e.to_string()),
    }
}

/// Reads a recipients file. `file` names it in messages.
pub fn read_recipients<R: Read>(
    input: R,
    file: &str,
) -> Result<Vec<(RecipientId, RecipientStatus)>, CsvError> {
    let mut rows = Vec::new();
    let mut seen: HashMap<u64, u64> = HashMap::new();
    let mut duplicates = Problems::new(file);
    scan_recipients(input, file, |line, id, status| {
        if let Some(first) = seen.insert(id.index_key(), line) {
            duplicates.add(line, format!("{id} is already listed on line {first}"));
        } else {
            rows.push((id, status));
        }
    })
    .map_err(|e| merge(e, duplicates.kept.clone()))?;
    duplicates.finish(rows)
}

/// A scan's row problems together with the duplicates found beside it, in line order.
fn merge(e: CsvError, more: Vec<RowProblem>) -> CsvError {
    match e {
        CsvError::Rows {
            file,
            mut problems,
            total,
        } => {
            let extra = more.len();
            problems.extend(more);
            problems.sort_by_key(|p| p.line);
            problems.truncate(MAX_REPORTED);
            CsvError::Rows {
                file,
                problems,
                total: total + extra,
            }
        }
        other => other,
    }
}

/// Streams a recipients file: `each` gets every good row (line, id, status) as it is read,
/// so a national file is never held as text or as a second copy. Duplicates are the caller's
/// to find. Any bad row makes the whole scan an error naming every bad line.
pub fn scan_recipients<R: Read>(
    input: R,
    file: &str,
    mut each: impl FnMut(u64, RecipientId, RecipientStatus),
) -> Result<(), CsvError> {
    let mut rdr = reader(input);
    check_header(&mut rdr, file, "id_type,id,status")?;
    let mut problems = Problems::new(file);
    let mut record = ::csv::StringRecord::new();
    loop {
        match rdr.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                problems.add(line, format!("not readable CSV: {e}"));
                if matches!(e.kind(), ::csv::ErrorKind::Io(_)) {
                    break;
                }
                continue;
            }
        }
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        if record.len() != 3 {
            problems.add(
                line,
                format!(
                    "expected 3 fields (id_type,id,status), found {}",
                    record.len()
                ),
            );
            continue;
        }
        let parsed = record[0]
            .parse::<IdType>()
            .map_err(|_| format!("id_type {:?} is neither CPR nor CVR", &record[0]))
            .and_then(|t| RecipientId::parse_as(t, &record[1]).map_err(|e| e.to_string()))
            .and_then(|id| {
                record[2]
                    .parse::<RecipientStatus>()
                    .map_err(|e| e.to_string())
                    .map(|s| (id, s))
            });
        match parsed {
            Ok((id, status)) => {
                if matches!(id, RecipientId::Cvr(_)) && status == RecipientStatus::Exempt {
                    problems.add(line, super::RegistryError::ExemptCompany);
                } else {
                    each(line, id, status);
                }
            }
            Err(problem) => problems.add(line, problem),
        }
    }
    problems.finish(())
}

/// Reads a subscriptions file: which recipient subscribed to which private sender, with the
/// line each came from.
pub fn read_subscriptions<R: Read>(
    input: R,
    file: &str,
) -> Result<Vec<(u64, RecipientId, Cvr)>, CsvError> {
    let mut rows = Vec::new();
    scan_subscriptions(input, file, |line, id, sender| {
        rows.push((line, id, sender))
    })?;
    Ok(rows)
}

/// Streams a subscriptions file, as [`scan_recipients`] does a recipients file.
pub fn scan_subscriptions<R: Read>(
    input: R,
    file: &str,
    mut each: impl FnMut(u64, RecipientId, Cvr),
) -> Result<(), CsvError> {
    let mut rdr = reader(input);
    check_header(&mut rdr, file, "recipient_id,sender_cvr")?;
    let mut problems = Problems::new(file);
    let mut record = ::csv::StringRecord::new();
    loop {
        match rdr.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                problems.add(line, format!("not readable CSV: {e}"));
                if matches!(e.kind(), ::csv::ErrorKind::Io(_)) {
                    break;
                }
                continue;
            }
        }
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        if record.len() != 2 {
            problems.add(
                line,
                format!(
                    "expected 2 fields (recipient_id,sender_cvr), found {}",
                    record.len()
                ),
            );
            continue;
        }
        let recipient = record[0].parse::<RecipientId>();
        let sender = record[1].parse::<Cvr>();
        match (recipient, sender) {
            (Ok(r), Ok(s)) => each(line, r, s),
            (Err(e), _) => problems.add(line, e),
            (_, Err(e)) => problems.add(line, format!("sender: {e}")),
        }
    }
    problems.finish(())
}

/// Duplicate recipients among rows sorted by index key and line (`(key, line)`), as row
/// problems: every repeat names the recipient's first line.
pub fn duplicate_problems<T>(
    file: &str,
    sorted: &[T],
    key_line: impl Fn(&T) -> (u64, u64),
) -> Result<(), CsvError> {
    let mut problems = Problems::new(file);
    for group in sorted
        .chunk_by(|a, b| key_line(a).0 == key_line(b).0)
        .filter(|g| g.len() > 1)
    {
        let (key, first) = key_line(&group[0]);
        let shown = RecipientId::from_index_key(key)
            .map(|id| id.to_string())
            .unwrap_or_else(|_| "the recipient".into());
        for again in &group[1..] {
            problems.add(
                key_line(again).1,
                format!("{shown} is already listed on line {first}"),
            );
        }
    }
    problems.kept.sort_by_key(|p| p.line);
    problems.finish(())
}

/// Writes rows in the recipients format (used by the synthetic generator and exports).
pub fn write_recipients<W: std::io::Write>(
    out: W,
    rows: impl IntoIterator<Item = (RecipientId, RecipientStatus)>,
) -> Result<(), ::csv::Error> {
    let mut w = ::csv::Writer::from_writer(out);
    w.write_record(["id_type", "id", "status"])?;
    for (id, status) in rows {
        w.write_record([id.id_type().to_string(), id.number(), status.to_string()])?;
    }
    w.flush()?;
    Ok(())
}

/// Writes rows in the subscriptions format.
pub fn write_subscriptions<W: std::io::Write>(
    out: W,
    rows: impl IntoIterator<Item = (RecipientId, Cvr)>,
) -> Result<(), ::csv::Error> {
    let mut w = ::csv::Writer::from_writer(out);
    w.write_record(["recipient_id", "sender_cvr"])?;
    for (id, cvr) in rows {
        w.write_record([id.number(), cvr.to_string()])?;
    }
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_good_files_case_insensitively() {
        let data = "id_type,id,status\nCPR,0101901234,active\ncpr,010280-1234,EXEMPT\nCVR,61126228,Closed\n";
        let rows = read_recipients(data.as_bytes(), "r.csv").unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[1].0.to_string(), "CPR:0102801234");
        assert_eq!(rows[1].1, RecipientStatus::Exempt);
        assert_eq!(rows[2].1, RecipientStatus::Closed);
    }

    #[test]
    fn every_bad_row_is_reported_with_its_line_and_nothing_is_returned() {
        let data = "id_type,id,status\n\
                    CPR,0101901234,active\n\
                    CPR,3102901234,active\n\
                    CVR,61126228,exempt\n\
                    XYZ,61126228,active\n\
                    CPR,0101901234,closed\n\
                    CVR,61126228,sleeping\n\
                    CPR,0101901234\n";
        let err = read_recipients(data.as_bytes(), "r.csv").unwrap_err();
        let CsvError::Rows {
            problems, total, ..
        } = &err
        else {
            panic!("{err}");
        };
        assert_eq!(*total, 6);
        let lines: Vec<u64> = problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, vec![3, 4, 5, 6, 7, 8]);
        let text = err.to_string();
        assert!(
            text.contains("line 3: CPR 3102901234: 31 February is not a date"),
            "{text}"
        );
        assert!(
            text.contains("line 4: a company (CVR) cannot be exempt"),
            "{text}"
        );
        assert!(
            text.contains("line 6: CPR:0101901234 is already listed on line 2"),
            "{text}"
        );
        assert!(text.contains("line 7: status \"sleeping\""), "{text}");
        assert!(text.contains("nothing imported"), "{text}");
    }

    #[test]
    fn wrong_header_is_refused() {
        let err = read_recipients("type,number,status\n".as_bytes(), "r.csv").unwrap_err();
        assert!(matches!(err, CsvError::Header { .. }), "{err}");
    }

    #[test]
    fn subscriptions_round_trip() {
        let rows = vec![
            ("0101901234".parse().unwrap(), "10103940".parse().unwrap()),
            ("61126228".parse().unwrap(), "25313763".parse().unwrap()),
        ];
        let mut buf = Vec::new();
        write_subscriptions(&mut buf, rows.clone()).unwrap();
        let read = read_subscriptions(buf.as_slice(), "s.csv").unwrap();
        assert_eq!(
            read,
            vec![(2, rows[0].0, rows[0].1), (3, rows[1].0, rows[1].1)]
        );
        let bad = "recipient_id,sender_cvr\n0101901234,10103941\n";
        let err = read_subscriptions(bad.as_bytes(), "s.csv")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2: sender: CVR 10103941"), "{err}");
    }
}
