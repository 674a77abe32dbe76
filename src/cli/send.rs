//! `brevdue send`: submit a batch file (or a directory of them) as one stream, with a progress
//! bar, a receipt report (CSV) and a summary by outcome and reason. Every letter goes under a
//! batch id (the caller's, or a generated one) so the run can be followed, counted and recalled
//! as a whole afterwards (`brevdue batch status|cancel`). A batch is JSON lines, a MeMo message
//! (`.xml`) or a zip of MeMo messages (`.zip`, see `memo_zip`); zip entries that are refused
//! before sending get a `NOT_SENT` line of their own in the report.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};

use super::batchfile::parse_line;
use super::client::{self, Client, outcome_name, reason_name};
use super::memo_zip::{MemoZip, ZipItem, ZipLimits};
use crate::domain::BatchId;
use crate::ingest::pb;

/// A zip entry not sent: where it is, the report's reason code, and why.
#[derive(Debug, Clone)]
pub struct RefusedEntry {
    pub source: String,
    pub reason: &'static str,
    pub why: String,
}

/// Counts of what came back.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    /// The batch id the letters went under (a line that names its own keeps it).
    pub batch_id: String,
    pub letters: u64,
    pub by_outcome: BTreeMap<&'static str, u64>,
    pub rejected_by_reason: BTreeMap<&'static str, u64>,
    pub duplicates: u64,
    /// Lines that were not letters, with why (never sent).
    pub unreadable: Vec<(String, String)>,
    /// Zip entries refused before sending (each also a line of the report).
    pub refused_entries: Vec<RefusedEntry>,
    pub elapsed: Duration,
}

impl Summary {
    pub fn add(&mut self, r: &pb::Receipt) {
        self.letters += 1;
        *self.by_outcome.entry(outcome_name(r.outcome)).or_default() += 1;
        if r.outcome == pb::Outcome::Rejected as i32 {
            *self
                .rejected_by_reason
                .entry(reason_name(r.reason))
                .or_default() += 1;
        }
        if r.duplicate {
            self.duplicates += 1;
        }
    }

    pub fn count(&self, outcome: &str) -> u64 {
        self.by_outcome.get(outcome).copied().unwrap_or(0)
    }

    /// Whether every letter of the input was sent and answered: a line that could not be read
    /// as a letter, or a zip entry refused before sending, was never sent, which a script must
    /// learn from the exit code.
    pub fn all_sent(&self) -> bool {
        self.unreadable.is_empty() && self.refused_entries.is_empty()
    }

    /// Lines and zip entries that were never sent.
    pub fn not_sent(&self) -> usize {
        self.unreadable.len() + self.refused_entries.len()
    }

    pub fn print(&self) {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        println!(
            "\n{} letters answered in {:.1} s ({:.0} letters/s)",
            self.letters,
            secs,
            self.letters as f64 / secs
        );
        if !self.batch_id.is_empty() {
            println!("batch id: {}", self.batch_id);
        }
        for (outcome, n) in &self.by_outcome {
            println!("  {outcome:<17} {n:>9}");
        }
        for (reason, n) in &self.rejected_by_reason {
            println!("    {reason:<23} {n:>7}");
        }
        if self.duplicates > 0 {
            println!(
                "  (of which {} duplicates: accepted before, not delivered again)",
                self.duplicates
            );
        }
        if !self.refused_entries.is_empty() {
            println!(
                "  {} zip entries were refused and not sent (see the report):",
                self.refused_entries.len()
            );
            for r in self.refused_entries.iter().take(10) {
                println!("    {}: {}: {}", r.source, r.reason, r.why);
            }
        }
        if !self.unreadable.is_empty() {
            println!(
                "  {} lines were not letters and were not sent:",
                self.unreadable.len()
            );
            for (where_, why) in self.unreadable.iter().take(10) {
                println!("    {where_}: {why}");
            }
        }
    }
}

/// The batch files a path names: the file itself, or every `*.jsonl` in a directory.
fn batch_files(input: &Path) -> Result<Vec<PathBuf>> {
    if input.is_dir() {
        let mut files: Vec<PathBuf> = fs::read_dir(input)
            .with_context(|| format!("cannot read {}", input.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension()
                    .is_some_and(|x| x == "jsonl" || x == "json" || is_memo(p) || is_zip(p))
            })
            .collect();
        files.sort();
        if files.is_empty() {
            bail!(
                "{} holds no .jsonl batch files, MeMo (.xml) messages or zips of them",
                input.display()
            );
        }
        Ok(files)
    } else if input.exists() {
        Ok(vec![input.to_path_buf()])
    } else {
        bail!("{} does not exist", input.display())
    }
}

/// A MeMo message file: one letter per file.
fn is_memo(p: &Path) -> bool {
    p.extension().is_some_and(|x| x.eq_ignore_ascii_case("xml"))
}

/// A zip of MeMo messages.
fn is_zip(p: &Path) -> bool {
    p.extension().is_some_and(|x| x.eq_ignore_ascii_case("zip"))
}

fn letter_lines(files: &[PathBuf]) -> Result<usize> {
    let mut n = 0;
    for f in files {
        if is_memo(f) {
            n += 1;
            continue;
        }
        if is_zip(f) {
            n += MemoZip::open(f, ZipLimits::default())?.entries();
            continue;
        }
        let r = BufReader::new(
            fs::File::open(f).with_context(|| format!("cannot open {}", f.display()))?,
        );
        n += r
            .lines()
            .map_while(|l| l.ok())
            .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            .count();
    }
    Ok(n)
}

/// Sends the batch under `batch` and writes the report. Returns the summary.
pub async fn send(
    client: &mut Client,
    input: &Path,
    report: &Path,
    batch: &BatchId,
) -> Result<Summary> {
    let files = batch_files(input)?;
    let total = letter_lines(&files)?;
    let unreadable: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let refused: Arc<Mutex<Vec<RefusedEntry>>> = Arc::default();
    let mut letters: Vec<Box<dyn Iterator<Item = (String, pb::Letter)> + Send>> = Vec::new();
    for f in &files {
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if is_memo(f) {
            let xml = fs::read(f).with_context(|| format!("cannot read {}", f.display()))?;
            let letter = pb::Letter {
                memo_xml: xml,
                ..Default::default()
            };
            letters.push(Box::new(std::iter::once((name, letter))));
            continue;
        }
        if is_zip(f) {
            let zip = MemoZip::open(f, ZipLimits::default())?;
            let refused = refused.clone();
            letters.push(Box::new(zip.into_items().filter_map(
                move |item| match item {
                    ZipItem::Message { source, xml } => Some((
                        source,
                        pb::Letter {
                            memo_xml: xml,
                            ..Default::default()
                        },
                    )),
                    ZipItem::Refused {
                        source,
                        refusal,
                        why,
                    } => {
                        if let Ok(mut r) = refused.lock() {
                            r.push(RefusedEntry {
                                source,
                                reason: refusal.as_str(),
                                why,
                            });
                        }
                        None
                    }
                },
            )));
            continue;
        }
        let reader = BufReader::new(
            fs::File::open(f).with_context(|| format!("cannot open {}", f.display()))?,
        );
        let bad = unreadable.clone();
        letters.push(Box::new(reader.lines().enumerate().filter_map(
            move |(i, line)| {
                let where_ = format!("{name}:{}", i + 1);
                let line = match line {
                    Ok(l) => l,
                    Err(e) => {
                        if let Ok(mut b) = bad.lock() {
                            b.push((where_, format!("unreadable: {e}")));
                        }
                        return None;
                    }
                };
                if line.trim().is_empty() || line.trim_start().starts_with('#') {
                    return None;
                }
                match parse_line(&line) {
                    Ok(l) => Some((where_, l)),
                    Err(why) => {
                        if let Ok(mut b) = bad.lock() {
                            b.push((where_, why));
                        }
                        None
                    }
                }
            },
        )));
    }
    let mut summary = stream_with_report(
        client,
        letters.into_iter().flatten(),
        total as u64,
        report,
        batch,
    )
    .await?;
    summary.unreadable = unreadable.lock().map(|v| v.clone()).unwrap_or_default();
    summary.refused_entries = refused.lock().map(|v| v.clone()).unwrap_or_default();
    append_refused(report, &summary.refused_entries, batch)?;
    Ok(summary)
}

/// One report line per refused zip entry, after the receipts: outcome `NOT_SENT`, the reason
/// code and why, so the report accounts for every entry of the archive.
fn append_refused(report: &Path, refused: &[RefusedEntry], batch: &BatchId) -> Result<()> {
    if refused.is_empty() {
        return Ok(());
    }
    let file = fs::OpenOptions::new()
        .append(true)
        .open(report)
        .with_context(|| format!("cannot append to {}", report.display()))?;
    let mut out = csv::Writer::from_writer(file);
    for r in refused {
        out.write_record([
            &r.source,
            "",
            "",
            "NOT_SENT",
            r.reason,
            &r.why,
            "",
            "",
            "",
            batch.as_str(),
        ])?;
    }
    out.flush()
        .with_context(|| format!("writing {}", report.display()))
}

pub fn progress_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:40.cyan/blue} {pos}/{len} letters  {per_sec}  eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Streams letters tagged with where they came from, writing one report row per receipt.
/// A letter that names no batch goes under `batch`.
pub async fn stream_with_report(
    client: &mut Client,
    letters: impl Iterator<Item = (String, pb::Letter)> + Send,
    total: u64,
    report: &Path,
    batch: &BatchId,
) -> Result<Summary> {
    let mut out = csv::Writer::from_path(report)
        .with_context(|| format!("cannot write {}", report.display()))?;
    out.write_record([
        "source",
        "message_uuid",
        "letter_id",
        "outcome",
        "reason",
        "detail",
        "duplicate",
        "content_sha256",
        "accepted_at_unix_ms",
        "batch_id",
    ])?;
    let bar = progress_bar(total);
    let started = Instant::now();
    let mut summary = Summary {
        batch_id: batch.as_str().to_string(),
        ..Summary::default()
    };
    let mut write_error = None;
    // The batch id rides in the tag: the receipt does not echo it, and a line may name its own.
    let letters = letters.map(|(source, mut l)| {
        if l.batch_id.is_empty() {
            l.batch_id = batch.as_str().to_string();
        }
        ((source, l.batch_id.clone()), l)
    });
    client::stream_batch(client, letters, |(source, batch_id), r| {
        summary.add(&r);
        bar.inc(1);
        let row = [
            source,
            r.message_uuid.clone(),
            r.letter_id.clone(),
            outcome_name(r.outcome).to_string(),
            if r.outcome == pb::Outcome::Rejected as i32 {
                reason_name(r.reason).to_string()
            } else {
                String::new()
            },
            r.detail.clone(),
            r.duplicate.to_string(),
            r.content_sha256.clone(),
            r.accepted_at_unix_ms.to_string(),
            batch_id,
        ];
        if let Err(e) = out.write_record(&row)
            && write_error.is_none()
        {
            write_error = Some(e);
        }
    })
    .await?;
    bar.finish_and_clear();
    summary.elapsed = started.elapsed();
    if let Some(e) = write_error {
        return Err(e).with_context(|| format!("writing {}", report.display()));
    }
    out.flush()?;
    Ok(summary)
}

/// The operator dashboard of the gateway at `server`: on `admin` (host:port or a URL) when
/// given, else on the gateway's host at the default operator port.
pub fn dashboard_url(server: &str, admin: Option<&str>) -> String {
    let base = match admin {
        Some(a) if a.contains("://") => a.trim_end_matches('/').to_string(),
        Some(a) => format!("http://{}", a.trim_end_matches('/')),
        None => {
            let authority = server.split("://").last().unwrap_or(server);
            let authority = authority.split('/').next().unwrap_or(authority);
            // "[::1]:50051" keeps its brackets; "host:50051" loses the port.
            let host = match authority.rsplit_once(':') {
                Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
                _ => authority,
            };
            format!("http://{host}:9180")
        }
    };
    format!("{base}/dashboard")
}

#[cfg(test)]
mod tests {
    use super::dashboard_url;

    #[test]
    fn the_dashboard_is_on_the_gateway_host_unless_told() {
        assert_eq!(
            dashboard_url("https://127.0.0.1:50051", None),
            "http://127.0.0.1:9180/dashboard"
        );
        assert_eq!(
            dashboard_url("https://gw.example.dk", None),
            "http://gw.example.dk:9180/dashboard"
        );
        assert_eq!(
            dashboard_url("https://[::1]:50051", None),
            "http://[::1]:9180/dashboard"
        );
        assert_eq!(
            dashboard_url("x", Some("10.0.0.5:9999")),
            "http://10.0.0.5:9999/dashboard"
        );
        assert_eq!(
            dashboard_url("x", Some("https://ops.example.dk/")),
            "https://ops.example.dk/dashboard"
        );
    }
}
