//! systemd's readiness protocol (`sd_notify(3)`): `READY=1` once the API listens and the lists
//! are loaded, `WATCHDOG=1` keep-alives from the pipeline thread, `RELOADING=1`/`READY=1`
//! around a SIGHUP reload. A datagram to `$NOTIFY_SOCKET`; without it (not under systemd
//! `Type=notify`) every call is a no-op. Kept small instead of a crate: one socket call.

use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

/// The notification socket, when systemd gave one (path, or `@name` in the abstract namespace).
fn socket() -> Option<&'static str> {
    static S: OnceLock<Option<String>> = OnceLock::new();
    S.get_or_init(|| {
        std::env::var("NOTIFY_SOCKET")
            .ok()
            .filter(|s| !s.is_empty())
    })
    .as_deref()
}

/// Sends one notification; failures are logged once at debug level (never fatal).
pub fn notify(state: &str) {
    let Some(path) = socket() else { return };
    if let Err(e) = send(path, state) {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

fn send(path: &str, state: &str) -> std::io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    if let Some(name) = path.strip_prefix('@') {
        #[cfg(target_os = "linux")]
        {
            use std::os::linux::net::SocketAddrExt as _;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
            sock.send_to_addr(state.as_bytes(), &addr)?;
            return Ok(());
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = name;
            return Err(std::io::Error::other("abstract sockets need Linux"));
        }
    }
    sock.send_to(state.as_bytes(), path)?;
    Ok(())
}

/// `READY=1` and a status line.
pub fn ready(status: &str) {
    notify(&format!("READY=1\nSTATUS={status}"));
}

/// The keep-alive interval: half of `$WATCHDOG_USEC` when the watchdog is on for this process.
fn watchdog_interval_ms() -> Option<u64> {
    static W: OnceLock<Option<u64>> = OnceLock::new();
    *W.get_or_init(|| {
        let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
        if let Ok(pid) = std::env::var("WATCHDOG_PID") {
            if pid.parse::<u32>().ok()? != std::process::id() {
                return None;
            }
        }
        Some((usec / 2_000).max(1))
    })
}

/// `WATCHDOG=1`, at most once per half watchdog interval; cheap enough to call on every loop
/// of the pipeline thread (a stuck pipeline stops the keep-alives and systemd restarts it).
pub fn watchdog() {
    static START: OnceLock<Instant> = OnceLock::new();
    static LAST: AtomicU64 = AtomicU64::new(0);
    let Some(every) = watchdog_interval_ms() else {
        return;
    };
    let now = START.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1;
    let last = LAST.load(Ordering::Relaxed);
    if last != 0 && now.saturating_sub(last) < every {
        return;
    }
    LAST.store(now, Ordering::Relaxed);
    notify("WATCHDOG=1");
}

#[cfg(test)]
mod tests {
    #[test]
    fn sends_to_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("notify.sock");
        let rx = std::os::unix::net::UnixDatagram::bind(&p).unwrap();
        super::send(p.to_str().unwrap(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        assert!(super::send(dir.path().join("none").to_str().unwrap(), "X").is_err());
    }
}
