//! The OpenAPI 3.0 description of the API, written by hand in `openapi.json` next to this file
//! and tested against [`super::route_table`] so that it always lists exactly the routes served.

use std::sync::OnceLock;

/// The document, parsed once. `None` only if the embedded JSON were malformed (a test guards it).
pub fn openapi_document() -> Option<&'static serde_json::Value> {
    static DOC: OnceLock<Option<serde_json::Value>> = OnceLock::new();
    DOC.get_or_init(|| serde_json::from_str(include_str!("openapi.json")).ok())
        .as_ref()
}
