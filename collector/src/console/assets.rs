//! The console's static files, compiled into the binary and served under paths that
//! carry their content's hash, so that browsers may keep them for a year: a new
//! build with a changed file has a new path. Nothing is fetched from anywhere else.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// The pinned htmx, vendored from the npm registry (`htmx.org`, 0BSD); its SHA-256
/// is checked by a test (`HTMX_SHA256`), so that nobody swaps it by accident.
const HTMX: &[u8] = include_bytes!("../../assets/htmx-2.0.11.min.js");
const CSS: &[u8] = include_bytes!("../../assets/console.css");
/// Starts htmx's refreshes without inline script (the CSP allows none).
const JS: &[u8] = include_bytes!("../../assets/console.js");

struct File {
    /// `name.HASH.ext`, the path segment after `/ui/assets/`.
    name: String,
    path: String,
    body: &'static [u8],
    /// The body compressed with zstd, for browsers that take it (pages themselves are
    /// never compressed: they carry secrets beside text an attacker may choose).
    zstd: Option<Vec<u8>>,
    content_type: &'static str,
}

/// Every asset with its hashed path.
pub struct Assets {
    files: Vec<File>,
}

fn hashed(stem: &str, ext: &str, body: &'static [u8], content_type: &'static str) -> File {
    let digest = ring::digest::digest(&ring::digest::SHA256, body);
    let hex: String = digest.as_ref()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let name = format!("{stem}.{hex}.{ext}");
    let zstd = zstd::bulk::compress(body, 19)
        .ok()
        .filter(|z| z.len() < body.len());
    File {
        path: format!("/ui/assets/{name}"),
        name,
        body,
        zstd,
        content_type,
    }
}

impl Assets {
    pub fn get() -> &'static Assets {
        static A: OnceLock<Assets> = OnceLock::new();
        A.get_or_init(|| Assets {
            files: vec![
                hashed("console", "css", CSS, "text/css; charset=utf-8"),
                hashed("htmx-2.0.11", "js", HTMX, "text/javascript; charset=utf-8"),
                hashed("console", "js", JS, "text/javascript; charset=utf-8"),
            ],
        })
    }
    pub fn css_path(&self) -> &str {
        &self.files[0].path
    }
    pub fn htmx_path(&self) -> &str {
        &self.files[1].path
    }
    pub fn js_path(&self) -> &str {
        &self.files[2].path
    }
}

/// Whether the request's `Accept-Encoding` lists zstd (with a non-zero weight).
fn takes_zstd(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|e| {
            let mut parts = e.trim().split(';');
            parts
                .next()
                .is_some_and(|n| n.trim().eq_ignore_ascii_case("zstd"))
                && !parts.any(|p| p.trim().replace(' ', "") == "q=0")
        })
}

pub async fn serve(Path(file): Path<String>, headers: axum::http::HeaderMap) -> Response {
    let Some(f) = Assets::get().files.iter().find(|f| f.name == file) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let base = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static(f.content_type),
        ),
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=31536000, immutable"),
        ),
        (header::VARY, HeaderValue::from_static("Accept-Encoding")),
    ];
    match (&f.zstd, takes_zstd(&headers)) {
        (Some(z), true) => (
            base,
            [(header::CONTENT_ENCODING, HeaderValue::from_static("zstd"))],
            z.clone(),
        )
            .into_response(),
        _ => (base, f.body).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HTMX_FILE: &str = "htmx-2.0.11.min.js";
    const HTMX_SHA256: &str = "d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717";

    #[test]
    fn htmx_is_the_pinned_file() {
        let d = ring::digest::digest(&ring::digest::SHA256, HTMX);
        let hex: String = d.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex, HTMX_SHA256,
            "assets/{HTMX_FILE} is not the pinned htmx"
        );
    }

    #[test]
    fn zstd_only_when_asked_for() {
        let h = |v: &str| {
            let mut m = axum::http::HeaderMap::new();
            m.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
            m
        };
        assert!(takes_zstd(&h("gzip, deflate, br, zstd")));
        assert!(takes_zstd(&h("zstd;q=0.5")));
        assert!(!takes_zstd(&h("zstd;q=0, gzip")));
        assert!(!takes_zstd(&h("gzip, br")));
        assert!(!takes_zstd(&axum::http::HeaderMap::new()));
        let a = Assets::get();
        let htmx = &a.files[1];
        let z = htmx.zstd.as_ref().expect("htmx compresses");
        assert_eq!(zstd::bulk::decompress(z, HTMX.len()).unwrap(), HTMX);
    }

    #[test]
    fn paths_carry_the_content_hash() {
        let a = Assets::get();
        assert!(a.css_path().starts_with("/ui/assets/console."));
        assert!(a.htmx_path().starts_with("/ui/assets/htmx-2.0.11."));
        let names: std::collections::HashSet<_> = a.files.iter().map(|f| &f.name).collect();
        assert_eq!(names.len(), a.files.len());
    }
}
