//! The state through a git remote against the state alone: claim latency
//! and transitions per second with one machine and with three (each its own
//! clone, all on one host), through `git daemon` on 127.0.0.1 and through a
//! file remote; and the bytes each transition adds to the remote.
//!
//! Run: `cargo bench --bench remote`. Prints medians and ratios against the
//! local store measured in the same run; asserts nothing.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use git_sprint::state::ops::{self, NewTask, TaskRef};
use git_sprint::state::{Actor, Store};

/// Claims per machine per scenario.
const CLAIMS: usize = 40;

fn main() {
    let home = tempfile::tempdir().unwrap();
    let base = tempfile::tempdir().unwrap();
    let h = home.path();
    git(
        h,
        base.path(),
        &["init", "-q", "--bare", "-b", "main", "remote.git"],
    );
    let daemon = Daemon::serve(base.path(), h);
    let served = format!("git://127.0.0.1:{}/remote.git", daemon.port);
    let file = base.path().join("remote.git").display().to_string();

    let local = base.path().join("local");
    git(h, base.path(), &["init", "-q", "-b", "main", "local"]);
    let (local_ms, local_tps) = run(std::slice::from_ref(&local), h, "l");
    println!("local store:           claim median {local_ms:7.2} ms, {local_tps:7.1} transitions/s (1 process)");

    for (label, url) in [
        ("git daemon", served.as_str()),
        ("file remote", file.as_str()),
    ] {
        // A fresh ref per scenario: reset the remote's state.
        let _ = Command::new("git")
            .args([
                "--git-dir",
                &file,
                "update-ref",
                "-d",
                "refs/ai-sprint-shared/state",
            ])
            .env("HOME", h)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output();
        let clones: Vec<PathBuf> = (0..3)
            .map(|i| {
                clone(
                    h,
                    base.path(),
                    url,
                    &format!("{}-{i}", label.replace(' ', "-")),
                )
            })
            .collect();
        let before = remote_bytes(&file);
        let (one_ms, one_tps) = run(&clones[..1], h, "a");
        let (three_ms, three_tps) = run(&clones, h, "b");
        let transitions = (CLAIMS * 4 + 2) as u64; // two seeds, 1 + 3 machines' claims
        let per = (remote_bytes(&file) - before) / transitions;
        println!(
            "{label:<12} 1 machine: claim median {one_ms:7.2} ms ({:5.1}x local), {one_tps:7.1} transitions/s",
            one_ms / local_ms
        );
        println!(
            "{label:<12} 3 machines: claim median {three_ms:7.2} ms ({:5.1}x local), {three_tps:7.1} transitions/s together",
            three_ms / local_ms
        );
        println!("{label:<12} about {per} bytes added to the remote per transition");
    }
    drop(daemon);
}

/// Seeds `3 × CLAIMS` tasks in feature `f` through the first clone, then
/// each clone claims its own third at once. Returns the median claim
/// latency (ms) and the transitions per second of all together.
fn run(clones: &[PathBuf], home: &Path, f: &str) -> (f64, f64) {
    let store = open(&clones[0], home);
    store
        .transact(&Actor::named("bench"), |txn| {
            for t in 0..CLAIMS * clones.len() {
                ops::add_task(
                    txn,
                    f,
                    &NewTask {
                        id: Some(format!("T{t}")),
                        title: format!("task {t}"),
                        ..Default::default()
                    },
                )?;
            }
            Ok(())
        })
        .unwrap();
    let started = Instant::now();
    let handles: Vec<_> = clones
        .iter()
        .enumerate()
        .map(|(i, dir)| {
            let (dir, home, f, n) = (dir.clone(), home.to_owned(), f.to_owned(), clones.len());
            std::thread::spawn(move || {
                let store = open(&dir, &home);
                let who = format!("m{i}");
                (0..CLAIMS)
                    .map(|k| {
                        let r = TaskRef {
                            feature: f.clone(),
                            id: format!("T{}", k * n + i),
                        };
                        let t = Instant::now();
                        store
                            .transact(&Actor::named(&who), |txn| ops::claim(txn, &r, &who, 3600))
                            .unwrap();
                        t.elapsed()
                    })
                    .collect::<Vec<Duration>>()
            })
        })
        .collect();
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.join().unwrap());
    }
    let wall = started.elapsed();
    all.sort();
    let median = all[all.len() / 2].as_secs_f64() * 1000.0;
    (median, all.len() as f64 / wall.as_secs_f64())
}

fn open(dir: &Path, home: &Path) -> Store {
    let repo = gix::open_opts(dir, gix::open::Options::isolated()).unwrap();
    let mut store = Store::from_repo(repo);
    store.set_remote_env(env(home));
    store
}

fn env(home: &Path) -> Vec<(OsString, OsString)> {
    vec![
        ("HOME".into(), home.into()),
        ("GIT_CONFIG_NOSYSTEM".into(), "1".into()),
    ]
}

fn clone(home: &Path, base: &Path, url: &str, name: &str) -> PathBuf {
    git(home, base, &["clone", "-q", url, name]);
    let dir = base.join(name);
    git(home, &dir, &["config", "sprint.remote", "origin"]);
    dir
}

/// Bytes of the remote's objects (loose and packed).
fn remote_bytes(git_dir: &str) -> u64 {
    fn walk(p: &Path) -> u64 {
        std::fs::read_dir(p).map_or(0, |rd| {
            rd.flatten()
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() {
                        walk(&p)
                    } else {
                        e.metadata().map_or(0, |m| m.len())
                    }
                })
                .sum()
        })
    }
    walk(&Path::new(git_dir).join("objects"))
}

fn git(home: &Path, dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `git daemon` on a free loopback port, killed on drop.
struct Daemon {
    child: Child,
    port: u16,
}

impl Daemon {
    fn serve(base: &Path, home: &Path) -> Daemon {
        for _ in 0..20 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut child = Command::new("git")
                .args([
                    "daemon",
                    "--reuseaddr",
                    "--listen=127.0.0.1",
                    "--export-all",
                ])
                .arg(format!("--port={port}"))
                .arg("--enable=receive-pack")
                .arg(format!("--base-path={}", base.display()))
                .arg(base)
                .env("HOME", home)
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                // `git daemon` runs `git-daemon` as a child: a group of
                // their own, so that Drop stops both.
                .process_group(0)
                .spawn()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Daemon { child, port };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            kill_group(&mut child);
        }
        panic!("git daemon did not come up");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}

/// Kills the process group `child` leads (killing `git daemon` alone left
/// its `git-daemon` listening) and reaps it.
fn kill_group(child: &mut Child) {
    // SAFETY: kill(2) on the process group this child leads.
    unsafe {
        libc::kill(-(child.id() as i32), libc::SIGKILL);
    }
    let _ = child.wait();
}
