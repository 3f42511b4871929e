//! Who may use the board: a token made at the first `serve`, kept under
//! `.git/sprint/`, sent as a header (never in a URL, where it would land in
//! histories and logs), and a same-origin check on every action.
//!
//! Actions always need the token; reads need it whenever the board listens
//! on an address other than loopback. The custom header also means a page
//! on another origin cannot send an action without a CORS preflight, which
//! the board never answers.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{BoardError, Shared};

/// The header that carries the token.
pub(crate) const TOKEN_HEADER: &str = "X-Sprint-Token";

/// Where the token is kept.
pub(crate) fn token_path(common_dir: &Path) -> PathBuf {
    common_dir.join("sprint").join("board-token")
}

/// The token at `path`, made (32 random bytes, hex, mode 0600) when absent.
pub(crate) fn load_or_create(path: &Path) -> Result<String, BoardError> {
    let err = |doing, source| BoardError::Token {
        doing,
        path: path.to_owned(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(t) if !t.trim().is_empty() => return Ok(t.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err("read", e)),
    }
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| err("make", e))?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| err("write", e))?;
    }
    // Written beside and renamed into place: a reader never sees half a token.
    let tmp = path.with_extension("tmp");
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| err("write", e))?;
        f.write_all(token.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| err("write", e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| err("write", e))?;
    Ok(token)
}

/// Compares in time independent of where the first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn has_token(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get(TOKEN_HEADER)
        .is_some_and(|v| same(v.as_bytes(), token.as_bytes()))
}

/// A browser's request from a page of this very board: its `Origin` (when
/// sent) names the host it asked for, and `Sec-Fetch-Site` (when sent)
/// says same-origin. Tools that send neither (curl) are not browsers and
/// cannot be tricked into a cross-site request.
fn same_origin(headers: &HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_ok = match headers.get(header::ORIGIN) {
        None => true,
        Some(o) => {
            let o = o.to_str().unwrap_or_default();
            host.is_some_and(|h| o == format!("http://{h}"))
        }
    };
    let site_ok = headers
        .get("sec-fetch-site")
        .is_none_or(|s| matches!(s.as_bytes(), b"same-origin" | b"none"));
    origin_ok && site_ok
}

/// On loopback, the `Host` a browser sends must be a loopback name: a
/// page whose DNS name was rebound to 127.0.0.1 is refused.
fn loopback_host(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return true;
    };
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    matches!(name, "127.0.0.1" | "localhost" | "[::1]") || name.starts_with("127.")
}

pub(crate) fn refuse(status: StatusCode, message: &str, hint: &str) -> Response {
    (
        status,
        axum::Json(serde_json::json!({ "error": message, "hint": hint })),
    )
        .into_response()
}

/// The gate in front of every route.
pub(crate) async fn guard(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    if shared.loopback && !loopback_host(headers) {
        return refuse(
            StatusCode::FORBIDDEN,
            "the Host header does not name this machine",
            "open the board by its loopback address (http://127.0.0.1:PORT/)",
        );
    }
    let action = request.method() == Method::POST;
    // The page itself (HTML, JS, CSS) is public: it holds no state, and it
    // is where a person pastes the token.
    let api = request.uri().path().starts_with("/api/");
    let needs_token = action || (api && !shared.loopback);
    if needs_token && !has_token(headers, &shared.token) {
        return refuse(
            StatusCode::UNAUTHORIZED,
            &format!("missing or wrong {TOKEN_HEADER} header"),
            "send the token from .git/sprint/board-token in the X-Sprint-Token header (on the page: paste it into the token field)",
        );
    }
    if action && !same_origin(headers) {
        return refuse(
            StatusCode::FORBIDDEN,
            "an action must come from the board's own page",
            "use the page served by 'git sprint serve', or a tool that sends no Origin header",
        );
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn an_origin_must_be_the_host_asked_for() {
        assert!(same_origin(&headers(&[("host", "127.0.0.1:7878")])));
        assert!(same_origin(&headers(&[
            ("host", "127.0.0.1:7878"),
            ("origin", "http://127.0.0.1:7878"),
            ("sec-fetch-site", "same-origin"),
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:7878"),
            ("origin", "http://evil.example"),
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:7878"),
            ("sec-fetch-site", "cross-site"),
        ])));
    }

    #[test]
    fn a_rebound_name_is_not_loopback() {
        assert!(loopback_host(&headers(&[("host", "127.0.0.1:7878")])));
        assert!(loopback_host(&headers(&[("host", "localhost:7878")])));
        assert!(loopback_host(&headers(&[("host", "[::1]:7878")])));
        assert!(!loopback_host(&headers(&[("host", "evil.example:7878")])));
    }

    #[test]
    fn the_token_is_made_once_and_kept_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = token_path(dir.path());
        let first = load_or_create(&path).unwrap();
        assert_eq!(first.len(), 64);
        assert_eq!(load_or_create(&path).unwrap(), first);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(same(first.as_bytes(), first.as_bytes()));
        assert!(!same(first.as_bytes(), b"nope"));
    }
}
