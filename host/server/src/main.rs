//! `warren`: the host processes of a Warren cluster.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use warren::config::{BaseappFlags, DevConfig, HostFlags};

#[derive(Parser)]
#[command(name = "warren", version, about = "Game servers whose logic is WebAssembly, swapped live.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Everything in one process on the embedded bus: WebSocket on /ws, modules/ watched.
    Dev {
        /// Configuration file (see config/dev.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Listen address, overriding the configuration.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Modules folder, overriding the configuration.
        #[arg(long)]
        modules: Option<PathBuf>,
        /// Let clients log in by name alone, without an account (`{"type":"login","name":"ann"}`):
        /// for trying things out; anyone may then play as anyone. Never on a cluster role.
        #[arg(long)]
        name_login: bool,
    },
    /// A terminal game client: one frame per line, JSON or `type key=value ...`. At the
    /// end of its input it waits for the last answers, then leaves (for shell scripts).
    Play {
        /// The name to log in with.
        #[arg(long)]
        name: String,
        /// The account's password (the account is registered the first time). Without one,
        /// the name alone logs in, which only `warren dev --name-login` allows.
        #[arg(long)]
        password: Option<String>,
        /// The server's WebSocket.
        #[arg(long, default_value = "ws://127.0.0.1:7700/ws")]
        url: String,
        /// After the end of the input, leave once no frame came for this long (ms).
        #[arg(long, default_value_t = 1000)]
        wait_ms: u64,
        /// Print only the server's frames, one JSON object per line (nothing else on stdout).
        #[arg(long)]
        json: bool,
    },
    /// A baseapp of a cluster: player sessions on a WebSocket (/ws), players owned by lease.
    Baseapp {
        #[command(flatten)]
        host: HostFlags,
        #[command(flatten)]
        baseapp: BaseappFlags,
    },
    /// A battleapp of a cluster: battle rooms on a tick loop, owned by lease; clients join
    /// a battle on its WebSocket (/ws) with a ticket.
    Battleapp {
        #[command(flatten)]
        host: HostFlags,
        #[command(flatten)]
        battleapp: warren::config::BattleappFlags,
    },
    /// A guild host of a cluster: owns its share of the guild groups.
    Guild {
        #[command(flatten)]
        host: HostFlags,
    },
    /// Prints the nginx configuration of the gateway in front of a cluster: TLS at one
    /// address, players spread over the baseapps, battles routed to their battleapps.
    GatewayConfig {
        /// The public address (host:port).
        #[arg(long, default_value = "0.0.0.0:443")]
        listen: String,
        /// The TLS certificate (PEM).
        #[arg(long)]
        cert: PathBuf,
        /// The certificate's key (PEM).
        #[arg(long)]
        key: PathBuf,
        /// A baseapp (host:port); once per baseapp.
        #[arg(long = "baseapp", required = true)]
        baseapps: Vec<String>,
        /// A battleapp as NAME=host:port, reached at /battle/NAME/ (start it with
        /// --public-url wss://<gateway>/battle/NAME/ws); once per battleapp.
        #[arg(long = "battleapp")]
        battleapps: Vec<String>,
        /// Where nginx keeps its pid file, logs and buffers.
        #[arg(long, default_value = "/var/lib/warren-gateway")]
        runtime_dir: PathBuf,
    },
    /// Validates the modules in a folder and publishes them to a cluster; hosts swap live.
    Publish {
        /// The message center.
        #[arg(long)]
        redis: String,
        /// The folder of <role>.wasm files.
        #[arg(long, default_value = "modules")]
        modules: PathBuf,
    },
    /// Lists or replays the messages set aside after failing.
    DeadLetters {
        /// The message center.
        #[arg(long)]
        redis: String,
        #[command(subcommand)]
        action: DeadLetterAction,
    },
    /// Makes a new script crate that builds, tests and runs as it is: in this workspace's
    /// scripts/ (added to its members), or with --standalone as a project of its own.
    /// Run it again with --workspace <that project> to add a script of another role.
    New {
        /// The crate's name (lowercase letters, digits, - and _).
        name: String,
        /// The role it serves: baseapp (player logic), battle (a battle room) or guild.
        #[arg(long, default_value = "baseapp")]
        role: String,
        /// The Warren workspace to add it to.
        #[arg(long, default_value = ".")]
        workspace: PathBuf,
        /// Make a standalone project in this new folder instead, depending on the guest
        /// SDK by --sdk-path or --sdk-git.
        #[arg(long, value_name = "DIR")]
        standalone: Option<PathBuf>,
        /// The guest SDK's folder (guest-sdk/ of a Warren checkout), for --standalone.
        #[arg(long, value_name = "PATH", conflicts_with = "sdk_git")]
        sdk_path: Option<PathBuf>,
        /// A git URL of Warren, for --standalone.
        #[arg(long, value_name = "URL")]
        sdk_git: Option<String>,
    },
    /// Builds every script crate in scripts/ into modules/<role>.wasm (crates without
    /// [package.metadata.warren] are shared libraries, not built on their own).
    Build {
        /// The workspace holding scripts/.
        #[arg(long, default_value = ".")]
        workspace: PathBuf,
        /// Where to write the modules.
        #[arg(long, default_value = "modules")]
        out: PathBuf,
        /// Build only the script of this role (baseapp, battle, guild, team, matchmaker).
        #[arg(long)]
        role: Option<String>,
        /// Check a new battle module against the rooms a running `warren dev` plays (at
        /// this URL; default http://127.0.0.1:7700): it is written only if it restores
        /// every room's snapshot.
        #[arg(long, value_name = "URL", num_args = 0..=1, default_missing_value = "http://127.0.0.1:7700")]
        check_rooms: Option<String>,
    },
}

#[derive(Subcommand)]
enum DeadLetterAction {
    /// Prints the dead letters of one queue, or of all.
    List {
        /// A queue: p:<player>, g:<group>, t:<team>, b:<battle>, m:<name>.
        #[arg(long)]
        queue: Option<String>,
    },
    /// Puts dead letters back at the end of their queue (after the script is fixed).
    Replay {
        /// The queue.
        #[arg(long)]
        queue: String,
        /// One dead letter's id; all of the queue's without it.
        #[arg(long)]
        id: Option<String>,
    },
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().context("cannot start the async runtime")
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,cranelift=warn,wasmtime=warn".into()),
        )
        .init();
    warren::mechanics::memory::give_back_every(warren::mechanics::memory::GIVE_BACK_EVERY);
    match Cli::parse().command {
        Command::Baseapp { host, baseapp } => {
            let config = host.resolve(&baseapp)?;
            runtime()?.block_on(async {
                let host =
                    warren::mechanics::cluster::Host::connect(warren::roles::baseapp::ROLE.name(), &config).await?;
                warren::roles::baseapp::main(host, config.baseapp.listen).await
            })
        }
        Command::Battleapp { host, battleapp } => {
            let config = host.resolve(&battleapp)?;
            runtime()?.block_on(async {
                let host =
                    warren::mechanics::cluster::Host::connect(warren::roles::battleapp::ROLE.name(), &config).await?;
                warren::roles::battleapp::main(host, &config).await
            })
        }
        Command::Guild { host } => {
            let config = host.resolve(&())?;
            runtime()?.block_on(async {
                let host =
                    warren::mechanics::cluster::Host::connect(warren::roles::guild::ROLE.name(), &config).await?;
                warren::roles::guild::main(host).await
            })
        }
        Command::GatewayConfig { listen, cert, key, baseapps, battleapps, runtime_dir } => {
            let battleapps = battleapps
                .iter()
                .map(|b| b.split_once('=').map(|(n, a)| (n.to_owned(), a.to_owned())))
                .collect::<Option<Vec<_>>>()
                .context("--battleapp is NAME=host:port")?;
            let gateway = warren::tools::gateway::Gateway { listen, cert, key, baseapps, battleapps, runtime_dir };
            gateway.check().map_err(|e| anyhow::anyhow!("{e}"))?;
            print!("{}", gateway.render());
            Ok(())
        }
        Command::Publish { redis, modules } => runtime()?.block_on(async {
            let bus = warren_bus::Bus::redis_with_groups(&redis, 0).await?;
            warren::tools::admin::publish(&bus, &modules).await.map(drop)
        }),
        Command::DeadLetters { redis, action } => runtime()?.block_on(async {
            let bus = warren_bus::Bus::redis_with_groups(&redis, 0).await?;
            match action {
                DeadLetterAction::List { queue } => {
                    let queue = queue.as_deref().map(warren::tools::admin::parse_queue).transpose()?;
                    warren::tools::admin::list_dead_letters(&bus, queue).await.map(drop)
                }
                DeadLetterAction::Replay { queue, id } => {
                    let queue = warren::tools::admin::parse_queue(&queue)?;
                    warren::tools::admin::replay_dead_letters(&bus, &queue, id.as_deref()).await.map(drop)
                }
            }
        }),
        Command::New { name, role, workspace, standalone, sdk_path, sdk_git } => {
            use warren::tools::new::{Place, Sdk, new_script};
            let place = match (standalone, sdk_path, sdk_git) {
                (None, None, None) => Place::Workspace(workspace),
                (Some(dir), Some(path), None) => Place::Standalone(dir, Sdk::Path(path)),
                (Some(dir), None, Some(url)) => Place::Standalone(dir, Sdk::Git(url)),
                (Some(_), None, None) => {
                    anyhow::bail!("--standalone needs --sdk-path or --sdk-git: where the guest SDK is")
                }
                (None, _, _) => anyhow::bail!("--sdk-path and --sdk-git are for --standalone projects"),
                (Some(_), Some(_), Some(_)) => unreachable!("clap refuses both"),
            };
            let dir = new_script(&name, &role, &place)?;
            println!("made {}: `cargo test -p {name}`, then `warren build` and `warren dev`", dir.display());
            Ok(())
        }
        Command::Build { workspace, out, role, check_rooms } => {
            let options = warren::tools::build::BuildOptions { role, check_rooms };
            warren::tools::build::build_scripts(&workspace, &out, &options)
        }
        Command::Play { name, password, url, wait_ms, json } => {
            let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            let options = warren::tools::play::Options { wait: std::time::Duration::from_millis(wait_ms), json };
            rt.block_on(warren::tools::play::play(&url, &name, password.as_deref(), options))
        }
        Command::Dev { config, listen, modules, name_login } => {
            let mut cfg = match config {
                Some(path) => DevConfig::load(&path)?,
                None => DevConfig::default(),
            };
            if let Some(listen) = listen {
                cfg.listen = listen;
            }
            if let Some(modules) = modules {
                cfg.modules = modules;
            }
            cfg.name_login |= name_login;
            let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            rt.block_on(async {
                let server = warren::roles::dev::start(cfg, async {
                    let _ = tokio::signal::ctrl_c().await;
                    tracing::info!("shutting down");
                })
                .await?;
                println!("warren dev listening on {}", server.addr);
                server.task.await?
            })
        }
    }
}
