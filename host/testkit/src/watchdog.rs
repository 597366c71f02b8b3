//! A bash watchdog that owns the service processes a test starts, so they stop with the
//! test process even when it never drops them (a suite-wide service lives in a static).

use std::process::{Child, Command, Stdio};

/// A watchdog shell and the processes it started.
pub(crate) struct Watchdog {
    child: Child,
}

impl Watchdog {
    /// Starts each of `commands` (shell command lines) in the background of one bash
    /// watchdog. The watchdog stops them all when this test process ends, when any of them
    /// ends, or when it is dropped.
    pub(crate) fn spawn(commands: &[String]) -> Watchdog {
        let mut script = String::from("pids=''; ");
        for command in commands {
            script.push_str(&format!("{command} & pids=\"$pids $!\"; "));
        }
        // EXIT runs on a normal end and after the TERM trap's `exit`; a plain SIGTERM or
        // SIGKILL of bash would skip it and leave the servers running. It waits for them, so
        // they are reaped (no zombies) and their ports free once the watchdog has ended.
        script.push_str("trap 'kill $pids 2>/dev/null; wait' EXIT; trap 'exit 0' TERM INT HUP; ");
        script.push_str(&format!(
            "while kill -0 {me} 2>/dev/null; do for p in $pids; do kill -0 $p 2>/dev/null || exit 0; done; sleep 0.2; done",
            me = std::process::id(),
        ));
        let child = Command::new("bash")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the watchdog shell (bash)");
        Watchdog { child }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // SIGTERM reaches the trap, which stops the services; SIGKILL only if that fails.
        let termed = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !termed {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Fails the test (never skips it) unless `tool` runs: `tools/setup.sh` installs it.
pub(crate) fn require(tool: &str) {
    assert!(
        Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success()),
        "{tool} must be installed (tools/setup.sh installs it)"
    );
}
