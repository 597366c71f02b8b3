//! In development, the `modules/` folder is a deploy target: a `<role>.wasm` written there
//! is deployed like an upload — validated, stored, announced, swapped.

use crate::mechanics::live::{Refusals, deploy, short};
use crate::role::Role;
use notify::{RecursiveMode, Watcher};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use warren_bus::Bus;
use warren_runtime::Runtime;

/// How long a folder must be quiet before changed files are read: an editor or cargo
/// writes a file in several steps.
const SETTLE: Duration = Duration::from_millis(150);

/// Watches `dir`; stops when the returned watcher is dropped.
pub fn watch_modules(
    dir: &Path,
    bus: Bus,
    runtime: Runtime,
    refusals: Arc<Refusals>,
) -> notify::Result<notify::RecommendedWatcher> {
    let (tx, mut rx) = mpsc::unbounded_channel::<PathBuf>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
        Ok(event) if !event.kind.is_access() => {
            for path in event.paths {
                let _ = tx.send(path);
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "module watch error"),
    })?;
    watcher.watch(dir, RecursiveMode::NonRecursive)?;

    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut changed = BTreeSet::from([first]);
            // Gather every change until the folder has been quiet for SETTLE.
            while let Ok(Some(path)) = tokio::time::timeout(SETTLE, rx.recv()).await {
                changed.insert(path);
            }
            for path in changed {
                deploy_file(&path, &bus, &runtime, &refusals).await;
            }
        }
    });
    Ok(watcher)
}

/// Deploys `path` if it is a role's module that changed.
async fn deploy_file(path: &Path, bus: &Bus, runtime: &Runtime, refusals: &Refusals) {
    let Some(role) = role_of(path) else { return };
    let bytes = match tokio::fs::read(path).await {
        Ok(bytes) => bytes,
        // Removed or renamed away: the running module stays.
        Err(_) => return,
    };
    let digest = warren_runtime::digest(&bytes);
    if bus.current_module(role).await.ok().flatten().as_deref() == Some(digest.as_str()) {
        return;
    }
    match deploy(bus, runtime, role, bytes).await {
        Ok(digest) => {
            refusals.set(role, None);
            tracing::info!(role, digest = %short(&digest), file = %path.display(), "module deployed from file");
        }
        Err(e) => {
            refusals.set(role, Some(format!("{}: {e}", path.display())));
            tracing::error!(file = %path.display(), error = %e, "module not deployed; the old one keeps serving");
        }
    }
}

/// `modules/baseapp.wasm` → `baseapp`.
pub fn role_of(path: &Path) -> Option<&'static str> {
    if path.extension()? != "wasm" {
        return None;
    }
    Role::of_world(path.file_stem()?.to_str()?).map(Role::world)
}
