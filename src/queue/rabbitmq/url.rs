//! The queue URL: `amqp://USER:PASS@HOST:PORT/VHOST[?prefix=NAME]`.

use lapin::uri::{AMQPScheme, AMQPUri};

use super::QueueError;

/// What every queue and exchange name starts with unless the URL says otherwise.
pub(super) const DEFAULT_PREFIX: &str = "brevdue.";

/// Splits `?prefix=` off the URL and checks the rest. Returns lapin's URI, the prefix and
/// `host:port/vhost` for messages (never the credentials).
pub(super) fn parse_url(url: &str) -> Result<(AMQPUri, String, String), QueueError> {
    let invalid = |why: &str| {
        QueueError::InvalidUrl(format!(
            "{why} (amqp://USER:PASS@HOST:PORT/VHOST[?prefix=NAME])"
        ))
    };
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut prefix = DEFAULT_PREFIX.to_string();
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.strip_prefix("prefix=") {
            Some(p) => prefix = p.to_string(),
            None => rest.push(pair),
        }
    }
    let name_ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if prefix.is_empty() || prefix.len() > 100 || !prefix.chars().all(name_ok) {
        return Err(invalid("prefix: 1 to 100 letters, digits, '.', '_' or '-'"));
    }
    let lapin_url = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    let mut uri: AMQPUri = lapin_url.parse().map_err(|e: String| invalid(&e))?;
    if uri.scheme != AMQPScheme::AMQP {
        return Err(invalid("only amqp:// is supported"));
    }
    // The URI parser reads only domain names and falls back to localhost for an IP address.
    let authority = base
        .split_once("://")
        .map_or("", |(_, r)| r.split('/').next().unwrap_or(""));
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match hostport.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => hostport.split(':').next().unwrap_or(""),
    };
    if host.is_empty() {
        return Err(invalid("no host"));
    }
    uri.authority.host = host.to_string();
    let broker = format!(
        "{}:{}/{}",
        uri.authority.host, uri.authority.port, uri.vhost
    );
    Ok((uri, prefix, broker))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_prefix_and_host() {
        let (uri, prefix, broker) =
            parse_url("amqp://u:p%40ss@10.1.2.3:5673/%2f?heartbeat=10&prefix=t-1.").unwrap();
        assert_eq!(prefix, "t-1.");
        assert_eq!(uri.authority.host, "10.1.2.3");
        assert_eq!(uri.authority.port, 5673);
        assert_eq!(uri.authority.userinfo.password, "p@ss");
        assert_eq!(uri.query.heartbeat, Some(10));
        assert_eq!(broker, "10.1.2.3:5673//");
        assert!(!broker.contains("p@ss"));
        let (_, prefix, _) = parse_url("amqp://guest:guest@rabbit/").unwrap();
        assert_eq!(prefix, DEFAULT_PREFIX);
        assert!(parse_url("amqp://h/?prefix=a/b").is_err());
        assert!(parse_url("amqps://h/").is_err());
    }
}
