//! The API's one error type: every failure becomes `{"error":{"code":…,"message":…}}` with the
//! right status. Internal failures are logged here and answered with a message that leaks
//! nothing.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// What went wrong with a request. `code` strings are part of the API contract (docs/api.md).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// A query parameter, path segment or body field is malformed or out of range.
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// No (or an unparseable) bearer token where one is required.
    #[error("{0}")]
    Unauthorized(String),
    /// A token was given but it does not grant this access.
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    #[error("this route does not accept the {0} method")]
    MethodNotAllowed(String),
    #[error("the request body is larger than the limit of {0} bytes")]
    PayloadTooLarge(usize),
    /// The request target is longer than the limit (when known).
    #[error("the request URI is too long{}", limit_text(.0))]
    UriTooLong(Option<usize>),
    /// The request head's header fields are larger than the limit (when known).
    #[error("the request headers are too large{}", limit_text(.0))]
    HeadersTooLarge(Option<usize>),
    /// The client holds as many connections as one client may.
    #[error(
        "too many connections from this client (at most {0}); reuse a connection or retry later"
    )]
    TooManyConnections(usize),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("the request did not complete within {0} s")]
    Timeout(u64),
    /// The request conflicts with the state of the resource (read-only list, name taken).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// A list update failed validation; nothing changed. `problems` carry line numbers.
    #[error("{message}")]
    InvalidList {
        message: String,
        problems: Vec<crate::matcher::Problem>,
    },
    /// The service (or a part of it) cannot answer now; retrying later may work.
    #[error("{message}")]
    Unavailable { code: &'static str, message: String },
    /// A backend failure; the detail was logged, the client sees a generic message.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    pub fn bad(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            message: message.into(),
        }
    }
    pub fn invalid(param: &str, message: impl std::fmt::Display) -> Self {
        ApiError::bad("invalid_parameter", format!("{param}: {message}"))
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::NotFound {
            code: "not_found",
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UriTooLong(_) => StatusCode::URI_TOO_LONG,
            ApiError::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::TooManyConnections(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::InvalidList { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. }
            | ApiError::Forbidden { code, .. }
            | ApiError::NotFound { code, .. }
            | ApiError::Unavailable { code, .. }
            | ApiError::Conflict { code, .. } => code,
            ApiError::InvalidList { .. } => "invalid_list",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::UriTooLong(_) => "uri_too_long",
            ApiError::HeadersTooLarge(_) => "headers_too_large",
            ApiError::TooManyConnections(_) => "too_many_connections",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::Timeout(_) => "timeout",
            ApiError::Internal => "internal",
        }
    }
}

fn limit_text(limit: &Option<usize>) -> String {
    match limit {
        Some(n) => format!(" (limit {n} bytes)"),
        None => String::new(),
    }
}

impl ApiError {
    fn body(&self) -> serde_json::Value {
        let message = match self {
            ApiError::Internal => "internal error; the server log has details".to_string(),
            other => other.to_string(),
        };
        match self {
            ApiError::InvalidList { problems, .. } => json!({"error": {
                "code": self.code(),
                "message": message,
                "problems": problems,
            }}),
            _ => json!({"error": {"code": self.code(), "message": message}}),
        }
    }

    /// The complete HTTP/1.1 answer (head and JSON body, `Connection: close`), for the
    /// connection layer where no router runs: refusals at accept and the replacement of hyper's
    /// own error answers.
    pub fn to_http_bytes(&self) -> Vec<u8> {
        let status = self.status();
        let body = self.body().to_string();
        let mut out = format!(
            "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             x-content-type-options: nosniff\r\nconnection: close\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or("Error"),
            body.len()
        );
        if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS {
            out.push_str("retry-after: 1\r\n");
        }
        out.push_str("\r\n");
        out.push_str(&body);
        out.into_bytes()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = self.body();
        let mut resp = (status, axum::Json(body)).into_response();
        if matches!(self, ApiError::Unauthorized(_)) {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"poolwatch\""),
            );
        }
        resp
    }
}
