//! The orchestrator's overhead per stage hop: from one state commit (an
//! agent exiting, a gate verdict) to the commit of the stage that reacts to
//! it, with scripted agents and no gates, so what is measured is the tool.
//! The agents' own run time is printed beside it.
//!
//! A watcher thread reads the tip of `refs/ai-sprint` every millisecond (the
//! benchmark may poll; the product does not) and notes when each commit
//! appeared; the commits' subjects say which hop each was.
//!
//! Run with `cargo bench --bench hops`. Prints figures; asserts nothing.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use git_sprint::state::TaskStatus;

mod support;

use support::Env;

const FEATURES: usize = 8;

/// An orchestrator running two scripted Developers and Testers, each
/// sleeping 0.3 s first.
fn started() -> Env {
    Env::started(
        "hops",
        &format!(
            "agents:\n  scripted:\n    command: [\"sh\", \"-c\", \"sleep 0.3; exec {}\"]\n    prompt: env\nroles:\n  developer: {{ agent: scripted, count: 2 }}\n  tester: {{ agent: scripted, count: 2 }}\nsandbox: {{ enabled: false }}\n",
            support::scripted_agent().display()
        ),
    )
}

/// The median, or NaN when there were no samples.
fn median(v: Vec<f64>) -> f64 {
    support::median(v).unwrap_or(f64::NAN)
}

fn main() {
    let env = started();
    let seen: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (seen, stop, repo) = (seen.clone(), stop.clone(), env.repo.clone());
        std::thread::spawn(move || {
            let git = gix_open(&repo);
            let mut last = String::new();
            while !stop.load(Ordering::Relaxed) {
                if let Some(tip) = tip(&git) {
                    if tip != last {
                        seen.lock().unwrap().push((Instant::now(), tip.clone()));
                        last = tip;
                    }
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    for i in 0..FEATURES {
        let feature = format!("f{i}");
        let dir = env.repo.join("specs").join(&feature);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("tasks.md"), "- [ ] T001 Write a.txt\n").unwrap();
        env.run("git", &["add", "-A"]);
        env.run("git", &["commit", "-q", "-m", &feature]);
        let start = Instant::now();
        while !env
            .snapshot()
            .feature(&feature)
            .is_some_and(|f| f.tasks.iter().all(|t| t.status == TaskStatus::Done))
        {
            assert!(start.elapsed() < Duration::from_secs(120), "timed out");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    stop.store(true, Ordering::Relaxed);
    watcher.join().unwrap();

    // Subjects of every state commit, by id.
    let log = env.run("git", &["log", "--format=%H %s", "refs/ai-sprint"]);
    let subjects: HashMap<&str, &str> = log.lines().filter_map(|l| l.split_once(' ')).collect();
    let seen = seen.lock().unwrap();
    let events: Vec<(Instant, &str)> = seen
        .iter()
        .filter_map(|(t, id)| subjects.get(id.as_str()).map(|s| (*t, *s)))
        .collect();
    // (name, the commit that causes it, the commit that answers it).
    let hops: [Hop; 5] = [
        (
            "developer exit -> in_review",
            |s| s.contains(".dev.") && s.contains("-> exited"),
            |s| s.ends_with("in_progress -> in_review"),
        ),
        (
            "in_review -> in_tests (no review gates)",
            |s| s.ends_with("in_progress -> in_review"),
            |s| s.ends_with("in_review -> in_tests"),
        ),
        (
            "in_tests -> tester starting",
            |s| s.ends_with("in_review -> in_tests"),
            |s| s.contains("tester") && s.ends_with("starting"),
        ),
        (
            "tester exit -> in_docs (no test gates)",
            |s| s.contains(".test.") && s.contains("-> exited"),
            |s| s.ends_with("in_tests -> in_docs"),
        ),
        (
            "in_docs -> done (merge)",
            |s| s.ends_with("in_tests -> in_docs"),
            |s| s.ends_with("in_docs -> done"),
        ),
    ];
    let mut agent_ms = Vec::new();
    for (i, (t, s)) in events.iter().enumerate() {
        if s.contains(".dev.") && s.ends_with("-> running") {
            if let Some((t2, _)) = events[i..]
                .iter()
                .find(|(_, s2)| s2.contains(".dev.") && s2.contains("-> exited"))
            {
                agent_ms.push(t2.duration_since(*t).as_secs_f64() * 1000.0);
            }
        }
    }
    println!(
        "stage hops with scripted agents, {FEATURES} one-task features (median; agent run {:.0} ms):",
        median(agent_ms)
    );
    let mut all = Vec::new();
    for (name, cause, answer) in hops {
        let mut v = Vec::new();
        for (i, (t, s)) in events.iter().enumerate() {
            if cause(s) {
                if let Some((t2, _)) = events[i + 1..].iter().find(|(_, s2)| answer(s2)) {
                    v.push(t2.duration_since(*t).as_secs_f64() * 1000.0);
                }
            }
        }
        all.extend(v.iter().copied());
        println!(
            "  {name:<42} {:>7.0} ms  ({} samples)",
            median(v.clone()),
            v.len()
        );
    }
    println!(
        "overhead per stage hop, median of all: {:.0} ms (target <= 200 ms)",
        median(all)
    );
}

/// A hop's name, the commit subject that causes it, the one that answers it.
type Hop = (&'static str, fn(&str) -> bool, fn(&str) -> bool);

fn gix_open(repo: &Path) -> gix::Repository {
    gix::open(repo).unwrap()
}

fn tip(repo: &gix::Repository) -> Option<String> {
    let mut r = repo.try_find_reference("refs/ai-sprint").ok()??;
    r.peel_to_id().ok().map(|id| id.to_string())
}
