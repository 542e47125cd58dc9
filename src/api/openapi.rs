//! The OpenAPI 3.0 description of the API, written by hand in `openapi.json` next to this file
//! and tested against [`super::route_table`] so that it always lists exactly the routes served.

use std::sync::OnceLock;

/// The document, parsed once. `None` only if the embedded JSON were malformed (a test guards it).
pub fn openapi_document() -> Option<&'static serde_json::Value> {
    static DOC: OnceLock<Option<serde_json::Value>> = OnceLock::new();
    DOC.get_or_init(|| serde_json::from_str(include_str!("openapi.json")).ok())
        .as_ref()
}

/// The document as compact JSON bytes, serialised once: `/api/v1/openapi.json` is public, so an
/// unauthenticated client must not be able to make the server re-serialise 40 KiB per request.
pub(super) fn openapi_bytes() -> Option<bytes::Bytes> {
    static BYTES: OnceLock<Option<bytes::Bytes>> = OnceLock::new();
    BYTES
        .get_or_init(|| {
            openapi_document()
                .and_then(|d| serde_json::to_vec(d).ok())
                .map(bytes::Bytes::from)
        })
        .clone()
}
