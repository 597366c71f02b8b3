//! `warren build`: builds every script crate into `modules/<role>.wasm`, and checks each
//! against its role's world before writing it. Each script is built on its own: one that
//! fails is reported with its crate's name and the others are still built; the command
//! fails if any did.
//!
//! With `--check-rooms`, a battle script is also checked against the rooms a running
//! `warren dev` plays: the new module must restore each room's last snapshot, or it is not
//! written (and so never served).

use crate::mechanics::live::{short, validate};
use crate::role::Role;
use crate::roles::battleapp::upgrade::{RoomSnapshot, check_rooms as check_rooms_on};
use anyhow::Context;
use std::collections::BTreeMap;
use std::path::Path;
use warren_build::{Guest, GuestBuilder, Script, find_scripts};
use warren_runtime::{Battle, Limits, Runtime};

/// What `warren build` is asked to do besides building.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Build only the script of this role.
    pub role: Option<String>,
    /// A running `warren dev` (its base URL) whose battle rooms a new battle module must
    /// restore before it is written.
    pub check_rooms: Option<String>,
}

/// Builds the scripts of `workspace/scripts` into `out`.
pub fn build_scripts(workspace: &Path, out: &Path, options: &BuildOptions) -> anyhow::Result<()> {
    let role = options.role.as_deref();
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
    let members = workspace_members(workspace)?;
    let (found, mut outside): (Vec<Script>, Vec<Script>) =
        found.into_iter().partition(|s| members.contains(&s.package));
    outside.retain(|s| role.is_none_or(|r| r == s.role));
    let (scripts, mut failures) = plan(found, role);
    failures.extend(outside.iter().map(|s| {
        format!(
            "`{}` (role {}): not a member of the workspace in {}: add its folder to `members` in [workspace] \
             (`warren new` does this for the crates it makes)",
            s.package,
            s.role,
            workspace.join("Cargo.toml").display()
        )
    }));
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
        match build_one(&builder, &runtime, script, out, options.check_rooms.as_deref()) {
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

/// The package names of the workspace at `workspace` (cargo's own reading of its
/// members, globs and excludes included).
fn workspace_members(workspace: &Path) -> anyhow::Result<Vec<String>> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = std::process::Command::new(cargo)
        .current_dir(workspace)
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .output()
        .context("could not run cargo")?;
    anyhow::ensure!(
        out.status.success(),
        "cannot read the workspace in {}: {}",
        workspace.display(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let metadata: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("cargo metadata did not answer JSON")?;
    let packages = metadata["packages"].as_array().context("cargo metadata lists no packages")?;
    Ok(packages.iter().filter_map(|p| p["name"].as_str().map(str::to_owned)).collect())
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

/// Builds one script, checks it against its world (and, for a battle script with
/// `check_rooms`, against the rooms running there) and writes it; the line to print.
fn build_one(
    builder: &GuestBuilder,
    runtime: &Runtime,
    script: &Script,
    out: &Path,
    check_rooms: Option<&str>,
) -> anyhow::Result<String> {
    let bytes = builder.build(&Guest { package: script.package.clone(), features: vec![] })?;
    validate(runtime, &script.role, &bytes)?;
    let mut checked = String::new();
    if let (Some(url), Some(Role::Battleapp)) = (check_rooms, Role::of_world(&script.role)) {
        let n = check_against_dev(url, runtime, &bytes).context("not written")?;
        checked = format!(", restores the {n} rooms running at {url}");
    }
    // Write beside, then rename: a watcher never sees half a module.
    let target = out.join(format!("{}.wasm", script.role));
    let partial = out.join(format!(".{}.wasm.partial", script.role));
    std::fs::write(&partial, &bytes).with_context(|| format!("cannot write {}", partial.display()))?;
    std::fs::rename(&partial, &target).with_context(|| format!("cannot write {}", target.display()))?;
    Ok(format!(
        "built {} -> {} ({} KiB, sha256 {}{checked})",
        script.package,
        target.display(),
        bytes.len() / 1024,
        short(&warren_runtime::digest(&bytes))
    ))
}

/// Checks battle module `bytes` against the rooms a running `warren dev` at `url` plays:
/// how many it restores, or an error naming those it cannot.
pub fn check_against_dev(url: &str, runtime: &Runtime, bytes: &[u8]) -> anyhow::Result<usize> {
    let rooms = rooms_of(url)?;
    let module = std::sync::Arc::new(runtime.load::<Battle>(bytes)?);
    check_rooms_on(&module, &rooms).with_context(|| format!("checked against the rooms of {url}"))
}

/// The rooms a running `warren dev` at `url` plays, with their last snapshots (its `/rooms`).
fn rooms_of(url: &str) -> anyhow::Result<Vec<RoomSnapshot>> {
    let endpoint = format!("{}/rooms", url.trim_end_matches('/'));
    let body = ureq::get(&endpoint).call().and_then(|mut r| r.body_mut().read_to_string()).with_context(|| {
        format!("cannot read the rooms of {endpoint}: is `warren dev` running there? (or build without --check-rooms)")
    })?;
    let listed: serde_json::Value =
        serde_json::from_str(&body).with_context(|| format!("{endpoint} did not answer with its rooms"))?;
    let rooms = listed["rooms"].as_array().with_context(|| format!("{endpoint} did not answer with its rooms"))?;
    rooms
        .iter()
        .map(|r| {
            let room = r["room"].as_u64().context("a room without an id")?;
            let snapshot = hex::decode(r["snapshot_hex"].as_str().unwrap_or_default())
                .with_context(|| format!("room {room}'s snapshot is not hex"))?;
            Ok(RoomSnapshot { room, snapshot })
        })
        .collect()
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
    fn a_crate_outside_the_workspace_members_is_named_not_built() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("Cargo.toml"), "[workspace]\nresolver = \"3\"\nmembers = [\"scripts/a\"]\n").unwrap();
        for name in ["a", "b"] {
            let crate_dir = root.join("scripts").join(name);
            std::fs::create_dir_all(crate_dir.join("src")).unwrap();
            let manifest = format!(
                "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[package.metadata.warren]\nrole = \"guild\"\n"
            );
            std::fs::write(crate_dir.join("Cargo.toml"), manifest).unwrap();
            std::fs::write(crate_dir.join("src/lib.rs"), "").unwrap();
        }
        assert_eq!(workspace_members(root).unwrap(), ["a"]);
        // Only `b`'s fault is reported before anything is built: ask for a role `a` lacks
        // so nothing is.
        std::fs::write(
            root.join("scripts/b/Cargo.toml"),
            "[package]\nname = \"b\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[package.metadata.warren]\nrole = \"team\"\n",
        )
        .unwrap();
        let options = BuildOptions { role: Some("team".into()), check_rooms: None };
        let err = format!("{:#}", build_scripts(root, &root.join("modules"), &options).unwrap_err());
        assert!(err.contains("`b` (role team): not a member of the workspace in"), "{err}");
        assert!(err.contains("add its folder to `members`"), "{err}");
    }

    #[test]
    fn an_unknown_role_names_its_crate_and_one_role_can_be_asked_for() {
        let (scripts, failures) =
            plan(vec![script("x", "baseap"), script("g", "guild"), script("b", "battle")], Some("guild"));
        assert_eq!(scripts, [script("g", "guild")]);
        assert!(failures[0].contains("`x`: unknown role `baseap`"), "{failures:?}");
    }
}
