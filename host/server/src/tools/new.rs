//! `warren new <name> --role <role>`: a new script crate that builds, tests and runs in
//! `warren dev` as it is — in the Warren workspace (`scripts/<name>`, added to the
//! workspace's members), or as a standalone project of the modder's own that depends on
//! the guest SDK by path or git. Each role it knows has a small working script with a
//! native test: the baseapp one is exactly the guest SDK README's example
//! (`guest-sdk/README.md`, *A complete script*), renamed; the battle room and the guild
//! work with Warren's shipped baseapp script (`battle.start`, the guild frames).

use anyhow::Context;
use std::path::{Path, PathBuf};

/// The script's Cargo.toml, for a baseapp crate named `greeter`: the role's name is put
/// in for the other roles.
const CARGO_TOML: &str = include_str!("new/Cargo.toml.in");

/// A role `warren new` makes scripts for: the script, and what its README says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Template {
    /// The role as `--role`, `[package.metadata.warren] role`, the guest SDK's feature and
    /// the module's file name (`modules/<role>.wasm`) all spell it.
    role: &'static str,
    /// The script's code and native test.
    lib_rs: &'static str,
    /// The type in `lib_rs` that takes the script's name.
    type_name: &'static str,
    /// What the role's script is, after "A Warren <role> script, built to ...:".
    what: &'static str,
    /// What to type in `warren play` to try it.
    play: &'static str,
    /// How the script meets the rest of the game, a paragraph (or nothing).
    about: &'static str,
}

/// The roles `warren new` knows, baseapp first (the default).
const TEMPLATES: [Template; 3] = [
    Template {
        role: "baseapp",
        lib_rs: include_str!("new/lib.rs.in"),
        type_name: "Greeter",
        what: "player logic",
        play: "wave times=2",
        about: "",
    },
    Template {
        role: "battle",
        lib_rs: include_str!("new/battle/lib.rs.in"),
        type_name: "TapRace",
        what: "a battle room, ticked on a fixed beat by a battleapp, where the players tap and the \
               first to 10 taps wins",
        play: "battle.start, then battle.input action=tap",
        about: "In `warren dev` a player's `battle.start` frame (the host's own) makes a room with the\n\
                setup `{\"players\": [<id>], \"practice\": true}` and answers `battle.started`; each\n\
                `battle.input` frame goes to the room, whose `battle.start`, `battle.state` and `battle.end`\n\
                frames come back to the player. A baseapp script must be served too. At its end the room\n\
                sends each player a `battle.result` message, which Warren's own baseapp script\n\
                (scripts/baseapp) pays a reward for.\n\n",
    },
    Template {
        role: "guild",
        lib_rs: include_str!("new/guild/lib.rs.in"),
        type_name: "Lodge",
        what: "one guild's members, leader and chat, kept in host state",
        play: "guild.create name=Foxes (with Warren's baseapp script)",
        about: "Players' logic sends a guild requests as messages — `guild.create`, `guild.join`,\n\
                `guild.leave`, `guild.chat`, `guild.info` — as Warren's own baseapp script (scripts/baseapp)\n\
                does for the client frames of those names (docs/protocol.md, *Guild messages*); a baseapp\n\
                script of your own sends them with `msg::send(Address::Guild(id), ...)`. The guild answers\n\
                with `guild.event` messages to the players' queues, which that baseapp pushes to the\n\
                clients; a refused request comes back as the event `refused`, with the reason.\n\n",
    },
];

/// The template of `role`, or why there is none.
fn template(role: &str) -> anyhow::Result<Template> {
    TEMPLATES.into_iter().find(|t| t.role == role).with_context(|| {
        let known: Vec<&str> = TEMPLATES.iter().map(|t| t.role).collect();
        format!("`warren new` has no script for the role `{role}`: it knows {}", known.join(", "))
    })
}

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
    let template = template(role)?;
    let ty = type_name(name);
    anyhow::ensure!(
        ty == template.type_name || (ty != "Self" && !uses_identifier(template.lib_rs, &ty)),
        "`{name}` would name the script's type `{ty}`, which the {role} script's code uses for something \
         else: pick another name, such as `my-{name}`"
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
    if root.join("scripts").is_dir() {
        // One module serves a role: a second crate of it would make `warren build` refuse both.
        let taken = warren_build::find_scripts(&root.join("scripts"))?.into_iter().find(|s| s.role == role);
        if let Some(taken) = taken {
            anyhow::bail!(
                "`{}` in {} serves the {role} role already, and one module serves a role (`warren build` \
                 would refuse both): make a project of your own with `warren new {name} --role {role} \
                 --standalone DIR --sdk-path guest-sdk`, or move `{}` out of scripts/",
                taken.package,
                root.join("scripts").display(),
                taken.package
            );
        }
    }
    std::fs::create_dir_all(crate_dir.join("src")).with_context(|| format!("cannot create {}", crate_dir.display()))?;
    write(&crate_dir.join("Cargo.toml"), &cargo_toml(name, template))?;
    write(&crate_dir.join("src/lib.rs"), &lib_rs(name, template))?;
    write(&crate_dir.join("README.md"), &readme(name, template, &root))?;
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

/// Whether the code of `rust` (comments left out) has `ident` as a whole identifier: a
/// script type of that name would clash with it.
fn uses_identifier(rust: &str, ident: &str) -> bool {
    let part = |c: char| c.is_alphanumeric() || c == '_';
    rust.lines().map(|line| line.split("//").next().unwrap_or_default()).any(|code| {
        code.match_indices(ident)
            .any(|(at, _)| !code[..at].ends_with(part) && !code[at + ident.len()..].starts_with(part))
    })
}

/// The Cargo.toml of script `name`: the baseapp one with the template's role for its
/// metadata, its guest SDK feature and the module it builds to.
fn cargo_toml(name: &str, template: Template) -> String {
    let role = template.role;
    CARGO_TOML
        .replace("name = \"greeter\"", &format!("name = \"{name}\""))
        .replace("modules/baseapp.wasm", &format!("modules/{role}.wasm"))
        .replace("role = \"baseapp\"", &format!("role = \"{role}\""))
        .replace("features = [\"baseapp\"]", &format!("features = [\"{role}\"]"))
}

/// The lib.rs of script `name`, its type named after it.
fn lib_rs(name: &str, template: Template) -> String {
    template.lib_rs.replace(template.type_name, &type_name(name))
}

/// The crate's README: what the role is, and the commands to test, build, serve and try it.
fn readme(name: &str, template: Template, root: &Path) -> String {
    let root = root.display();
    let Template { role, what, play, about, .. } = template;
    let commands = [
        (format!("cargo test -p {name}"), "the native tests, no wasm".to_owned()),
        (format!("warren build --workspace {root}"), "scripts/ -> modules/".to_owned()),
        (format!("warren dev --modules {root}/modules"), "serve it; edit, build again: swapped live".to_owned()),
        ("warren play --name ann".to_owned(), format!("then: {play}")),
    ];
    let width = commands.iter().map(|(command, _)| command.len()).max().unwrap_or(0);
    let commands: String =
        commands.iter().map(|(command, comment)| format!("{command:width$}   # {comment}\n")).collect();
    format!(
        "# {name}\n\nA Warren {role} script, built to `modules/{role}.wasm`: {what}.\n\n\
         ```sh\n{commands}```\n\n\
         {about}One crate serves each role: with another {role} script in scripts/ (Warren's own\n\
         workspace ships one), `warren build` builds neither until one of them goes.\n\n\
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
         # modules/<role>.wasm.\n[workspace]\nresolver = \"3\"\nmembers = [\n    \"scripts/{name}\",\n]\n\n\
         [workspace.dependencies]\nwarren-guest = {guest}\nserde = {{ version = \"1\", features = [\"derive\"] }}\n\
         serde_json = \"1\"\n\n[profile.release]\nopt-level = \"s\"\n"
    ))
}

/// Adds `member` to the `members` of the workspace manifest at `path`, keeping the rest
/// of the file as it is (a standalone project's, a second script in it, too).
fn add_member(path: &Path, member: &str) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let doc: toml::Table = text.parse().with_context(|| format!("{} is not TOML", path.display()))?;
    let Some(members) = workspace_members(&doc) else {
        anyhow::bail!("{} has no [workspace] members: is this a Warren workspace's root?", path.display())
    };
    if members.contains(&member) {
        return Ok(());
    }
    // The `members` key at the start of a line (not `default-members`, not in a comment).
    let key = text.match_indices("members").map(|(at, _)| at).find(|&at| {
        let line = text[..at].rfind('\n').map_or(0, |n| n + 1);
        text[line..at].trim().is_empty() && text[at + "members".len()..].trim_start().starts_with('=')
    });
    let start = key.and_then(|at| text[at..].find('[').map(|b| at + b)).context("members = [")?;
    let end = start + text[start..].find(']').context("the end of members")?;
    let before = text[start + 1..end].trim_end();
    let sep = if before.is_empty() || before.ends_with(',') { "" } else { "," };
    let updated = format!("{}{sep}\n    \"{member}\",\n{}", &text[..start + 1 + before.len()], &text[end..]);
    let doc: toml::Table = updated.parse().context("the updated workspace manifest does not parse")?;
    anyhow::ensure!(
        workspace_members(&doc).is_some_and(|m| m.contains(&member)),
        "cannot add \"{member}\" to the members in {}: add it by hand",
        path.display()
    );
    write(path, &updated)
}

/// The `[workspace] members` of a manifest.
fn workspace_members(doc: &toml::Table) -> Option<Vec<&str>> {
    let members = doc.get("workspace")?.get("members")?.as_array()?;
    Some(members.iter().filter_map(|m| m.as_str()).collect())
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
        let baseapp = template("baseapp").unwrap();
        assert_eq!(TEMPLATES[0], baseapp, "baseapp is the default role, the README's");
        assert!(
            readme.contains(&cargo_toml("greeter", baseapp)),
            "the README's Cargo.toml is what `warren new` writes"
        );
        assert!(readme.contains(&lib_rs("greeter", baseapp)), "the README's lib.rs is what `warren new` writes");
    }

    #[test]
    fn names_become_crates_and_types() {
        assert_eq!(type_name("daily-bonus_2"), "DailyBonus2");
        assert!(check_name("Daily").is_err() && check_name("1x").is_err() && check_name("a b").is_err());
        let expected = [
            ("baseapp", ["impl Player for DailyBonus", "export_player!(DailyBonus)"]),
            ("battle", ["impl Room for DailyBonus", "export_room!(DailyBonus)"]),
            ("guild", ["impl Group for DailyBonus", "export_group!(guild, DailyBonus)"]),
        ];
        for (role, wanted) in expected {
            let t = template(role).unwrap();
            let code = lib_rs("daily-bonus", t);
            for line in wanted {
                assert!(code.contains(line), "{role}: {line}");
            }
            assert!(!code.contains(t.type_name), "{role}: every {} is renamed", t.type_name);
        }
    }

    #[test]
    fn a_name_whose_type_the_script_uses_already_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let place = Place::Workspace(dir.path().to_owned());
        let err = new_script("setup", "battle", &place).unwrap_err().to_string();
        assert!(err.starts_with("`setup` would name the script's type `Setup`"), "{err}");
        assert!(new_script("player", "baseapp", &place).is_err(), "impl Player for Player");
        assert!(new_script("self", "guild", &place).is_err());
        assert!(!dir.path().join("scripts").exists(), "nothing was written");
        // The names a modder reaches for first are free; a word in a comment clashes with nothing.
        for (name, role) in [("guild", "guild"), ("battle", "battle"), ("greeter", "guild"), ("the", "battle")] {
            assert!(!uses_identifier(template(role).unwrap().lib_rs, &type_name(name)), "{name}");
        }
    }

    #[test]
    fn each_roles_manifest_has_its_feature_and_metadata() {
        assert_eq!(TEMPLATES.map(|t| t.role), ["baseapp", "battle", "guild"]);
        for t in TEMPLATES {
            let text = cargo_toml("daily-bonus", t);
            let doc: toml::Table = text.parse().unwrap();
            assert_eq!(doc["package"]["name"].as_str(), Some("daily-bonus"));
            assert_eq!(doc["package"]["metadata"]["warren"]["role"].as_str(), Some(t.role), "{text}");
            let features = doc["dependencies"]["warren-guest"]["features"].as_array().unwrap();
            assert_eq!(features, &[toml::Value::from(t.role)], "exactly the role's feature: {text}");
            assert!(text.contains(&format!("modules/{}.wasm", t.role)), "{text}");
            assert!(t.role == "baseapp" || !text.contains("baseapp"), "{text}");
        }
    }

    #[test]
    fn unknown_roles_are_refused_with_the_known_ones() {
        let dir = tempfile::tempdir().unwrap();
        let err = new_script("bot", "matchmaker", &Place::Workspace(dir.path().to_owned())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`warren new` has no script for the role `matchmaker`: it knows baseapp, battle, guild"
        );
        assert!(!dir.path().join("scripts").exists(), "nothing was written");
    }

    #[test]
    fn each_readme_says_the_role_and_how_to_try_it() {
        let root = Path::new("../game");
        for (role, tried) in
            [("baseapp", "wave times=2"), ("battle", "battle.input action=tap"), ("guild", "guild.create")]
        {
            let text = readme("daily", template(role).unwrap(), root);
            assert!(text.contains(&format!("A Warren {role} script, built to `modules/{role}.wasm`")), "{text}");
            assert!(text.contains("cargo test -p daily") && text.contains("warren dev --modules ../game/modules"));
            assert!(text.contains(tried), "{text}");
        }
        assert!(readme("daily", template("battle").unwrap(), root).contains("battle.start"));
    }

    #[test]
    fn a_standalone_project_takes_a_second_script() {
        let dir = tempfile::tempdir().unwrap();
        let game = dir.path().join("game");
        let sdk = Sdk::Path(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../guest-sdk"));
        new_script("greeter", "baseapp", &Place::Standalone(game.clone(), sdk)).unwrap();
        let made = new_script("tapper", "battle", &Place::Workspace(game.clone())).unwrap();
        assert_eq!(made, game.join("scripts/tapper"));
        let doc: toml::Table = std::fs::read_to_string(game.join("Cargo.toml")).unwrap().parse().unwrap();
        assert_eq!(workspace_members(&doc), Some(vec!["scripts/greeter", "scripts/tapper"]));
        let lib = std::fs::read_to_string(made.join("src/lib.rs")).unwrap();
        assert!(lib.contains("impl Room for Tapper"));
        // A role served already is refused before anything is written, naming the crate.
        let err = new_script("other", "battle", &Place::Workspace(game.clone())).unwrap_err().to_string();
        assert!(err.starts_with("`tapper` in ") && err.contains("serves the battle role already"), "{err}");
        assert!(err.contains("--standalone DIR"), "{err}");
        assert!(!game.join("scripts/other").exists());
    }

    #[test]
    fn a_member_is_added_once_and_the_manifest_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Cargo.toml");
        let manifest = "[workspace]\n# kept: the members\nmembers = [\n    \"a\",\n    \"b\"\n]\ndefault-members = [\"a\"]\n\n[x]\ny = 1\n";
        std::fs::write(&path, manifest).unwrap();
        add_member(&path, "scripts/c").unwrap();
        add_member(&path, "scripts/c").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let doc: toml::Table = text.parse().unwrap();
        assert_eq!(workspace_members(&doc), Some(vec!["a", "b", "scripts/c"]));
        assert!(text.contains("# kept: the members") && text.contains("y = 1"), "{text}");
        assert_eq!(doc["workspace"]["default-members"].as_array().unwrap().len(), 1, "{text}");
    }
}
