//! The operator token: when `admin_token_file` is configured, `/dashboard` and `/api/*` answer
//! only a caller that shows it, as `Authorization: Bearer <token>` (scripts) or as the cookie a
//! browser gets by opening `/dashboard?token=<token>` once (the page then polls with the
//! cookie; the redirect takes the token out of the address bar and the history).
//!
//! `/healthz`, `/readyz` and `/metrics` stay open: probes and Prometheus reach them, and they
//! carry no sender names or volumes per sender beyond what the metrics already expose to
//! whoever may scrape them.

use std::path::Path;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

/// The cookie that carries the token for the dashboard page's own requests.
const COOKIE: &str = "brevdue_admin";

/// Why the token file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("admin_token_file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "admin_token_file {0}: the token must be at least 16 characters of letters, digits, '-', '_' or '.'"
    )]
    Weak(String),
}

/// The configured token, or none (the port is then open, as on a developer's machine).
#[derive(Clone, Default)]
pub struct AdminToken(Option<Arc<str>>);

impl AdminToken {
    pub fn none() -> Self {
        AdminToken(None)
    }

    /// Reads the token from its file (surrounding whitespace is not part of it).
    pub fn from_file(path: &Path) -> Result<Self, TokenError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokenError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let token = text.trim();
        let fits = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if token.len() < 16 || !token.chars().all(fits) {
            return Err(TokenError::Weak(path.display().to_string()));
        }
        Ok(AdminToken(Some(token.into())))
    }

    pub fn is_set(&self) -> bool {
        self.0.is_some()
    }

    /// Whether `given` is the token, compared in constant time.
    fn matches(&self, given: &str) -> bool {
        match &self.0 {
            None => true,
            // Every byte is looked at whatever the first difference, so the time taken does not
            // tell an attacker how much of a guess was right.
            Some(t) => {
                t.len() == given.len()
                    && t.bytes()
                        .zip(given.bytes())
                        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                        == 0
            }
        }
    }

    /// The token a request shows, from the Authorization header or the cookie.
    fn shown(headers: &HeaderMap) -> Option<&str> {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        bearer.or_else(|| {
            headers
                .get_all(header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(';'))
                .find_map(|kv| kv.trim().strip_prefix(COOKIE)?.strip_prefix('='))
        })
    }
}

/// Lets a request through when no token is configured or it shows the token; `/dashboard?token=`
/// with the right token sets the cookie and redirects to the bare page.
pub async fn require(State(token): State<AdminToken>, request: Request, next: Next) -> Response {
    if !token.is_set() {
        return next.run(request).await;
    }
    if let Some(given) = AdminToken::shown(request.headers())
        && token.matches(given)
    {
        return next.run(request).await;
    }
    let from_query = request
        .uri()
        .query()
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|kv| kv.strip_prefix("token="))
        .map(str::to_string);
    if let Some(given) = from_query
        && request.uri().path() == "/dashboard"
        && token.matches(&given)
    {
        let cookie = format!("{COOKIE}={given}; HttpOnly; SameSite=Strict; Path=/");
        return ([(header::SET_COOKIE, cookie)], Redirect::to("/dashboard")).into_response();
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "this operator page needs the admin token: open /dashboard?token=<token> or send \
         Authorization: Bearer <token>\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_read_trimmed_and_weak_tokens_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good");
        std::fs::write(&good, "  0123456789abcdef-XYZ\n").unwrap();
        let t = AdminToken::from_file(&good).unwrap();
        assert!(t.matches("0123456789abcdef-XYZ"));
        assert!(!t.matches("0123456789abcdef-XY"));
        let weak = dir.path().join("weak");
        std::fs::write(&weak, "secret").unwrap();
        assert!(matches!(
            AdminToken::from_file(&weak),
            Err(TokenError::Weak(_))
        ));
        assert!(matches!(
            AdminToken::from_file(&dir.path().join("missing")),
            Err(TokenError::Read { .. })
        ));
    }

    #[test]
    fn bearer_and_cookie_both_show_the_token() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(AdminToken::shown(&h), Some("abc"));
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "x=1; brevdue_admin=def".parse().unwrap());
        assert_eq!(AdminToken::shown(&h), Some("def"));
        assert_eq!(AdminToken::shown(&HeaderMap::new()), None);
    }
}
