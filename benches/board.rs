//! The board's speed: a state commit to its Server-Sent Event, the status
//! API with 1,000 tasks, and the page drawing 1,000 task cards in headless
//! Chromium. Each figure is printed beside a baseline measured in the same
//! run: the commit itself, the same JSON from `git sprint status --json` as
//! a process, and the API answer the page draws from.
//!
//! Targets (issue #14): event ≤ 50 ms median after the commit; status ≤ 20 ms
//! median. Run with `cargo bench --bench board`. Prints figures; asserts
//! nothing. Without chromium (set GIT_SPRINT_CHROMIUM or put it on PATH) the
//! page figure is skipped, loudly.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use git_sprint::state::{ops, Actor, Store};

#[path = "../tests/it/cdp.rs"]
mod cdp;
mod support;

use support::{median, ms, Env, BIN};

const TASKS: usize = 1000;
const SAMPLES: usize = 30;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    assert!(
        body.starts_with("HTTP/1.0 200") || body.starts_with("HTTP/1.1 200"),
        "{path}: {body}"
    );
    body
}

fn main() {
    let env = Env::empty("board");
    let mut tasks = String::from("# Tasks\n");
    for t in 0..TASKS {
        if t % 100 == 0 {
            tasks.push_str(&format!("\n## Phase {}\n\n", t / 100 + 1));
        }
        tasks.push_str(&format!("- [ ] T{:04} [P] Task number {t}\n", t + 1));
    }
    std::fs::create_dir_all(env.repo.join("specs/big")).unwrap();
    std::fs::write(env.repo.join("specs/big/tasks.md"), tasks).unwrap();
    env.run("git", &["add", "-A"]);
    env.run("git", &["commit", "-q", "-m", "spec"]);
    env.run(BIN, &["ingest"]);

    let mut child = env
        .cmd(BIN)
        .args(["serve", "--addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let _server = Server(child);
    let addr = loop {
        let line = lines.next().expect("serve's banner").unwrap();
        if let Some(rest) = line.strip_prefix("Serving the board on http://") {
            break rest.trim_end_matches('/').to_owned();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));

    // GET /api/v1/status against the same JSON from a process.
    for _ in 0..3 {
        get(&addr, "/api/v1/status");
    }
    let api: Vec<Duration> = (0..SAMPLES)
        .map(|_| {
            let t = Instant::now();
            get(&addr, "/api/v1/status");
            t.elapsed()
        })
        .collect();
    let cli: Vec<Duration> = (0..10)
        .map(|_| {
            let t = Instant::now();
            env.run(BIN, &["status", "--json"]);
            t.elapsed()
        })
        .collect();
    let (api, cli) = (median(api).unwrap(), median(cli).unwrap());
    println!("GET /api/v1/status, {TASKS} tasks (median of {SAMPLES}):");
    println!(
        "  API                              {:>9.3} ms   (target <= 20 ms)",
        ms(api)
    );
    println!(
        "  baseline: git sprint status --json (process) {:>9.3} ms",
        ms(cli)
    );
    println!(
        "  ratio API / process              {:>9.3}",
        ms(api) / ms(cli)
    );

    // A state commit to its event.
    let (tx, rx) = mpsc::channel();
    {
        let mut s = TcpStream::connect(&addr).unwrap();
        write!(s, "GET /api/v1/events HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(s).lines() {
                let Ok(line) = line else { break };
                if let Some(id) = line.strip_prefix("id:") {
                    if tx.send((Instant::now(), id.trim().to_owned())).is_err() {
                        break;
                    }
                }
            }
        });
    }
    // The stream is open once the first commit comes through.
    let store = Store::discover(&env.repo).unwrap();
    let actor = Actor::named("bench");
    let commit = |paused: bool| {
        store
            .transact(&actor, |txn| ops::set_paused(txn, paused, None))
            .unwrap()
    };
    let warm = commit(true);
    let deadline = Duration::from_secs(10);
    loop {
        let (_, id) = rx.recv_timeout(deadline).expect("the first event");
        if Some(id) == warm.commit.map(|c| c.to_string()) {
            break;
        }
    }
    let (mut delivered, mut txn) = (Vec::new(), Vec::new());
    for i in 0..SAMPLES {
        let t0 = Instant::now();
        let done = commit(i % 2 == 1);
        let t1 = Instant::now();
        let want = done.commit.expect("a change").to_string();
        let at = loop {
            let (at, id) = rx.recv_timeout(deadline).expect("an event per commit");
            if id == want {
                break at;
            }
        };
        txn.push(t1 - t0);
        delivered.push(at.saturating_duration_since(t1));
    }
    let (delivered, txn) = (median(delivered).unwrap(), median(txn).unwrap());
    println!("state commit -> SSE event (median of {SAMPLES}):");
    println!(
        "  after the commit returned        {:>9.3} ms   (target <= 50 ms)",
        ms(delivered)
    );
    println!("  baseline: the commit itself      {:>9.3} ms", ms(txn));
    println!(
        "  ratio event / commit             {:>9.3}",
        ms(delivered) / ms(txn)
    );

    // The page drawing every card.
    let Some(chromium) = cdp::chromium() else {
        println!("page with {TASKS} cards: SKIPPED (no chromium)");
        return;
    };
    let t = Instant::now();
    let mut b = cdp::Browser::open(&chromium, &format!("http://{addr}/"));
    b.wait(
        "every card drawn",
        &format!("document.querySelectorAll('.card[data-task]').length === {TASKS}"),
    );
    let shown = t.elapsed();
    let draw: f64 = b
        .eval("Number(document.body.dataset.renderMs)")
        .as_f64()
        .unwrap_or(f64::NAN);
    println!("page with {TASKS} task cards:");
    println!("  drawing them (renderStatus)      {:>9.3} ms", draw);
    println!("  browser start to all shown       {:>9.3} ms", ms(shown));
    println!("  baseline: GET /api/v1/status     {:>9.3} ms", ms(api));
    println!("  ratio drawing / API              {:>9.3}", draw / ms(api));
}
