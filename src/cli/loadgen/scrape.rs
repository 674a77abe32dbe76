//! What a gateway delivered, read from its Prometheus `/metrics` (the operator port): the sum
//! of `brevdue_letters_delivered_total` over its routes. A plain HTTP/1.0 GET is all this
//! needs, so no HTTP client crate is pulled in for it.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::telemetry::DELIVERED;

/// Longest wait for one scrape.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// `http://HOST:PORT/PATH` split into the address to connect to and the path.
fn split_url(url: &str) -> Result<(String, String)> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("{url} is not an http:// metrics address"))?;
    let (host, path) = match rest.split_once('/') {
        Some((h, p)) => (h.to_string(), format!("/{p}")),
        None => (rest.to_string(), "/metrics".to_string()),
    };
    Ok((host, path))
}

/// Letters the gateway at `url` has delivered since it started.
pub(super) async fn delivered(url: &str) -> Result<u64> {
    let (host, path) = split_url(url)?;
    let fetch = async {
        let mut conn = tokio::net::TcpStream::connect(&host).await?;
        conn.write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
            .await?;
        let mut body = String::new();
        conn.read_to_string(&mut body).await?;
        Ok::<_, std::io::Error>(body)
    };
    let text = tokio::time::timeout(SCRAPE_TIMEOUT, fetch)
        .await
        .with_context(|| format!("no answer from {url} within {SCRAPE_TIMEOUT:?}"))?
        .with_context(|| format!("cannot read the gateway's metrics at {url}"))?;
    if !text.starts_with("HTTP/1.") || !text.lines().next().is_some_and(|l| l.contains(" 200")) {
        bail!(
            "{url} answered {:?}, not the metrics",
            text.lines().next().unwrap_or("")
        );
    }
    Ok(sum_of(&text, DELIVERED))
}

/// The sum of every sample of the metric `name` in a Prometheus text.
fn sum_of(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Letters delivered by all the gateways of `urls` together.
pub(super) async fn delivered_by_all(urls: &[String]) -> Result<u64> {
    let mut total = 0;
    for url in urls {
        total += delivered(url).await?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_a_counter_over_its_labels() {
        let text = "HTTP/1.0 200 OK\r\n\r\n# HELP brevdue_letters_delivered_total Letters delivered\n\
                    # TYPE brevdue_letters_delivered_total counter\n\
                    brevdue_letters_delivered_total{route=\"mailbox\"} 1200\n\
                    brevdue_letters_delivered_total{route=\"print\"} 34\n\
                    brevdue_letters_delivered_totalx 99\n\
                    brevdue_delivery_lag_seconds_count 7\n";
        assert_eq!(sum_of(text, DELIVERED), 1234);
        assert_eq!(sum_of("", DELIVERED), 0);
    }

    #[test]
    fn metrics_urls_name_host_and_path() {
        assert_eq!(
            split_url("http://127.0.0.1:9180/metrics").unwrap(),
            ("127.0.0.1:9180".into(), "/metrics".into())
        );
        assert_eq!(
            split_url("http://localhost:9").unwrap(),
            ("localhost:9".into(), "/metrics".into())
        );
        assert!(split_url("https://x/metrics").is_err());
    }
}
