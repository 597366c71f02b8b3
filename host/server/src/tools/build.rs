//! `warren build`: builds every script crate into `modules/<role>.wasm`, and checks each
//! against its role's world before writing it.

use crate::mechanics::live::{short, validate};
use anyhow::Context;
use std::path::Path;
use warren_build::{Guest, GuestBuilder, find_scripts};
use warren_runtime::{Limits, Runtime};

/// Builds the scripts of `workspace/scripts` into `out`.
pub fn build_scripts(workspace: &Path, out: &Path) -> anyhow::Result<()> {
    let scripts = find_scripts(&workspace.join("scripts"))?;
    anyhow::ensure!(!scripts.is_empty(), "no script crates in {}", workspace.join("scripts").display());
    let runtime = Runtime::new(Limits::default()).map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let builder = GuestBuilder::new(workspace);
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    for script in scripts {
        let bytes = builder.build(&Guest { package: script.package.clone(), features: vec![] })?;
        validate(&runtime, &script.role, &bytes)?;
        // Write beside, then rename: a watcher never sees half a module.
        let target = out.join(format!("{}.wasm", script.role));
        let partial = out.join(format!(".{}.wasm.partial", script.role));
        std::fs::write(&partial, &bytes).with_context(|| format!("cannot write {}", partial.display()))?;
        std::fs::rename(&partial, &target).with_context(|| format!("cannot write {}", target.display()))?;
        println!(
            "built {} -> {} ({} KiB, sha256 {})",
            script.package,
            target.display(),
            bytes.len() / 1024,
            short(&warren_runtime::digest(&bytes))
        );
    }
    Ok(())
}
