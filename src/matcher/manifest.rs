//! `manifest.toml`: what each list file is (format, category, source, licence, refresh date).
//! The shipped manifest and lists are embedded in the binary.

use serde::{Deserialize, Serialize};

use super::parse::ListFormat;
use crate::model::Category;

/// Longest manifest accepted (it names files; anything bigger is not a manifest).
pub const MAX_MANIFEST_BYTES: u64 = 1 << 20;

/// A parsed `manifest.toml`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    #[serde(default, rename = "list")]
    pub lists: Vec<ManifestList>,
}

/// One `[[list]]` table.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestList {
    /// Name reported in matches (`ListHit::list`); defaults to the file stem.
    #[serde(default)]
    pub name: Option<String>,
    /// File name, relative to the manifest's directory.
    pub file: String,
    /// Format; detected from the content when absent.
    #[serde(default)]
    pub format: Option<ListFormat>,
    pub category: Category,
    /// Where the entries come from.
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub license: String,
    /// When the list was last refreshed (ISO date).
    #[serde(default)]
    pub refreshed: String,
    #[serde(default)]
    pub description: String,
}

impl Manifest {
    pub fn parse(text: &str) -> Result<Manifest, String> {
        let m: Manifest = toml::from_str(text).map_err(|e| e.to_string())?;
        for l in &m.lists {
            if l.file.contains("..") || l.file.starts_with('/') {
                return Err(format!(
                    "list file `{}` must stay inside the manifest's directory",
                    l.file
                ));
            }
        }
        Ok(m)
    }
}

/// The shipped manifest, embedded.
pub(crate) const BUILTIN_MANIFEST: &str = include_str!("../../blocklists/manifest.toml");

/// The shipped list files, embedded (file name as in the manifest, content).
pub(crate) const BUILTIN_FILES: &[(&str, &str)] = &[
    (
        "pools-monero.txt",
        include_str!("../../blocklists/pools-monero.txt"),
    ),
    (
        "pools-other.txt",
        include_str!("../../blocklists/pools-other.txt"),
    ),
    (
        "browser-miners.txt",
        include_str!("../../blocklists/browser-miners.txt"),
    ),
    (
        "miner-proxies.txt",
        include_str!("../../blocklists/miner-proxies.txt"),
    ),
    (
        "allowlist.txt",
        include_str!("../../blocklists/allowlist.txt"),
    ),
];
