//! The glue between the handler traits and each world's generated exports. The macros
//! expand in the script's crate; on the host target they expand to nothing, so scripts
//! build natively for their tests.

#[cfg(target_arch = "wasm32")]
use crate::{Address, Message};

#[cfg(target_arch = "wasm32")]
use crate::bindings::platform::warren::game::types as wit;

/// Converts an address to its WIT form.
#[cfg(target_arch = "wasm32")]
pub(crate) fn address_to_wit(a: &Address) -> wit::Address {
    match a {
        Address::Player(id) => wit::Address::Player(*id),
        Address::Guild(id) => wit::Address::Guild(*id),
        Address::Team(id) => wit::Address::Team(*id),
        Address::Battle(id) => wit::Address::Battle(*id),
        Address::MatchQueue(q) => wit::Address::MatchQueue(q.clone()),
    }
}

/// Converts a message from its WIT form.
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub fn message_from_wit(m: wit::Message) -> Message {
    let sender = m.sender.map(|a| match a {
        wit::Address::Player(id) => Address::Player(id),
        wit::Address::Guild(id) => Address::Guild(id),
        wit::Address::Team(id) => Address::Team(id),
        wit::Address::Battle(id) => Address::Battle(id),
        wit::Address::MatchQueue(q) => Address::MatchQueue(q),
    });
    Message { sender, kind: m.kind, body: m.body }
}

/// What a guest's panic hook writes before the call traps: the host reads the line back
/// out of the failed call's logs, so a fault says where and why the guest panicked
/// (`panicked at src/items.rs:42:9: index out of bounds ...`).
pub const PANIC_PREFIX: &str = "panicked at ";

/// Installs, once per instance, the panic hook that tells the host where and why the
/// guest panicked (see [`PANIC_PREFIX`]). Every export calls it first.
#[doc(hidden)]
pub fn hook_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let at = info.location().map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column())).unwrap_or_default();
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".to_owned());
            // Bounded like any log line: the host caps what a call may write.
            let mut line = format!("{PANIC_PREFIX}{at}: {message}");
            line.truncate(line.floor_char_boundary(1024));
            crate::log::write(crate::log::Level::Error, &line);
        }));
    });
}

/// Holds the one room of a battle instance between calls. A wasm instance is
/// single-threaded, so a thread-local cell is the whole of its memory.
#[doc(hidden)]
pub mod room_cell {
    use std::cell::RefCell;

    thread_local! {
        static ROOM: RefCell<Option<Box<dyn std::any::Any>>> = const { RefCell::new(None) };
    }

    /// Runs `f` on the room, or fails if none was created or restored.
    pub fn with<T: 'static, R>(f: impl FnOnce(&mut T) -> Result<R, String>) -> Result<R, String> {
        ROOM.with(|cell| {
            let mut cell = cell.borrow_mut();
            let room = cell
                .as_mut()
                .and_then(|b| b.downcast_mut::<T>())
                .ok_or_else(|| "no room in this instance: call create or restore first".to_owned())?;
            f(room)
        })
    }

    /// Installs the room of this instance.
    pub fn put<T: 'static>(room: T) {
        ROOM.with(|cell| *cell.borrow_mut() = Some(Box::new(room)));
    }
}

/// Exports a [`crate::Player`] implementation as the `baseapp` world.
#[macro_export]
macro_rules! export_player {
    ($ty:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            use $crate::bindings::baseapp::exports::warren::game as ex;
            use $crate::bindings::platform::warren::game::types as wit;
            struct WarrenExport;
            impl ex::lifecycle::Guest for WarrenExport {
                fn init() -> Result<(), String> {
                    $crate::__hook_panics();
                    <$ty as $crate::Player>::init().map_err(|r| r.0)
                }
            }
            impl ex::player::Guest for WarrenExport {
                fn on_login(player: u64, name: String) -> Result<(), String> {
                    $crate::__hook_panics();
                    <$ty as $crate::Player>::on_login(player, &name).map_err(|r| r.0)
                }
                fn on_client(player: u64, frame: Vec<u8>) -> Result<(), String> {
                    $crate::__hook_panics();
                    <$ty as $crate::Player>::on_client(player, &frame).map_err(|r| r.0)
                }
                fn on_message(player: u64, msg: wit::Message) -> Result<(), String> {
                    $crate::__hook_panics();
                    let msg = $crate::__message_from_wit(msg);
                    <$ty as $crate::Player>::on_message(player, msg).map_err(|r| r.0)
                }
                fn on_logout(player: u64) -> Result<(), String> {
                    $crate::__hook_panics();
                    <$ty as $crate::Player>::on_logout(player).map_err(|r| r.0)
                }
            }
            $crate::bindings::baseapp::__export_baseapp_world!(
                WarrenExport with_types_in $crate::bindings::baseapp
            );
        };
    };
}

/// Exports a [`crate::Room`] implementation as the `battle` world.
#[macro_export]
macro_rules! export_room {
    ($ty:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            use $crate::__room_cell as cell;
            use $crate::bindings::battle::exports::warren::game as ex;
            struct WarrenExport;
            impl ex::lifecycle::Guest for WarrenExport {
                fn init() -> Result<(), String> {
                    $crate::__hook_panics();
                    <$ty as $crate::Room>::init().map_err(|r| r.0)
                }
            }
            impl ex::room::Guest for WarrenExport {
                fn create(room: u64, setup: Vec<u8>) -> Result<(), String> {
                    $crate::__hook_panics();
                    let r = <$ty as $crate::Room>::create(room, &setup).map_err(|r| r.0)?;
                    cell::put(r);
                    Ok(())
                }
                fn input(player: u64, input: Vec<u8>) -> Result<(), String> {
                    $crate::__hook_panics();
                    cell::with(|r: &mut $ty| $crate::Room::input(r, player, &input).map_err(|r| r.0))
                }
                fn tick(tick: u64) -> Result<ex::room::RoomStatus, String> {
                    $crate::__hook_panics();
                    cell::with(|r: &mut $ty| match $crate::Room::tick(r, tick) {
                        Ok($crate::RoomStatus::Running) => Ok(ex::room::RoomStatus::Running),
                        Ok($crate::RoomStatus::Finished) => Ok(ex::room::RoomStatus::Finished),
                        Err(e) => Err(e.0),
                    })
                }
                fn snapshot() -> Vec<u8> {
                    $crate::__hook_panics();
                    cell::with(|r: &mut $ty| Ok($crate::Room::snapshot(r))).unwrap_or_default()
                }
                fn restore(snapshot: Vec<u8>) -> Result<(), String> {
                    $crate::__hook_panics();
                    let r = <$ty as $crate::Room>::restore(&snapshot).map_err(|r| r.0)?;
                    cell::put(r);
                    Ok(())
                }
            }
            $crate::bindings::battle::__export_battle_world!(
                WarrenExport with_types_in $crate::bindings::battle
            );
        };
    };
}

/// Exports a [`crate::Group`] implementation as the `guild` or `team` world:
/// `export_group!(guild, MyGuild)` or `export_group!(team, MyTeam)`.
#[macro_export]
macro_rules! export_group {
    (guild, $ty:ty) => {
        $crate::__export_group!($ty, guild, __export_guild_world);
    };
    (team, $ty:ty) => {
        $crate::__export_group!($ty, team, __export_team_world);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __export_group {
    ($ty:ty, $world:ident, $export:ident) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            use $crate::bindings::platform::warren::game::types as wit;
            use $crate::bindings::$world::exports::warren::game as ex;
            struct WarrenExport;
            impl ex::lifecycle::Guest for WarrenExport {
                fn init() -> Result<(), String> {
                    $crate::__hook_panics();
                    <$ty as $crate::Group>::init().map_err(|r| r.0)
                }
            }
            impl ex::group::Guest for WarrenExport {
                fn on_message(id: u64, msg: wit::Message) -> Result<(), String> {
                    $crate::__hook_panics();
                    let msg = $crate::__message_from_wit(msg);
                    <$ty as $crate::Group>::on_message(id, msg).map_err(|r| r.0)
                }
            }
    $crate::bindings::$world::$export!(WarrenExport with_types_in $crate::bindings::$world);
        };
    };
}

/// Exports a [`crate::Matchmaker`] implementation as the `matchmaker` world.
#[macro_export]
macro_rules! export_matchmaker {
    ($ty:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            use $crate::bindings::matchmaker::exports::warren::game as ex;
            use $crate::bindings::platform::warren::game::types as wit;
            struct WarrenExport;
            impl ex::lifecycle::Guest for WarrenExport {
                fn init() -> Result<(), String> {
                    $crate::__hook_panics();
                    <$ty as $crate::Matchmaker>::init().map_err(|r| r.0)
                }
            }
            impl ex::matchmaking::Guest for WarrenExport {
                fn on_message(queue: String, msg: wit::Message) -> Result<(), String> {
                    $crate::__hook_panics();
                    let msg = $crate::__message_from_wit(msg);
                    <$ty as $crate::Matchmaker>::on_message(&queue, msg).map_err(|r| r.0)
                }
                fn on_tick(queue: String) -> Result<(), String> {
                    $crate::__hook_panics();
                    <$ty as $crate::Matchmaker>::on_tick(&queue).map_err(|r| r.0)
                }
            }
            $crate::bindings::matchmaker::__export_matchmaker_world!(
                WarrenExport with_types_in $crate::bindings::matchmaker
            );
        };
    };
}
