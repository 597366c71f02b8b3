//! Raw bindings of the WIT contract, generated once here. Scripts use the safe API of the
//! crate root instead; these are public only for the export macros.
//!
//! Role worlds are generated only for wasm32 and only for the role feature a script
//! enables: each world defines crate-level export macros, so two worlds cannot share
//! one build (and a module must carry exactly one world anyway).

/// The host capabilities every world imports.
pub mod platform {
    wit_bindgen::generate!({
        path: "wit",
        world: "platform",
    });
}

macro_rules! role_world {
    ($feature:tt, $module:ident, $world:tt, $export_macro:tt, $bindings:tt) => {
        #[cfg(all(feature = $feature, target_arch = "wasm32"))]
        #[doc = concat!("Exports of the `", $world, "` world.")]
        pub mod $module {
            wit_bindgen::generate!({
                path: "wit",
                world: $world,
                with: {
                    "warren:game/types@0.1.0": crate::bindings::platform::warren::game::types,
                    "warren:game/log@0.1.0": crate::bindings::platform::warren::game::log,
                    "warren:game/messaging@0.1.0": crate::bindings::platform::warren::game::messaging,
                    "warren:game/state@0.1.0": crate::bindings::platform::warren::game::state,
                    "warren:game/env@0.1.0": crate::bindings::platform::warren::game::env,
                },
                pub_export_macro: true,
                export_macro_name: $export_macro,
                default_bindings_module: $bindings,
            });
        }
    };
}

role_world!("baseapp", baseapp, "baseapp", "__export_baseapp_world", "warren_guest::bindings::baseapp");
role_world!("battle", battle, "battle", "__export_battle_world", "warren_guest::bindings::battle");
role_world!("guild", guild, "guild", "__export_guild_world", "warren_guest::bindings::guild");
role_world!("team", team, "team", "__export_team_world", "warren_guest::bindings::team");
role_world!("matchmaker", matchmaker, "matchmaker", "__export_matchmaker_world", "warren_guest::bindings::matchmaker");
