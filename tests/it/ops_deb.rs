//! The Debian package (issue #17): `cargo deb --no-build` over the already built binary (no
//! second build), inspected with `dpkg-deb -c`/`-I` for every documented path (docs/install.md),
//! then installed with `dpkg --root` into a throwaway root whose binary must run.
//! cargo-deb is not in `.ci/deps` (its `cargo install` takes ~8 min here): without it the test
//! says so and skips.

use crate::support::service as service_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn have(tool: &str, arg: &str) -> bool {
    Command::new(tool)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Paths (as `dpkg-deb -c` lists them, without the leading `.`) the package must ship.
const SHIPPED: &[&str] = &[
    "/usr/bin/poolwatch",
    "/etc/poolwatch/poolwatch.toml",
    "/usr/share/doc/poolwatch/poolwatch.example.toml",
    "/usr/share/doc/poolwatch/README.md",
    "/usr/share/doc/poolwatch/copyright",
    "/usr/share/poolwatch/blocklists/pools-monero.txt",
    "/usr/share/poolwatch/blocklists/allowlist.txt",
    "/usr/share/poolwatch/blocklists/manifest.toml",
    "/usr/lib/systemd/system/poolwatch.service",
    "/usr/share/man/man1/poolwatch.1.gz",
    "/usr/share/man/man1/poolwatch-scan.1.gz",
    "/usr/share/man/man1/poolwatch-serve.1.gz",
    "/usr/share/bash-completion/completions/poolwatch",
    "/usr/share/zsh/vendor-completions/_poolwatch",
    "/usr/share/fish/vendor_completions.d/poolwatch.fish",
];

#[test]
fn debian_package_ships_the_documented_files_and_installs() {
    if !have("cargo-deb", "--version") {
        println!(
            "SKIP: cargo-deb not installed (`cargo install cargo-deb --locked`; not in .ci/deps)"
        );
        return;
    }
    if !have("dpkg-deb", "--version") {
        println!("SKIP: dpkg-deb not installed");
        return;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let bin = PathBuf::from(service_support::bin());
    // The binary this test runs: target/debug (dev profile) or a release one.
    let profile_dir = bin.parent().unwrap();
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("release") => "release",
        _ => "dev",
    };
    let dist = Command::new(root.join("scripts/dist-assets.sh"))
        .env("POOLWATCH_BIN", &bin)
        .current_dir(&root)
        .status()
        .unwrap();
    assert!(dist.success(), "scripts/dist-assets.sh failed");
    let out = tempfile::tempdir().unwrap();
    run(Command::new("cargo-deb")
        .args([
            "--no-build",
            "--no-strip",
            "--fast",
            "--profile",
            profile,
            "-o",
        ])
        .arg(out.path())
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", profile_dir.parent().unwrap())
        .current_dir(&root));
    let deb = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .expect("cargo deb wrote no .deb");

    let listing = run(Command::new("dpkg-deb").arg("-c").arg(&deb));
    let paths: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .map(|p| p.trim_start_matches('.'))
        .collect();
    for want in SHIPPED {
        assert!(
            paths.contains(want),
            "{want} missing from the package:\n{listing}"
        );
    }
    let bin_line = listing
        .lines()
        .find(|l| l.ends_with("./usr/bin/poolwatch"))
        .unwrap();
    assert!(bin_line.starts_with("-rwxr-xr-x"), "{bin_line}");

    let info = run(Command::new("dpkg-deb").arg("-I").arg(&deb));
    for field in [
        "Package: poolwatch",
        "Section: net",
        "Architecture: ",
        "libpcap0.8",
    ] {
        assert!(info.contains(field), "{field:?} not in:\n{info}");
    }
    let conffiles = run(Command::new("dpkg-deb")
        .arg("-I")
        .arg(&deb)
        .arg("conffiles"));
    assert!(
        conffiles.contains("/etc/poolwatch/poolwatch.toml"),
        "the config is not a conffile: {conffiles:?}"
    );

    // Installed into a throwaway root with its own dpkg database; the binary there runs and
    // the shipped config validates.
    if !have("dpkg", "--version") {
        println!("SKIP (install part): dpkg not installed");
        return;
    }
    let droot = tempfile::tempdir().unwrap();
    let admin = droot.path().join("var/lib/dpkg");
    for d in ["info", "updates", "triggers"] {
        std::fs::create_dir_all(admin.join(d)).unwrap();
    }
    std::fs::write(admin.join("status"), "").unwrap();
    run(Command::new("dpkg")
        .arg(format!("--root={}", droot.path().display()))
        .args([
            "--force-depends",
            "--force-not-root",
            "--log=/dev/null",
            "-i",
        ])
        .arg(&deb));
    let installed = droot.path().join("usr/bin/poolwatch");
    let version = run(Command::new(&installed).arg("--version"));
    assert!(version.starts_with("poolwatch "), "{version}");
    let unit = std::fs::read_to_string(
        droot
            .path()
            .join("usr/lib/systemd/system/poolwatch.service"),
    )
    .unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/poolwatch"), "{unit}");
    assert_installed_config(&installed, droot.path());
}

fn assert_installed_config(bin: &Path, droot: &Path) {
    let cfg = droot.join("etc/poolwatch/poolwatch.toml");
    assert!(cfg.is_file());
    // The shipped config validates with the installed binary.
    let checked = run(Command::new(bin)
        .args(["serve", "--check-config", "--config"])
        .arg(&cfg));
    assert!(checked.contains("\"listen\""), "{checked}");
    // The man page installed is gzip'd roff that `man -l` reads (when man-db is present).
    if have("man", "--version") {
        let page = droot.join("usr/share/man/man1/poolwatch.1.gz");
        let out = Command::new("man")
            .arg("-l")
            .arg(&page)
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "80")
            .output()
            .unwrap();
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains("poolwatch"));
    }
}
