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

/// What a process has used so far: CPU time (user and system) and bytes it caused to be
/// written to disk, from `/proc/PID/stat` and `/proc/PID/io`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(super) struct Usage {
    pub cpu_seconds: f64,
    /// None where `/proc/PID/io` cannot be read (another user's process, no task accounting).
    pub written_bytes: Option<u64>,
}

/// Clock ticks a second in `/proc/PID/stat` (USER_HZ): 100 on every Linux architecture the
/// gateway builds for, whatever the kernel's own tick rate.
const USER_HZ: f64 = 100.0;

/// The CPU time and disk writes of `pid`, or None when the process is gone (or not Linux).
pub(super) fn usage(pid: u32) -> Option<Usage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok();
    Some(Usage {
        cpu_seconds: cpu_ticks(&stat)? as f64 / USER_HZ,
        written_bytes: io.as_deref().and_then(written_bytes),
    })
}

/// utime + stime of a `/proc/PID/stat` line. The command name in parentheses may hold spaces
/// and parentheses itself, so the fields are counted from the last `)`: utime and stime are
/// the 14th and 15th fields, the 12th and 13th after the name.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// `write_bytes` of a `/proc/PID/io` text: what the process sent to the block layer, page
/// cache write-back included, which is what the disk sees.
fn written_bytes(io: &str) -> Option<u64> {
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
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

    #[test]
    fn cpu_ticks_are_counted_after_the_command_name() {
        // A command name with a space and a parenthesis must not shift the fields.
        let stat = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194304 127 0 0 0 250 75 0 0 20 0 1 0";
        assert_eq!(cpu_ticks(stat), Some(325));
        assert_eq!(cpu_ticks("4242 (cut short) S 1"), None);
        let io = "rchar: 6976\nwchar: 0\nread_bytes: 4096\nwrite_bytes: 1234567\ncancelled_write_bytes: 0\n";
        assert_eq!(written_bytes(io), Some(1_234_567));
    }

    #[test]
    fn this_process_cpu_time_is_read() {
        // Spin until a clock tick (10 ms) of CPU has been counted; a reader that never sees
        // one fails after ten seconds of spinning.
        let started = std::time::Instant::now();
        let mut spin = 0u64;
        loop {
            spin = (0..1_000_000u64).fold(spin, |a, b| a.wrapping_add(b * b));
            let u = usage(std::process::id()).unwrap();
            if u.cpu_seconds > 0.0 {
                break;
            }
            assert!(started.elapsed().as_secs() < 10, "no CPU time read: {u:?}");
        }
        assert_ne!(spin, 1);
    }
}
