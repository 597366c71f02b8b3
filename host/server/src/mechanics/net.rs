//! What every socket server of a host does alike.

use axum::serve::{Listener, ListenerExt};

/// A listener whose accepted sockets send small frames at once: `TCP_NODELAY`, so the
/// second of two frames written back to back does not wait ~40 ms for the client's
/// delayed ack (Nagle's algorithm).
pub fn without_delay(listener: tokio::net::TcpListener) -> impl Listener<Addr = std::net::SocketAddr> {
    listener.tap_io(|socket| {
        if let Err(e) = socket.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set on a client socket");
        }
    })
}
