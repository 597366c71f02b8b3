//! The yardstick: a plain WebSocket echo server on the stack Warren serves its clients on
//! — axum 0.8's `ws` over tokio's default multi-thread runtime, `TCP_NODELAY` on accepted
//! sockets (Warren's own listener), a client socket's frame cap and buffers — and nothing else: every text
//! or binary frame is sent back as it came. It runs as a process of its own, like `warren
//! dev`: the bench binary started again with [`FLAG`].

use axum::Router;
use axum::extract::WebSocketUpgrade;
use axum::extract::ws::{Message, WebSocket};
use axum::response::Response;
use axum::routing::get;
use warren::mechanics::net::{client_socket, without_delay};

/// The argument that makes the bench binary the echo server.
pub(crate) const FLAG: &str = "--echo-server";

/// Serves echo on `127.0.0.1`, a free port, until killed; prints `echo server listening
/// on <addr>` first, as Warren's hosts print theirs.
pub(crate) fn serve() {
    // What `warren dev` runs on: `Runtime::new()`, one worker per core it may use.
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local address");
        println!("echo server listening on {addr}");
        let app = Router::new().route("/ws", get(upgrade));
        axum::serve(without_delay(listener), app).await.expect("echo server");
    });
}

/// Takes the upgrade as a baseapp session does: the same frame cap and buffer sizes.
async fn upgrade(ws: WebSocketUpgrade) -> Response {
    client_socket(ws).on_upgrade(echo)
}

/// Sends every data frame back until the client closes.
async fn echo(mut socket: WebSocket) {
    while let Some(Ok(msg)) = socket.recv().await {
        match msg {
            Message::Text(_) | Message::Binary(_) => {
                if socket.send(msg).await.is_err() {
                    return;
                }
            }
            Message::Close(_) => return,
            Message::Ping(_) | Message::Pong(_) => {}
        }
    }
}
