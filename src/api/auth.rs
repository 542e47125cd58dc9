//! Bearer-token access control, as extractors: a handler that takes [`ReadAccess`] or
//! [`AdminAccess`] cannot run without the right token. Extractors run in argument order, so put
//! them first: a request is authenticated before its body is read.

use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts};
use sha2::{Digest, Sha256};

use super::{ApiError, AppState};
use crate::util::Secret;

/// Shortest accepted token: shorter ones are guessable.
pub const MIN_TOKEN_LEN: usize = 16;
/// Longest accepted token (a header-size sanity bound).
pub const MAX_TOKEN_LEN: usize = 1024;

/// Longest `Authorization` header value inspected: tokens are at most
/// [`MAX_TOKEN_LEN`]; anything longer is simply wrong.
const MAX_AUTH_HEADER_LEN: usize = 2048;

/// Tokens the service accepts. `None` for `read` means reads are open; `None` for `admin` means
/// every write is refused.
#[derive(Clone, Debug, Default)]
pub struct Tokens {
    pub admin: Option<Secret>,
    pub read: Option<Secret>,
}

/// Proof that the request may read.
#[derive(Debug, Clone, Copy)]
pub struct ReadAccess;

/// Proof that the request may write.
#[derive(Debug, Clone, Copy)]
pub struct AdminAccess;

/// Compares two byte strings in time independent of where they differ and of their lengths:
/// both are hashed first (so lengths do not leak), then the digests are compared with
/// `subtle`'s constant-time equality (which keeps the optimiser from short-circuiting).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq as _;
    let ha = Sha256::digest(a);
    let hb = Sha256::digest(b);
    ha.as_slice().ct_eq(hb.as_slice()).into()
}

fn matches(token: &str, secret: &Option<Secret>) -> bool {
    secret
        .as_ref()
        .is_some_and(|s| constant_time_eq(token.as_bytes(), s.expose().as_bytes()))
}

/// The bearer token of a request: `Ok(None)` when there is no Authorization header.
fn bearer(parts: &Parts) -> Result<Option<&str>, ApiError> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let malformed =
        || ApiError::Unauthorized("the Authorization header must be `Bearer <token>`".into());
    if value.len() > MAX_AUTH_HEADER_LEN {
        return Err(malformed());
    }
    let text = value.to_str().map_err(|_| malformed())?;
    let (scheme, token) = text.trim().split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(malformed());
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(malformed());
    }
    Ok(Some(token))
}

impl FromRequestParts<AppState> for ReadAccess {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let tokens = state.tokens();
        if tokens.read.is_none() {
            return Ok(ReadAccess);
        }
        let Some(token) = bearer(parts)? else {
            return Err(ApiError::Unauthorized(
                "this server requires a bearer token for reads".into(),
            ));
        };
        // Evaluate both comparisons: which token matched must not show in the timing.
        let read = matches(token, &tokens.read);
        let admin = matches(token, &tokens.admin);
        if read | admin {
            Ok(ReadAccess)
        } else {
            Err(ApiError::Forbidden {
                code: "forbidden",
                message: "the token is not valid".into(),
            })
        }
    }
}

impl FromRequestParts<AppState> for AdminAccess {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let tokens = state.tokens();
        let token = bearer(parts)?;
        if tokens.admin.is_none() {
            return Err(ApiError::Forbidden {
                code: "writes_disabled",
                message: "writes are disabled: no admin token is configured".into(),
            });
        }
        let Some(token) = token else {
            return Err(ApiError::Unauthorized(
                "writes require the admin bearer token".into(),
            ));
        };
        if matches(token, &tokens.admin) {
            Ok(AdminAccess)
        } else {
            Err(ApiError::Forbidden {
                code: "forbidden",
                message: "the token does not grant write access".into(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ct_eq() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(constant_time_eq(b"", b""));
    }
}
