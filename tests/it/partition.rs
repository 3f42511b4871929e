//! A machine cut off from the state remote: its writes are queued on its
//! clone and replayed when the remote answers again, none lost, none
//! doubled, and one whose files changed meanwhile dropped and recorded.
//! The remote is a bare repository served by `git daemon` on 127.0.0.1,
//! stopped for the outage and brought back on the same port; another
//! clone may still reach it by its path meanwhile.

use std::path::Path;
use std::time::{Duration, Instant};

use git_sprint::state::{ops, Actor, Store, TaskStatus};

use crate::remote::{git_env, open_store, sprint, Fleet};

fn task(id: &str) -> ops::TaskRef {
    ops::TaskRef {
        feature: "f".into(),
        id: id.into(),
    }
}

fn add(store: &Store, ids: &[&str]) {
    store
        .transact(&Actor::named("lead"), |txn| {
            for id in ids {
                ops::add_task(
                    txn,
                    "f",
                    &ops::NewTask {
                        id: Some((*id).into()),
                        title: format!("task {id}"),
                        ..Default::default()
                    },
                )?;
            }
            Ok(())
        })
        .expect("adding tasks");
}

fn to(store: &Store, who: &str, id: &str, status: TaskStatus) {
    store
        .transact(&Actor::named(who), |txn| {
            ops::move_task(txn, &task(id), status, None, true)
        })
        .unwrap_or_else(|e| panic!("moving {id} to {status:?} as {who}: {e}"));
}

/// The remote's state history, newest first, as subjects: fetched by
/// clone `dir` into a ref of its own, so its `refs/ai-sprint` is not used.
fn remote_log(fleet: &Fleet, dir: &Path) -> Vec<String> {
    fleet.git(
        dir,
        [
            "fetch",
            "-q",
            "origin",
            "+refs/ai-sprint-shared/state:refs/check/state",
        ],
    );
    fleet
        .git(dir, ["log", "--format=%s", "refs/check/state"])
        .lines()
        .map(str::to_owned)
        .collect()
}

fn count(log: &[String], subject: &str) -> usize {
    log.iter().filter(|s| *s == subject).count()
}

fn status_of(store: &Store, id: &str) -> TaskStatus {
    store
        .read(|txn| txn.task("f", id))
        .unwrap()
        .unwrap_or_else(|| panic!("task {id} is in the state"))
        .status
}

/// The outage the issue names: 30 s with the daemon stopped, writes going
/// on all along (the library's and the CLI's), then every one of them on
/// the remote exactly once.
#[test]
fn thirty_seconds_without_the_remote_lose_and_double_no_transition() {
    let mut fleet = Fleet::new(true);
    let a = fleet.clone("a");
    let b = fleet.clone("b");
    let store = fleet.store(&a);
    let ids: Vec<String> = (1..=40).map(|i| format!("T{i}")).collect();
    add(&store, &ids.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(store.queued().unwrap(), None, "online writes queue nothing");

    let port = fleet.stop_daemon();
    let down = Instant::now();
    let mut moved = Vec::new();
    // Pacing the outage, not waiting for anything: a transition every
    // second or so, until the remote has been gone for 30 s.
    while down.elapsed() < Duration::from_secs(30) {
        let id = &ids[moved.len()];
        to(&store, "dev-1", id, TaskStatus::InProgress);
        moved.push(id.clone());
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(moved.len() >= 2, "writes went on during the outage");
    let out = sprint(&fleet, &a, &["add", "f", "added offline", "--id", "X1"]);
    assert!(
        out.status.success(),
        "a CLI write while the remote is down: {}",
        crate::support::stderr(&out)
    );
    let queued = store.queued().unwrap().expect("transitions are queued");
    assert_eq!(queued.count, moved.len() + 1);
    let out = sprint(&fleet, &a, &["status", "--json"]);
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("status --json while offline");
    assert_eq!(json["queued"]["count"], moved.len() + 1, "{json}");
    let out = sprint(&fleet, &a, &["status"]);
    let text = crate::support::stdout(&out);
    assert!(
        text.contains(&format!(
            "{} transitions queued on this clone",
            moved.len() + 1
        )),
        "{text}"
    );
    // Reads on this clone see its own queued writes.
    assert_eq!(status_of(&store, &moved[0]), TaskStatus::InProgress);

    fleet.restart_daemon(port);
    // The next write replays the queue first, then goes on as usual.
    to(&store, "dev-1", "T40", TaskStatus::InProgress);
    assert_eq!(store.queued().unwrap(), None, "the queue drained");
    assert!(store.take_dropped().is_empty());

    let log = remote_log(&fleet, &b);
    for id in moved.iter().chain([&"T40".to_owned()]) {
        let subject = format!("f/{id}: todo -> in_progress");
        assert_eq!(count(&log, &subject), 1, "{subject} in {log:#?}");
    }
    assert_eq!(count(&log, "f/X1: none -> todo"), 1, "{log:#?}");
    assert!(!log.iter().any(|s| s.contains("dropped")), "{log:#?}");
    // The replays keep their order, after what the remote had.
    let replayed: Vec<&String> = log
        .iter()
        .rev()
        .filter(|s| s.ends_with("-> in_progress") || s.starts_with("f/X1"))
        .collect();
    assert_eq!(replayed.len(), moved.len() + 2);
    assert!(replayed[moved.len()].starts_with("f/X1"), "{replayed:?}");
    // This clone's copy is the remote's.
    assert_eq!(
        fleet.git(&a, ["rev-parse", "refs/ai-sprint"]),
        fleet.git(&b, ["rev-parse", "refs/check/state"])
    );
}

/// The precondition: a queued transition of a task another machine moved
/// meanwhile is dropped, recorded on the remote and reported; the others
/// apply.
#[test]
fn a_queued_transition_of_a_task_taken_over_meanwhile_is_dropped_and_recorded() {
    let mut fleet = Fleet::new(true);
    let a = fleet.clone("a");
    let c = fleet.clone("c");
    let store = fleet.store(&a);
    add(&store, &["T1", "T2"]);
    // c reaches the same bare repository by its path: still there while
    // the daemon is down.
    let bare = fleet.bare();
    fleet.git(&c, ["config", "sprint.remote", bare.to_str().unwrap()]);
    let mut other = Store::from_repo(gix::open_opts(&c, gix::open::Options::isolated()).unwrap());
    other.set_remote_env(git_env(fleet.home.path()));

    let port = fleet.stop_daemon();
    to(&store, "dev-a", "T1", TaskStatus::InProgress);
    to(&store, "dev-a", "T2", TaskStatus::InProgress);
    assert_eq!(store.queued().unwrap().map(|q| q.count), Some(2));
    to(&other, "dev-c", "T1", TaskStatus::Done);

    fleet.restart_daemon(port);
    assert!(store.refresh().unwrap(), "the drain moved the local copy");
    assert_eq!(store.queued().unwrap(), None);
    let dropped = store.take_dropped();
    assert_eq!(dropped.len(), 1, "{dropped:?}");
    assert_eq!(dropped[0].subject, "f/T1: todo -> in_progress");
    assert_eq!(dropped[0].actor, "dev-a");
    assert_eq!(dropped[0].path, "features/f/tasks/T1.yaml");
    assert!(dropped[0].paths.contains(&dropped[0].path));
    assert!(store.take_dropped().is_empty(), "reported once");

    assert_eq!(status_of(&store, "T1"), TaskStatus::Done, "c's move stands");
    assert_eq!(status_of(&store, "T2"), TaskStatus::InProgress);
    let log = remote_log(&fleet, &a);
    assert_eq!(count(&log, "f/T1: todo -> done"), 1, "{log:#?}");
    assert_eq!(count(&log, "f/T2: todo -> in_progress"), 1, "{log:#?}");
    assert_eq!(count(&log, "f/T1: todo -> in_progress"), 0, "{log:#?}");
    assert_eq!(
        count(
            &log,
            "sprint: dropped queued 'f/T1: todo -> in_progress' (features/f/tasks/T1.yaml changed meanwhile)"
        ),
        1,
        "{log:#?}"
    );
    // `git sprint log` tells the story.
    let out = sprint(&fleet, &a, &["log"]);
    let text = crate::support::stdout(&out);
    assert!(
        text.contains("dropped queued 'f/T1: todo -> in_progress'"),
        "{text}"
    );
}

/// The queue is refs and commits: a process that queued and went away
/// (a crash, an agent's wrapper that exited) leaves it for the next one.
#[test]
fn a_queue_left_by_a_process_that_ended_is_drained_by_the_next_one() {
    let mut fleet = Fleet::new(true);
    let a = fleet.clone("a");
    add(&fleet.store(&a), &["T1"]);
    let port = fleet.stop_daemon();
    {
        let gone = open_store(&a, fleet.home.path());
        to(&gone, "dev-1", "T1", TaskStatus::InProgress);
    }
    fleet.restart_daemon(port);
    let next = fleet.store(&a);
    assert_eq!(next.queued().unwrap().map(|q| q.count), Some(1));
    // Another process entirely: the CLI's status refreshes, so drains.
    let out = sprint(&fleet, &a, &["status", "--json"]);
    assert!(out.status.success(), "{}", crate::support::stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(json.get("queued").is_none(), "{json}");
    assert_eq!(next.queued().unwrap(), None);
    let log = remote_log(&fleet, &a);
    assert_eq!(count(&log, "f/T1: todo -> in_progress"), 1, "{log:#?}");
    // A second drain finds nothing to do.
    assert!(next.drain().unwrap().is_empty());
    assert_eq!(remote_log(&fleet, &a), log, "nothing written twice");
}

/// Writers of one clone race each other while the remote is down (their
/// queued commits compare-and-swap on the local ref), then several drain
/// at once when it is back: still every transition once on the remote.
#[test]
fn racing_writers_and_racing_drains_of_one_clone_lose_and_double_nothing() {
    let mut fleet = Fleet::new(true);
    let a = fleet.clone("a");
    let ids: Vec<String> = (1..=12).map(|i| format!("T{i}")).collect();
    add(
        &fleet.store(&a),
        &ids.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let port = fleet.stop_daemon();
    let home = fleet.home.path().to_owned();
    std::thread::scope(|scope| {
        for chunk in ids.chunks(3) {
            let (a, home) = (&a, &home);
            scope.spawn(move || {
                let store = open_store(a, home);
                for id in chunk {
                    to(&store, "dev", id, TaskStatus::InProgress);
                }
            });
        }
    });
    let store = fleet.store(&a);
    assert_eq!(store.queued().unwrap().map(|q| q.count), Some(ids.len()));

    fleet.restart_daemon(port);
    std::thread::scope(|scope| {
        for _ in 0..3 {
            let (a, home) = (&a, &home);
            scope.spawn(move || {
                open_store(a, home).refresh().expect("a drain");
            });
        }
    });
    assert_eq!(store.queued().unwrap(), None);
    let log = remote_log(&fleet, &a);
    for id in &ids {
        let subject = format!("f/{id}: todo -> in_progress");
        assert_eq!(count(&log, &subject), 1, "{subject} in {log:#?}");
    }
    assert!(!log.iter().any(|s| s.contains("dropped")), "{log:#?}");
}
