//! `warren play`: a terminal game client. Each input line is one frame: raw JSON, or the
//! shorthand `type key=value ...` (`shop.buy item=potion count=2`). Frames from the
//! server are printed one per line. Pushes (frames with a `seq`) are printed once, in
//! order, and acknowledged as they are printed (docs/protocol.md, *Delivery*).

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Map, Value};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_tungstenite::tungstenite::Message;

/// Turns an input line into a frame: JSON as it is, or the shorthand.
pub fn frame_of(line: &str) -> Result<Value, String> {
    let line = line.trim();
    if line.starts_with('{') {
        return serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"));
    }
    let mut words = line.split_whitespace();
    let kind = words.next().ok_or("empty line")?;
    let mut frame = Map::new();
    frame.insert("type".into(), kind.into());
    for word in words {
        let (key, value) = word.split_once('=').ok_or_else(|| format!("`{word}` is not key=value"))?;
        // Numbers and booleans as such; anything else as a string.
        let value = serde_json::from_str::<Value>(value)
            .ok()
            .filter(|v| v.is_number() || v.is_boolean())
            .unwrap_or_else(|| Value::String(value.to_owned()));
        frame.insert(key.to_owned(), value);
    }
    Ok(Value::Object(frame))
}

/// How `warren play` behaves around its input.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// After the input ends, leave once no frame came for this long.
    pub wait: Duration,
    /// Print only frames (notes go to stderr).
    pub json: bool,
}

/// The HTTP address beside a WebSocket URL: `ws://host:port/ws` → `http://host:port`.
pub fn http_base(ws_url: &str) -> String {
    let rest =
        ws_url.strip_prefix("wss://").map(|r| ("https://", r)).or(ws_url.strip_prefix("ws://").map(|r| ("http://", r)));
    let (scheme, rest) = rest.unwrap_or(("http://", ws_url));
    let host = rest.split('/').next().unwrap_or(rest);
    format!("{scheme}{host}")
}

/// A session token for the account `name` with `password` at `base` (`http://host:port`):
/// logs in, and registers the account if it does not exist yet. Blocking (plain HTTP).
pub fn account_token(base: &str, name: &str, password: &str) -> anyhow::Result<String> {
    let body = serde_json::json!({"username": name, "password": password}).to_string();
    let post = |path: &str| -> anyhow::Result<Result<Value, u16>> {
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let mut answer = agent
            .post(&format!("{base}{path}"))
            .header("content-type", "application/json")
            .send(body.as_str())
            .with_context(|| format!("cannot reach {base}{path}"))?;
        let status = answer.status().as_u16();
        let text = answer.body_mut().read_to_string().unwrap_or_default();
        if status >= 300 {
            let reason = serde_json::from_str::<Value>(&text).ok().and_then(|v| v["error"].as_str().map(str::to_owned));
            if status == 401 {
                return Ok(Err(status));
            }
            anyhow::bail!("{path}: {}", reason.unwrap_or_else(|| format!("HTTP {status}")));
        }
        Ok(Ok(serde_json::from_str(&text).context("the answer is not JSON")?))
    };
    let issued = match post("/auth/login")? {
        Ok(issued) => issued,
        Err(_) => match post("/auth/register") {
            Ok(Ok(issued)) => issued,
            Ok(Err(_)) => anyhow::bail!("wrong username or password"),
            // Taken: the account exists, so the password was wrong.
            Err(e) if e.to_string().contains("taken") => anyhow::bail!("wrong password for {name}"),
            Err(e) => return Err(e),
        },
    };
    issued["token"].as_str().map(str::to_owned).context("no token in the answer")
}

/// Opens the session WebSocket at `url` with a session token (`Authorization: Bearer`).
pub async fn connect_with_token(
    url: &str,
    token: &str,
) -> anyhow::Result<tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = url.into_client_request()?;
    request.headers_mut().insert("authorization", format!("Bearer {token}").parse()?);
    let (ws, _) =
        tokio_tungstenite::connect_async(request).await.with_context(|| format!("cannot connect to {url}"))?;
    Ok(ws)
}

/// Connects to `url`, logs in as `name` — with `password`, to the account (registered on
/// first use); without, by name alone (`warren dev --name-login`) — then plays lines from
/// stdin until it ends and the server has been quiet for `options.wait`.
pub async fn play(url: &str, name: &str, password: Option<&str>, options: Options) -> anyhow::Result<()> {
    let ws = match password {
        Some(password) => {
            let (base, name, password) = (http_base(url), name.to_owned(), password.to_owned());
            let token = tokio::task::spawn_blocking(move || account_token(&base, &name, &password)).await??;
            connect_with_token(url, &token).await?
        }
        None => tokio_tungstenite::connect_async(url).await.with_context(|| format!("cannot connect to {url}"))?.0,
    };
    let (mut sink, mut stream) = ws.split();
    let login = match password {
        Some(_) => serde_json::json!({"type": "login"}),
        None => serde_json::json!({"type": "login", "name": name}),
    };
    sink.send(Message::text(login.to_string())).await?;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut input_open = true;
    // The last push printed: one numbered at or below it was printed already.
    let mut shown = 0u64;
    let note = |text: &str| {
        if options.json { eprintln!("{text}") } else { println!("{text}") }
    };
    loop {
        // Once the input is over, each quiet `wait` is the end.
        let quiet = async {
            if input_open { std::future::pending::<()>().await } else { tokio::time::sleep(options.wait).await }
        };
        tokio::select! {
            line = lines.next_line(), if input_open => match line? {
                None => input_open = false,
                Some(line) if line.trim().is_empty() => {}
                Some(line) => match frame_of(&line) {
                    Ok(frame) => sink.send(Message::text(frame.to_string())).await?,
                    Err(e) => eprintln!("! {e}"),
                },
            },
            () = quiet => {
                let _ = sink.send(Message::Close(None)).await;
                return Ok(());
            }
            msg = stream.next() => match msg {
                Some(Ok(Message::Text(text))) => {
                    let seq = serde_json::from_str::<Value>(&text).ok().and_then(|f| f.get("seq").and_then(Value::as_u64));
                    match seq {
                        Some(seq) if seq <= shown => {}
                        Some(seq) => {
                            println!("{text}");
                            shown = seq;
                            sink.send(Message::text(serde_json::json!({"type": "ack", "seq": seq}).to_string())).await?;
                        }
                        None => println!("{text}"),
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    let why = frame.map(|f| format!(" ({} {})", u16::from(f.code), f.reason)).unwrap_or_default();
                    note(&format!("(connection closed{why})"));
                    return Ok(());
                }
                None => {
                    note("(connection closed)");
                    return Ok(());
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::frame_of;
    use serde_json::json;

    #[test]
    fn shorthand_lines_become_frames() {
        assert_eq!(frame_of("bag").unwrap(), json!({"type": "bag"}));
        assert_eq!(
            frame_of("shop.buy item=potion count=2").unwrap(),
            json!({"type": "shop.buy", "item": "potion", "count": 2})
        );
        assert_eq!(frame_of(r#"{"type":"ping"}"#).unwrap(), json!({"type": "ping"}));
        assert!(frame_of("equip slot").unwrap_err().contains("key=value"));
        assert!(frame_of("{oops").is_err());
    }
}
