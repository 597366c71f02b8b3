//! `warren`: the host processes of a Warren cluster.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use warren::config::DevConfig;

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
    },
    /// A terminal game client: one frame per line, JSON or `type key=value ...`.
    Play {
        /// The name to log in with.
        #[arg(long)]
        name: String,
        /// The server's WebSocket.
        #[arg(long, default_value = "ws://127.0.0.1:7700/ws")]
        url: String,
    },
    /// Builds every crate in scripts/ into modules/<role>.wasm.
    Build {
        /// The workspace holding scripts/.
        #[arg(long, default_value = ".")]
        workspace: PathBuf,
        /// Where to write the modules.
        #[arg(long, default_value = "modules")]
        out: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,cranelift=warn,wasmtime=warn".into()),
        )
        .init();
    match Cli::parse().command {
        Command::Build { workspace, out } => warren::build_cmd::build_scripts(&workspace, &out),
        Command::Play { name, url } => {
            let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            rt.block_on(warren::play::play(&url, &name))
        }
        Command::Dev { config, listen, modules } => {
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
            let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            rt.block_on(async {
                let server = warren::dev::start(cfg, async {
                    let _ = tokio::signal::ctrl_c().await;
                    tracing::info!("shutting down");
                })
                .await?;
                server.task.await?
            })
        }
    }
}
