//! Operator commands against a cluster's message center: publish modules, list and
//! replay dead letters.

use crate::mechanics::live::{deploy, short};
use crate::role::Role;
use anyhow::Context;
use std::path::Path;
use warren_bus::{Address, Bus};
use warren_runtime::{Limits, Runtime};

/// Validates every `<role>.wasm` in `dir` and publishes it as its role's current module;
/// running hosts swap to it. Stops at the first module refused (those before it stay
/// published).
pub async fn publish(bus: &Bus, dir: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let runtime = Runtime::new(Limits::default()).map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let mut published = Vec::new();
    for role in Role::ALL.map(Role::world) {
        let path = dir.join(format!("{role}.wasm"));
        let bytes = match tokio::fs::read(&path).await {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let digest = deploy(bus, &runtime, role, bytes).await.with_context(|| format!("{}", path.display()))?;
        println!("published {role} {} ({})", short(&digest), path.display());
        published.push((role.to_owned(), digest));
    }
    anyhow::ensure!(!published.is_empty(), "no <role>.wasm in {}: run `warren build` first", dir.display());
    Ok(published)
}

/// Parses a queue as operators write it: `p:42`, `g:17`, `t:3`, `b:9`, `m:ranked` (or
/// with braces, as in keys).
pub fn parse_queue(text: &str) -> anyhow::Result<Address> {
    let tag = if text.starts_with('{') { text.to_owned() } else { format!("{{{text}}}") };
    Address::from_tag(&tag).with_context(|| {
        format!("`{text}` is not a queue: write p:<player>, g:<group>, t:<team>, b:<battle> or m:<name>")
    })
}

/// Prints the dead letters of `queue`, or of every queue that has some.
pub async fn list_dead_letters(bus: &Bus, queue: Option<Address>) -> anyhow::Result<usize> {
    let queues = match queue {
        Some(q) => vec![q],
        None => bus.dead_letter_queues().await?,
    };
    let mut count = 0;
    for q in queues {
        for d in bus.dead_letters(&q).await? {
            count += 1;
            let body = String::from_utf8_lossy(&d.envelope.body);
            let body: String = body.chars().take(200).collect();
            let sender = d.envelope.sender.as_ref().map(Address::tag).unwrap_or_else(|| "-".into());
            println!(
                "{} {} to={} from={} kind={} error={:?} body={body}",
                q.tag(),
                d.id,
                d.envelope.to.tag(),
                sender,
                d.envelope.kind,
                d.error
            );
        }
    }
    if count == 0 {
        println!("no dead letters");
    }
    Ok(count)
}

/// Puts dead letters back in their queues: one (`id`) or all of `queue`'s.
pub async fn replay_dead_letters(bus: &Bus, queue: &Address, id: Option<&str>) -> anyhow::Result<usize> {
    let ids: Vec<String> = match id {
        Some(id) => vec![id.to_owned()],
        None => bus.dead_letters(queue).await?.into_iter().map(|d| d.id).collect(),
    };
    let mut replayed = 0;
    for id in ids {
        match bus.replay_dead_letter(queue, &id).await? {
            Some(new_id) => {
                println!("replayed {} {id} as {new_id}", queue.tag());
                replayed += 1;
            }
            None => anyhow::bail!("{} has no dead letter {id}", queue.tag()),
        }
    }
    Ok(replayed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues_parse_as_operators_write_them() {
        assert_eq!(parse_queue("p:42").unwrap(), Address::Player(42));
        assert_eq!(parse_queue("{g:17}").unwrap(), Address::GuildGroup(17));
        assert_eq!(parse_queue("m:ranked").unwrap(), Address::MatchQueue("ranked".into()));
        let e = parse_queue("player42").unwrap_err().to_string();
        assert!(e.contains("p:<player>"), "{e}");
    }
}
