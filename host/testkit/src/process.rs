//! A host process under test (`warren guild ...`): its output captured to files, killed
//! with the test process if the test never gets to it, and killable on purpose — with
//! SIGKILL, to test a crash, or SIGTERM, to test a graceful stop.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The signing key of every host a test starts ([`Process::start`]): tests sign their
/// players' session tokens with it.
pub const TEST_AUTH_KEY: &str = "warren-tests-signing-key-0123456789abcdefghij";

/// A running process started by a test.
pub struct Process {
    /// A name for messages.
    pub name: String,
    shell: Child,
    dir: tempfile::TempDir,
}

impl Process {
    /// Starts `program args...`. Its stdout and stderr go to files (see [`Process::stdout`]
    /// and [`Process::log`]); a bash watchdog kills it with SIGKILL when the test process
    /// ends.
    ///
    /// Every process a test starts signs with [`TEST_AUTH_KEY`] (`WARREN_AUTH_KEY`), as
    /// the hosts of one cluster share one key.
    pub fn start(name: &str, program: &str, args: &[String]) -> Process {
        Process::start_env(name, program, args, &[("WARREN_AUTH_KEY", Some(TEST_AUTH_KEY))])
    }

    /// [`Process::start`] with environment variables set (`Some`) or removed (`None`).
    pub fn start_env(name: &str, program: &str, args: &[String], env: &[(&str, Option<&str>)]) -> Process {
        let dir = tempfile::tempdir().expect("temp dir");
        let quoted: Vec<String> =
            std::iter::once(program.to_owned()).chain(args.iter().cloned()).map(|a| shell_quote(&a)).collect();
        let script = format!(
            "{cmd} >'{out}' 2>'{err}' </dev/null & child=$!; echo $child >'{pid}'; \
             while kill -0 {me} 2>/dev/null && kill -0 $child 2>/dev/null; do sleep 0.2; done; \
             kill -9 $child 2>/dev/null; wait $child",
            cmd = quoted.join(" "),
            out = dir.path().join("stdout").display(),
            err = dir.path().join("stderr").display(),
            pid = dir.path().join("pid").display(),
            me = std::process::id(),
        );
        let mut command = Command::new("bash");
        for (key, value) in env {
            match value {
                Some(value) => command.env(key, value),
                None => command.env_remove(key),
            };
        }
        let shell = command
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start bash");
        let p = Process { name: name.to_owned(), shell, dir };
        p.pid();
        p
    }

    /// The process id (waits for the shell to have started it).
    pub fn pid(&self) -> u32 {
        let path = self.dir.path().join("pid");
        let started = Instant::now();
        loop {
            if let Some(pid) = std::fs::read_to_string(&path).ok().and_then(|t| t.trim().parse().ok()) {
                return pid;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "{} never started", self.name);
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The file its stdout goes to.
    pub fn stdout(&self) -> PathBuf {
        self.dir.path().join("stdout")
    }

    /// What it wrote to stderr so far (its log).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
    }

    /// Waits for the host's `... listening on <addr>` line and returns the address it ends
    /// with (a host asked to listen on port 0 says which port it got).
    pub fn listening_address(&mut self, wait: Duration) -> std::net::SocketAddr {
        let line = self.wait_for_line("listening on", wait);
        line.rsplit(' ')
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address at the end of `{line}`"))
    }

    /// Waits for a line of stdout containing `needle` and returns it; fails the test
    /// (showing the log) if none comes within `wait` or the process ends first.
    pub fn wait_for_line(&mut self, needle: &str, wait: Duration) -> String {
        let started = Instant::now();
        loop {
            if let Ok(file) = std::fs::File::open(self.stdout())
                && let Some(line) = BufReader::new(file).lines().map_while(Result::ok).find(|l| l.contains(needle))
            {
                return line;
            }
            if let Ok(Some(status)) = self.shell.try_wait() {
                panic!("{} ended ({status}) before printing `{needle}`; its log:\n{}", self.name, self.log());
            }
            assert!(started.elapsed() < wait, "{} did not print `{needle}`; its log:\n{}", self.name, self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `signal` (`KILL`, `TERM`, `STOP`, `CONT`).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([&format!("-{signal}"), &self.pid().to_string()]).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{signal} {}", self.name);
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.shell.try_wait(), Ok(None))
    }

    /// Waits for it to end; fails the test if it has not within `wait`.
    pub fn wait(&mut self, wait: Duration) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.shell.try_wait().expect("wait") {
                return status;
            }
            assert!(started.elapsed() < wait, "{} did not end within {wait:?}; its log:\n{}", self.name, self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.shell.try_wait() {
            let _ = Command::new("kill").args(["-9", &self.pid().to_string()]).status();
            let _ = self.shell.wait();
        }
    }
}

fn shell_quote(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', r"'\''"))
}
