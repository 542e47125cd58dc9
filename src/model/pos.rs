//! Source positions: where in its input an observation was read, so that reading the same bytes
//! again (a follower that resumes before its last offset commit) can be told from new data.
//!
//! A [`SourcePos`] travels beside an observation (never inside its JSON contract); a
//! [`SourceMark`] is the high-water mark a detection keeps per source
//! (`Detection::source_marks`, applied by `correlate::replay`).

use super::*;

/// Identity of one byte stream that can be read again: for a followed file, a hash of its
/// (device, inode) and first line (`ingest::follow`), so it survives restarts and renames and
/// changes when the file is replaced. Serialised as 16 hex digits (JSON numbers above 2^53 lose
/// precision in JavaScript).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct SourceId(pub u64);

impl fmt::Debug for SourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Display for SourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl Serialize for SourceId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SourceId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() || s.len() > 16 {
            return Err(serde::de::Error::custom(format!("invalid source id {s:?}")));
        }
        u64::from_str_radix(&s, 16)
            .map(SourceId)
            .map_err(|_| serde::de::Error::custom(format!("invalid source id {s:?}")))
    }
}

/// Where one observation was read: the byte offset of the line that produced it and its index
/// among that line's observations. Positions of one source increase in reading order, so
/// `(offset, seq)` orders them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SourcePos {
    pub source: SourceId,
    pub offset: u64,
    pub seq: u32,
}

impl SourcePos {
    /// The reading order within one source.
    pub fn key(&self) -> (u64, u32) {
        (self.offset, self.seq)
    }
}

/// A detection's high-water mark in one source: every observation of `source` at or before
/// (`offset`, `seq`) is already in the detection's counts and evidence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceMark {
    pub source: SourceId,
    pub offset: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub seq: u32,
}

impl SourceMark {
    pub fn key(&self) -> (u64, u32) {
        (self.offset, self.seq)
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_id_is_hex_in_json_and_refuses_garbage() {
        let m = SourceMark {
            source: SourceId(0x9f3a_0000_0000_00ff),
            offset: 48_213,
            seq: 0,
        };
        let s = serde_json::to_string(&m).unwrap();
        assert_eq!(s, r#"{"source":"9f3a0000000000ff","offset":48213}"#);
        assert_eq!(serde_json::from_str::<SourceMark>(&s).unwrap(), m);
        for bad in [r#""""#, r#""xyz""#, r#""00000000000000001""#, "17"] {
            assert!(serde_json::from_str::<SourceId>(bad).is_err(), "{bad}");
        }
    }
}
