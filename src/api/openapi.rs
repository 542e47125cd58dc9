//! The OpenAPI 3.0 description of the API, written by hand in `openapi.json` next to this file
//! and tested against [`super::route_table`] so that it always lists exactly the routes served,
//! and its schemas against real responses (`tests/it/ops_openapi.rs`). The served copy names the
//! address the server actually listens on in `servers`.

use std::net::SocketAddr;
use std::sync::OnceLock;

/// The document, parsed once. `None` only if the embedded JSON were malformed (a test guards it).
pub fn openapi_document() -> Option<&'static serde_json::Value> {
    static DOC: OnceLock<Option<serde_json::Value>> = OnceLock::new();
    DOC.get_or_init(|| serde_json::from_str(include_str!("openapi.json")).ok())
        .as_ref()
}

/// The document as served, as compact JSON bytes (the caller keeps them: `/api/v1/openapi.json`
/// is public, so an unauthenticated client must not be able to make the server re-serialise
/// 40 KiB per request). `servers` names `listen`: the address itself, or, when the server
/// listens on every address (`0.0.0.0`, `::`), a `host` variable defaulting to loopback.
/// Without an address (a router driven in-process) the document's own default stays.
pub(super) fn served_document(listen: Option<SocketAddr>) -> Option<bytes::Bytes> {
    let mut doc = openapi_document()?.clone();
    if let (Some(addr), Some(obj)) = (listen, doc.as_object_mut()) {
        obj.insert("servers".into(), servers(addr));
    }
    serde_json::to_vec(&doc).ok().map(bytes::Bytes::from)
}

fn servers(addr: SocketAddr) -> serde_json::Value {
    let port = addr.port();
    if addr.ip().is_unspecified() {
        let default = if addr.is_ipv6() { "[::1]" } else { "127.0.0.1" };
        return serde_json::json!([{
            "url": format!("http://{{host}}:{port}"),
            "description": format!("this server (listening on all addresses, {addr})"),
            "variables": { "host": {
                "default": default,
                "description": "a name or address of this machine"
            }}
        }]);
    }
    serde_json::json!([{
        "url": format!("http://{addr}"),
        "description": "this server"
    }])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_name_the_listen_address() {
        let v4: SocketAddr = "127.0.0.1:9123"
            .parse()
            .unwrap_or(SocketAddr::from(([0; 4], 0)));
        assert_eq!(servers(v4)[0]["url"], "http://127.0.0.1:9123");
        let v6: SocketAddr = "[::1]:9123"
            .parse()
            .unwrap_or(SocketAddr::from(([0; 4], 0)));
        assert_eq!(servers(v6)[0]["url"], "http://[::1]:9123");
        let any: SocketAddr = "0.0.0.0:80"
            .parse()
            .unwrap_or(SocketAddr::from(([0; 4], 0)));
        assert_eq!(servers(any)[0]["url"], "http://{host}:80");
        assert_eq!(servers(any)[0]["variables"]["host"]["default"], "127.0.0.1");
    }
}
