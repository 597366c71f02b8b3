//! Clients through the gateway: `wss://` and `https://` to a real nginx, trusting the
//! test's own certificate authority. [`Client::connect_with`](crate::Client) and
//! [`token`](crate::token) go through TLS to an address registered here.

use serde_json::Value;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Gateways the tests started, with the TLS setup that trusts them.
static GATEWAYS: Mutex<Vec<(SocketAddr, Arc<rustls::ClientConfig>)>> = Mutex::new(Vec::new());

/// Clients reach `addr` over TLS, trusting the certificate authority in `ca_pem`.
pub fn register(addr: SocketAddr, ca_pem: &Path) {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(ca_pem).expect("the test CA")).expect("a root");
    // ring: no system OpenSSL and no aws-lc build; it lacks post-quantum key exchange,
    // which a loopback test does not need.
    #[allow(deprecated)]
    let provider = rustls::crypto::ring::default_provider();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    GATEWAYS.lock().unwrap().push((addr, Arc::new(config)));
}

/// The TLS setup for `addr`, if it is a gateway.
pub fn config_for(addr: SocketAddr) -> Option<Arc<rustls::ClientConfig>> {
    GATEWAYS.lock().unwrap().iter().find(|(a, _)| *a == addr).map(|(_, c)| c.clone())
}

/// `POST path` with a JSON body over HTTPS: the status and the JSON answer.
pub async fn post(addr: SocketAddr, config: Arc<rustls::ClientConfig>, path: &str, body: &Value) -> (u16, Value) {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("the gateway listens");
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let mut tls = tokio_rustls::TlsConnector::from(config).connect(name, tcp).await.expect("a TLS handshake");
    let body = body.to_string();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(request.as_bytes()).await.expect("sent");
    let mut answer = Vec::new();
    // nginx may end TLS without a close_notify after `Connection: close`: what came counts.
    let _ = tls.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    let status = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no status: {answer}"));
    let json = answer.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    // A chunked body: the JSON is the line between the chunk sizes.
    let json = json.lines().find(|l| l.starts_with('{')).unwrap_or(json);
    (status, serde_json::from_str(json).unwrap_or(Value::Null))
}
