//! Bad clients held off at the door (docs/limits.md, *Clients*): each case a client a
//! fuzzer would be, against `warren dev` with short bounds, and what it is told — the
//! HTTP status, or the error frame and the close code and reason.

use crate::{Dev, FRAME_WAIT};
use serde_json::{Value, json};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use warren::config::{DevConfig, NetConfig};
use warren_bus::Bus;
use warren_test_guests::{PLAYER_V1, SCRIPT_BATTLE};

/// The `[net]` bounds of these tests: the defaults, every address capped (the tests'
/// clients all come from loopback addresses).
fn net() -> NetConfig {
    NetConfig { uncapped_addresses: vec![], ..NetConfig::default() }
}

/// `warren dev` with the `[net]` section `net`.
async fn dev(net: NetConfig) -> Dev {
    let config = DevConfig { net, ..crate::dev_config() };
    Dev::start_with(PLAYER_V1, SCRIPT_BATTLE, Bus::embedded_with_groups(16), config).await
}

/// A TCP connection to `addr` from the loopback address `from` (127.0.0.1 if `None`),
/// with a receive buffer of `rcvbuf` bytes if given.
async fn tcp(addr: SocketAddr, from: Option<[u8; 4]>, rcvbuf: Option<u32>) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    if let Some(size) = rcvbuf {
        socket.set_recv_buffer_size(size).expect("receive buffer");
    }
    socket.bind(SocketAddr::new(IpAddr::from(from.unwrap_or([127, 0, 0, 1])), 0)).expect("bind");
    socket.connect(addr).await.expect("connect")
}

/// Sends `GET path` on `s` and reads the whole answer (the server closes after it).
async fn http_get(mut s: TcpStream, path: &str) -> String {
    let req = format!("GET {path} HTTP/1.1\r\nHost: warren\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("request");
    let mut resp = Vec::new();
    let _ = tokio::time::timeout(FRAME_WAIT, s.read_to_end(&mut resp)).await.expect("an answer in time");
    String::from_utf8_lossy(&resp).into_owned()
}

/// A WebSocket client written by hand, byte by byte, so a test can send what a library
/// refuses to (a text frame that is not UTF-8, a frame over the cap) and see every frame
/// the server sends (its pings too), and never answers a ping.
struct Raw {
    stream: TcpStream,
    /// Bytes read and not yet taken as frames.
    read: Vec<u8>,
}

/// Opcodes (RFC 6455, section 5.2).
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;

impl Raw {
    /// Upgrades `stream` to a WebSocket on `/ws`.
    async fn upgrade(stream: TcpStream) -> Raw {
        Raw::upgrade_at(stream, "/ws").await
    }

    /// Upgrades `stream` to a WebSocket on `path`.
    async fn upgrade_at(mut stream: TcpStream, path: &str) -> Raw {
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: warren\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(req.as_bytes()).await.expect("upgrade request");
        let mut raw = Raw { stream, read: Vec::new() };
        let end = loop {
            if let Some(end) = raw.read.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            assert!(raw.fill(FRAME_WAIT).await, "the upgrade is answered");
        };
        let head = String::from_utf8_lossy(&raw.read[..end]).into_owned();
        assert!(head.starts_with("HTTP/1.1 101"), "upgraded: {head}");
        raw.read.drain(..end);
        raw
    }

    /// Connects to `dev`'s `/ws` from 127.0.0.1.
    async fn connect(dev: &Dev) -> Raw {
        Raw::upgrade(tcp(dev.addr, None, None).await).await
    }

    /// Connects and logs in as `name`; the welcome and the login's reply are read.
    async fn login(dev: &Dev, name: &str, rcvbuf: Option<u32>) -> Raw {
        let mut raw = Raw::upgrade(tcp(dev.addr, None, rcvbuf).await).await;
        raw.text(json!({"type": "login", "name": name})).await;
        assert_eq!(raw.json().await["type"], "welcome");
        assert_eq!(raw.json().await["type"], "hello");
        raw
    }

    /// Reads more bytes; `false` at the connection's end or after `wait`.
    async fn fill(&mut self, wait: Duration) -> bool {
        let mut buf = [0u8; 16 * 1024];
        match tokio::time::timeout(wait, self.stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {
                self.read.extend_from_slice(&buf[..n]);
                true
            }
            _ => false,
        }
    }

    /// Sends one frame, masked as a client's must be.
    async fn send(&mut self, opcode: u8, payload: &[u8]) -> std::io::Result<()> {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let mut frame = vec![0x80 | opcode];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n < 65536 => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream.write_all(&frame).await
    }

    /// Sends a JSON text frame.
    async fn text(&mut self, frame: Value) {
        self.send(TEXT, frame.to_string().as_bytes()).await.expect("send");
    }

    /// Stops reading: asks for 18 MB of answers (20 of 900 KB), reads the start of the
    /// first, then sends frames of 60 KB until one is not taken within 300 ms — the
    /// server has stopped reading, stuck writing to this client — or the connection ends.
    async fn stop_reading(&mut self) {
        for _ in 0..20 {
            self.text(json!({"type": "big", "bytes": 900_000})).await;
        }
        self.frame(FRAME_WAIT).await.expect("the first answer starts coming");
        let pad = json!({"type": "count", "pad": "p".repeat(60_000)}).to_string();
        let started = Instant::now();
        while let Ok(Ok(())) = tokio::time::timeout(Duration::from_millis(300), self.send(TEXT, pad.as_bytes())).await {
            assert!(started.elapsed() < FRAME_WAIT, "the server kept reading");
        }
    }

    /// The next frame, (opcode, payload), within `wait`; `None` at the connection's end
    /// or after `wait`.
    async fn frame(&mut self, wait: Duration) -> Option<(u8, Vec<u8>)> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if self.read.len() >= 2 {
                let (opcode, len7) = (self.read[0] & 0x0f, (self.read[1] & 0x7f) as usize);
                let (len, at) = match len7 {
                    126 if self.read.len() >= 4 => (u16::from_be_bytes([self.read[2], self.read[3]]) as usize, 4),
                    127 if self.read.len() >= 10 => {
                        (u64::from_be_bytes(self.read[2..10].try_into().unwrap()) as usize, 10)
                    }
                    126 | 127 => (usize::MAX, 0),
                    n => (n, 2),
                };
                if len != usize::MAX && self.read.len() >= at + len {
                    let payload = self.read[at..at + len].to_vec();
                    self.read.drain(..at + len);
                    return Some((opcode, payload));
                }
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if !self.fill(left).await {
                return None;
            }
        }
    }

    /// The next text frame as JSON (pings skipped).
    async fn json(&mut self) -> Value {
        loop {
            let (opcode, payload) = self.frame(FRAME_WAIT).await.expect("a frame");
            match opcode {
                TEXT => return serde_json::from_slice(&payload).expect("JSON"),
                PING => continue,
                other => panic!("a text frame, not opcode {other}: {:?}", String::from_utf8_lossy(&payload)),
            }
        }
    }

    /// Frames until the server's close frame: the error frames' reasons, the pings, and
    /// the close code and reason. Fails the test if the connection ends without one.
    async fn closed(&mut self) -> Closed {
        let mut closed = Closed::default();
        loop {
            let Some((opcode, payload)) = self.frame(FRAME_WAIT).await else {
                panic!("the connection ended without a close frame: {closed:?}");
            };
            match opcode {
                TEXT => {
                    let frame: Value = serde_json::from_slice(&payload).expect("JSON");
                    if frame["type"] == "error" {
                        closed.errors.push(frame["reason"].as_str().unwrap_or_default().to_owned());
                    }
                }
                PING => closed.pings += 1,
                CLOSE => {
                    closed.code = u16::from_be_bytes([payload[0], payload[1]]);
                    closed.reason = String::from_utf8_lossy(&payload[2..]).into_owned();
                    return closed;
                }
                _ => {}
            }
        }
    }
}

/// How the server ended a socket.
#[derive(Debug, Default)]
struct Closed {
    /// The reasons of the error frames before the close.
    errors: Vec<String>,
    pings: usize,
    code: u16,
    reason: String,
}

impl Closed {
    /// Asserts the close code and reason, and that an error frame said the same first.
    fn said(&self, code: u16, reason: &str) {
        assert_eq!((self.code, self.reason.as_str()), (code, reason), "{self:?}");
        assert_eq!(self.errors.last().map(String::as_str), Some(reason), "an error frame first: {self:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_http_request_and_a_silent_connection_are_timed_out() {
    let dev = dev(NetConfig { header_timeout_ms: 300, ..net() }).await;
    let started = Instant::now();
    let mut half = tcp(dev.addr, None, None).await;
    half.write_all(b"GET /ws HTTP/1.1\r\nHost: warren\r\nUpgrade: webs").await.unwrap();
    let mut silent = tcp(dev.addr, None, None).await;
    for s in [&mut half, &mut silent] {
        let mut got = Vec::new();
        let read = tokio::time::timeout(FRAME_WAIT, s.read_to_end(&mut got)).await.expect("closed in time");
        assert!(read.is_err() || got.is_empty(), "closed with nothing sent: {:?}", String::from_utf8_lossy(&got));
    }
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(250) && took < Duration::from_secs(5), "closed after {took:?}");
    // The door counts them no more: a player gets in.
    dev.login("after").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_host_cap_are_turned_away_with_503_until_one_closes() {
    let cap = NetConfig { max_connections: 3, max_per_address: 10, max_pending_per_address: 10, ..net() };
    let dev = dev(cap).await;
    let (_a, _b) = (dev.login("ann").await, dev.login("bob").await);
    let waiting = tcp(dev.addr, None, None).await;
    let refused = http_get(tcp(dev.addr, None, None).await, "/modules").await;
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(refused.ends_with("the server is full: try again in a moment\n"), "{refused}");

    // One leaves: the next connection is served (once the server has seen it go).
    drop(waiting);
    let started = Instant::now();
    loop {
        let answer = http_get(tcp(dev.addr, None, None).await, "/modules").await;
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(started.elapsed() < FRAME_WAIT, "the place was never given back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_over_its_caps_is_turned_away_and_a_player_elsewhere_gets_in() {
    let dev = dev(NetConfig { max_per_address: 3, max_pending_per_address: 2, ..net() }).await;
    // Before login: two connections from 127.0.0.2 that send nothing fill its cap.
    let flood = [tcp(dev.addr, Some([127, 0, 0, 2]), None).await, tcp(dev.addr, Some([127, 0, 0, 2]), None).await];
    let refused = http_get(tcp(dev.addr, Some([127, 0, 0, 2]), None).await, "/ws").await;
    assert!(refused.starts_with("HTTP/1.1 429"), "{refused}");
    assert!(refused.ends_with("too many connections from your address\n"), "{refused}");
    // A player from another address is not held up.
    let (mut player, _) = dev.login("real").await;
    player.send(json!({"type": "count"})).await;
    assert_eq!(player.recv_type("count").await["count"], 1);
    drop(flood);

    // After login: logged-in players free the cap on waiting logins, not the cap on all.
    let mut in_game = Vec::new();
    for name in ["p1", "p2", "p3"] {
        let mut raw = Raw::upgrade(tcp(dev.addr, Some([127, 0, 0, 3]), None).await).await;
        raw.text(json!({"type": "login", "name": name})).await;
        assert_eq!(raw.json().await["type"], "welcome");
        in_game.push(raw);
    }
    let refused = http_get(tcp(dev.addr, Some([127, 0, 0, 3]), None).await, "/ws").await;
    assert!(refused.starts_with("HTTP/1.1 429"), "three logged in fill the address's cap: {refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_that_never_logs_in_is_closed_with_a_code_and_reason() {
    let dev = dev(NetConfig { login_timeout_ms: 300, ..net() }).await;
    let started = Instant::now();
    let mut raw = Raw::connect(&dev).await;
    raw.closed().await.said(1008, "log in within 0.3 s");
    assert!(started.elapsed() < Duration::from_secs(5), "closed after {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_dropped_and_what_it_was_sent_stays_bounded() {
    let dev = dev(NetConfig { write_timeout_ms: 500, ..net() }).await;
    // A small receive buffer, so the server's writes block soon after the client stops.
    let mut raw = Raw::login(&dev, "slow", Some(4096)).await;
    const ASKED: usize = 20 * 900_000;
    raw.stop_reading().await;
    // The server gives up on the client: its connection closes, which the client sees
    // when a write of its own is refused.
    let started = Instant::now();
    while let Ok(Ok(())) = tokio::time::timeout(FRAME_WAIT, raw.send(TEXT, br#"{"type":"count"}"#)).await {
        assert!(started.elapsed() < FRAME_WAIT, "the client was never dropped");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(started.elapsed() < FRAME_WAIT, "the client was never dropped");
    // What reached the client is what the kernel's buffers held, not what was asked for.
    let mut got = raw.read.len();
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(2), raw.stream.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        got += n;
    }
    assert!(got < ASKED / 3, "{got} bytes of {ASKED} reached a client that stopped reading");
    // The player is free again at once.
    let started = Instant::now();
    dev.login("slow").await;
    assert!(started.elapsed() < Duration::from_secs(2), "the next login took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_login_goes_through_at_once_while_the_old_client_stops_reading() {
    // The write timeout is long: the new login must not wait for it.
    let dev = dev(NetConfig { write_timeout_ms: 60_000, ..net() }).await;
    let mut raw = Raw::login(&dev, "wedged", Some(4096)).await;
    raw.stop_reading().await;
    let started = Instant::now();
    let (mut again, _) = dev.login("wedged").await;
    assert!(started.elapsed() < Duration::from_secs(3), "the new login took {:?}", started.elapsed());
    again.send(json!({"type": "count"})).await;
    assert_eq!(again.recv_type("count").await["type"], "count");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sending_too_fast_is_closed() {
    let dev = dev(NetConfig { frames_per_s: 5, frames_burst: 10, ..net() }).await;
    // Within the pace: answered.
    let mut calm = Raw::login(&dev, "calm", None).await;
    calm.text(json!({"type": "count"})).await;
    assert_eq!(calm.json().await["count"], 1);

    let mut raw = Raw::login(&dev, "fast", None).await;
    for _ in 0..20 {
        raw.text(json!({"type": "count"})).await;
    }
    let closed = raw.closed().await;
    closed.said(1008, "too many frames: at most 5 a second (bursts of 10)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_over_the_size_cap_is_closed_with_1009() {
    let dev = dev(net()).await;
    for logged_in in [false, true] {
        let mut raw = if logged_in { Raw::login(&dev, "big", None).await } else { Raw::connect(&dev).await };
        let text = format!("{{\"type\":\"count\",\"pad\":\"{}\"}}", "x".repeat(70_000));
        raw.send(TEXT, text.as_bytes()).await.expect("sent");
        raw.closed().await.said(1009, "frames are at most 65536 bytes");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_frame_that_is_not_utf8_is_closed_with_1007() {
    let dev = dev(net()).await;
    for logged_in in [false, true] {
        let mut raw = if logged_in { Raw::login(&dev, "bytes", None).await } else { Raw::connect(&dev).await };
        raw.send(TEXT, b"{\"type\":\"count\",\"x\":\"\xff\xfe\"}").await.expect("sent");
        raw.closed().await.said(1007, "frames must be UTF-8 text");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_frames_are_refused_with_1003_before_and_after_login() {
    let dev = dev(net()).await;
    for logged_in in [false, true] {
        let mut raw = if logged_in { Raw::login(&dev, "bin", None).await } else { Raw::connect(&dev).await };
        raw.send(BINARY, br#"{"type":"count"}"#).await.expect("sent");
        raw.closed().await.said(1003, "frames are JSON text: binary frames are refused");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_client_is_pinged_and_closed_when_it_answers_nothing() {
    let dev = dev(NetConfig { ping_interval_ms: 200, idle_timeout_ms: 700, ..net() }).await;
    // A client that answers the pings (the WebSocket library does while it reads) stays;
    // one that answers nothing is pinged, then closed.
    let (mut answering, _) = dev.login("answers").await;
    answering.recv_type("hello").await;
    let started = Instant::now();
    let mut raw = Raw::login(&dev, "silent", None).await;
    let reading = tokio::time::timeout(Duration::from_millis(1500), answering.recv());
    let (closed, heard) = tokio::join!(raw.closed(), reading);
    assert!(heard.is_err(), "nothing but pings for the answering client: {heard:?}");
    closed.said(1001, "nothing heard for 0.7 s");
    assert!(closed.pings >= 1, "pinged first: {closed:?}");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(700) && took < Duration::from_secs(5), "closed after {took:?}");

    answering.send(json!({"type": "count"})).await;
    assert_eq!(answering.recv_type("count").await["count"], 1, "the answering client is still served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_battle_socket_is_held_to_the_same_bounds() {
    let dev = dev(NetConfig { login_timeout_ms: 300, ..net() }).await;
    // No join in time.
    let mut late = Raw::upgrade_at(tcp(dev.addr, None, None).await, "/battle").await;
    late.closed().await.said(1008, "log in within 0.3 s");
    // A binary frame before the join.
    let mut binary = Raw::upgrade_at(tcp(dev.addr, None, None).await, "/battle").await;
    binary.send(BINARY, b"\x00\x01").await.expect("sent");
    binary.closed().await.said(1003, "frames are JSON text: binary frames are refused");
    // A frame too big.
    let mut big = Raw::upgrade_at(tcp(dev.addr, None, None).await, "/battle").await;
    big.send(TEXT, "x".repeat(70_000).as_bytes()).await.expect("sent");
    big.closed().await.said(1009, "frames are at most 65536 bytes");
}
