//! `git sprint serve`: the API's contract against the read commands' own
//! JSON, the token and same-origin rules, Server-Sent Events with
//! `Last-Event-ID`, and the page driven in headless Chromium over the
//! DevTools protocol (a pipe, no extra crate).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};

use super::cdp::{chromium, Browser};
use super::fleet::Fleet;
use super::support::BIN;

const TASKS: &str = "# Tasks\n\n## Phase 1\n\n- [ ] T001 Write the parser\n- [ ] T002 [P] Write the printer\n- [ ] T003 Document both\n";

/// A repository with a feature of three tasks and `serve` running on a
/// free loopback port; the server is killed on drop.
pub(crate) struct Served {
    pub(crate) f: Fleet,
    child: Child,
    pub(crate) addr: String,
    pub(crate) token: String,
    /// What serve printed before it listened.
    pub(crate) banner: String,
}

impl Served {
    pub(crate) fn start() -> Served {
        Served::on("127.0.0.1:0")
    }

    pub(crate) fn on(listen: &str) -> Served {
        let f = Fleet::new();
        f.repo.write("specs/f/tasks.md", TASKS);
        f.repo.git(["add", "-A"]);
        f.repo.git(["commit", "-q", "-m", "spec"]);
        f.ok(&["ingest"]);
        Served::serve(f, listen)
    }

    pub(crate) fn serve(f: Fleet, listen: &str) -> Served {
        let mut child = f
            .cmd(BIN)
            .args(["serve", "--addr", listen])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start git-sprint serve");
        let out = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut banner = String::new();
        let addr = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| {
                    panic!("serve never said where it listens; it printed:\n{banner}")
                });
            banner.push_str(&line);
            banner.push('\n');
            if let Some(rest) = line.strip_prefix("Serving the board on http://") {
                break rest.trim_end_matches('/').to_owned();
            }
        };
        // The rest of the banner (token path, warnings) up to its last line.
        while let Ok(line) = rx.recv_timeout(Duration::from_secs(10)) {
            banner.push_str(&line);
            banner.push('\n');
            if line.starts_with("Press Ctrl-C") {
                break;
            }
        }
        let token = std::fs::read_to_string(f.repo.path().join(".git/sprint/board-token"))
            .expect("serve wrote its token")
            .trim()
            .to_owned();
        let port = addr.rsplit(':').next().unwrap().to_owned();
        Served {
            f,
            child,
            addr: format!("127.0.0.1:{port}"),
            token,
            banner,
        }
    }

    pub(crate) fn get(&self, path: &str) -> Reply {
        request(&self.addr, "GET", path, &[], "")
    }

    pub(crate) fn json(&self, path: &str) -> Value {
        let r = self.get(path);
        assert_eq!(r.status, 200, "GET {path}: {}", r.body);
        serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("GET {path}: {e}: {}", r.body))
    }

    pub(crate) fn cli(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.f.ok(args)).expect("the command's --json")
    }

    pub(crate) fn tip(&self) -> String {
        self.f
            .repo
            .git(["rev-parse", "refs/ai-sprint"])
            .trim()
            .to_owned()
    }

    pub(crate) fn status_of(&self, task: &str) -> String {
        let v = self.cli(&["show", task, "--json"]);
        v["task"]["status"].as_str().unwrap_or_default().to_owned()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) head: String,
    pub(crate) body: String,
}

/// One HTTP/1.0 request (so the answer is never chunked and ends with the
/// connection).
pub(crate) fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("{method} {path}: reading the answer: {e}"));
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{method} {path}: no status line in {head:?}"));
    Reply {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

/// An open `/api/v1/events` stream, read event by event.
pub(crate) struct Events {
    lines: std::io::Lines<BufReader<TcpStream>>,
}

impl Events {
    pub(crate) fn open(addr: &str, last: Option<&str>) -> Events {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut req =
            format!("GET /api/v1/events HTTP/1.0\r\nHost: {addr}\r\nAccept: text/event-stream\r\n");
        if let Some(id) = last {
            req.push_str(&format!("Last-Event-ID: {id}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).unwrap();
        let mut lines = BufReader::new(s).lines();
        let status = lines.next().expect("a status line").unwrap();
        assert!(status.contains(" 200 "), "events: {status}");
        for line in lines.by_ref() {
            let line = line.unwrap();
            if line.is_empty() {
                break;
            }
            if line.to_ascii_lowercase().starts_with("content-type:") {
                assert!(line.contains("text/event-stream"), "{line}");
            }
        }
        Events { lines }
    }

    /// The next event (id, data), skipping keep-alive comments; the socket's
    /// read timeout bounds the wait.
    pub(crate) fn next(&mut self, what: &str) -> (String, Value) {
        let (mut id, mut data) = (String::new(), String::new());
        loop {
            let line = self
                .lines
                .next()
                .unwrap_or_else(|| panic!("the event stream ended waiting for {what}"))
                .unwrap_or_else(|e| panic!("no event for {what}: {e}"));
            if let Some(v) = line.strip_prefix("id:") {
                id = v.trim().to_owned();
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.trim());
            } else if line.is_empty() && !data.is_empty() {
                return (id, serde_json::from_str(&data).expect("event data is JSON"));
            }
        }
    }
}

#[test]
fn every_read_endpoint_answers_with_the_read_commands_json() {
    let s = Served::start();
    assert!(!s.banner.contains("warning"), "{}", s.banner);

    let status = s.json("/api/v1/status");
    let cli = s.cli(&["status", "--json"]);
    assert_eq!(status["tip"], cli["tip"]);
    assert_eq!(status["features"], cli["features"]);
    assert_eq!(status["spend"], cli["spend"]);
    assert_eq!(status["features"][0]["tasks"].as_array().unwrap().len(), 3);

    let feature = s.json("/api/v1/features/f");
    assert_eq!(feature["feature"], cli["features"][0]);
    assert_eq!(feature["tip"], cli["tip"]);

    let task = s.json("/api/v1/tasks/f/T002");
    assert_eq!(task, s.cli(&["show", "f/T002", "--json"]));
    assert_eq!(task["task"]["title"], "Write the printer");
    assert!(!task["history"].as_array().unwrap().is_empty(), "{task:#}");

    let diff = s.json("/api/v1/tasks/f/T002/diffstat");
    assert_eq!(diff["task"], "f/T002");
    assert_eq!(diff["diffstat"], "", "no branch yet: {diff:#}");

    assert_eq!(
        s.json("/api/v1/agents"),
        s.cli(&["list", "--all", "--json"])
    );
    assert_eq!(
        s.json("/api/v1/machines"),
        s.cli(&["list", "--machines", "--json"])
    );
    assert_eq!(s.json("/api/v1/log"), s.cli(&["log", "--json"]));
    let one = s.json("/api/v1/log?limit=1");
    assert_eq!(one.as_array().unwrap().len(), 1);
    assert_eq!(one[0]["commit"], s.tip());

    let health = s.json("/api/v1/health");
    assert!(health["healthy"].is_boolean(), "{health:#}");
    assert!(health["agents"].is_array(), "{health:#}");

    // `after=`: only what came after that commit, newest first.
    let before = s.tip();
    s.f.ok(&["cancel", "f/T003", "--reason", "not needed"]);
    s.f.ok(&["retry", "f/T003"]);
    let after = s.json(&format!("/api/v1/log?after={before}"));
    let ids: Vec<&str> = after
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["commit"].as_str().unwrap())
        .collect();
    let expected =
        s.f.repo
            .git(["rev-list", &format!("{before}..refs/ai-sprint")]);
    assert_eq!(ids, expected.lines().collect::<Vec<_>>());

    // The page and its files come from the binary.
    let page = s.get("/");
    assert_eq!(page.status, 200);
    assert!(
        page.head.to_ascii_lowercase().contains("text/html"),
        "{}",
        page.head
    );
    assert!(
        page.body.contains("<script src=\"/app.js\">"),
        "{}",
        page.body
    );
    assert!(s.get("/app.js").body.contains("/api/v1/events"));
    assert!(s.get("/style.css").body.contains(".card"));
}

#[test]
fn unknown_names_and_bad_ids_are_clear_errors() {
    let s = Served::start();
    for (path, status, says) in [
        ("/api/v1/tasks/f/T999", 404, "no task 'f/T999'"),
        ("/api/v1/features/nope", 404, "no feature 'nope'"),
        ("/api/v1/nothing", 404, "no such page"),
        ("/api/v1/log?after=xyz", 400, "not a state commit id"),
        ("/api/v1/agents/..%2Fetc/log", 400, "not an agent id"),
    ] {
        let r = s.get(path);
        assert_eq!(r.status, status, "{path}: {}", r.body);
        let v: Value = serde_json::from_str(&r.body).unwrap();
        assert!(v["error"].as_str().unwrap().contains(says), "{path}: {v}");
        assert!(!v["hint"].as_str().unwrap().is_empty(), "{path}: {v}");
    }
    let r = request(
        &s.addr,
        "GET",
        "/api/v1/events",
        &[("Last-Event-ID", "nope")],
        "",
    );
    assert_eq!(r.status, 400, "{}", r.body);
    // A name rebound to 127.0.0.1 is not this machine.
    let mut stream = TcpStream::connect(&s.addr).unwrap();
    stream
        .write_all(b"GET /api/v1/status HTTP/1.0\r\nHost: evil.example\r\n\r\n")
        .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    assert!(
        raw.starts_with("HTTP/1.0 403") || raw.starts_with("HTTP/1.1 403"),
        "{raw}"
    );
}

#[test]
fn actions_need_the_token_and_a_same_origin_request() {
    let s = Served::start();
    let tip = s.tip();
    let retry = "/api/v1/tasks/f/T001/cancel";
    let refused = request(&s.addr, "POST", retry, &[], "");
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert!(refused.body.contains("X-Sprint-Token"), "{}", refused.body);
    let wrong = request(&s.addr, "POST", retry, &[("X-Sprint-Token", "0000")], "");
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    let cross = request(
        &s.addr,
        "POST",
        retry,
        &[
            ("X-Sprint-Token", &s.token),
            ("Origin", "http://evil.example"),
        ],
        "",
    );
    assert_eq!(cross.status, 403, "{}", cross.body);
    assert_eq!(s.tip(), tip, "a refused action changed the state");
    assert_eq!(s.status_of("f/T001"), "todo");

    let origin = format!("http://{}", s.addr);
    let ok = request(
        &s.addr,
        "POST",
        retry,
        &[
            ("X-Sprint-Token", &s.token),
            ("Origin", &origin),
            ("Content-Type", "application/json"),
        ],
        r#"{"reason": "from the board"}"#,
    );
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(s.status_of("f/T001"), "cancelled");
    let last = &s.cli(&["log", "--json", "-n", "1"])[0];
    assert_eq!(last["actor"], "board");
    assert_eq!(
        last["transitions"][0]["reason"], "from the board",
        "{last:#}"
    );

    let bad = request(
        &s.addr,
        "POST",
        "/api/v1/tasks/f/T001/retry",
        &[("X-Sprint-Token", &s.token)],
        "{not json",
    );
    assert_eq!(bad.status, 400, "{}", bad.body);
    let ok = request(
        &s.addr,
        "POST",
        "/api/v1/tasks/f/T001/retry",
        &[("X-Sprint-Token", &s.token)],
        "",
    );
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(s.status_of("f/T001"), "todo");
    // Retrying a task that has not failed is refused by the state, as on the CLI.
    let conflict = request(
        &s.addr,
        "POST",
        "/api/v1/tasks/f/T001/retry",
        &[("X-Sprint-Token", &s.token)],
        "",
    );
    assert_eq!(conflict.status, 409, "{}", conflict.body);

    let paused = request(
        &s.addr,
        "POST",
        "/api/v1/pause",
        &[("X-Sprint-Token", &s.token)],
        "",
    );
    assert_eq!(paused.status, 200, "{}", paused.body);
    assert_eq!(s.cli(&["status", "--json"])["meta"]["paused"], true);
    let resumed = request(
        &s.addr,
        "POST",
        "/api/v1/resume",
        &[("X-Sprint-Token", &s.token)],
        "",
    );
    assert_eq!(resumed.status, 200, "{}", resumed.body);
    assert_ne!(s.cli(&["status", "--json"])["meta"]["paused"], true);
}

#[test]
fn off_loopback_reads_need_the_token_and_serve_warns() {
    let s = Served::on("0.0.0.0:0");
    assert!(s.banner.contains("warning: 0.0.0.0:"), "{}", s.banner);
    assert!(s.banner.contains("not a loopback address"), "{}", s.banner);
    // Reached through loopback, but served on every address: the token counts.
    let refused = s.get("/api/v1/status");
    assert_eq!(refused.status, 401, "{}", refused.body);
    let ok = request(
        &s.addr,
        "GET",
        "/api/v1/status",
        &[("X-Sprint-Token", &s.token)],
        "",
    );
    assert_eq!(ok.status, 200, "{}", ok.body);
    // The page itself holds nothing and is where the token is pasted.
    assert_eq!(s.get("/").status, 200);
}

#[test]
fn events_deliver_every_state_commit_and_resume_from_last_event_id() {
    let s = Served::start();
    let mut live = Events::open(&s.addr, None);
    s.f.ok(&["cancel", "f/T003"]);
    let (id, entry) = live.next("the cancel's commit");
    assert_eq!(id, s.tip());
    assert_eq!(entry["commit"], id.as_str());
    assert_eq!(entry["transitions"][0]["task"], "f/T003");
    assert_eq!(entry["transitions"][0]["to"], "cancelled");
    drop(live);

    // Two commits while nobody listens; resuming sends both, oldest first,
    // then goes on live.
    s.f.ok(&["retry", "f/T003"]);
    s.f.ok(&["pause"]);
    let mut resumed = Events::open(&s.addr, Some(&id));
    let missed =
        s.f.repo
            .git(["rev-list", "--reverse", &format!("{id}..refs/ai-sprint")]);
    for want in missed.lines() {
        let (got, _) = resumed.next("a commit made while disconnected");
        assert_eq!(got, want);
    }
    s.f.ok(&["resume"]);
    let (got, entry) = resumed.next("the resume's commit");
    assert_eq!(got, s.tip());
    assert_eq!(entry["commit"], got.as_str());
}

// ---------------------------------------------------------------------------
// The page in a real browser.

fn card_status(task: &str) -> String {
    format!("(() => {{ const c = document.querySelector('.card[data-task=\"{task}\"]'); return c ? c.dataset.status : null; }})()")
}

#[test]
fn the_page_lists_every_task_follows_the_cli_live_and_retries_with_the_token() {
    let Some(chromium) = chromium() else {
        eprintln!("SKIPPED: no chromium (apt-get install chromium, or set GIT_SPRINT_CHROMIUM)");
        return;
    };
    let s = Served::start();
    // A running agent for the agents table.
    s.f.ok(&[
        "spawn",
        "w1",
        "--prompt",
        "wait",
        "--agent-command",
        &format!("SCRIPTED_AGENT_MODE=hang {}", super::fleet::agent()),
    ]);
    let mut b = Browser::open(&chromium, &format!("http://{}/", s.addr));
    b.wait(
        "the board to draw the state's tip",
        &format!("document.body.dataset.tip === '{}'", s.tip()),
    );
    b.wait(
        "the event stream to be live",
        "document.body.dataset.live === 'on'",
    );

    // Every task, in the column of its status.
    let cards = b
        .eval("[...document.querySelectorAll('.card[data-task]')].map(c => c.dataset.task).sort()");
    assert_eq!(cards, json!(["f/T001", "f/T002", "f/T003"]));
    assert_eq!(
        b.eval("document.querySelectorAll('.column[data-status=todo] .card').length"),
        json!(3)
    );
    b.wait(
        "the running agent row",
        "!!document.querySelector('#agents tr[data-agent=w1]')",
    );
    b.wait(
        "the feature's progress",
        "!!document.querySelector('.feature[data-feature=f] .bar')",
    );

    // A transition made with the CLI shows without a reload: the marker set
    // on this page load survives.
    b.eval("window.sameLoad = 'yes'");
    s.f.ok(&["cancel", "f/T001", "--reason", "from the CLI"]);
    b.wait(
        "f/T001 to move to cancelled",
        &format!("{} === 'cancelled'", card_status("f/T001")),
    );
    assert_eq!(b.eval("window.sameLoad"), json!("yes"), "the page reloaded");
    b.wait(
        "the audit stream to show the commit",
        &format!(
            "!!document.querySelector('#audit li[data-commit=\"{}\"]')",
            s.tip()
        ),
    );

    // Retry on the page without the token: refused, nothing moves.
    let tip = s.tip();
    b.eval("document.querySelector('.card[data-task=\"f/T001\"]').click()");
    b.wait("the task view to open", "document.getElementById('task').open && document.getElementById('task').dataset.task === 'f/T001'");
    b.eval("document.getElementById('retry').click()");
    b.wait(
        "the refusal to show",
        "document.getElementById('notice').textContent.includes('X-Sprint-Token')",
    );
    assert_eq!(
        s.tip(),
        tip,
        "an action without the token changed the state"
    );
    assert_eq!(s.status_of("f/T001"), "cancelled");

    // With the token pasted, the same click moves the task.
    b.eval(&format!(
        "(() => {{ const t = document.getElementById('token'); t.value = '{}'; t.dispatchEvent(new Event('change')); }})()",
        s.token
    ));
    b.eval("document.getElementById('retry').click()");
    b.wait(
        "f/T001 to go back to todo",
        &format!("{} === 'todo'", card_status("f/T001")),
    );
    assert_eq!(s.status_of("f/T001"), "todo");
    assert_eq!(s.cli(&["log", "--json", "-n", "1"])[0]["actor"], "board");
    b.wait(
        "the task view to follow",
        "document.getElementById('task').dataset.status === 'todo'",
    );
    b.eval("document.getElementById('task').close()");

    let png = b.screenshot();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("board");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("board.png");
    std::fs::write(&path, &png).unwrap();
    eprintln!("screenshot of the board: {}", path.display());
}
