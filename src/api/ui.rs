//! The web UI: a static single-page app (plain ES modules, CSS, SVG icons under `ui/`) embedded
//! in the binary and served under `/` and `/ui/*`. No CDN, no network access at run time.
//!
//! The app is a client of `/api/v1` only; it holds no data of its own. Every UI response carries
//! a strict Content-Security-Policy (no inline script or style, same-origin fetches only),
//! `X-Frame-Options: DENY` and a strong `ETag` (assets revalidate with `If-None-Match` → 304).
//! See docs/ui.md.

use std::sync::OnceLock;

use axum::extract::rejection::PathRejection;
use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::handlers::{etag_of, if_none_match};
use super::{ApiError, AppState};

/// The policy every UI response carries: scripts, styles and fetches from this origin only,
/// images also as `data:` (none are used today), no framing, no `<base>`, no plugins.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
    manifest-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; \
    object-src 'none'";

/// One embedded file.
struct Asset {
    name: &'static str,
    ctype: &'static str,
    body: &'static [u8],
}

/// Every file the UI serves; `index.html` is also served at `/`.
const ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        ctype: "text/html; charset=utf-8",
        body: include_bytes!("../../ui/index.html"),
    },
    Asset {
        name: "app.css",
        ctype: "text/css; charset=utf-8",
        body: include_bytes!("../../ui/app.css"),
    },
    Asset {
        name: "app.js",
        ctype: "text/javascript; charset=utf-8",
        body: include_bytes!("../../ui/app.js"),
    },
    Asset {
        name: "lib.js",
        ctype: "text/javascript; charset=utf-8",
        body: include_bytes!("../../ui/lib.js"),
    },
    Asset {
        name: "chart.js",
        ctype: "text/javascript; charset=utf-8",
        body: include_bytes!("../../ui/chart.js"),
    },
    Asset {
        name: "pages.js",
        ctype: "text/javascript; charset=utf-8",
        body: include_bytes!("../../ui/pages.js"),
    },
    Asset {
        name: "favicon.svg",
        ctype: "image/svg+xml",
        body: include_bytes!("../../ui/favicon.svg"),
    },
];

/// Longest asset name looked up (the real ones are far shorter).
const MAX_ASSET_NAME: usize = 64;

fn etags() -> &'static [String] {
    static E: OnceLock<Vec<String>> = OnceLock::new();
    E.get_or_init(|| ASSETS.iter().map(|a| etag_of(a.body)).collect())
}

/// `/`, `/ui`, `/ui/` and `/ui/{file}`; merged into the API router (not part of the API route
/// table: these are not `/api/v1` routes and need no token — the data behind them does).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/ui", get(index))
        .route("/ui/", get(index))
        .route("/ui/{file}", get(asset))
        .route("/favicon.ico", get(favicon))
}

async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

async fn favicon(headers: HeaderMap) -> Response {
    serve("favicon.svg", &headers)
}

async fn asset(headers: HeaderMap, file: Result<Path<String>, PathRejection>) -> Response {
    match file {
        Ok(Path(name)) if name.len() <= MAX_ASSET_NAME => serve(&name, &headers),
        _ => not_found(),
    }
}

fn not_found() -> Response {
    secured(
        ApiError::NotFound {
            code: "route_not_found",
            message: "no such UI file".into(),
        }
        .into_response(),
    )
}

fn serve(name: &str, headers: &HeaderMap) -> Response {
    let Some(i) = ASSETS.iter().position(|a| a.name == name) else {
        return not_found();
    };
    let (Some(a), Some(tag)) = (ASSETS.get(i), etags().get(i)) else {
        return not_found();
    };
    let mut resp = if if_none_match(headers, tag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, HeaderValue::from_static(a.ctype))],
            a.body,
        )
            .into_response()
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(tag) {
        h.insert(header::ETAG, v);
    }
    // Revalidate every time: a new binary must never run an old script against its API.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    secured(resp)
}

/// Adds the UI's security headers.
fn secured(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        HeaderName::from_static("permissions-policy"),
        HeaderValue::from_static("camera=(), microphone=(), geolocation=(), payment=()"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_are_embedded_and_have_types() {
        for a in ASSETS {
            assert!(!a.body.is_empty(), "{}", a.name);
            assert!(a.name.len() <= MAX_ASSET_NAME);
        }
        assert_eq!(etags().len(), ASSETS.len());
    }

    #[test]
    fn no_inline_script_or_style_in_the_page() {
        let html = std::str::from_utf8(ASSETS[0].body).unwrap();
        // Every <script> has a src (CSP forbids inline script; this keeps the page honest).
        for (i, _) in html.match_indices("<script") {
            let tag = &html[i..html[i..].find('>').map_or(html.len(), |e| i + e)];
            assert!(tag.contains("src="), "inline script: {tag}");
        }
        assert!(!html.contains("<style"), "inline style block");
        assert!(!html.contains(" style="), "inline style attribute");
        assert!(!html.contains("onclick") && !html.contains("onload"));
    }

    #[test]
    fn scripts_never_assign_inner_html() {
        for a in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            let js = std::str::from_utf8(a.body).unwrap();
            for bad in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
            ] {
                assert!(!js.contains(bad), "{} uses {bad}", a.name);
            }
        }
    }
}
