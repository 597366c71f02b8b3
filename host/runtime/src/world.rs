//! The role worlds of the contract, as types the generic machinery (loading, swapping,
//! calling under limits) is written against once.

use crate::bindings;
use crate::call::HostState;
use crate::limits::Limits;
use crate::module::GuestStore;
use wasmtime::component::InstancePre;

/// A role's WIT world: how to check a component against it, instantiate it and run its
/// `init`.
pub trait World: Sized + Send + Sync + 'static {
    /// The world's name in the contract (`baseapp`, `battle`, ...).
    const NAME: &'static str;
    /// A component pre-linked for this world, exports looked up.
    type Pre: Clone + Send + Sync + 'static;
    /// A live instance's exports.
    type Guest: Send + 'static;
    /// Checks the component's exports against the world.
    fn pre(pre: InstancePre<HostState>) -> wasmtime::Result<Self::Pre>;
    /// Instantiates in `store`.
    fn instantiate(pre: &Self::Pre, store: &mut GuestStore) -> wasmtime::Result<Self::Guest>;
    /// Calls the `init` export.
    fn init(guest: &Self::Guest, store: &mut GuestStore) -> wasmtime::Result<Result<(), String>>;
    /// The most bytes one entity's state may hold in this role.
    fn state_quota(limits: &Limits) -> usize;
}

macro_rules! world {
    ($(#[$doc:meta])* $name:ident, $wit:literal, $module:ident, $guest:ident, $pre:ident, $quota:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $name;

        impl World for $name {
            const NAME: &'static str = $wit;
            type Pre = bindings::$module::$pre<HostState>;
            type Guest = bindings::$module::$guest;

            fn pre(pre: InstancePre<HostState>) -> wasmtime::Result<Self::Pre> {
                bindings::$module::$pre::new(pre)
            }

            fn instantiate(pre: &Self::Pre, store: &mut GuestStore) -> wasmtime::Result<Self::Guest> {
                pre.instantiate(store)
            }

            fn init(guest: &Self::Guest, store: &mut GuestStore) -> wasmtime::Result<Result<(), String>> {
                guest.warren_game_lifecycle().call_init(store)
            }

            fn state_quota(limits: &Limits) -> usize {
                limits.state_bytes.$quota
            }
        }
    };
}

world!(
    /// The baseapp role: player sessions and player data.
    Baseapp, "baseapp", baseapp, Baseapp, BaseappPre, baseapp
);
world!(
    /// The battleapp role: battle rooms.
    Battle, "battle", battle, Battle, BattlePre, battle
);
world!(
    /// The guild role.
    Guild, "guild", guild, Guild, GuildPre, guild
);
world!(
    /// The team role.
    Team, "team", team, Team, TeamPre, team
);
world!(
    /// The match role.
    Matchmaker, "matchmaker", matchmaker, Matchmaker, MatchmakerPre, matchmaker
);
