//! The operator port as an outsider meets it: with an admin token configured, the dashboard and
//! its data answer only a caller that shows the token (header or the cookie the dashboard link
//! sets), while probes and Prometheus stay reachable; `/readyz` names no host or cause.

mod common;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The status code, the headers (lower-cased names) and the body of one HTTP/1.1 GET.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

async fn get(addr: std::net::SocketAddr, path: &str, extra: &[(&str, &str)]) -> Answer {
    let mut conn = tokio::net::TcpStream::connect(addr)
        .await
        .expect("the operator port takes connections");
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in extra {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    conn.write_all(request.as_bytes()).await.expect("request");
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).await.expect("response");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_string(),
    }
}

const TOKEN: &str = "op-token-0123456789abcdef";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_asks_for_the_token_and_probes_do_not() {
    let mut h = Harness::prepare().await;
    let token_file = h.outside.path().join("admin-token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).expect("token file");
    h.config.admin_token_file = Some(token_file);
    h.boot().await;
    let admin = h.config.admin_listen;

    // Without the token: refused, and the refusal says how to get in.
    for path in ["/dashboard", "/api/stats"] {
        let a = get(admin, path, &[]).await;
        assert_eq!(a.status, 401, "{path} without the token: {}", a.body);
        assert!(a.body.contains("token"), "{}", a.body);
    }
    let wrong = get(
        admin,
        "/api/stats",
        &[("Authorization", "Bearer op-token-wrong-guess-000")],
    )
    .await;
    assert_eq!(wrong.status, 401);
    let wrong = get(admin, "/dashboard?token=op-token-wrong-guess-000", &[]).await;
    assert_eq!(
        wrong.status, 401,
        "a wrong token in the link sets no cookie"
    );
    assert!(wrong.header("set-cookie").is_none());

    // A script with the header.
    let bearer = format!("Bearer {TOKEN}");
    let stats = get(admin, "/api/stats", &[("Authorization", &bearer)]).await;
    assert_eq!(stats.status, 200, "{}", stats.body);
    assert!(stats.body.starts_with('{'), "JSON stats: {}", stats.body);

    // A browser with the link: a cookie, and a redirect that takes the token out of the URL.
    let link = get(admin, &format!("/dashboard?token={TOKEN}"), &[]).await;
    assert!(
        (300..400).contains(&link.status),
        "the link redirects: {}",
        link.status
    );
    assert_eq!(link.header("location"), Some("/dashboard"));
    let cookie = link.header("set-cookie").expect("a cookie").to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().expect("name=value").to_string();
    let page = get(admin, "/dashboard", &[("Cookie", &pair)]).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("<html") || page.body.contains("<!doctype"),
        "the page"
    );
    let polled = get(admin, "/api/stats", &[("Cookie", &pair)]).await;
    assert_eq!(
        polled.status, 200,
        "the page's own polling gets through with the cookie"
    );

    // Probes and Prometheus need no token, and readiness says no more than which backend.
    assert_eq!(get(admin, "/healthz", &[]).await.status, 200);
    assert_eq!(get(admin, "/metrics", &[]).await.status, 200);
    let ready = get(admin, "/readyz", &[]).await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(ready.body.trim(), "ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weak_or_missing_token_file_stops_the_start() {
    let mut h = Harness::prepare().await;
    let weak = h.outside.path().join("weak");
    std::fs::write(&weak, "secret\n").expect("token file");
    h.config.admin_token_file = Some(weak);
    let e = brevdue::server::start(h.config.clone())
        .await
        .err()
        .expect("a weak token is refused at start");
    assert!(e.to_string().contains("at least 16"), "{e}");
    h.config.admin_token_file = Some(h.outside.path().join("missing"));
    let e = brevdue::server::start(h.config.clone())
        .await
        .err()
        .expect("a missing token file is refused at start");
    assert!(e.to_string().contains("admin_token_file"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_the_port_is_open_on_loopback() {
    let h = Harness::start().await;
    assert!(h.config.admin_listen.ip().is_loopback());
    assert!(
        brevdue::config::Config::default()
            .admin_listen
            .ip()
            .is_loopback()
    );
    let a = get(h.config.admin_listen, "/api/stats", &[]).await;
    assert_eq!(a.status, 200);
}
