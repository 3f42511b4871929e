//! The state through a git remote (`sprint.remote`): several clones in temp
//! dirs stand for several machines, and the remote is a bare repository
//! served by `git daemon` on 127.0.0.1 or reached by its path.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use git_sprint::state::{ops, Actor, Refusal, StateError, Store, TaskStatus};

use crate::support::isolate;

/// A `git daemon` serving `base` on a free loopback port, with pushes on;
/// killed when dropped, so a failing test leaves no daemon behind.
pub struct Daemon {
    child: Child,
    port: u16,
}

impl Daemon {
    pub fn serve(base: &Path, home: &Path) -> Daemon {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // A port the kernel just handed out and took back: free unless
            // another test grabs it first, which the readiness check sees.
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free loopback port")
                .port();
            if let Some(daemon) = Daemon::try_serve_on(base, home, port, deadline) {
                return daemon;
            }
            assert!(
                Instant::now() < deadline,
                "git daemon did not come up on 127.0.0.1 within 30s"
            );
        }
    }

    /// A daemon on `port` again (a remote back after an outage), retried
    /// while the port is still held by the last one.
    pub fn serve_on(base: &Path, home: &Path, port: u16) -> Daemon {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(daemon) = Daemon::try_serve_on(base, home, port, deadline) {
                return daemon;
            }
            assert!(
                Instant::now() < deadline,
                "git daemon did not come back on 127.0.0.1:{port} within 30s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn try_serve_on(base: &Path, home: &Path, port: u16, deadline: Instant) -> Option<Daemon> {
        let mut cmd = Command::new("git");
        isolate(&mut cmd, home)
            .args([
                "daemon",
                "--reuseaddr",
                "--listen=127.0.0.1",
                &format!("--port={port}"),
                "--export-all",
                "--enable=receive-pack",
                "--informative-errors",
            ])
            .arg(format!("--base-path={}", base.display()))
            .arg(base)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // `git daemon` runs `git-daemon` as a child, which forks one more
        // per connection: a group of their own, so that stopping it stops
        // them all.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().expect("start git daemon");
        let mut daemon = Daemon { child, port };
        daemon.wait_ready(home, deadline).then_some(daemon)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of the repository `name` under the base path.
    pub fn url(&self, name: &str) -> String {
        format!("git://127.0.0.1:{}/{name}", self.port)
    }

    /// Whether the daemon answers; false when it exited (its port was
    /// taken) and a new one should be tried.
    fn wait_ready(&mut self, home: &Path, deadline: Instant) -> bool {
        loop {
            if self.child.try_wait().expect("poll git daemon").is_some() {
                return false;
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                let _ = home;
                return true;
            }
            assert!(
                Instant::now() < deadline,
                "git daemon on port {} did not accept connections within 30s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Regression: killing `git daemon` alone left its `git-daemon`
        // child listening, so a stopped remote still answered and every
        // test leaked a daemon.
        // SAFETY: kill(2) on the process group this child leads.
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

/// The environment every git the library runs gets in these tests: no
/// global or system configuration.
pub fn git_env(home: &Path) -> Vec<(OsString, OsString)> {
    vec![
        ("HOME".into(), home.into()),
        ("XDG_CONFIG_HOME".into(), home.join(".config").into()),
        ("GIT_CONFIG_NOSYSTEM".into(), "1".into()),
    ]
}

/// The shared remote and the clones ("machines") that use it.
pub struct Fleet {
    pub home: tempfile::TempDir,
    pub base: tempfile::TempDir,
    // Kept for its Drop: the daemon stops with the fleet.
    daemon: Option<Daemon>,
    pub url: String,
}

impl Fleet {
    /// A bare `remote.git` with one commit on `main`, served by `git daemon`
    /// (`served`) or reached by its path.
    pub fn new(served: bool) -> Fleet {
        let home = tempfile::tempdir().expect("temp home");
        let base = tempfile::tempdir().expect("temp base");
        let bare = base.path().join("remote.git");
        git(
            home.path(),
            base.path(),
            ["init", "-q", "--bare", "-b", "main"]
                .iter()
                .chain(&[bare.to_str().unwrap()]),
        );
        let daemon = served.then(|| Daemon::serve(base.path(), home.path()));
        let url = match &daemon {
            Some(d) => d.url("remote.git"),
            None => bare.display().to_string(),
        };
        let seed = base.path().join("seed");
        git(
            home.path(),
            base.path(),
            ["init", "-q", "-b", "main", seed.to_str().unwrap()],
        );
        std::fs::write(seed.join("README.md"), "hello\n").unwrap();
        for args in [
            vec!["config", "user.name", "Tester"],
            vec!["config", "user.email", "tester@example.com"],
            vec!["add", "README.md"],
            vec!["commit", "-q", "-m", "initial"],
            vec!["push", "-q", &url, "main"],
        ] {
            git(home.path(), &seed, args);
        }
        Fleet {
            home,
            base,
            daemon,
            url,
        }
    }

    /// Stops the `git daemon`: the remote is unreachable over the network
    /// (its path still works) until [`Fleet::restart_daemon`].
    pub fn stop_daemon(&mut self) -> u16 {
        let daemon = self.daemon.take().expect("a fleet served by git daemon");
        let port = daemon.port();
        drop(daemon);
        port
    }

    /// Serves the remote on `port` again.
    pub fn restart_daemon(&mut self, port: u16) {
        assert!(self.daemon.is_none(), "the daemon is still running");
        self.daemon = Some(Daemon::serve_on(self.base.path(), self.home.path(), port));
    }

    /// The bare repository's path (another way in while the daemon is down).
    pub fn bare(&self) -> PathBuf {
        self.base.path().join("remote.git")
    }

    /// A new clone named `name`, with `sprint.remote` set to its origin.
    pub fn clone(&self, name: &str) -> PathBuf {
        let dir = self.base.path().join(name);
        git(
            self.home.path(),
            self.base.path(),
            ["clone", "-q", &self.url, dir.to_str().unwrap()],
        );
        for args in [
            ["config", "user.name", "Tester"],
            ["config", "user.email", "tester@example.com"],
            ["config", "sprint.remote", "origin"],
        ] {
            git(self.home.path(), &dir, args);
        }
        dir
    }

    /// The store of clone `dir`, its git kept off the user's configuration.
    pub fn store(&self, dir: &Path) -> Store {
        open_store(dir, self.home.path())
    }

    /// Runs git in `dir` with the isolated environment; its stdout.
    pub fn git<I, S>(&self, dir: &Path, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        git(self.home.path(), dir, args)
    }
}

/// The store of clone `dir` (a `Store` is not `Send`: each thread opens
/// its own), its git kept off the user's configuration.
pub fn open_store(dir: &Path, home: &Path) -> Store {
    let repo = gix::open_opts(dir, gix::open::Options::isolated()).expect("open clone");
    let mut store = Store::from_repo(repo);
    assert_eq!(store.remote_name(), Some("origin"), "sprint.remote is read");
    store.set_remote_env(git_env(home));
    store
}

fn git<I, S>(home: &Path, dir: &Path, args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut cmd = Command::new("git");
    isolate(&mut cmd, home).current_dir(dir).args(args);
    let out = cmd.output().expect("run git");
    assert!(
        out.status.success(),
        "git failed in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn task_ref(id: &str) -> ops::TaskRef {
    ops::TaskRef {
        feature: "race".into(),
        id: id.into(),
    }
}

/// `tasks` tasks, all contested by three clones that claim them in the same
/// order, each claim its own state write through the remote: every task
/// has exactly one winner, recorded exactly once on the remote.
fn contested_claims(served: bool, tasks: usize) {
    let fleet = Fleet::new(served);
    let seed = fleet.clone("m0");
    let store = fleet.store(&seed);
    let ids: Vec<String> = (0..tasks).map(|i| format!("C{i}")).collect();
    store
        .transact(&Actor::named("tester"), |txn| {
            for id in &ids {
                ops::add_task(
                    txn,
                    "race",
                    &ops::NewTask {
                        id: Some(id.clone()),
                        title: format!("contested {id}"),
                        ..Default::default()
                    },
                )?;
            }
            Ok(())
        })
        .expect("seed the tasks through the remote");

    let machines = ["m1", "m2", "m3"];
    let barrier = Arc::new(Barrier::new(machines.len()));
    let handles: Vec<_> = machines
        .iter()
        .map(|name| {
            let dir = fleet.clone(name);
            let home = fleet.home.path().to_owned();
            let ids = ids.clone();
            let barrier = barrier.clone();
            let name = name.to_string();
            std::thread::spawn(move || {
                let store = open_store(&dir, &home);
                barrier.wait();
                let (mut won, mut refused) = (Vec::new(), 0);
                for id in &ids {
                    let who = Actor::named(&name);
                    match store.transact(&who, |txn| ops::claim(txn, &task_ref(id), &name, 3600)) {
                        Ok(_) => won.push(id.clone()),
                        Err(StateError::Refused(Refusal::Held { .. })) => refused += 1,
                        Err(e) => panic!("{name} claiming {id}: {e}"),
                    }
                }
                (name, won, refused)
            })
        })
        .collect();
    let results: Vec<(String, Vec<String>, usize)> =
        handles.into_iter().map(|h| h.join().unwrap()).collect();

    // Every task won once, by the holder the remote's state names.
    let mut winner = std::collections::BTreeMap::new();
    for (name, won, _) in &results {
        for id in won {
            if let Some(other) = winner.insert(id.clone(), name.clone()) {
                panic!("{id} was won by both {other} and {name}");
            }
        }
    }
    assert_eq!(winner.len(), tasks, "every claim has a winner");
    // Every clone claimed every task: the two that lost each one were told
    // it is held. (How the wins spread depends on scheduling: a clone that
    // gets ahead may win them all.)
    let refused: usize = results.iter().map(|(_, _, r)| r).sum();
    assert_eq!(
        refused,
        2 * tasks,
        "each task refused to the two clones that lost it: {:?}",
        results
            .iter()
            .map(|(n, w, r)| (n, w.len(), r))
            .collect::<Vec<_>>()
    );

    let check = fleet.clone("check");
    let check_store = fleet.store(&check);
    check_store.refresh().unwrap();
    let state = check_store.read(|txn| txn.tasks("race")).unwrap();
    assert_eq!(state.len(), tasks);
    for t in &state {
        assert_eq!(t.status, TaskStatus::InProgress, "{}", t.id);
        let holder = &t.claim.as_ref().expect("claimed").holder;
        assert_eq!(Some(holder), winner.get(&t.id), "{}", t.id);
        assert_eq!(t.attempts, 1, "{} was claimed once", t.id);
    }
    // The remote's history: one claim transition per task, no more.
    let log = fleet.git(
        &check,
        [
            "log",
            "--format=%(trailers:key=Sprint-Task,valueonly)",
            "refs/ai-sprint",
        ],
    );
    let mut claims = std::collections::BTreeMap::new();
    for line in log.lines().filter(|l| l.contains('/')) {
        *claims.entry(line.to_owned()).or_insert(0) += 1;
    }
    // Each task: one transition when added, one when claimed.
    assert_eq!(claims.len(), tasks, "{claims:?}");
    assert!(
        claims.values().all(|&n| n == 2),
        "a transition was lost or doubled: {claims:?}"
    );

    // Every machine's local ref follows the remote.
    let remote_tip = fleet.git(&check, ["rev-parse", "refs/ai-sprint"]);
    for name in machines {
        let dir = fleet.base.path().join(name);
        fleet.store(&dir).refresh().unwrap();
        assert_eq!(
            fleet.git(&dir, ["rev-parse", "refs/ai-sprint"]),
            remote_tip,
            "{name}"
        );
    }
}

#[test]
fn a_thousand_contested_claims_through_git_daemon_have_one_winner_each() {
    contested_claims(true, 1000);
}

#[test]
fn contested_claims_through_a_file_remote_have_one_winner_each() {
    contested_claims(false, 100);
}

/// Runs git-sprint in `dir` with the isolated environment.
pub fn sprint(fleet: &Fleet, dir: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(crate::support::BIN);
    isolate(&mut cmd, fleet.home.path())
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run git-sprint")
}

#[test]
fn the_cli_on_one_clone_sees_and_respects_the_other_clones_writes() {
    let fleet = Fleet::new(false);
    let (a, b) = (fleet.clone("a"), fleet.clone("b"));
    let out = sprint(&fleet, &a, &["add", "f", "shared task", "--id", "T1"]);
    assert!(out.status.success(), "{}", crate::support::stderr(&out));
    // b never fetched: its claim applies to the remote's state.
    let out = sprint(&fleet, &b, &["claim", "f/T1", "--as", "bob"]);
    assert!(out.status.success(), "{}", crate::support::stderr(&out));
    let out = sprint(&fleet, &a, &["claim", "f/T1", "--as", "alice"]);
    assert!(!out.status.success(), "a second holder was let in");
    let err = crate::support::stderr(&out);
    assert!(err.contains("claimed by bob"), "{err}");
    // A clone that never wrote shows what the others did.
    let c = fleet.clone("c");
    let out = sprint(&fleet, &c, &["status", "--json"]);
    assert!(out.status.success(), "{}", crate::support::stderr(&out));
    let text = crate::support::stdout(&out);
    assert!(
        text.contains("\"in_progress\"") && text.contains("bob"),
        "{text}"
    );
    // The remote has both writes, in order, and a's copy followed it.
    let log = fleet.git(&a, ["log", "--format=%s", "refs/ai-sprint"]);
    assert!(
        log.starts_with("f/T1: todo -> in_progress\nf/T1: none -> todo"),
        "{log}"
    );
    assert_eq!(
        fleet.git(&a, ["rev-parse", "refs/ai-sprint"]),
        fleet
            .git(&a, ["ls-remote", "origin", "refs/ai-sprint-shared/state"])
            .split('\t')
            .next()
            .map(|id| format!("{id}\n"))
            .unwrap()
    );
}

#[test]
fn the_remote_named_in_the_committed_config_file_is_used_by_every_clone() {
    let fleet = Fleet::new(false);
    let seed = fleet.clone("first");
    fleet.git(&seed, ["config", "--unset", "sprint.remote"]);
    std::fs::write(seed.join(".git-sprint.yaml"), "remote: origin\n").unwrap();
    fleet.git(&seed, ["add", ".git-sprint.yaml"]);
    fleet.git(&seed, ["commit", "-q", "-m", "share the sprint state"]);
    fleet.git(&seed, ["push", "-q", "origin", "main"]);
    let other = fleet.base.path().join("other");
    fleet.git(
        fleet.base.path(),
        ["clone", "-q", &fleet.url, other.to_str().unwrap()],
    );
    let out = sprint(&fleet, &seed, &["add", "f", "from the seed", "--id", "T1"]);
    assert!(out.status.success(), "{}", crate::support::stderr(&out));
    let out = sprint(&fleet, &other, &["claim", "f/T1", "--as", "other"]);
    assert!(out.status.success(), "{}", crate::support::stderr(&out));
    let shown = fleet.git(
        &seed,
        ["ls-remote", "origin", "refs/ai-sprint-shared/state"],
    );
    assert!(!shown.is_empty(), "the state went to the remote");
}

#[test]
fn an_unreachable_remote_is_an_error_naming_it_and_nothing_is_written() {
    let fleet = Fleet::new(false);
    let a = fleet.clone("a");
    let gone = fleet.base.path().join("no-such-remote.git");
    fleet.git(&a, ["config", "sprint.remote", gone.to_str().unwrap()]);
    let out = sprint(&fleet, &a, &["add", "f", "lost?", "--id", "T1"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        crate::support::stderr(&out)
    );
    let err = crate::support::stderr(&out);
    assert!(
        err.contains("the sprint remote") && err.contains("no-such-remote.git"),
        "{err}"
    );
    assert!(err.contains("git config --unset sprint.remote"), "{err}");
    let mut rev_parse = Command::new("git");
    isolate(&mut rev_parse, fleet.home.path())
        .current_dir(&a)
        .args(["rev-parse", "-q", "--verify", "refs/ai-sprint"]);
    let local = rev_parse.output().unwrap();
    assert!(!local.status.success(), "a state was written locally");
}

#[test]
fn a_push_the_remote_refuses_is_an_error_not_a_retry() {
    let fleet = Fleet::new(false);
    let a = fleet.clone("a");
    let hook = fleet.base.path().join("remote.git/hooks/pre-receive");
    std::fs::write(
        &hook,
        "#!/bin/sh\necho 'state writes are frozen' >&2\nexit 1\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = crate::support::output_within(
        Command::new(crate::support::BIN)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap())
            .env("HOME", fleet.home.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .current_dir(&a)
            .args(["add", "f", "frozen", "--id", "T1"]),
        "a write the remote refuses",
        Duration::from_secs(60),
    );
    let err = crate::support::stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("state writes are frozen"), "{err}");
}

#[test]
fn machines_beat_on_refs_of_their_own_and_every_clone_lists_them() {
    use git_sprint::machines;
    let fleet = Fleet::new(false);
    let now = git_sprint::clock::now();
    for (name, age) in [("m1", 5), ("m2", machines::LOST_AFTER_SECS + 30)] {
        let dir = fleet.clone(name);
        let store = fleet.store(&dir);
        machines::record(&store, &machines::describe(name, 2, &[])).unwrap();
        let (mut beat, _) = machines::measure(&dir, 1, None);
        beat.at = now - age;
        machines::beat(&store, name, &beat).unwrap();
    }
    // The heartbeats moved no state: two commits, one per machine record.
    let other = fleet.clone("other");
    let out = sprint(&fleet, &other, &["list", "--machines", "--json"]);
    assert!(out.status.success(), "{}", crate::support::stderr(&out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let seen: Vec<(&str, &str, u64)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap(),
                m["status"].as_str().unwrap(),
                m["machine"]["developers"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(seen, [("m1", "up", 2), ("m2", "lost", 2)], "{rows}");
    assert_eq!(rows[0]["heartbeat"]["agents"], 1, "{rows}");
    let log = fleet.git(&other, ["log", "--format=%s", "origin/main", "--"]);
    assert!(
        !log.contains("heartbeat"),
        "heartbeats stay off the branches: {log}"
    );
    let state_log = fleet.git(&other, ["log", "--format=%s", "refs/ai-sprint"]);
    assert_eq!(state_log, "machine m2 joined\nmachine m1 joined\n");
    let table = sprint(&fleet, &other, &["list", "--machines"]);
    let text = crate::support::stdout(&table);
    assert!(text.starts_with("MACHINE"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("m2") && l.contains("lost")),
        "{text}"
    );
}
