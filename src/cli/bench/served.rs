//! A real `pushgate serve` inside the benchmark's process, over a scratch directory: the
//! configuration, one policy and one sequence written as a user would, the gate loop, web
//! server and SQLite store started as `serve` starts them.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{fail, BenchError};
use pushgate::config::Config;
use pushgate::gate::LogProgress;
use pushgate::service::{Service, ServiceError};

/// A running service and what stops it.
pub struct Served {
    pub service: Arc<Service>,
    pub addr: SocketAddr,
    stop: oneshot::Sender<()>,
    server: JoinHandle<Result<(), ServiceError>>,
}

/// Writes `pushgate.toml` (state under `dir/state`, polling hourly so that only hooks and the
/// start wake the gate), `policies/bench.toml` and `sequences/quick.toml` under `dir`, then
/// opens and serves them.
pub async fn serve(dir: &Path, policy: &str, sequence: &str) -> Result<Served, BenchError> {
    for sub in ["policies", "sequences"] {
        std::fs::create_dir_all(dir.join(sub)).map_err(fail)?;
    }
    std::fs::write(dir.join("sequences/quick.toml"), sequence).map_err(fail)?;
    std::fs::write(dir.join("policies/bench.toml"), policy).map_err(fail)?;
    std::fs::write(
        dir.join("pushgate.toml"),
        "state_dir = \"state\"\nlisten = \"127.0.0.1:0\"\npoll_interval = \"1h\"\n",
    )
    .map_err(fail)?;
    let config = Config::load(Some(&dir.join("pushgate.toml")), dir).map_err(fail)?;
    let service = Arc::new(
        Service::open(config, Arc::new(LogProgress))
            .await
            .map_err(fail)?,
    );
    let listener = service.bind().await.map_err(fail)?;
    let addr = listener.local_addr().map_err(fail)?;
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(service.clone().serve(listener, async {
        let _ = stopped.await;
    }));
    Ok(Served {
        service,
        addr,
        stop,
        server,
    })
}

impl Served {
    /// Tells the gate that `branch` moved from `old` to `new`, as a post-receive hook would.
    pub async fn post_hook(&self, old: &str, new: &str, branch: &str) -> Result<(), BenchError> {
        let body = format!("{old} {new} refs/heads/{branch}\n");
        let mut s = tokio::net::TcpStream::connect(self.addr)
            .await
            .map_err(fail)?;
        let request = format!(
            "POST /hooks/git HTTP/1.1\r\nHost: {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        s.write_all(request.as_bytes()).await.map_err(fail)?;
        let mut answer = String::new();
        s.read_to_string(&mut answer).await.map_err(fail)?;
        if !answer.starts_with("HTTP/1.1 202") {
            return Err(fail(format!("the hook answered: {answer}")));
        }
        Ok(())
    }

    /// Stops the service and waits for it.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.server.await;
    }
}
