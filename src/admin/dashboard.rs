//! `/dashboard`: one self-contained page (inline CSS and JS, an SVG chart drawn by hand) that
//! polls `/api/stats` every second. It loads nothing from anywhere else, and its Content
//! Security Policy forbids it to, so it works on an operator network without internet access.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::AdminState;
use super::stats::Stats;

const PAGE: &str = include_str!("dashboard.html");

/// Inline script and style only; data only from this origin.
pub(super) const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                   connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

pub async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        PAGE,
    )
}

pub async fn stats(State(s): State<AdminState>) -> impl IntoResponse {
    let stats: Stats = s.sampler.stats();
    ([(header::CACHE_CONTROL, "no-store")], Json(stats))
}

#[cfg(test)]
mod tests {
    use super::PAGE;

    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        for needle in ["src=", "href=", "@import", "url(", "//cdn", "<link"] {
            assert!(!PAGE.contains(needle), "the dashboard refers to {needle}");
        }
        // The only absolute URL is the SVG namespace, which is a name, not a fetch.
        let urls = PAGE.matches("http").count();
        let svg = PAGE.matches("http://www.w3.org/2000/svg").count();
        assert_eq!(urls, svg, "the dashboard names an outside URL");
        assert!(PAGE.contains("fetch('/api/stats'"));
    }

    #[test]
    fn the_page_has_the_elements_the_browser_test_reads() {
        for id in [
            "rate-total",
            "rate-mailbox",
            "rate-print",
            "rate-rejected",
            "total-mailbox",
            "total-print",
            "total-rejected",
            "chart",
            "reasons",
            "queue-mailbox",
            "queue-print",
            "queue-dead",
            "p50-accept",
            "p99-accept",
            "senders",
            "polls",
        ] {
            assert!(PAGE.contains(&format!("id=\"{id}\"")), "no element #{id}");
        }
    }
}
