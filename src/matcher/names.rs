//! List and feed names: the one rule for what a name may be. A name is also a file name under
//! the user-lists directory and a path segment of the API, so the rule is strict enough that
//! no name can leave the directory or collide with a route.
//!
//! This module sits below [`super::feeds`] and [`super::manager`]; both (and the API and the
//! configuration) use it, it uses nothing of theirs.

use super::MatcherError;

/// Longest list/feed name (also a file name under the user-lists directory).
pub const MAX_LIST_NAME_LEN: usize = 64;

/// Names that cannot be lists because a route uses them (`POST /blocklists/reload`).
pub const RESERVED_NAMES: &[&str] = &["reload"];

/// Whether `name` is a safe list name: `[a-z0-9._-]`, starting with an alphanumeric, at most
/// [`MAX_LIST_NAME_LEN`] bytes. Such a name cannot escape a directory when used as a file name.
pub fn is_valid_list_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_LIST_NAME_LEN
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

/// Whether a name is taken by an API route.
pub fn is_reserved_name(name: &str) -> bool {
    RESERVED_NAMES.contains(&name)
}

/// A name a list or feed may be created under: valid and not reserved.
pub fn is_usable_list_name(name: &str) -> bool {
    is_valid_list_name(name) && !is_reserved_name(name)
}

/// [`is_usable_list_name`] as a `Result` (the name in the error is clipped).
pub(crate) fn check_name(name: &str) -> Result<(), MatcherError> {
    if is_usable_list_name(name) {
        Ok(())
    } else {
        Err(MatcherError::InvalidName(super::normalize::clip(name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_names() {
        assert!(is_valid_list_name("my-pools.v2"));
        for bad in [
            "",
            "../x",
            "a/b",
            "Upper",
            ".hidden",
            "x\0",
            &"a".repeat(65),
        ] {
            assert!(!is_valid_list_name(bad), "{bad:?}");
        }
        assert!(is_valid_list_name("reload") && !is_usable_list_name("reload"));
        assert!(check_name("reload").is_err() && check_name("mine").is_ok());
    }
}
