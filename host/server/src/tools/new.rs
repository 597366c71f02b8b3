//! `warren new <name> --role baseapp`: a new script crate that builds, tests and runs in
//! `warren dev` as it is — in the Warren workspace (`scripts/<name>`, added to the
//! workspace's members), or as a standalone project of the modder's own that depends on
//! the guest SDK by path or git. The crate is exactly the guest SDK README's example
//! (`guest-sdk/README.md`, *A complete script*), renamed.

use anyhow::Context;
use std::path::{Path, PathBuf};

/// The script's Cargo.toml, for a crate named `greeter`.
const CARGO_TOML: &str = include_str!("new/Cargo.toml.in");
/// The script's code and native test, for a type named `Greeter`.
const LIB_RS: &str = include_str!("new/lib.rs.in");

/// Where the guest SDK comes from in a standalone project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sdk {
    /// A path to the SDK's folder (`guest-sdk/` of a Warren checkout).
    Path(PathBuf),
    /// A git repository holding Warren (`warren-guest` is found in it by name).
    Git(String),
}

/// What `warren new` makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// `scripts/<name>` of the Warren workspace at this root, added to its members.
    Workspace(PathBuf),
    /// A new project folder of its own at this path, with the SDK from `Sdk`.
    Standalone(PathBuf, Sdk),
}

/// Makes script `name` for `role` at `place`; returns the script's folder.
pub fn new_script(name: &str, role: &str, place: &Place) -> anyhow::Result<PathBuf> {
    check_name(name)?;
    anyhow::ensure!(
        role == "baseapp",
        "`warren new` makes baseapp scripts so far; for the {role} role start from a copy of the shipped one \
         (scripts/guild, scripts/battle) and set its [package.metadata.warren] role"
    );
    let root = match place {
        Place::Workspace(root) => root.clone(),
        Place::Standalone(dir, sdk) => {
            anyhow::ensure!(!dir.exists(), "{} exists already: pick another folder", dir.display());
            std::fs::create_dir_all(dir.join("scripts")).with_context(|| format!("cannot create {}", dir.display()))?;
            std::fs::create_dir_all(dir.join("modules"))?;
            write(&dir.join("Cargo.toml"), &standalone_root(name, sdk)?)?;
            write(&dir.join(".gitignore"), "/target\n/modules\n")?;
            dir.clone()
        }
    };
    let crate_dir = root.join("scripts").join(name);
    anyhow::ensure!(!crate_dir.exists(), "{} exists already: pick another name", crate_dir.display());
    std::fs::create_dir_all(crate_dir.join("src")).with_context(|| format!("cannot create {}", crate_dir.display()))?;
    write(&crate_dir.join("Cargo.toml"), &cargo_toml(name))?;
    write(&crate_dir.join("src/lib.rs"), &lib_rs(name))?;
    write(&crate_dir.join("README.md"), &readme(name, &root))?;
    if let Place::Workspace(root) = place {
        add_member(&root.join("Cargo.toml"), &format!("scripts/{name}"))?;
    }
    Ok(crate_dir)
}

/// A crate name cargo takes and a Rust type can be made of.
fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && name.len() <= 64;
    anyhow::ensure!(
        ok,
        "`{name}` cannot name a script: use lowercase letters, digits, - and _, starting with a letter"
    );
    Ok(())
}

/// `greeter-bot` → `GreeterBot`.
fn type_name(name: &str) -> String {
    name.split(['-', '_'])
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect()
}

fn cargo_toml(name: &str) -> String {
    CARGO_TOML.replace("name = \"greeter\"", &format!("name = \"{name}\""))
}

fn lib_rs(name: &str) -> String {
    LIB_RS.replace("Greeter", &type_name(name))
}

fn readme(name: &str, root: &Path) -> String {
    let root = root.display();
    format!(
        "# {name}\n\nA Warren baseapp script: player logic, built to `modules/baseapp.wasm`.\n\n\
         ```sh\ncargo test -p {name}                 # the native tests, no wasm\n\
         warren build --workspace {root}       # scripts/ -> modules/\n\
         warren dev --modules {root}/modules   # serve it; edit, build again: swapped live\n\
         warren play --name ann                # then: wave times=2\n```\n\n\
         guest-sdk/README.md (in Warren) tells what a script may do; docs/limits.md what it may spend.\n"
    )
}

/// The root of a standalone project: a workspace whose dependencies the script inherits,
/// exactly as in Warren's own.
fn standalone_root(name: &str, sdk: &Sdk) -> anyhow::Result<String> {
    let guest = match sdk {
        Sdk::Path(path) => {
            let path =
                std::fs::canonicalize(path).with_context(|| format!("the guest SDK is not at {}", path.display()))?;
            anyhow::ensure!(
                path.join("Cargo.toml").exists(),
                "{} holds no Cargo.toml: give the guest-sdk folder of a Warren checkout",
                path.display()
            );
            format!("{{ path = {:?} }}", path.display().to_string())
        }
        Sdk::Git(url) => format!("{{ git = {url:?} }}"),
    };
    Ok(format!(
        "# A Warren game project: scripts/ holds one crate per role, `warren build` writes\n\
         # modules/<role>.wasm.\n[workspace]\nresolver = \"3\"\nmembers = [\"scripts/{name}\"]\n\n\
         [workspace.dependencies]\nwarren-guest = {guest}\nserde = {{ version = \"1\", features = [\"derive\"] }}\n\
         serde_json = \"1\"\n\n[profile.release]\nopt-level = \"s\"\n"
    ))
}

/// Adds `member` to the `members` of the workspace manifest at `path`, keeping the rest
/// of the file as it is.
fn add_member(path: &Path, member: &str) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let doc: toml::Table = text.parse().with_context(|| format!("{} is not TOML", path.display()))?;
    let members = doc.get("workspace").and_then(|w| w.get("members")).and_then(|m| m.as_array());
    let Some(members) = members else {
        anyhow::bail!("{} has no [workspace] members: is this Warren's workspace root?", path.display())
    };
    if members.iter().any(|m| m.as_str() == Some(member)) {
        return Ok(());
    }
    let start = text.find("members").and_then(|at| text[at..].find('[').map(|b| at + b)).context("members = [")?;
    let end = start + text[start..].find(']').context("the end of members")?;
    let before = text[start + 1..end].trim_end();
    let sep = if before.is_empty() || before.ends_with(',') { "" } else { "," };
    let updated = format!("{}{sep}\n    \"{member}\",\n{}", &text[..start + 1 + before.len()], &text[end..]);
    updated.parse::<toml::Table>().context("the updated workspace manifest does not parse")?;
    write(path, &updated)
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scaffold_is_the_sdk_readmes_example() {
        let readme = include_str!("../../../../guest-sdk/README.md");
        assert!(readme.contains(&cargo_toml("greeter")), "the README's Cargo.toml is what `warren new` writes");
        assert!(readme.contains(&lib_rs("greeter")), "the README's lib.rs is what `warren new` writes");
    }

    #[test]
    fn names_become_crates_and_types() {
        assert_eq!(type_name("daily-bonus_2"), "DailyBonus2");
        assert!(check_name("Daily").is_err() && check_name("1x").is_err() && check_name("a b").is_err());
        assert!(lib_rs("daily-bonus").contains("impl Player for DailyBonus"));
    }

    #[test]
    fn a_member_is_added_once_and_the_manifest_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Cargo.toml");
        std::fs::write(&path, "[workspace]\n# kept\nmembers = [\n    \"a\",\n    \"b\"\n]\n\n[x]\ny = 1\n").unwrap();
        add_member(&path, "scripts/c").unwrap();
        add_member(&path, "scripts/c").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let doc: toml::Table = text.parse().unwrap();
        let members: Vec<&str> =
            doc["workspace"]["members"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect();
        assert_eq!(members, ["a", "b", "scripts/c"]);
        assert!(text.contains("# kept") && text.contains("y = 1"), "{text}");
    }
}
