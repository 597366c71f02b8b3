//! `warren gateway-config`: the nginx configuration of the gateway in front of a cluster.
//! One public address terminates TLS (`wss://`, `https://`) and spreads players over the
//! live baseapps (the fewest connections first; a baseapp that refuses is skipped, and the
//! client's session resumes on another — docs/protocol.md, *Delivery*); each battleapp is
//! reached under `/battle/<name>/`, the path its `--public-url` names, so a battle socket
//! goes to the battleapp that holds its room.
//!
//! Timeouts sit above the hosts' WebSocket pings (30 s; idle sockets close at 90 s), and
//! `worker_shutdown_timeout` bounds how long the workers of a replaced configuration keep
//! their sockets after `nginx -s reload`: then they close them, and the clients resume on
//! the new workers. The access log has no query strings.

use std::fmt::Write;
use std::path::PathBuf;

/// What the gateway serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gateway {
    /// The public address (`0.0.0.0:443`).
    pub listen: String,
    /// The TLS certificate (chain) and its key, PEM.
    pub cert: PathBuf,
    /// See `cert`.
    pub key: PathBuf,
    /// Every baseapp's address (`host:port`).
    pub baseapps: Vec<String>,
    /// Every battleapp's name (its `/battle/<name>/` path) and address.
    pub battleapps: Vec<(String, String)>,
    /// Where nginx keeps its pid, logs and buffers.
    pub runtime_dir: PathBuf,
}

/// Seconds a proxied socket may stay silent: above the hosts' idle timeout (90 s), which
/// ends a dead client first.
const PROXY_TIMEOUT_S: u64 = 120;
/// How long a replaced worker keeps its sockets after a reload.
const SHUTDOWN_TIMEOUT_S: u64 = 10;

impl Gateway {
    /// Checks the names and addresses; the error says which is wrong.
    pub fn check(&self) -> Result<(), String> {
        if self.baseapps.is_empty() {
            return Err("a gateway needs at least one --baseapp host:port".into());
        }
        let address =
            |a: &str| !a.is_empty() && a.contains(':') && !a.contains(char::is_whitespace) && !a.contains(';');
        if let Some(bad) = self.baseapps.iter().find(|a| !address(a)) {
            return Err(format!("--baseapp {bad:?} is not host:port"));
        }
        for (name, addr) in &self.battleapps {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                return Err(format!("--battleapp {name:?}: a name is letters, digits, - or _"));
            }
            if !address(addr) {
                return Err(format!("--battleapp {name}={addr:?}: not host:port"));
            }
        }
        Ok(())
    }

    /// The nginx configuration.
    pub fn render(&self) -> String {
        let dir = self.runtime_dir.display();
        let mut c = String::new();
        let _ = writeln!(c, "# The gateway in front of a Warren cluster, made by `warren gateway-config`.");
        let _ = writeln!(c, "# Run: nginx -p {dir} -c <this file>; reload: nginx -p {dir} -c <this file> -s reload.");
        let _ = writeln!(c, "worker_processes auto;");
        let _ = writeln!(c, "pid {dir}/nginx.pid;");
        let _ = writeln!(c, "error_log {dir}/error.log warn;");
        let _ = writeln!(c, "# After a reload, the old workers close their sockets within this; the clients resume.");
        let _ = writeln!(c, "worker_shutdown_timeout {SHUTDOWN_TIMEOUT_S}s;");
        let _ = writeln!(c, "events {{\n    worker_connections 8192;\n}}");
        c.push_str("http {\n");
        c.push_str("    # No query strings: nothing secret can be logged from a URL.\n");
        c.push_str(
            "    log_format warren '$remote_addr [$time_local] \"$request_method $uri\" $status $request_time';\n",
        );
        let _ = writeln!(c, "    access_log {dir}/access.log warren;");
        for temp in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"] {
            let _ = writeln!(c, "    {temp}_temp_path {dir}/{temp};");
        }
        c.push_str("    map $http_upgrade $connection_upgrade {\n        default upgrade;\n        '' close;\n    }\n");
        c.push_str("    upstream warren_baseapps {\n        least_conn;\n");
        for b in &self.baseapps {
            let _ = writeln!(c, "        server {b} max_fails=1 fail_timeout=5s;");
        }
        c.push_str("    }\n    server {\n");
        let _ = writeln!(c, "        listen {} ssl;", self.listen);
        let _ = writeln!(c, "        ssl_certificate {};", self.cert.display());
        let _ = writeln!(c, "        ssl_certificate_key {};", self.key.display());
        c.push_str("        ssl_protocols TLSv1.2 TLSv1.3;\n");
        c.push_str("        proxy_http_version 1.1;\n");
        c.push_str("        proxy_set_header Host $host;\n");
        c.push_str("        proxy_set_header Upgrade $http_upgrade;\n");
        c.push_str("        proxy_set_header Connection $connection_upgrade;\n");
        c.push_str("        # The client's own address only (one sent by the client is replaced): the hosts\n");
        c.push_str("        # trust it from the gateway ([auth] trusted_proxies).\n");
        c.push_str("        proxy_set_header X-Forwarded-For $remote_addr;\n");
        let _ = writeln!(c, "        proxy_read_timeout {PROXY_TIMEOUT_S}s;");
        let _ = writeln!(c, "        proxy_send_timeout {PROXY_TIMEOUT_S}s;");
        c.push_str("        proxy_connect_timeout 5s;\n");
        c.push_str("        proxy_next_upstream error timeout http_502 http_503;\n");
        c.push_str("        location / {\n            proxy_pass http://warren_baseapps;\n        }\n");
        for (name, addr) in &self.battleapps {
            let _ =
                writeln!(c, "        location /battle/{name}/ {{\n            proxy_pass http://{addr}/;\n        }}");
        }
        c.push_str("    }\n}\n");
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example in `config/nginx.conf` is what the command writes for the cluster of
    /// the README.
    #[test]
    fn the_example_config_is_the_commands_output() {
        let example = Gateway {
            listen: "0.0.0.0:443".into(),
            cert: "/etc/warren/gateway.crt".into(),
            key: "/etc/warren/gateway.key".into(),
            baseapps: vec!["10.0.0.11:7701".into(), "10.0.0.12:7701".into()],
            battleapps: vec![("b1".into(), "10.0.0.21:7801".into())],
            runtime_dir: "/var/lib/warren-gateway".into(),
        };
        example.check().unwrap();
        assert_eq!(example.render(), include_str!("../../../../config/nginx.conf"));
    }

    #[test]
    fn bad_names_and_addresses_are_refused() {
        let good = Gateway {
            listen: "127.0.0.1:8443".into(),
            cert: "c".into(),
            key: "k".into(),
            baseapps: vec!["127.0.0.1:7701".into()],
            battleapps: vec![],
            runtime_dir: "/tmp/g".into(),
        };
        assert!(good.check().is_ok());
        assert!(Gateway { baseapps: vec![], ..good.clone() }.check().is_err());
        assert!(Gateway { baseapps: vec!["x; evil".into()], ..good.clone() }.check().is_err());
        assert!(Gateway { battleapps: vec![("a/b".into(), "h:1".into())], ..good.clone() }.check().is_err());
    }
}
