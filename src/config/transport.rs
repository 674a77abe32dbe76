//! The gRPC transport's own settings: HTTP/2 flow-control windows and keep-alive. They bound
//! what one connection may have in flight before the gateway reads it, so they are memory as
//! much as speed.

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
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            connection_window: ByteSize::mib(16),
            stream_window: ByteSize::mib(8),
            keepalive_interval: Duration::from_secs(30),
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
        if self.keepalive_interval.is_zero() {
            p.push("grpc.keepalive_interval must be above 0".into());
        }
        p
    }

    pub fn connection_window_u32(&self) -> u32 {
        u32::try_from(self.connection_window.as_u64()).unwrap_or(u32::MAX)
    }

    pub fn stream_window_u32(&self) -> u32 {
        u32::try_from(self.stream_window.as_u64()).unwrap_or(u32::MAX)
    }
}
