//! Durations as people write them in configuration: seconds as an integer, or text with a unit.

use serde::{Deserialize, Serialize};

/// A duration in a configuration file: seconds as an integer, or text with a unit (`90s`, `30m`,
/// `6h`, `2d`).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum DurationSpec {
    Secs(u64),
    Text(String),
}

/// Parses `90`, `90s`, `30m`, `6h`, `2d` into seconds.
pub fn parse_duration_secs(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, 's')) => (t.get(..i).unwrap_or(""), 1u64),
        Some((i, 'm')) => (t.get(..i).unwrap_or(""), 60),
        Some((i, 'h')) => (t.get(..i).unwrap_or(""), 3600),
        Some((i, 'd')) => (t.get(..i).unwrap_or(""), 86_400),
        _ => (t, 1),
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("{s:?} is not a duration (seconds, or a number with s/m/h/d)"))
}

/// A [`DurationSpec`] in seconds.
pub fn duration_secs(d: &DurationSpec) -> Result<u64, String> {
    match d {
        DurationSpec::Secs(n) => Ok(*n),
        DurationSpec::Text(t) => parse_duration_secs(t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_secs("90"), Ok(90));
        assert_eq!(parse_duration_secs("30m"), Ok(1800));
        assert_eq!(parse_duration_secs("2d"), Ok(172_800));
        assert!(parse_duration_secs("").is_err());
        assert!(parse_duration_secs("h").is_err());
        assert!(parse_duration_secs("99999999999999999999d").is_err());
        assert!(parse_duration_secs("1é").is_err());
        assert_eq!(duration_secs(&DurationSpec::Secs(5)), Ok(5));
        assert_eq!(duration_secs(&DurationSpec::Text("2m".into())), Ok(120));
    }
}
