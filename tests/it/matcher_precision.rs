//! List precision: the shipped multi-purpose table agrees with the shipped lists, and
//! `poolwatch blocklist lint` (the real binary) warns about bare multi-purpose domains and
//! public suffixes, and about nothing in the shipped lists.

use std::path::{Path, PathBuf};
use std::process::Command;

use poolwatch::matcher::precision::{MultiPurposeTable, PublicSuffixList, MULTI_PURPOSE_TOML};
use poolwatch::matcher::{parse_list, Blocklists, ListFormat, Target};
use poolwatch::model::Category;

fn blocklists_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("blocklists")
}

fn lint(args: &[&str], files: &[&Path]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_poolwatch"))
        .args(["blocklist", "lint"])
        .args(args)
        .args(files)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Entries of one shipped list file.
fn entries(file: &str) -> Vec<String> {
    let text = std::fs::read_to_string(blocklists_dir().join(file)).unwrap();
    parse_list(&text, Some(ListFormat::Plain))
        .entries
        .into_iter()
        .filter_map(|e| match e.target {
            Target::Domain(d) => Some(d),
            _ => None,
        })
        .collect()
}

#[test]
fn shipped_table_agrees_with_the_shipped_lists() {
    let t = MultiPurposeTable::parse(MULTI_PURPOSE_TOML).unwrap();
    let psl = PublicSuffixList::builtin();
    let b = Blocklists::builtin().unwrap();
    let allow = entries("allowlist.txt");
    let pools: Vec<String> = ["pools-monero.txt", "pools-other.txt", "miner-proxies.txt"]
        .iter()
        .flat_map(|f| entries(f))
        .collect();
    assert!(t.sites.len() >= 5 && t.pool_sites.len() >= 5);
    for s in &t.sites {
        assert_eq!(
            psl.registrable(&s.domain),
            Some(s.domain.as_str()),
            "{} is not a bare registrable domain",
            s.domain
        );
        assert!(!s.reason.trim().is_empty(), "{}: reason", s.domain);
        assert!(allow.contains(&s.domain), "{} not allowlisted", s.domain);
        assert!(!pools.contains(&s.domain), "{} listed whole", s.domain);
        // The site itself and a typical page do not match; its pool hosts do.
        for visit in [s.domain.clone(), format!("www.{}", s.domain)] {
            assert!(b.match_name(&visit).is_none(), "{visit} matches");
        }
        for h in &s.pool_hosts {
            let hit = b
                .match_name(&format!("x.{h}"))
                .unwrap_or_else(|| panic!("pool host {h} of {} not listed", s.domain));
            assert_eq!(hit.category, Category::Pool, "{h}");
        }
    }
    for s in &t.pool_sites {
        assert!(
            pools.contains(&s.domain),
            "pool site {} not listed",
            s.domain
        );
        assert!(!allow.contains(&s.domain), "pool site {} allowed", s.domain);
        assert!(b.match_name(&s.domain).is_some(), "{}", s.domain);
    }
}

#[test]
fn lint_warns_about_bare_multi_purpose_domains_and_public_suffixes() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("pools.txt");
    std::fs::write(
        &f,
        "btc.com\nviabtc.com\nexplorer.btc.com\nss.btc.com\nduckdns.org\nxmr.duckdns.org\n\
         co.uk\ngntl.co.uk\npool.supportxmr.com\nsupportxmr.com\n",
    )
    .unwrap();
    let (code, out) = lint(&[], &[&f]);
    assert_eq!(code, 0, "warnings do not fail without --strict: {out}");
    let warned: Vec<u32> = out
        .lines()
        .filter(|l| l.contains(": warning: "))
        .map(|l| {
            l.split(':')
                .nth(1)
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        })
        .collect();
    assert_eq!(warned, vec![1, 2, 5, 7], "{out}");
    assert!(
        out.contains("multi-purpose site") && out.contains("pool.btc.com, ss.btc.com"),
        "{out}"
    );
    assert!(out.contains("`duckdns.org` is a public suffix"), "{out}");
    let (code, _) = lint(&["--strict"], &[&f]);
    assert_eq!(code, 1, "--strict fails on the warnings");
    // The same names in an allow list are fine.
    let a = dir.path().join("allowlist.txt");
    std::fs::write(&a, "btc.com\nduckdns.org\n").unwrap();
    let (code, out) = lint(&["--strict"], &[&a]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("warning"), "{out}");
}

#[test]
fn shipped_lists_lint_clean_and_strict() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(blocklists_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    assert!(files.len() >= 5);
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let (code, out) = lint(&["--strict"], &refs);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("warning"), "{out}");
}
