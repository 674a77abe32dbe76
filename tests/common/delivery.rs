//! Helpers for the delivery tests: a letter's status, waiting for a condition with a deadline
//! that only fails the test, the print spool as the print house sees it, and faults the print
//! volume really has (its directory replaced by a file, as an unmounted or broken volume is).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use brevdue::cli::client::Client;
use brevdue::ingest::pb;

pub async fn status(c: &mut Client, letter_id: &str) -> pb::LetterStatus {
    c.get_status(pb::StatusRequest {
        key: Some(pb::status_request::Key::LetterId(letter_id.to_string())),
    })
    .await
    .expect("status")
    .into_inner()
}

/// Polls `check` until it gives a value, failing the test with `what` after `within`.
pub async fn wait_until<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn print_dir(data: &Path) -> PathBuf {
    data.join("spool").join("print")
}

/// The print volume breaks: its directory is replaced by a file.
pub fn break_print_dir(data: &Path) {
    let dir = print_dir(data);
    std::fs::remove_dir_all(&dir).expect("remove the print directory");
    std::fs::write(&dir, b"not a directory").expect("block the print directory");
}

/// The print volume is back, empty.
pub fn mend_print_dir(data: &Path) {
    let dir = print_dir(data);
    std::fs::remove_file(&dir).expect("unblock");
    std::fs::create_dir_all(&dir).expect("print directory back");
}

/// Everything staged and not published: the staging directory's batches.
pub fn staged_batches(data: &Path) -> Vec<PathBuf> {
    let staging = data.join("spool").join("staging");
    let Ok(entries) = std::fs::read_dir(&staging) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_name() != ".instances")
        .map(|e| e.path())
        .collect()
}

/// Every file name under `dir`, recursively.
pub fn file_names(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            out.push(e.file_name().to_string_lossy().to_string());
            if e.path().is_dir() {
                stack.push(e.path());
            }
        }
    }
    out
}

pub fn is_state(s: &pb::LetterStatus, state: pb::LetterState) -> bool {
    s.state == state as i32
}
