//! The roles of a Warren cluster, named once. Everything that lists roles — module
//! names, membership names, validation of an upload, the `/modules` page — goes through
//! [`Role`], so a new role is one new variant, not an edit of hand-kept lists.

use warren_runtime::{Baseapp, Battle, Guild, LoadError, Matchmaker, Runtime, Team, World};

/// A role: a kind of host process and the world its module implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Player sessions and player data.
    Baseapp,
    /// Battle rooms on a tick loop.
    Battleapp,
    /// Guilds, in groups.
    Guild,
    /// Teams, in groups.
    Team,
    /// Matchmaking queues.
    Match,
}

impl Role {
    /// Every role, in a fixed order.
    pub const ALL: [Role; 5] = [Role::Baseapp, Role::Battleapp, Role::Guild, Role::Team, Role::Match];

    /// The process role's name: the `warren <name>` command and its membership name.
    pub fn name(self) -> &'static str {
        match self {
            Role::Baseapp => "baseapp",
            Role::Battleapp => "battleapp",
            Role::Guild => "guild",
            Role::Team => "team",
            Role::Match => "match",
        }
    }

    /// The name of the role's world in the contract: its module is `modules/<world>.wasm`
    /// and is published under this name.
    pub fn world(self) -> &'static str {
        match self {
            Role::Baseapp => Baseapp::NAME,
            Role::Battleapp => Battle::NAME,
            Role::Guild => Guild::NAME,
            Role::Team => Team::NAME,
            Role::Match => Matchmaker::NAME,
        }
    }

    /// The role whose world is named `world`.
    pub fn of_world(world: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.world() == world)
    }

    /// The world names, for messages (`baseapp, battle, guild, team, matchmaker`).
    pub fn world_names() -> String {
        Role::ALL.map(Role::world).join(", ")
    }

    /// Checks `bytes` as a module of this role's world: compiles it, checks it against the
    /// world and runs its `init`. Slow: call it off the serving path.
    pub fn validate(self, runtime: &Runtime, bytes: &[u8]) -> Result<(), LoadError> {
        match self {
            Role::Baseapp => runtime.load::<Baseapp>(bytes).map(drop),
            Role::Battleapp => runtime.load::<Battle>(bytes).map(drop),
            Role::Guild => runtime.load::<Guild>(bytes).map(drop),
            Role::Team => runtime.load::<Team>(bytes).map(drop),
            Role::Match => runtime.load::<Matchmaker>(bytes).map(drop),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_role_maps_to_its_world_and_back() {
        for role in Role::ALL {
            assert_eq!(Role::of_world(role.world()), Some(role));
        }
        assert_eq!(Role::of_world("battle"), Some(Role::Battleapp));
        assert_eq!(Role::of_world("battleapp"), None, "modules are named by world");
        assert_eq!(Role::world_names(), "baseapp, battle, guild, team, matchmaker");
    }
}
