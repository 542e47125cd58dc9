//! Live dnstap sockets (Unix and TCP, bidirectional Frame Streams): the listener (a
//! [`Producer`]) and one session per writer.

#[allow(unused_imports)]
use super::*;

/// Where a dnstap listener accepts writers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenAddr {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

impl ListenAddr {
    /// `unix:/run/dnstap.sock`, `tcp:127.0.0.1:6000`, a bare path or a bare `host:port`.
    pub fn parse(s: &str) -> Option<Self> {
        if let Some(p) = s.strip_prefix("unix:") {
            return Some(ListenAddr::Unix(PathBuf::from(p)));
        }
        if let Some(a) = s.strip_prefix("tcp:") {
            return a.parse().ok().map(ListenAddr::Tcp);
        }
        if let Ok(a) = s.parse() {
            return Some(ListenAddr::Tcp(a));
        }
        (!s.is_empty()).then(|| ListenAddr::Unix(PathBuf::from(s)))
    }
}

pub(super) enum AnyListener {
    Unix(UnixListener),
    Tcp(TcpListener),
}

/// A bound dnstap socket. `run` accepts resolver connections (one thread each, at most
/// [`MAX_CONNECTIONS`]) until the stop flag is set.
pub struct DnstapListener {
    listener: AnyListener,
    label: String,
    unix_path: Option<PathBuf>,
}

impl DnstapListener {
    /// Binds. A stale Unix socket file at the path is replaced (resolvers expect us to create it).
    pub fn bind(addr: &ListenAddr) -> Result<Self, DnstapError> {
        match addr {
            ListenAddr::Unix(path) => {
                if std::fs::symlink_metadata(path).is_ok_and(|md| {
                    use std::os::unix::fs::FileTypeExt;
                    md.file_type().is_socket()
                }) {
                    let _ = std::fs::remove_file(path);
                }
                let l = UnixListener::bind(path).map_err(|source| DnstapError::Listen {
                    addr: path.display().to_string(),
                    source,
                })?;
                Ok(DnstapListener {
                    listener: AnyListener::Unix(l),
                    label: format!("unix:{}", path.display()),
                    unix_path: Some(path.clone()),
                })
            }
            ListenAddr::Tcp(a) => {
                let l = TcpListener::bind(a).map_err(|source| DnstapError::Listen {
                    addr: a.to_string(),
                    source,
                })?;
                let label = format!("tcp:{}", l.local_addr().unwrap_or(*a));
                Ok(DnstapListener {
                    listener: AnyListener::Tcp(l),
                    label,
                    unix_path: None,
                })
            }
        }
    }

    /// Sets the Unix socket's permission bits. Resolvers run as their own user (`unbound`,
    /// `bind`, `knot-resolver`) and need write permission to connect: e.g. `0o660` with the
    /// socket's group set to the resolver's, or `0o666` on a host where every local user may
    /// inject dnstap. No-op for TCP.
    pub fn set_socket_mode(&self, mode: u32) -> Result<(), DnstapError> {
        use std::os::unix::fs::PermissionsExt;
        let Some(path) = &self.unix_path else {
            return Ok(());
        };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|source| {
            DnstapError::Listen {
                addr: path.display().to_string(),
                source,
            }
        })
    }

    /// The bound TCP address (useful with port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match &self.listener {
            AnyListener::Tcp(l) => l.local_addr().ok(),
            AnyListener::Unix(_) => None,
        }
    }

    /// Accepts writers until `stop` is set; each connection's observations go to a clone of
    /// `sink` (returning `false` from the sink ends that connection). Blocking: run it on a
    /// thread of its own (`tokio::task::spawn_blocking`).
    pub fn run<S>(self, sink: S, stop: Arc<AtomicBool>) -> Result<(), DnstapError>
    where
        S: ObservationSink + Send + Clone + 'static,
    {
        self.serve(sink, StopToken::from_flag(stop))
    }

    /// [`run`](Self::run) with the service's stop token.
    pub fn serve<S>(self, sink: S, stop: StopToken) -> Result<(), DnstapError>
    where
        S: ObservationSink + Send + Clone + 'static,
    {
        let set_nb = match &self.listener {
            AnyListener::Unix(l) => l.set_nonblocking(true),
            AnyListener::Tcp(l) => l.set_nonblocking(true),
        };
        set_nb.map_err(|source| DnstapError::Listen {
            addr: self.label.clone(),
            source,
        })?;
        let active = Arc::new(AtomicUsize::new(0));
        let mut handles = Vec::new();
        while !stop.is_stopped() {
            let accepted: io::Result<Conn> = match &self.listener {
                AnyListener::Unix(l) => l.accept().map(|(s, _)| Conn::Unix(s)),
                AnyListener::Tcp(l) => l.accept().map(|(s, _)| Conn::Tcp(s)),
            };
            let conn = match accepted {
                Ok(c) => c,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
                Err(e) => {
                    tracing::warn!("dnstap listener {}: accept: {e}", self.label);
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
            if active.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
                m().err_stream.inc();
                tracing::warn!("dnstap listener {}: too many writers, refusing", self.label);
                continue;
            }
            active.fetch_add(1, Ordering::Relaxed);
            let source = Source::new(format!("dnstap:{}", self.label));
            let (sink, stop, active) = (sink.clone(), stop.clone(), active.clone());
            handles.retain(|h: &std::thread::JoinHandle<()>| !h.is_finished());
            handles.push(std::thread::spawn(move || {
                if let Err(e) = serve_conn(conn, source, sink, &stop) {
                    m().err_stream.inc();
                    tracing::warn!("dnstap writer session ended: {e}");
                }
                active.fetch_sub(1, Ordering::Relaxed);
            }));
        }
        for h in handles {
            let _ = h.join();
        }
        if let Some(p) = &self.unix_path {
            let _ = std::fs::remove_file(p);
        }
        Ok(())
    }
}

impl Producer for DnstapListener {
    fn name(&self) -> String {
        format!("dnstap {}", self.label)
    }

    fn run(self: Box<Self>, sink: QueueSink, stop: StopToken) -> ProducerReport {
        let label = self.label.clone();
        let error = self.serve(sink, stop).err().map(|e| {
            tracing::error!(listener = %label, error = %e, "dnstap listener stopped");
            e.to_string()
        });
        ProducerReport {
            observations: 0,
            finished: false,
            error,
        }
    }
}

pub(super) enum Conn {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Conn {
    fn prepare(&self) -> io::Result<()> {
        match self {
            Conn::Unix(s) => {
                s.set_nonblocking(false)?;
                s.set_read_timeout(Some(SOCKET_TICK))
            }
            Conn::Tcp(s) => {
                s.set_nonblocking(false)?;
                s.set_read_timeout(Some(SOCKET_TICK))
            }
        }
    }
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Unix(s) => s.read(buf),
            Conn::Tcp(s) => s.read(buf),
        }
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Conn::Unix(s) => s.write_all(buf),
            Conn::Tcp(s) => s.write_all(buf),
        }
    }
}

/// One bidirectional Frame Streams session: READY → ACCEPT, START, data…, STOP → FINISH.
pub(super) fn serve_conn<S>(
    mut conn: Conn,
    source: Source,
    mut sink: S,
    stop: &StopToken,
) -> Result<(), DnstapError>
where
    S: ObservationSink,
{
    let io_err = |source| DnstapError::Io {
        path: PathBuf::from("<dnstap socket>"),
        source,
    };
    conn.prepare().map_err(io_err)?;
    let mut dec = FrameDecoder::new();
    let mut pairer = Pairer::new(source);
    let mut chunk = vec![0u8; READ_CHUNK];
    let mut out = Vec::new();
    let mut started = false;
    let mut finished = false;
    while !finished {
        if stop.is_stopped() {
            break;
        }
        match conn.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => dec.feed(chunk.get(..n).unwrap_or(&[])),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                pairer.expire_at(Timestamp::now(), &mut out);
            }
            Err(e) => return Err(io_err(e)),
        }
        let mut reply: Option<Vec<u8>> = None;
        loop {
            let frame = dec.next_frame()?;
            match frame {
                None => break,
                Some(Frame::Data(d)) => {
                    if !started {
                        return Err(DnstapError::Handshake {
                            reason: "data frame before START",
                        });
                    }
                    pairer.push_frame(d, &mut out);
                }
                Some(Frame::Control {
                    ctype,
                    content_types,
                }) => {
                    m().control_frames.inc();
                    match ctype {
                        CONTROL_READY => {
                            if !content_types.is_empty() && !content_types.contains(&CONTENT_TYPE) {
                                return Err(DnstapError::Handshake {
                                    reason: "writer does not offer protobuf:dnstap.Dnstap",
                                });
                            }
                            reply = Some(control_frame(CONTROL_ACCEPT, Some(CONTENT_TYPE)));
                        }
                        CONTROL_START => {
                            if content_types.iter().any(|c| *c != CONTENT_TYPE) {
                                return Err(DnstapError::ContentType {
                                    got: content_types
                                        .first()
                                        .map(|c| String::from_utf8_lossy(c).into_owned())
                                        .unwrap_or_default(),
                                });
                            }
                            started = true;
                        }
                        CONTROL_STOP => {
                            reply = Some(control_frame(CONTROL_FINISH, None));
                            finished = true;
                            break;
                        }
                        _ => {
                            return Err(DnstapError::Handshake {
                                reason: "unexpected control frame",
                            })
                        }
                    }
                }
            }
            if let Some(r) = reply.take() {
                conn.write_all(&r).map_err(io_err)?;
            }
        }
        if let Some(r) = reply.take() {
            conn.write_all(&r).map_err(io_err)?;
        }
        for o in out.drain(..) {
            if !sink.send(o) {
                return Ok(());
            }
        }
    }
    pairer.finish(&mut out);
    for o in out.drain(..) {
        if !sink.send(o) {
            break;
        }
    }
    Ok(())
}
