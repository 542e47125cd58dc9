//! Name normalisation for list entries (strict, reports why an entry is invalid) and for the
//! names being matched (fast, allocation-free for ASCII input).

use super::{MAX_LABEL_LEN, MAX_NAME_LEN};

/// Normalises one list entry: trims, strips a leading `*.` or `.` and a trailing dot,
/// converts IDN to punycode, lowercases, and validates label and name lengths and characters.
///
/// Single-label entries are refused: `com` would flag a whole top-level domain.
pub fn normalize_entry(raw: &str) -> Result<String, String> {
    let mut s = raw.trim();
    s = s.strip_prefix("*.").unwrap_or(s);
    s = s.strip_prefix('.').unwrap_or(s);
    s = s.strip_suffix('.').unwrap_or(s);
    if s.is_empty() {
        return Err("empty domain".into());
    }
    if s.contains('*') {
        return Err(format!(
            "wildcard only allowed as a leading `*.`: {}",
            clip(raw)
        ));
    }
    let ascii: String = if s.is_ascii() {
        s.to_ascii_lowercase()
    } else {
        idna::domain_to_ascii(s)
            .map_err(|_| format!("invalid internationalised name: {}", clip(raw)))?
    };
    validate_ascii_name(&ascii)?;
    if !ascii.contains('.') {
        return Err(format!(
            "single-label entry `{}` would match a whole top-level domain",
            clip(&ascii)
        ));
    }
    Ok(ascii)
}

/// The entry a plain-list line that is already a normalised domain stands for (issue #16: the
/// list load of a 50k-line list cost ≈ 3,600 instructions a line through the general path).
///
/// `Some` only when the general path ([`super::parse`]'s plain/hosts rule, then
/// [`normalize_entry`]) provably yields this same entry and no problem: every byte is one of
/// `a-z 0-9 - _ .` (so no whitespace, comment, `*`, `:` or `/`, and the text is its own
/// lowercase), at least one byte is not a digit or a dot (so it is no IP address, CIDR block or
/// endpoint, and not the "invalid IP address" typo), it neither starts nor ends with a dot
/// (nothing to strip), and it passes [`validate_ascii_name`]'s limits with at least two labels.
/// Anything else returns `None` and takes the general path, which reports it as before.
pub(crate) fn plain_domain_entry(line: &str) -> Option<String> {
    let b = line.as_bytes();
    if b.len() > MAX_NAME_LEN || b.first() == Some(&b'.') || b.last() == Some(&b'.') {
        return None;
    }
    let (mut label, mut dots, mut alpha) = (0usize, 0usize, false);
    for &c in b {
        match c {
            b'.' => {
                if label == 0 {
                    return None;
                }
                label = 0;
                dots += 1;
            }
            b'a'..=b'z' | b'-' | b'_' => {
                alpha = true;
                label += 1;
            }
            b'0'..=b'9' => label += 1,
            _ => return None,
        }
        if label > MAX_LABEL_LEN {
            return None;
        }
    }
    (alpha && dots > 0 && label > 0).then(|| line.to_owned())
}

/// Checks an already lowercased ASCII name: length limits, label lengths, characters.
pub fn validate_ascii_name(name: &str) -> Result<(), String> {
    if name.len() > MAX_NAME_LEN {
        return Err(format!("name longer than {MAX_NAME_LEN} bytes"));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(format!("empty label in `{}`", clip(name)));
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(format!(
                "label longer than {MAX_LABEL_LEN} bytes in `{}`",
                clip(name)
            ));
        }
        // Hostname characters plus `_` (service labels such as `_dmarc` appear in lists).
        if let Some(c) = label
            .bytes()
            .find(|b| !(b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-' || *b == b'_'))
        {
            return Err(format!(
                "invalid character {:?} in `{}`",
                char::from(c),
                clip(name)
            ));
        }
    }
    Ok(())
}

/// Shortens text quoted in messages so a hostile multi-kilobyte line does not flood the output.
pub(crate) fn clip(s: &str) -> String {
    /// Longest quoted fragment in a problem message.
    const MAX_QUOTE: usize = 80;
    if s.len() <= MAX_QUOTE {
        return s.to_string();
    }
    let mut end = MAX_QUOTE;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Writes `name` reversed and lowercased into `buf`, followed by a `.`, for the reversed-label
/// automaton. Returns the used length, or `None` when the name cannot be a valid DNS name
/// (too long, empty, or non-ASCII: callers convert IDN first).
#[inline]
pub(crate) fn reverse_query(name: &[u8], buf: &mut [u8; MAX_NAME_LEN + 2]) -> Option<usize> {
    let name = match name.split_last() {
        Some((b'.', rest)) => rest,
        _ => name,
    };
    let n = name.len();
    if n == 0 || n > MAX_NAME_LEN {
        return None;
    }
    for (dst, &b) in buf.iter_mut().zip(name.iter().rev()) {
        *dst = b.to_ascii_lowercase();
    }
    *buf.get_mut(n)? = b'.';
    Some(n + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries() {
        assert_eq!(
            normalize_entry("*.Pool.Example.COM.").as_deref(),
            Ok("pool.example.com")
        );
        assert_eq!(
            normalize_entry("bücher.example").as_deref(),
            Ok("xn--bcher-kva.example")
        );
        assert!(normalize_entry("com").is_err());
        assert!(normalize_entry("a..b").is_err());
        assert!(normalize_entry(&format!("{}.com", "a".repeat(64))).is_err());
        assert!(normalize_entry("ex ample.com").is_err());
        assert!(normalize_entry("a*.b.com").is_err());
    }

    #[test]
    fn reverse() {
        let mut buf = [0u8; MAX_NAME_LEN + 2];
        let n = reverse_query(b"Ab.Cd.", &mut buf).unwrap();
        assert_eq!(&buf[..n], b"dc.ba.");
        assert!(reverse_query(b"", &mut buf).is_none());
        assert!(reverse_query(&[b'a'; 254], &mut buf).is_none());
    }
}
