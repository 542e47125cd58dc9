//! Syslog sink: RFC 5424 messages over UDP (RFC 5426, one message a datagram), TCP with
//! octet-counted framing (RFC 6587 §3.4.1) and TLS (RFC 5425, rustls). The MSG is the
//! poolwatch JSON (`json`), ArcSight CEF or QRadar LEEF.
//!
//! A TCP/TLS batch is acknowledged once written and flushed. Before each batch the connection is
//! checked for end-of-file (a syslog receiver never sends, so readable means closed), so a
//! restarted receiver costs a reconnect, not the records written into a dead socket. UDP has no
//! acknowledgement: a datagram sent counts as delivered (documented).

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};

use super::config::{SyslogTarget, SyslogTransport};
use super::format::{self, Format, Observer, Severity};
use super::{Delivery, OutputEvent, Sink, SinkError};
use crate::model::Timestamp;

/// Connect deadline (TCP handshake + TLS handshake).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Deadline for writing one batch.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest UDP message: the IPv4 UDP payload limit minus headroom. Longer messages are cut
/// (and counted); use TCP/TLS for large records.
pub const MAX_UDP_MESSAGE: usize = 65_000;

enum Conn {
    Udp(UdpSocket),
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

pub struct SyslogSink {
    cfg: SyslogTarget,
    format: Format,
    observer: Arc<Observer>,
    conn: Option<Conn>,
    tls: Option<Result<tokio_rustls::TlsConnector, String>>,
    pid: u32,
    truncated: crate::metrics::Counter,
}

impl SyslogSink {
    pub fn new(cfg: SyslogTarget, format: Format, observer: Arc<Observer>) -> Self {
        SyslogSink {
            cfg,
            format,
            observer,
            conn: None,
            tls: None,
            pid: std::process::id(),
            truncated: crate::metrics::counter(
                "poolwatch_output_syslog_truncated_total",
                "UDP syslog messages cut to the datagram limit.",
                &[],
            ),
        }
    }

    fn connector(&mut self) -> Result<tokio_rustls::TlsConnector, String> {
        if self.tls.is_none() {
            self.tls = Some(tls_connector(self.cfg.ca_file.as_deref()));
        }
        match &self.tls {
            Some(Ok(c)) => Ok(c.clone()),
            Some(Err(e)) => Err(e.clone()),
            None => Err("no TLS configuration".into()),
        }
    }

    async fn connect(&mut self) -> Result<Conn, String> {
        let target = format!("{}:{}", bracket(&self.cfg.host), self.cfg.port);
        let addrs: Vec<std::net::SocketAddr> =
            tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::lookup_host(target.clone()))
                .await
                .map_err(|_| format!("resolving {target}: timed out"))?
                .map_err(|e| format!("resolving {target}: {e}"))?
                .collect();
        let addr = *addrs
            .first()
            .ok_or_else(|| format!("{target} resolves to nothing"))?;
        match self.cfg.transport {
            SyslogTransport::Udp => {
                let local: std::net::SocketAddr = if addr.is_ipv4() {
                    ([0, 0, 0, 0], 0).into()
                } else {
                    (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                };
                let s = UdpSocket::bind(local)
                    .await
                    .map_err(|e| format!("udp socket: {e}"))?;
                s.connect(addr)
                    .await
                    .map_err(|e| format!("udp {target}: {e}"))?;
                Ok(Conn::Udp(s))
            }
            SyslogTransport::Tcp => {
                let s = tcp(addr, &target).await?;
                Ok(Conn::Tcp(s))
            }
            SyslogTransport::Tls => {
                let connector = self.connector()?;
                let s = tcp(addr, &target).await?;
                let name = self
                    .cfg
                    .server_name
                    .clone()
                    .unwrap_or_else(|| self.cfg.host.clone());
                let sn = rustls_pki_types::ServerName::try_from(name.clone())
                    .map_err(|e| format!("TLS server name {name:?}: {e}"))?;
                let t = tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(sn, s))
                    .await
                    .map_err(|_| format!("TLS handshake with {target}: timed out"))?
                    .map_err(|e| format!("TLS handshake with {target}: {e}"))?;
                Ok(Conn::Tls(Box::new(t)))
            }
        }
    }

    /// One RFC 5424 message (without framing).
    fn message(&self, ev: &OutputEvent) -> Vec<u8> {
        let sev = match &ev.detection {
            Some(d) => match format::severity(d.risk_score) {
                Severity::Critical => 2,
                Severity::High => 3,
                Severity::Medium => 4,
                Severity::Low => 5,
            },
            None => 5,
        };
        let pri = u16::from(self.cfg.facility) * 8 + sev;
        let ts = rfc5424_time(format::event_time(ev));
        let host = header_field(&self.observer.hostname, 255);
        let msg: Vec<u8> = match self.format {
            Format::Cef => format::cef::render(ev).into_bytes(),
            Format::Leef => format::leef::render(ev).into_bytes(),
            _ => format::render_json(Format::Poolwatch, ev, &self.observer),
        };
        let mut out = format!(
            "<{pri}>1 {ts} {host} {} {} {} - ",
            self.cfg.app_name,
            self.pid,
            ev.kind.as_str()
        )
        .into_bytes();
        out.extend_from_slice(&msg);
        out
    }
}

fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

async fn tcp(addr: std::net::SocketAddr, target: &str) -> Result<TcpStream, String> {
    let s = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| format!("connecting to {target}: timed out"))?
        .map_err(|e| format!("connecting to {target}: {e}"))?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

/// A header field: printable US-ASCII without spaces, at most `max` bytes; NILVALUE when empty.
fn header_field(s: &str, max: usize) -> String {
    let v: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if v.is_empty() {
        "-".into()
    } else {
        v
    }
}

/// RFC 5424 TIMESTAMP (RFC 3339, UTC, microseconds).
fn rfc5424_time(t: Timestamp) -> String {
    match t.to_datetime() {
        Some(dt) => dt.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        None => "-".into(),
    }
}

/// Whether a stream we only write to has been closed by the peer (readable = EOF or junk).
fn peer_closed(s: &TcpStream) -> bool {
    let mut b = [0u8; 64];
    match s.try_read(&mut b) {
        Ok(_) => true,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    }
}

/// The same check through TLS: one non-blocking read of the TLS stream (rustls consumes
/// post-handshake messages such as session tickets itself; EOF, an error or close_notify means
/// closed; plaintext from a syslog server is ignored).
async fn tls_peer_closed(s: &mut tokio_rustls::client::TlsStream<TcpStream>) -> bool {
    use tokio::io::AsyncReadExt;
    let mut b = [0u8; 256];
    match tokio::time::timeout(Duration::ZERO, s.read(&mut b)).await {
        Err(_) => false,
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(_)) => false,
    }
}

/// A rustls client configuration with the CA file's roots, or the public web roots.
pub fn tls_connector(ca: Option<&std::path::Path>) -> Result<tokio_rustls::TlsConnector, String> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(p) => {
            let certs = rustls_pki_types::CertificateDer::pem_file_iter(p)
                .map_err(|e| format!("ca_file {}: {e}", p.display()))?;
            for c in certs {
                let c = c.map_err(|e| format!("ca_file {}: {e}", p.display()))?;
                roots
                    .add(c)
                    .map_err(|e| format!("ca_file {}: {e}", p.display()))?;
            }
            if roots.is_empty() {
                return Err(format!("ca_file {} holds no certificate", p.display()));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(cfg)))
}

impl Sink for SyslogSink {
    fn deliver<'a>(&'a mut self, events: &'a [OutputEvent]) -> BoxFuture<'a, Delivery> {
        Box::pin(async move {
            let alive = match &mut self.conn {
                Some(Conn::Tcp(s)) => !peer_closed(s),
                Some(Conn::Tls(s)) => !tls_peer_closed(s).await,
                Some(Conn::Udp(_)) => true,
                None => false,
            };
            if !alive {
                self.conn = None;
                match self.connect().await {
                    Ok(c) => self.conn = Some(c),
                    Err(e) => {
                        return Delivery {
                            acked: 0,
                            error: Some(SinkError::transient(e)),
                        }
                    }
                }
            }
            let msgs: Vec<Vec<u8>> = events.iter().map(|e| self.message(e)).collect();
            let Some(conn) = self.conn.as_mut() else {
                return Delivery {
                    acked: 0,
                    error: Some(SinkError::transient("not connected")),
                };
            };
            let result: Result<usize, (usize, String)> = match conn {
                Conn::Udp(s) => {
                    let mut sent = 0;
                    let mut err = None;
                    for m in &msgs {
                        let m = if m.len() > MAX_UDP_MESSAGE {
                            self.truncated.inc();
                            m.get(..MAX_UDP_MESSAGE).unwrap_or(m)
                        } else {
                            m
                        };
                        match s.send(m).await {
                            Ok(_) => sent += 1,
                            Err(e) => {
                                err = Some(format!("udp send: {e}"));
                                break;
                            }
                        }
                    }
                    match err {
                        None => Ok(sent),
                        Some(e) => Err((sent, e)),
                    }
                }
                Conn::Tcp(s) => write_framed(s, &msgs).await.map_err(|e| (0, e)),
                Conn::Tls(s) => write_framed(s.as_mut(), &msgs).await.map_err(|e| (0, e)),
            };
            match result {
                Ok(n) => Delivery::all(n),
                Err((n, e)) => {
                    self.conn = None;
                    Delivery {
                        acked: n,
                        error: Some(SinkError::transient(e)),
                    }
                }
            }
        })
    }

    fn reopen(&mut self) {
        self.conn = None;
    }
}

/// Octet-counted frames (`LEN SP MSG`), written and flushed as one batch.
async fn write_framed<W: tokio::io::AsyncWrite + Unpin>(
    w: &mut W,
    msgs: &[Vec<u8>],
) -> Result<usize, String> {
    let mut buf = Vec::with_capacity(msgs.iter().map(|m| m.len() + 8).sum());
    for m in msgs {
        buf.extend_from_slice(m.len().to_string().as_bytes());
        buf.push(b' ');
        buf.extend_from_slice(m);
    }
    let io = async {
        w.write_all(&buf).await?;
        w.flush().await
    };
    tokio::time::timeout(WRITE_TIMEOUT, io)
        .await
        .map_err(|_| "write timed out".to_string())?
        .map_err(|e| format!("write: {e}"))?;
    Ok(msgs.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::format::tests::{observer, sample_event};

    #[test]
    fn rfc5424_header() {
        let s = SyslogSink::new(
            SyslogTarget {
                transport: SyslogTransport::Tcp,
                host: "127.0.0.1".into(),
                port: 514,
                facility: 16,
                app_name: "poolwatch".into(),
                ca_file: None,
                server_name: None,
            },
            Format::Cef,
            Arc::new(observer()),
        );
        let m = String::from_utf8(s.message(&sample_event())).unwrap();
        // local0 (16) * 8 + critical (2) = 130.
        let want = format!(
            "<130>1 2026-11-26T20:00:03.000000Z sensor-1 poolwatch {} upgrade - CEF:0|",
            std::process::id()
        );
        assert!(m.starts_with(&want), "{m}");
    }
}
