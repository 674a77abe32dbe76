//! The operator pages beside the live view: `/dashboard/operations` (held routes and the
//! oldest waiting letter per route, dead letters with bulk retry and purge, jobs with their
//! progress, the audit trail) and `/dashboard/sender?cvr=` (one sender's drill-down, suspend
//! and resume). Self-contained like the live view: inline CSS and JS, data only from
//! `/api/ops/*` on this origin, the same Content Security Policy.

use axum::http::header;
use axum::response::IntoResponse;

use super::dashboard::CSP;

const OPERATIONS: &str = include_str!("operations.html");
const SENDER: &str = include_str!("sender.html");

fn html(page: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        page,
    )
}

pub async fn operations() -> impl IntoResponse {
    html(OPERATIONS)
}

pub async fn sender() -> impl IntoResponse {
    html(SENDER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pages_load_nothing_from_elsewhere() {
        for page in [OPERATIONS, SENDER] {
            for needle in ["src=", "@import", "url(", "//cdn", "<link", "http"] {
                assert!(
                    !page.contains(needle),
                    "an operator page refers to {needle}"
                );
            }
        }
    }

    #[test]
    fn the_pages_have_the_elements_the_browser_test_drives() {
        for id in [
            "routes",
            "dead-total",
            "dead",
            "retry-dead",
            "purge-dead",
            "jobs",
            "audit",
        ] {
            assert!(
                OPERATIONS.contains(&format!("id=\"{id}\"")),
                "no element #{id}"
            );
        }
        for id in [
            "sender-name",
            "sender-states",
            "sender-oldest",
            "suspend",
            "resume",
        ] {
            assert!(SENDER.contains(&format!("id=\"{id}\"")), "no element #{id}");
        }
    }
}
