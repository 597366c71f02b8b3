//! The accept loop every socket server of a host runs: each connection admitted by the
//! door's caps (or turned away with a status), served by hyper's HTTP/1 server with a
//! header-read timeout, `TCP_NODELAY` set; on stop, no new connection, and the requests
//! under way finish (an upgraded socket is its role's to end).

use super::{Door, client_socket};
use axum::Router;
use axum::extract::ws::WebSocket;
use axum::extract::{FromRequestParts, WebSocketUpgrade};
use axum::http::request::Parts;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

/// Most connections being turned away at once; past it, one over a cap is dropped
/// without a status.
const MAX_TURNING_AWAY: usize = 256;
/// How long a connection turned away is given to read its status.
const TURN_AWAY_WAIT: Duration = Duration::from_secs(1);

/// Serves `app` on `listener` until `stop` completes, each connection admitted by `door`.
/// Returns once the connections' requests under way have been answered.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    door: Arc<Door>,
    stop: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(door.limits.header_timeout);
    // Every connection's task holds a sender; all are gone once every task has ended.
    let (served, mut all_served) = mpsc::channel::<()>(1);
    let (stopping, stopped) = watch::channel(false);
    let mut stop = std::pin::pin!(stop);
    loop {
        let (stream, remote) = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    pause_after(&e).await;
                    continue;
                }
            },
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set on a client socket");
        }
        let place = match door.admit(remote.ip()) {
            Ok(place) => place,
            Err(full) => {
                turn_away(&door, stream, full);
                continue;
            }
        };
        let admitted = Admitted(Some(place.clone()));
        let routes = hyper_util::service::TowerToHyperService::new(app.clone());
        let service = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            // The client's address, as axum's `ConnectInfo` reads it.
            request.extensions_mut().insert(axum::extract::ConnectInfo(remote));
            request.extensions_mut().insert(admitted.clone());
            hyper::service::Service::call(&routes, request)
        });
        let connection = http.serve_connection(TokioIo::new(Counted { stream, _place: place }), service);
        let (served, stopped) = (served.clone(), stopped.clone());
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection.with_upgrades());
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                _ = until_stopped(stopped) => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = ended {
                tracing::debug!(%remote, error = %e, "client connection ended");
            }
            drop(served);
        });
    }
    drop(listener);
    let _ = stopping.send(true);
    drop(served);
    let _ = all_served.recv().await;
    Ok(())
}

/// Completes once the server stops (or its stop signal is gone).
async fn until_stopped(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

/// After a failed accept: a connection that went away before it was taken is nothing; any
/// other error (out of files) pauses the loop a moment rather than spinning on it.
async fn pause_after(e: &io::Error) {
    use io::ErrorKind::*;
    if matches!(e.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset) {
        return;
    }
    tracing::warn!(error = %e, "cannot accept a connection");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Which cap a connection ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Full {
    /// The host's.
    Host,
    /// Its address's, in all or before login.
    Address,
}

impl Door {
    /// Counts a connection from `ip` in, or says which cap it is over.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Arc<Place>, Full> {
        let limits = &self.limits;
        let capped = !limits.uncapped_addresses.contains(&ip);
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if counts.open >= limits.max_connections {
            return Err(Full::Host);
        }
        if capped {
            let at = counts.by_address.get(&ip).copied().unwrap_or_default();
            if at.open >= limits.max_per_address || at.pending >= limits.max_pending_per_address {
                return Err(Full::Address);
            }
            let at = counts.by_address.entry(ip).or_default();
            at.open += 1;
            at.pending += 1;
        }
        counts.open += 1;
        drop(counts);
        Ok(Arc::new(Place { door: self.clone(), ip, capped, pending: AtomicBool::new(true) }))
    }
}

/// A connection's place at the door, given back when the connection closes (an upgraded
/// socket's included: the socket holds it).
#[derive(Debug)]
pub struct Place {
    door: Arc<Door>,
    ip: IpAddr,
    /// Counted against its address's caps.
    capped: bool,
    /// Not logged in yet.
    pending: AtomicBool,
}

impl Place {
    /// The connection logged in: it no longer counts against its address's cap on
    /// connections not logged in.
    fn logged_in(&self) {
        if self.pending.swap(false, Ordering::AcqRel) && self.capped {
            let mut counts = self.door.counts.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(at) = counts.by_address.get_mut(&self.ip) {
                at.pending -= 1;
            }
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let pending = self.pending.load(Ordering::Acquire);
        let mut counts = self.door.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.open -= 1;
        if self.capped
            && let Some(at) = counts.by_address.get_mut(&self.ip)
        {
            at.open -= 1;
            at.pending -= usize::from(pending);
            if at.open == 0 {
                counts.by_address.remove(&self.ip);
            }
        }
    }
}

/// A connection's place, as its requests carry it: what a socket tells the door once its
/// client logged in. A request served outside [`serve`] has none.
#[derive(Debug, Clone, Default)]
pub struct Admitted(Option<Arc<Place>>);

impl Admitted {
    /// The connection's client logged in (or joined its room).
    pub fn logged_in(&self) {
        if let Some(place) = &self.0 {
            place.logged_in();
        }
    }
}

/// A client's WebSocket upgrade with the host's bounds ([`client_socket`]) and the
/// connection's place at the door.
pub struct ClientUpgrade {
    /// The upgrade, bounded.
    pub ws: WebSocketUpgrade,
    /// The connection's place.
    pub admitted: Admitted,
}

impl<S: Send + Sync> FromRequestParts<S> for ClientUpgrade {
    type Rejection = <WebSocketUpgrade as FromRequestParts<S>>::Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let ws = WebSocketUpgrade::from_request_parts(parts, state).await?;
        let admitted = parts.extensions.get::<Admitted>().cloned().unwrap_or_default();
        Ok(ClientUpgrade { ws: client_socket(ws), admitted })
    }
}

impl ClientUpgrade {
    /// Upgrades, then serves the socket with `serve`.
    pub fn on_upgrade<F, Fut>(self, serve: F) -> axum::response::Response
    where
        F: FnOnce(WebSocket, Admitted) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let admitted = self.admitted;
        self.ws.on_upgrade(move |socket| serve(socket, admitted))
    }
}

/// Answers a connection over a cap with a status and closes it: 503 when the host is
/// full, 429 when its address is. The connection is not read first: its status is all it
/// gets.
fn turn_away(door: &Arc<Door>, mut stream: TcpStream, full: Full) {
    let (status, reason) = match full {
        Full::Host => ("503 Service Unavailable", "the server is full: try again in a moment"),
        Full::Address => ("429 Too Many Requests", "too many connections from your address"),
    };
    tracing::debug!(?full, "connection turned away");
    if door.turning_away.fetch_add(1, Ordering::AcqRel) >= MAX_TURNING_AWAY {
        door.turning_away.fetch_sub(1, Ordering::AcqRel);
        return;
    }
    let door = door.clone();
    tokio::spawn(async move {
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\
             Retry-After: 5\r\nConnection: close\r\n\r\n{reason}\n",
            reason.len() + 1
        );
        // Written, then the client's request read and dropped until it closes, so that
        // the status is not lost to a reset over unread bytes.
        let _ = tokio::time::timeout(TURN_AWAY_WAIT, async {
            stream.write_all(response.as_bytes()).await?;
            stream.shutdown().await?;
            let mut sink = [0u8; 1024];
            while stream.read(&mut sink).await? > 0 {}
            Ok::<_, io::Error>(())
        })
        .await;
        door.turning_away.fetch_sub(1, Ordering::AcqRel);
    });
}

/// A client's TCP stream with its place at the door, which it gives back when dropped —
/// after the upgrade too, as the WebSocket owns the stream then.
struct Counted {
    stream: TcpStream,
    _place: Arc<Place>,
}

impl AsyncRead for Counted {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
