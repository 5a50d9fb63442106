//! A TCP proxy on loopback with a switch that cuts it like a network partition: while paused it
//! neither reads nor writes, so bytes stop in both directions but no socket is closed (the
//! peers see silence, not a reset, exactly as when a link drops). Resuming forwards again.

use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

pub struct Proxy {
    pub port: u16,
    paused: watch::Sender<bool>,
    /// Accept loop; it owns the connections' tasks, so aborting it closes everything.
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards every connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (paused, _) = watch::channel(false);
        let switch = paused.clone();
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                let Ok((down, _)) = listener.accept().await else {
                    continue;
                };
                let switch = switch.clone();
                conns.spawn(async move {
                    // While paused, a new connection gets no further than the kernel's accept.
                    wait_forwarding(&switch.subscribe()).await;
                    let Ok(up) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (down_r, down_w) = down.into_split();
                    let (up_r, up_w) = up.into_split();
                    tokio::join!(
                        pipe(down_r, up_w, switch.subscribe()),
                        pipe(up_r, down_w, switch.subscribe())
                    );
                });
                while conns.try_join_next().is_some() {}
            }
        });
        Proxy { port, paused, task }
    }

    /// Stops forwarding (sockets stay open).
    pub fn pause(&self) {
        self.paused.send_replace(true);
    }

    pub fn resume(&self) {
        self.paused.send_replace(false);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn wait_forwarding(rx: &watch::Receiver<bool>) {
    let mut rx = rx.clone();
    let _ = rx.wait_for(|paused| !*paused).await;
}

/// Copies `from` to `to` while the switch allows it. A read in progress is abandoned when the
/// switch flips to paused (`read` is cancel-safe: nothing is lost), and bytes already read wait
/// for the switch before they are written.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut switch: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        wait_forwarding(&switch).await;
        let n = tokio::select! {
            r = from.read(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
            _ = switch.wait_for(|paused| *paused) => continue,
        };
        wait_forwarding(&switch).await;
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}
