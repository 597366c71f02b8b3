//! Host bindings of the WIT contract (`guest-sdk/wit`), generated once here.
//!
//! The platform imports are generated once, in [`platform`], and every role world maps
//! them there with `with`, so one implementation of the host capabilities
//! ([`crate::call::HostState`]) serves all roles.

/// The host capabilities every world imports.
pub mod platform {
    wasmtime::component::bindgen!({
        path: "../../guest-sdk/wit",
        world: "platform",
        imports: { default: trappable },
        additional_derives: [PartialEq, Eq, Hash],
    });
}

macro_rules! role_world {
    ($module:ident, $world:tt) => {
        #[doc = concat!("The `", $world, "` world.")]
        pub mod $module {
            wasmtime::component::bindgen!({
                path: "../../guest-sdk/wit",
                world: $world,
                imports: { default: trappable },
                with: {
                    "warren:game/types": crate::bindings::platform::warren::game::types,
                    "warren:game/log": crate::bindings::platform::warren::game::log,
                    "warren:game/messaging": crate::bindings::platform::warren::game::messaging,
                    "warren:game/state": crate::bindings::platform::warren::game::state,
                    "warren:game/env": crate::bindings::platform::warren::game::env,
                },
            });
        }
    };
}

role_world!(baseapp, "baseapp");
role_world!(battle, "battle");
role_world!(guild, "guild");
role_world!(team, "team");
role_world!(matchmaker, "matchmaker");

pub use platform::warren::game::log::Level;
pub use platform::warren::game::types::{Address, Message};
