//! The gRPC transport's own settings: HTTP/2 flow-control windows, stream and connection
//! limits, keep-alive and handshake timeouts, and the message limit for questions. They bound
//! what one connection, and all of them together, may make the gateway hold before it has read
//! anything, so they are memory and robustness as much as speed.

use std::time::Duration;

use bytesize::ByteSize;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransportConfig {
    /// HTTP/2 window for a whole connection: bytes a client may send before the gateway has
    /// read them. Large enough to keep a 100 KB-letter stream busy over a fast link.
    pub connection_window: ByteSize,
    /// HTTP/2 window for one stream (one SubmitBatch call).
    pub stream_window: ByteSize,
    /// How often an idle connection is pinged, to notice a client that went away.
    #[serde(with = "humantime_serde")]
    pub keepalive_interval: Duration,
    /// How long a keep-alive ping may go unanswered before the connection is closed.
    #[serde(with = "humantime_serde")]
    pub keepalive_timeout: Duration,
    /// How long a client has to finish the TLS handshake; a connection that stalls in it is
    /// closed (it would otherwise hold a place under `max_connections`).
    #[serde(with = "humantime_serde")]
    pub tls_handshake_timeout: Duration,
    /// Connections open at once; a connection over it is closed as it is accepted.
    pub max_connections: usize,
    /// Calls (HTTP/2 streams) open at once on one connection.
    pub max_concurrent_streams: u32,
    /// Streams a client may open and reset before the gateway accepted them, per connection
    /// (the HTTP/2 "rapid reset" flood); beyond it the connection is closed.
    pub max_pending_reset_streams: usize,
    /// Streams the gateway may reset on one connection for the client's protocol errors before
    /// it closes the connection.
    pub max_local_error_reset_streams: usize,
    /// Largest request header block (metadata) of a call.
    pub max_header_list_size: ByteSize,
    /// Largest request message of every method that is not a letter (GetStatus,
    /// CheckRecipient, ...); a larger one is refused before it is read.
    pub question_message_limit: ByteSize,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            connection_window: ByteSize::mib(16),
            stream_window: ByteSize::mib(8),
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(20),
            tls_handshake_timeout: Duration::from_secs(10),
            max_connections: 2048,
            max_concurrent_streams: 128,
            max_pending_reset_streams: 32,
            max_local_error_reset_streams: 256,
            max_header_list_size: ByteSize::kib(32),
            question_message_limit: ByteSize::kib(4),
        }
    }
}

impl TransportConfig {
    /// What is wrong with these settings, for the configuration's one report.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        // HTTP/2 windows are 31-bit.
        let max = ByteSize::b((1 << 31) - 1);
        for (name, v) in [
            ("grpc.connection_window", self.connection_window),
            ("grpc.stream_window", self.stream_window),
        ] {
            if v.as_u64() < 65_535 || v > max {
                p.push(format!("{name} must be between 64 KiB and 2 GiB, not {v}"));
            }
        }
        if self.stream_window > self.connection_window {
            p.push("grpc.stream_window must not be above grpc.connection_window".into());
        }
        for (name, d) in [
            ("grpc.keepalive_interval", self.keepalive_interval),
            ("grpc.keepalive_timeout", self.keepalive_timeout),
            ("grpc.tls_handshake_timeout", self.tls_handshake_timeout),
        ] {
            if d.is_zero() {
                p.push(format!("{name} must be above 0"));
            }
        }
        if self.max_connections == 0 {
            p.push("grpc.max_connections must be at least 1".into());
        }
        if self.max_concurrent_streams == 0 {
            p.push("grpc.max_concurrent_streams must be at least 1".into());
        }
        if self.max_header_list_size.as_u64() < 1024 || self.max_header_list_size > max {
            p.push(format!(
                "grpc.max_header_list_size must be between 1 KiB and 2 GiB, not {}",
                self.max_header_list_size
            ));
        }
        if self.question_message_limit.as_u64() < 256 {
            p.push(format!(
                "grpc.question_message_limit must be at least 256 B, not {}",
                self.question_message_limit
            ));
        }
        p
    }

    pub fn connection_window_u32(&self) -> u32 {
        u32::try_from(self.connection_window.as_u64()).unwrap_or(u32::MAX)
    }

    pub fn stream_window_u32(&self) -> u32 {
        u32::try_from(self.stream_window.as_u64()).unwrap_or(u32::MAX)
    }

    pub fn max_header_list_size_u32(&self) -> u32 {
        u32::try_from(self.max_header_list_size.as_u64()).unwrap_or(u32::MAX)
    }

    pub fn question_message_limit_usize(&self) -> usize {
        usize::try_from(self.question_message_limit.as_u64()).unwrap_or(usize::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_all_reported() {
        assert!(TransportConfig::default().problems().is_empty());
        let bad = TransportConfig {
            max_connections: 0,
            tls_handshake_timeout: Duration::ZERO,
            question_message_limit: ByteSize::b(10),
            ..TransportConfig::default()
        };
        let p = bad.problems().join("\n");
        assert!(
            p.contains("max_connections")
                && p.contains("tls_handshake_timeout")
                && p.contains("question_message_limit"),
            "{p}"
        );
    }
}
