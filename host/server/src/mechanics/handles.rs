//! The typed call of each role's world on a queue message: [`Handles`], implemented once
//! per world.

use warren_bus::{Address, EntityState};
use warren_runtime::{
    Baseapp, Battle, CallEnv, CallError, CallResult, Guild, Instance, Matchmaker, Message, Team, World,
};

/// A world whose entities handle queue messages: the role's typed call.
pub trait Handles: World {
    /// Calls the handler of `entity` for `msg`. An entity of the wrong kind is refused.
    fn on_message(
        i: &mut Instance<Self>,
        st: &mut EntityState,
        env: CallEnv,
        to: &Address,
        msg: &Message,
    ) -> CallResult;
}

fn wrong_kind(role: &str, to: &Address) -> CallResult {
    Err(CallError::Rejected(format!("{} is not an entity of the {role} role", to.tag())))
}

/// `Handles` for a world whose entities are one kind of address, called with its key.
macro_rules! handles {
    ($world:ty, $variant:ident) => {
        impl Handles for $world {
            fn on_message(
                i: &mut Instance<Self>,
                st: &mut EntityState,
                env: CallEnv,
                to: &Address,
                msg: &Message,
            ) -> CallResult {
                match to {
                    Address::$variant(key) => i.on_message(st, env, key.clone(), msg),
                    other => wrong_kind(Self::NAME, other),
                }
            }
        }
    };
}

handles!(Baseapp, Player);
handles!(Guild, Guild);
handles!(Team, Team);

impl Handles for Matchmaker {
    fn on_message(
        i: &mut Instance<Self>,
        st: &mut EntityState,
        env: CallEnv,
        to: &Address,
        msg: &Message,
    ) -> CallResult {
        match to {
            Address::MatchQueue(q) => i.on_message(st, env, q, msg),
            other => wrong_kind(Self::NAME, other),
        }
    }
}

impl Handles for Battle {
    /// Rooms take their own messages (`$create`, `$input`); no room handler takes others.
    fn on_message(_: &mut Instance<Self>, _: &mut EntityState, _: CallEnv, to: &Address, _: &Message) -> CallResult {
        wrong_kind(Self::NAME, to)
    }
}
