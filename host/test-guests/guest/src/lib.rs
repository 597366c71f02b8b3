//! A guest for the host's tests. Its handlers do what a frame's `type` asks — including
//! the faults the host must survive: a panic, an endless loop, a memory bomb, a flood of
//! messages — so each fault is exercised by source, not by a committed binary.

use warren_guest::prelude::*;

/// The version this build answers with.
pub const VERSION: u32 = if cfg!(feature = "v2") { 2 } else { 1 };

/// A frame asking for one behaviour.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
enum Ask {
    /// Count one more, reply the count and the version.
    Count,
    /// Reply `size` bytes (the call-path benchmark's payload).
    Echo { payload: String },
    /// Write state, then panic.
    Trap,
    /// Write state, then loop forever.
    Loop,
    /// Allocate until something gives.
    Bomb,
    /// Send `n` messages.
    Flood { n: u32 },
    /// Reply `bytes` bytes, in replies of 32 KiB.
    Big { bytes: usize },
    /// Reply the host's time and two random numbers.
    Env,
    /// Send a message of kind `kind` (default `hello`) to a player.
    Send { to: u64, kind: Option<String> },
    /// Refuse with a reason of `bytes` bytes.
    Refuse { bytes: usize },
    /// Log a line of `bytes` bytes.
    Log { bytes: usize },
    /// Store `bytes` bytes under `key`.
    Store { key: String, bytes: usize },
    /// Store `n` one-byte values under keys of their own.
    Keys { n: u32 },
    /// Push a frame of `bytes` bytes to a player.
    Push { to: u64, bytes: usize },
    /// Spin `iters` rounds of busy work, then reply how many.
    Spin { iters: u64 },
    /// Start a chain of messages to this player: each one handled sends `fanout` more.
    Chain { fanout: u32 },
    /// Keep `mib` MiB more in this instance's memory (a leak), and reply the total.
    Hoard { mib: usize },
    /// Recurse without end, with a frame in linear memory: the guest's own stack overflows.
    Recurse,
    /// Recurse without end in wasm locals only: the engine's call stack runs out.
    Deep,
}

/// Memory the `big-memory` build asks for at start (zero-initialised: it does not grow
/// the file).
#[cfg(feature = "big-memory")]
static mut BIG: [u8; 256 << 20] = [0; 256 << 20];
#[cfg(not(feature = "big-memory"))]
static mut BIG: [u8; 0] = [];

/// What `hoard` keeps: lives as long as the instance.
static HOARD: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::new(Vec::new());

/// Recurses until the stack runs out; the black boxes keep it a real recursion.
#[allow(unconditional_recursion)]
fn recurse(n: u64) -> u64 {
    let frame = std::hint::black_box([n; 16]);
    recurse(std::hint::black_box(n + 1)).wrapping_add(frame[n as usize % 16])
}

/// Recurses until the engine's call stack runs out (no frame in linear memory).
#[allow(unconditional_recursion)]
fn deep(n: u64) -> u64 {
    deep(std::hint::black_box(n.wrapping_mul(3))).wrapping_add(n)
}

/// The player logic of the test guest.
pub struct TestPlayer;

fn count() -> Outcome<u64> {
    let n: u64 = state::get("count")?.unwrap_or(0) + 1;
    state::set("count", &n);
    Ok(n)
}

impl Player for TestPlayer {
    fn init() -> Outcome {
        if cfg!(feature = "bad-init") {
            return Err(Reject::new("this build refuses to start"));
        }
        if cfg!(feature = "init-loop") {
            let mut i: u64 = 0;
            loop {
                i = std::hint::black_box(i.wrapping_add(1));
            }
        }
        if cfg!(feature = "big-memory") {
            // 256 MiB of zeroes: no bigger a file, but memory the module asks for at once.
            std::hint::black_box(std::ptr::addr_of!(BIG));
        }
        Ok(())
    }

    fn on_login(_player: PlayerId, name: &str) -> Outcome {
        state::set("name", name);
        msg::reply(&serde_json::json!({"type": "hello", "name": name, "version": VERSION}));
        Ok(())
    }

    fn on_client(player: PlayerId, frame: &[u8]) -> Outcome {
        match decode_frame::<Ask>(frame)? {
            Ask::Count => {
                let n = count()?;
                msg::reply(&serde_json::json!({"type": "count", "count": n, "version": VERSION}));
            }
            Ask::Echo { payload } => msg::reply(&payload),
            Ask::Trap => {
                count()?;
                panic!("asked to trap");
            }
            Ask::Loop => {
                count()?;
                let mut i: u64 = 0;
                loop {
                    i = std::hint::black_box(i.wrapping_add(1));
                }
            }
            Ask::Bomb => {
                count()?;
                // Reserve without touching: the bomb is the asking, not the writing (which
                // would make it a race against the deadline).
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    let mut chunk = Vec::with_capacity(1 << 20);
                    chunk.push(1u8);
                    hoard.push(chunk);
                    std::hint::black_box(&hoard);
                }
            }
            Ask::Flood { n } => {
                count()?;
                for i in 0..n {
                    msg::send(Address::Player(player), "flood", &i);
                }
            }
            Ask::Big { bytes } => {
                let chunk = "x".repeat(32 << 10);
                let mut left = bytes;
                while left > 0 {
                    let n = left.min(chunk.len());
                    msg::reply(&chunk[..n]);
                    left -= n;
                }
            }
            Ask::Env => {
                let frame = serde_json::json!({"now": env::now_ms(), "r1": env::random(), "r2": env::random()});
                msg::reply(&frame);
            }
            Ask::Send { to, kind } => {
                msg::send(Address::Player(to), kind.as_deref().unwrap_or("hello"), &player);
                msg::reply(&serde_json::json!({"type": "sent", "to": to}));
            }
            Ask::Refuse { bytes } => return Err(Reject::new("r".repeat(bytes))),
            Ask::Log { bytes } => log::info(&"l".repeat(bytes)),
            Ask::Store { key, bytes } => state::set(&key, &"s".repeat(bytes)),
            Ask::Keys { n } => {
                for i in 0..n {
                    state::set(&format!("k{i}"), &0u8);
                }
            }
            Ask::Push { to, bytes } => msg::push(to, &"p".repeat(bytes)),
            Ask::Spin { iters } => {
                let mut x: u64 = 0;
                for i in 0..iters {
                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
                }
                msg::reply(&serde_json::json!({"type": "spun", "iters": iters, "x": x}));
            }
            Ask::Hoard { mib } => {
                let mut hoard = HOARD.lock().unwrap_or_else(|e| e.into_inner());
                for _ in 0..mib {
                    hoard.push(vec![7u8; 1 << 20]);
                }
                msg::reply(&serde_json::json!({"type": "hoarded", "mib": hoard.len()}));
            }
            Ask::Recurse => msg::reply(&recurse(std::hint::black_box(1))),
            Ask::Deep => msg::reply(&deep(std::hint::black_box(1))),
            Ask::Chain { fanout } => {
                for _ in 0..fanout {
                    msg::send(Address::Player(player), "chain", &fanout);
                }
            }
        }
        Ok(())
    }

    fn on_message(player: PlayerId, msg: Message) -> Outcome {
        let n = count()?;
        if msg.kind == "bench" {
            // The bus benchmark's message: applied to state, nothing else.
            return Ok(());
        }
        if msg.kind == "trap" {
            panic!("asked to trap on a message");
        }
        if msg.kind == "chain" {
            // A storm: every link sends `fanout` more, and nothing in the module stops it.
            let fanout: u32 = serde_json::from_slice(&msg.body).unwrap_or(1);
            for _ in 0..fanout {
                msg::send(Address::Player(player), "chain", &fanout);
            }
            return Ok(());
        }
        log::info(&format!("message {} #{n}", msg.kind));
        msg::push(player, &serde_json::json!({"type": "got", "kind": msg.kind, "count": n}));
        Ok(())
    }
}

#[cfg(feature = "player")]
warren_guest::export_player!(TestPlayer);

/// A room whose counter ticks; it carries the version of the module it was last restored
/// by, so a test sees the move.
#[derive(Serialize, Deserialize)]
pub struct TestRoom {
    id: u64,
    ticks: u64,
    inputs: Vec<u64>,
    restored_by: u32,
    /// Set by an input holding `break-ticks`: every tick after it panics (a room that
    /// keeps failing).
    #[serde(default)]
    broken: bool,
}

impl Room for TestRoom {
    fn init() -> Outcome {
        if cfg!(feature = "bad-init") {
            return Err(Reject::new("this build refuses to start"));
        }
        Ok(())
    }

    fn create(room: u64, _setup: &[u8]) -> Outcome<Self> {
        Ok(TestRoom { id: room, ticks: 0, inputs: Vec::new(), restored_by: VERSION, broken: false })
    }

    fn input(&mut self, player: PlayerId, input: &[u8]) -> Outcome {
        self.inputs.push(player);
        match input {
            b"trap" => panic!("asked to trap"),
            b"reject" => Err(Reject::new("asked to reject")),
            _ if input.windows(11).any(|w| w == b"break-ticks") => {
                self.broken = true;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn tick(&mut self, tick: u64) -> Outcome<RoomStatus> {
        assert!(!self.broken, "asked to break every tick");
        self.ticks += 1;
        let frame = serde_json::json!({"room": self.id, "tick": tick, "ticks": self.ticks,
            "inputs": self.inputs.len(), "version": VERSION, "restored_by": self.restored_by});
        msg::push(1, &frame);
        Ok(RoomStatus::Running)
    }

    fn restore(snapshot: &[u8]) -> Outcome<Self> {
        if cfg!(feature = "bad-restore") {
            return Err(Reject::new("this build cannot restore rooms"));
        }
        let mut room: TestRoom = serde_json::from_slice(snapshot).map_err(|e| Reject::new(e.to_string()))?;
        room.restored_by = VERSION;
        Ok(room)
    }
}

#[cfg(feature = "room")]
warren_guest::export_room!(TestRoom);
