//! Builds every test guest and script from source into OUT_DIR and writes one constant
//! per built module (its path), so tests never depend on a committed binary.

use std::path::PathBuf;
use warren_build::{Guest, GuestBuilder};

/// (constant name, package, features)
const GUESTS: &[(&str, &str, &[&str])] = &[
    ("PLAYER_V1", "warren-test-guest", &["player"]),
    ("PLAYER_V2", "warren-test-guest", &["player", "v2"]),
    ("PLAYER_BAD_INIT", "warren-test-guest", &["player", "bad-init"]),
    ("PLAYER_INIT_LOOP", "warren-test-guest", &["player", "init-loop"]),
    ("PLAYER_BIG_MEMORY", "warren-test-guest", &["player", "big-memory"]),
    ("ROOM_V1", "warren-test-guest", &["room"]),
    ("ROOM_V2", "warren-test-guest", &["room", "v2"]),
    ("ROOM_BAD_RESTORE", "warren-test-guest", &["room", "v2", "bad-restore"]),
    ("SCRIPT_BASEAPP", "warren-script-baseapp", &[]),
    ("SCRIPT_BASEAPP_SALE", "warren-script-baseapp", &["potion-sale"]),
    ("SCRIPT_BATTLE", "warren-script-battle", &[]),
    ("SCRIPT_GUILD", "warren-script-guild", &[]),
];

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let workspace = manifest.join("../..").canonicalize().expect("workspace root");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    for dir in ["guest-sdk", "host/test-guests/guest", "scripts", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", workspace.join(dir).display());
    }

    let builder = GuestBuilder::new(&workspace);
    let mut constants = String::new();
    for (name, package, features) in GUESTS {
        let guest = Guest { package: (*package).into(), features: features.iter().map(|f| (*f).into()).collect() };
        let bytes = builder.build(&guest).unwrap_or_else(|e| panic!("building test guest {name}: {e}"));
        let path = out.join(format!("{}.wasm", name.to_lowercase()));
        std::fs::write(&path, bytes).expect("write test guest");
        constants.push_str(&format!(
            "/// `{package}` built with features {features:?}.\npub const {name}: &str = {:?};\n",
            path.display().to_string()
        ));
    }
    std::fs::write(out.join("guests.rs"), constants).expect("write guests.rs");
}
