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

/// Connects to `url`, logs in as `name`, then plays lines from stdin until it ends and
/// the server has been quiet for `options.wait`.
pub async fn play(url: &str, name: &str, options: Options) -> anyhow::Result<()> {
    let (ws, _) = tokio_tungstenite::connect_async(url).await.with_context(|| format!("cannot connect to {url}"))?;
    let (mut sink, mut stream) = ws.split();
    let login = serde_json::json!({"type": "login", "name": name});
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
