//! Builds guest crates into Warren modules.
//!
//! A guest is built with cargo for `wasm32-unknown-unknown`, so it imports nothing but the
//! `warren:game` platform (no WASI: no files, clocks or entropy), and the core module is
//! wrapped into a component with `wit-component`, using the world the guest SDK embedded.
//! Used by `warren build` and by the test harness that builds test guests from source.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The target guests are built for.
pub const GUEST_TARGET: &str = "wasm32-unknown-unknown";

/// Why a guest did not build.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The wasm target is missing from the toolchain.
    #[error("the {GUEST_TARGET} target is not installed: run `rustup target add {GUEST_TARGET}`")]
    MissingTarget,
    /// cargo could not be run.
    #[error("could not run cargo: {0}")]
    Cargo(std::io::Error),
    /// cargo ran and failed; its output was printed.
    #[error("cargo build of `{0}` failed (see the compiler output above)")]
    Compile(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The core module could not be made a component.
    #[error("could not make a component of `{package}`: {detail}")]
    Componentize {
        /// The guest package.
        package: String,
        /// wit-component's reason.
        detail: String,
    },
    /// A script's Cargo.toml has a `[package.metadata.warren]` table without a role.
    #[error("{0}: set `role = \"baseapp\"` (or battle, guild, team, matchmaker) in `[package.metadata.warren]`")]
    NoRole(PathBuf),
}

/// A guest crate to build.
#[derive(Debug, Clone)]
pub struct Guest {
    /// Its cargo package name.
    pub package: String,
    /// Cargo features to enable.
    pub features: Vec<String>,
}

/// Builds guests of one cargo workspace into components.
#[derive(Debug, Clone)]
pub struct GuestBuilder {
    /// The workspace root (where the guests' Cargo.lock is).
    pub workspace: PathBuf,
    /// Where cargo puts guest builds; apart from the host's target dir so a build script
    /// can build guests while the outer cargo holds its own lock.
    pub target_dir: PathBuf,
    /// The cargo to run.
    pub cargo: PathBuf,
    /// Build with `--locked` (the lock file must not change): for CI and the test
    /// harness; a modder's `warren build` lets cargo add a new crate to the lock file.
    pub locked: bool,
}

impl GuestBuilder {
    /// A builder for `workspace` using `<workspace>/target/guests`.
    pub fn new(workspace: impl Into<PathBuf>) -> Self {
        let workspace = workspace.into();
        let target_dir = workspace.join("target").join("guests");
        let cargo = std::env::var_os("CARGO").map(PathBuf::from).unwrap_or_else(|| "cargo".into());
        GuestBuilder { workspace, target_dir, cargo, locked: true }
    }

    /// Builds one guest (release) and returns the component's bytes. Each guest is built
    /// by its own cargo call: the guest SDK's role features must not be unified across
    /// guests.
    pub fn build(&self, guest: &Guest) -> Result<Vec<u8>, BuildError> {
        check_target()?;
        let mut cmd = Command::new(&self.cargo);
        cmd.current_dir(&self.workspace)
            .args(["build", "--release", "--target", GUEST_TARGET, "-p", &guest.package])
            .arg("--target-dir")
            .arg(&self.target_dir)
            .env("CARGO_PROFILE_RELEASE_DEBUG", "false");
        if self.locked {
            cmd.arg("--locked");
        }
        if !guest.features.is_empty() {
            cmd.arg("--features").arg(guest.features.join(","));
        }
        clean_env(&mut cmd);
        let status = cmd.status().map_err(BuildError::Cargo)?;
        if !status.success() {
            return Err(BuildError::Compile(guest.package.clone()));
        }
        let core_path = self
            .target_dir
            .join(GUEST_TARGET)
            .join("release")
            .join(format!("{}.wasm", guest.package.replace('-', "_")));
        let core = std::fs::read(&core_path).map_err(|source| BuildError::Io { path: core_path, source })?;
        componentize(&core).map_err(|detail| BuildError::Componentize { package: guest.package.clone(), detail })
    }
}

/// Wraps a core module that carries its world (as the guest SDK's bindings embed it) into
/// a component.
pub fn componentize(core: &[u8]) -> Result<Vec<u8>, String> {
    wit_component::ComponentEncoder::default()
        .module(core)
        .and_then(|e| e.validate(true).encode())
        .map_err(|e| format!("{e:#}"))
}

/// A script crate of a project: its package and the role it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// Its cargo package name.
    pub package: String,
    /// The role it serves (`baseapp`, `battle`, ...), from `[package.metadata.warren]`.
    pub role: String,
}

/// Lists the script crates in `dir` (each subfolder with a Cargo.toml whose
/// `[package.metadata.warren]` names a role), sorted by name. A crate without that table
/// is a library the scripts share, and is left out.
pub fn find_scripts(dir: &Path) -> Result<Vec<Script>, BuildError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| BuildError::Io { path, source }
    };
    let mut scripts = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let manifest = entry.map_err(io(dir))?.path().join("Cargo.toml");
        if !manifest.exists() {
            continue;
        }
        let text = std::fs::read_to_string(&manifest).map_err(io(&manifest))?;
        let doc: toml::Table = text.parse().map_err(|e| BuildError::Io {
            path: manifest.clone(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        })?;
        let package = doc.get("package").and_then(|p| p.as_table());
        let name = package.and_then(|p| p.get("name")).and_then(|n| n.as_str());
        let Some(warren) = package.and_then(|p| p.get("metadata")).and_then(|m| m.get("warren")) else {
            continue;
        };
        match (name, warren.get("role").and_then(|r| r.as_str())) {
            (Some(name), Some(role)) => scripts.push(Script { package: name.to_owned(), role: role.to_owned() }),
            _ => return Err(BuildError::NoRole(manifest)),
        }
    }
    scripts.sort_by(|a, b| a.package.cmp(&b.package));
    Ok(scripts)
}

/// Fails early, with the command to run, when the wasm target is missing.
fn check_target() -> Result<(), BuildError> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(rustc).args(["--print", "sysroot"]).output().map_err(BuildError::Cargo)?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if sysroot.join("lib/rustlib").join(GUEST_TARGET).exists() { Ok(()) } else { Err(BuildError::MissingTarget) }
}

/// Removes what a surrounding cargo (running a build script) set for its own build, so it
/// does not leak into the guest build.
fn clean_env(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let inherited = key.starts_with("CARGO_FEATURE_")
            || key.starts_with("CARGO_CFG_")
            || key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_MANIFEST_")
            || key.starts_with("DEP_")
            || matches!(
                key.as_ref(),
                "CARGO_TARGET_DIR"
                    | "CARGO_BUILD_TARGET"
                    | "CARGO_ENCODED_RUSTFLAGS"
                    | "RUSTFLAGS"
                    | "CARGO_MAKEFLAGS"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "OUT_DIR"
                    | "TARGET"
                    | "HOST"
                    | "OPT_LEVEL"
                    | "PROFILE"
                    | "DEBUG"
                    | "NUM_JOBS"
                    | "RUSTC_WRAPPER"
                    | "RUSTC_WORKSPACE_WRAPPER"
            );
        if inherited {
            cmd.env_remove(key.as_ref());
        }
    }
}
