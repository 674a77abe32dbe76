//! The gateway process a run drives from outside: found by the port it listens on (when it
//! runs on this machine), its memory read from `/proc/PID/status`.

use std::path::Path;

use super::flood::memory::status_kib;

/// Resident memory of one process: VmRSS, and RssAnon of it (heap and stacks, where a leak
/// shows; the rest is mapped files such as SQLite's WAL index).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Resident {
    pub rss_kib: u64,
    pub anon_kib: u64,
}

/// The resident memory of `pid`, or None when the process is gone (or not Linux).
pub(super) fn resident(pid: u32) -> Option<Resident> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(Resident {
        rss_kib: status_kib(&status, "VmRSS")?,
        anon_kib: status_kib(&status, "RssAnon").unwrap_or(0),
    })
}

/// The process listening on TCP `port` on this machine: the socket's inode from
/// `/proc/net/tcp{,6}`, then the process holding that socket (only processes of this user can
/// be looked into).
pub(super) fn listening_pid(port: u16) -> Option<u32> {
    let inodes: Vec<u64> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .flat_map(|text| listening_inodes(&text, port))
        .collect();
    if inodes.is_empty() {
        return None;
    }
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if holds_socket(&entry.path().join("fd"), &wanted) {
            return Some(pid);
        }
    }
    None
}

fn holds_socket(fd_dir: &Path, wanted: &[String]) -> bool {
    let Ok(fds) = std::fs::read_dir(fd_dir) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .ok()
            .and_then(|l| l.to_str().map(|s| wanted.iter().any(|w| w == s)))
            .unwrap_or(false)
    })
}

/// Inodes of the sockets in LISTEN state (0A) on `port` in a `/proc/net/tcp` text.
fn listening_inodes(text: &str, port: u16) -> Vec<u64> {
    let suffix = format!(":{port:04X}");
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (local, state, inode) = (f.get(1)?, f.get(3)?, f.get(9)?);
            (local.ends_with(&suffix) && *state == "0A")
                .then(|| inode.parse().ok())
                .flatten()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_listening_sockets_by_port() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
           0: 0100007F:C383 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0 100 0 0 10 0\n\
           1: 0100007F:C383 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1000        0 4343 1 0 20 4 30 10 -1\n\
           2: 0100007F:23E4 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4444 1 0 100 0 0 10 0\n";
        assert_eq!(listening_inodes(text, 50051), vec![4242], "listening only");
        assert_eq!(listening_inodes(text, 9188), vec![4444]);
        assert!(listening_inodes(text, 80).is_empty());
    }

    #[tokio::test]
    async fn finds_this_process_by_its_listening_port() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(listening_pid(port), Some(std::process::id()));
        assert!(resident(std::process::id()).is_some_and(|r| r.rss_kib > 0));
    }
}
