//! The servers the load runs against, each a process pinned to the server core — `warren
//! dev`, a cluster `warren baseapp`, the echo server — and what `/proc` says of them: memory,
//! open-files limit. A process started through `taskset -c` keeps its id (taskset execs
//! the program), so the id the testkit reports is the server's own.

use super::cluster::{host_args, shipped_modules, warren};
use super::{WAIT, echo};
use std::net::SocketAddr;
use std::path::Path;
use warren_testkit::Process;

/// A server process and the address its WebSocket listens on.
pub(crate) struct Server {
    pub(crate) process: Process,
    pub(crate) addr: SocketAddr,
    /// The folder of modules a `warren dev` serves, kept for as long as it runs.
    _modules: Option<tempfile::TempDir>,
}

impl Server {
    /// The server's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.process.pid()
    }
}

/// Starts `program args...` pinned to `core` and waits for its `... listening on <addr>`.
fn pinned(name: &str, core: usize, program: &str, args: &[String]) -> (Process, SocketAddr) {
    let mut taskset = vec!["-c".to_owned(), core.to_string(), program.to_owned()];
    taskset.extend_from_slice(args);
    let mut process = Process::start(name, "taskset", &taskset);
    let addr = process.listening_address(WAIT);
    (process, addr)
}

/// `warren dev` on a free port serving the shipped scripts (baseapp, battle, guild), as
/// a developer runs it, pinned to `core`; with the configuration file `config` if given
/// (its `listen` and `modules` are overridden), the defaults otherwise.
pub(crate) fn dev(name: &str, core: usize, config: Option<&Path>) -> Server {
    let modules = shipped_modules();
    let args = ["dev", "--name-login", "--listen", "127.0.0.1:0", "--modules"].map(String::from);
    let mut args = args.to_vec();
    args.push(modules.path().display().to_string());
    if let Some(config) = config {
        args.extend(["--config".to_owned(), config.display().to_string()]);
    }
    let (process, addr) = pinned(name, core, warren(), &args);
    Server { process, addr, _modules: Some(modules) }
}

/// A cluster `warren baseapp` on the Redis at `url` (the scripts already published), on a
/// free port, pinned to `core`; with the configuration file `config` if given.
pub(crate) fn baseapp(url: &str, name: &str, core: usize, config: Option<&Path>) -> Server {
    let config = config.map(|c| c.display().to_string());
    let mut args = host_args("baseapp", url, name, config.as_deref());
    args.extend(["--listen".to_owned(), "127.0.0.1:0".to_owned()]);
    let (process, addr) = pinned(name, core, warren(), &args);
    super::cluster::on_cluster(addr, url);
    Server { process, addr, _modules: None }
}

/// The echo server: this bench's own binary again, told to be the echo server, pinned to
/// `core`.
pub(crate) fn echo(core: usize) -> Server {
    let me = std::env::current_exe().expect("the bench's own path");
    let (process, addr) = pinned("echo", core, &me.display().to_string(), &[echo::FLAG.to_owned()]);
    Server { process, addr, _modules: None }
}

/// A process's resident memory (`VmRSS`), KiB.
pub(crate) fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("a VmRSS line");
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("VmRSS in kB")
}

/// A process's limit on open files: (soft, hard), from `/proc/PID/limits`.
pub(crate) fn open_files_limit(pid: u32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("/proc/PID/limits");
    let line = limits.lines().find(|l| l.starts_with("Max open files")).expect("a `Max open files` line");
    let numbers: Vec<u64> = line.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    (numbers[0], numbers[1])
}

/// Raises this process's soft limit on open files to at least `needed` (its hard limit
/// too, if that is lower and the process may), so it holds `needed` sockets; the servers
/// started after inherit it. `prlimit` on the process's own id, rather than
/// `setrlimit` from libc, which is not a dependency of this crate. Returns the new soft
/// limit.
pub(crate) fn raise_open_files(needed: u64) -> u64 {
    let me = std::process::id();
    let (soft, hard) = open_files_limit(me);
    if soft >= needed {
        return soft;
    }
    let new_hard = hard.max(needed);
    let raised = std::process::Command::new("prlimit")
        .args(["--pid", &me.to_string(), &format!("--nofile={needed}:{new_hard}")])
        .status()
        .is_ok_and(|s| s.success());
    if !raised {
        // Not allowed past the hard limit: as far as it goes.
        let status = std::process::Command::new("prlimit")
            .args(["--pid", &me.to_string(), &format!("--nofile={hard}:{hard}")])
            .status()
            .expect("prlimit (util-linux) must be installed");
        assert!(status.success(), "prlimit --nofile={hard}:{hard}");
    }
    open_files_limit(me).0
}
