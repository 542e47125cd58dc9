//! A real API server on 127.0.0.1:0 for the HTTP tests: its own tokio runtime, graceful stop.
//! `support::api` and `support::lists` wrap it with their backends and managers.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use poolwatch::api::{self, AppState};

/// How long a graceful shutdown may take before the test calls it hung.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(20);

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// `api::serve` running on a loopback listener; stopped (without waiting) when dropped.
pub struct Serving {
    pub base: String,
    pub addr: SocketAddr,
    pub rt: tokio::runtime::Runtime,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Serving {
    /// Binds 127.0.0.1:0 and serves `state` on `rt`.
    pub fn start(rt: tokio::runtime::Runtime, state: AppState) -> Serving {
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let done = rt.spawn(async move {
            api::serve(listener, state, async {
                let _ = stopped.await;
            })
            .await
        });
        Serving {
            base: format!("http://{addr}"),
            addr,
            rt,
            stop: Some(stop),
            done: Some(done),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Starts a graceful shutdown and waits for it (at most [`SHUTDOWN_LIMIT`]).
    pub fn shutdown(&mut self) -> Result<(), String> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let Some(d) = self.done.take() else {
            return Ok(());
        };
        match self
            .rt
            .block_on(async { tokio::time::timeout(SHUTDOWN_LIMIT, d).await })
        {
            Err(_) => Err("server did not shut down".into()),
            Ok(Err(e)) => Err(format!("server task failed: {e}")),
            Ok(Ok(Err(e))) => Err(format!("server failed: {e}")),
            Ok(Ok(Ok(()))) => Ok(()),
        }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}
