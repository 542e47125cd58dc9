//! Every export format on the shipped lists, the fixtures and the public lists, checked by the
//! real consumers where installed: named-checkzone (RPZ), unbound-checkconf, nft -c.

use std::path::{Path, PathBuf};
use std::process::Command;

use poolwatch::matcher::{Blocklists, ExportFormat};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/blocklists")
        .join(name)
}

fn shared_lists() -> Option<Vec<PathBuf>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/blocklists");
    if !root.is_dir() {
        println!("skipping: ../shared/data not present");
        return None;
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    Some(dirs)
}

fn tool(name: &str) -> Option<PathBuf> {
    for dir in [
        "/usr/bin",
        "/usr/sbin",
        "/bin",
        "/sbin",
        "/usr/local/bin",
        "/usr/local/sbin",
    ] {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return Some(p);
        }
    }
    println!("skipping: {name} not installed");
    None
}

fn check_with_tools(b: &Blocklists, label: &str) {
    let dir = tempfile::tempdir().unwrap();
    if let Some(t) = tool("named-checkzone") {
        let f = dir.path().join("pools.rpz");
        std::fs::write(&f, b.export(ExportFormat::Rpz)).unwrap();
        let o = Command::new(t)
            .args(["-q", "rpz.poolwatch"])
            .arg(&f)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{label}: named-checkzone: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    if let Some(t) = tool("unbound-checkconf") {
        let f = dir.path().join("unbound.conf");
        std::fs::write(&f, b.export(ExportFormat::Unbound)).unwrap();
        let o = Command::new(t).arg(&f).output().unwrap();
        assert!(
            o.status.success(),
            "{label}: unbound-checkconf: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    if let Some(t) = tool("nft") {
        let f = dir.path().join("pools.nft");
        std::fs::write(&f, b.export(ExportFormat::Nftables)).unwrap();
        let o = Command::new(t)
            .arg("-c")
            .arg("-f")
            .arg(&f)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        if !o.status.success()
            && (err.contains("Operation not permitted") || err.contains("netlink"))
        {
            println!("skipping: nft -c cannot reach netlink here: {err}");
        } else {
            assert!(o.status.success(), "{label}: nft -c: {err}");
        }
    }
}

#[test]
fn shipped_lists_export_and_load_in_real_tools() {
    let b = Blocklists::builtin().unwrap();
    for f in ExportFormat::ALL {
        assert!(!b.export(f).is_empty(), "{f}");
    }
    check_with_tools(&b, "shipped");
}

#[test]
fn fixture_exports_have_the_promised_shapes() {
    let paths: Vec<PathBuf> = ["plain.txt", "adblock.txt", "allow.txt"]
        .iter()
        .map(|f| fixture(f))
        .collect();
    let b = Blocklists::load(&paths).unwrap();
    let rpz = b.export(ExportFormat::Rpz);
    assert!(
        rpz.contains("\nsupportxmr.com CNAME .\n*.supportxmr.com CNAME .\n"),
        "{rpz}"
    );
    assert!(rpz.contains("\nsafe.pool.example.net CNAME rpz-passthru.\n"));
    assert!(rpz.contains("\nok.coin-miner.example CNAME rpz-passthru.\n"));
    assert!(rpz.contains("32.7.113.0.203.rpz-ip CNAME ."));
    // Serial changes with content and is stable without change.
    assert_eq!(rpz, b.export(ExportFormat::Rpz));
    let b2 = Blocklists::load(&paths[..2]).unwrap();
    let serial = |z: &str| z.lines().find(|l| l.contains(" SOA ")).unwrap().to_string();
    assert_ne!(serial(&rpz), serial(&b2.export(ExportFormat::Rpz)));

    assert!(b
        .export(ExportFormat::Hosts)
        .contains("\n0.0.0.0 supportxmr.com\n"));
    let dm = b.export(ExportFormat::Dnsmasq);
    assert!(
        dm.contains("\naddress=/supportxmr.com/\n")
            && dm.contains("\nserver=/safe.pool.example.net/#\n")
    );
    let ub = b.export(ExportFormat::Unbound);
    assert!(ub.contains("local-zone: \"supportxmr.com.\" always_nxdomain"));
    assert!(ub.contains("local-zone: \"safe.pool.example.net.\" always_transparent"));
    let ab = b.export(ExportFormat::Adblock);
    assert!(ab.contains("\n||supportxmr.com^\n") && ab.contains("\n@@||ok.coin-miner.example^\n"));
    let nft = b.export(ExportFormat::Nftables);
    assert!(
        nft.contains("203.0.113.7")
            && nft.contains("198.51.100.0/24")
            && nft.contains("192.0.2.10 . 3333")
    );
    assert!(nft.contains("2001:db8:1::/48") && nft.contains("2001:db8::7 . 4444"));
    let ds = b.export(ExportFormat::SuricataDataset);
    assert!(
        ds.lines().any(|l| l == "c3VwcG9ydHhtci5jb20="),
        "base64 of supportxmr.com"
    );
    // Re-reading our own adblock and hosts exports gives back the same blocks.
    let again = Blocklists::build(vec![poolwatch::matcher::ListSource::memory(
        "re",
        poolwatch::model::Category::Pool,
        None,
        &ab,
    )])
    .unwrap()
    .0;
    assert!(again.match_name("x.supportxmr.com").is_some());
    assert!(again.match_name("ok.coin-miner.example").is_none());
    check_with_tools(&b, "fixtures");
}

#[test]
fn public_lists_export_and_load_in_real_tools() {
    let Some(dirs) = shared_lists() else { return };
    let mut loaded = 0;
    for d in &dirs {
        match Blocklists::load(std::slice::from_ref(d)) {
            Ok(b) => {
                loaded += 1;
                for f in ExportFormat::ALL {
                    let _ = b.export(f);
                }
                check_with_tools(&b, &d.display().to_string());
            }
            // Directories holding only rules/YAML (Sigma, ET Open, Sentinel) have no list files.
            Err(e) => println!("{}: {e}", d.display()),
        }
    }
    assert!(loaded >= 3, "the domain/hosts/adblock lists must load");
}
