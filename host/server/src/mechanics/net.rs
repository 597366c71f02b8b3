//! What every socket server of a host does alike.

use axum::extract::WebSocketUpgrade;
use axum::serve::{Listener, ListenerExt};

/// Largest client frame taken, in bytes: client frames are small, and a 64 KiB cap keeps a
/// client from making the host parse (and a guest copy) megabytes.
pub const MAX_FRAME: usize = 64 * 1024;

/// The read buffer a client socket starts with. The WebSocket library's default (128
/// KiB, allocated at the upgrade) would be most of an idle session's memory; client frames
/// are a few hundred bytes, and the buffer grows for a larger one (up to [`MAX_FRAME`]).
const READ_BUFFER: usize = 2 * 1024;

/// A client WebSocket upgrade with the host's bounds and buffer sizes.
pub fn client_socket(ws: WebSocketUpgrade) -> WebSocketUpgrade {
    ws.max_message_size(MAX_FRAME).max_frame_size(MAX_FRAME).read_buffer_size(READ_BUFFER)
}

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
