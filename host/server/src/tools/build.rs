//! `warren build`: builds every script crate into `modules/<role>.wasm`, and checks each
//! against its role's world before writing it. Each script is built on its own: one that
//! fails is reported with its crate's name and the others are still built; the command
//! fails if any did.

use crate::mechanics::live::{short, validate};
use crate::role::Role;
use anyhow::Context;
use std::collections::BTreeMap;
use std::path::Path;
use warren_build::{Guest, GuestBuilder, Script, find_scripts};
use warren_runtime::{Limits, Runtime};

/// Builds the scripts of `workspace/scripts` into `out` — only the one of `role` if given.
pub fn build_scripts(workspace: &Path, out: &Path, role: Option<&str>) -> anyhow::Result<()> {
    let dir = workspace.join("scripts");
    let found = find_scripts(&dir)?;
    anyhow::ensure!(
        !found.is_empty(),
        "no script crates in {}: a script's Cargo.toml says its role in [package.metadata.warren]",
        dir.display()
    );
    if let Some(role) = role {
        anyhow::ensure!(Role::of_world(role).is_some(), "unknown role `{role}`: roles are {}", Role::world_names());
    }
    let (scripts, mut failures) = plan(found, role);
    anyhow::ensure!(
        !scripts.is_empty() || !failures.is_empty(),
        "no script crate in {} has role `{}`",
        dir.display(),
        role.unwrap_or("")
    );
    let runtime = Runtime::new(Limits::default()).map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let mut builder = GuestBuilder::new(workspace);
    // A modder's new crate is not in the lock file yet.
    builder.locked = false;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut built = 0;
    for script in &scripts {
        match build_one(&builder, &runtime, script, out) {
            Ok(line) => {
                built += 1;
                println!("{line}");
            }
            Err(e) => {
                eprintln!("error: script `{}` (role {}): {e:#}", script.package, script.role);
                failures.push(format!("`{}` (role {}): {e:#}", script.package, script.role));
            }
        }
    }
    if failures.is_empty() {
        return Ok(());
    }
    anyhow::bail!(
        "built {built} of {} scripts; not built:\n  {}",
        scripts.len() + failures.len(),
        failures.join("\n  ")
    )
}

/// The scripts to build, and the crates refused before building: an unknown role, or a
/// role claimed by two crates (neither is built: which one should serve?).
fn plan(found: Vec<Script>, only: Option<&str>) -> (Vec<Script>, Vec<String>) {
    let mut failures = Vec::new();
    let mut by_role: BTreeMap<String, Vec<Script>> = BTreeMap::new();
    for script in found {
        if Role::of_world(&script.role).is_none() {
            failures.push(format!(
                "`{}`: unknown role `{}` in [package.metadata.warren]; roles are {}",
                script.package,
                script.role,
                Role::world_names()
            ));
            continue;
        }
        by_role.entry(script.role.clone()).or_default().push(script);
    }
    let mut scripts = Vec::new();
    for (role, mut claimants) in by_role {
        if only.is_some_and(|r| r != role) {
            continue;
        }
        if claimants.len() > 1 {
            let names: Vec<String> = claimants.iter().map(|s| format!("`{}`", s.package)).collect();
            failures.push(format!(
                "{} all claim role {role}: one module serves a role; give the others another role or move them out of scripts/",
                names.join(" and ")
            ));
            continue;
        }
        scripts.append(&mut claimants);
    }
    (scripts, failures)
}

/// Builds one script, checks it against its world and writes it; the line to print.
fn build_one(builder: &GuestBuilder, runtime: &Runtime, script: &Script, out: &Path) -> anyhow::Result<String> {
    let bytes = builder.build(&Guest { package: script.package.clone(), features: vec![] })?;
    validate(runtime, &script.role, &bytes)?;
    // Write beside, then rename: a watcher never sees half a module.
    let target = out.join(format!("{}.wasm", script.role));
    let partial = out.join(format!(".{}.wasm.partial", script.role));
    std::fs::write(&partial, &bytes).with_context(|| format!("cannot write {}", partial.display()))?;
    std::fs::rename(&partial, &target).with_context(|| format!("cannot write {}", target.display()))?;
    Ok(format!(
        "built {} -> {} ({} KiB, sha256 {})",
        script.package,
        target.display(),
        bytes.len() / 1024,
        short(&warren_runtime::digest(&bytes))
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(package: &str, role: &str) -> Script {
        Script { package: package.into(), role: role.into() }
    }

    #[test]
    fn two_crates_of_one_role_are_refused_by_name_and_the_rest_built() {
        let (scripts, failures) =
            plan(vec![script("a", "baseapp"), script("b", "baseapp"), script("g", "guild")], None);
        assert_eq!(scripts, [script("g", "guild")]);
        assert_eq!(failures.len(), 1);
        assert!(failures[0].contains("`a` and `b` all claim role baseapp"), "{failures:?}");
    }

    #[test]
    fn an_unknown_role_names_its_crate_and_one_role_can_be_asked_for() {
        let (scripts, failures) =
            plan(vec![script("x", "baseap"), script("g", "guild"), script("b", "battle")], Some("guild"));
        assert_eq!(scripts, [script("g", "guild")]);
        assert!(failures[0].contains("`x`: unknown role `baseap`"), "{failures:?}");
    }
}
