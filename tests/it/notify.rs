//! Notifications against real receivers: an HTTP server on a loopback port
//! of each test's own (answering, failing, or hanging), and commands that
//! get the event on stdin; events from a real sprint with a failing agent.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::fleet::Fleet;
use super::sprint::{config, Sprint};
use super::support::{stderr, stdout};

#[derive(Clone, Copy)]
enum Answer {
    Ok,
    Fail,
    Hang,
}

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
struct Request {
    line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A tiny HTTP/1.1 server on 127.0.0.1, stopped on drop.
struct Receiver {
    port: u16,
    seen: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
}

impl Receiver {
    fn start(answer: Answer) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (seen.clone(), stop.clone());
        std::thread::spawn(move || {
            // Held open, unanswered, until the server stops.
            let mut hanging = Vec::new();
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                let Some(req) = read_request(&conn) else {
                    continue;
                };
                s.lock().unwrap().push(req);
                let reply = match answer {
                    Answer::Ok => "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    Answer::Fail => "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\nConnection: close\r\n\r\noops",
                    Answer::Hang => {
                        hanging.push(conn);
                        continue;
                    }
                };
                let _ = conn.write_all(reply.as_bytes());
            }
        });
        Receiver { port, seen, stop }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    fn requests(&self) -> Vec<Request> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept so the thread sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn read_request(conn: &TcpStream) -> Option<Request> {
    conn.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut r = BufReader::new(conn);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(Request {
        line: line.trim_end().to_owned(),
        headers,
        body,
    })
}

/// A repository with `notify:` committed on main.
fn fleet_with(notify: &str) -> Fleet {
    let f = Fleet::new();
    f.repo.write(".git-sprint.yaml", notify);
    f.repo.git(["add", "-A"]);
    f.repo.git(["commit", "-q", "-m", "notify"]);
    f
}

fn deliveries(f: &Fleet) -> Vec<Value> {
    let out = f.ok(&["notify", "log", "--json"]);
    serde_json::from_str::<Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn notify_test_posts_the_event_to_a_loopback_webhook_with_its_secret_header_from_the_environment() {
    let server = Receiver::start(Answer::Ok);
    let f = fleet_with(&format!(
        "notify:\n  hook:\n    webhook: {}\n    headers: {{ Authorization: {{ secret_env: HOOK_TOKEN }}, X-Team: ops }}\n",
        server.url()
    ));
    let out = f
        .cmd(super::support::BIN)
        .args(["notify", "test", "task.failed"])
        .env("HOOK_TOKEN", "Bearer s3cret")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("hook task.failed"),
        "{}",
        stdout(&out)
    );
    let got = server.requests();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].line, "POST /hook HTTP/1.1");
    assert_eq!(got[0].header("authorization"), Some("Bearer s3cret"));
    assert_eq!(got[0].header("x-team"), Some("ops"));
    assert_eq!(got[0].header("content-type"), Some("application/json"));
    let event = got[0].json();
    assert_eq!(event["event"], "task.failed");
    assert_eq!(event["subject"], "001-example/T001");
    assert!(event["message"].as_str().unwrap().contains("failed"));
    let log = deliveries(&f);
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0]["receiver"], "hook");
    assert_eq!(log[0]["ok"], true);
    assert_eq!(log[0]["status"], 200);
    assert_eq!(log[0]["attempts"], 1);
}

#[test]
fn a_webhook_that_answers_500_is_retried_then_recorded_failed() {
    let server = Receiver::start(Answer::Fail);
    let f = fleet_with(&format!(
        "notify:\n  hook:\n    webhook: {}\n    retries: 1\n",
        server.url()
    ));
    let out = f.run(&["notify", "test", "feature.done"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("1 of 1 deliveries failed"),
        "{}",
        stderr(&out)
    );
    assert_eq!(server.requests().len(), 2, "one try and one retry");
    let log = deliveries(&f);
    assert_eq!(log[0]["ok"], false, "{log:?}");
    assert_eq!(log[0]["status"], 500);
    assert_eq!(log[0]["attempts"], 2);
    assert!(log[0]["error"].as_str().unwrap().contains("HTTP 500"));
    let text = f.ok(&["notify", "log", "--failed"]);
    assert!(
        text.contains("hook feature.done 001-example: failed, HTTP 500, 2 attempts"),
        "{text}"
    );
}

#[test]
fn a_webhook_that_hangs_times_out_and_is_recorded_failed() {
    let server = Receiver::start(Answer::Hang);
    let f = fleet_with(&format!(
        "notify:\n  hook:\n    webhook: {}\n    timeout: 1s\n    retries: 0\n",
        server.url()
    ));
    let out = super::support::output_within(
        f.cmd(super::support::BIN)
            .args(["notify", "test", "agent.hung"]),
        "notify test against a receiver that never answers",
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert_eq!(server.requests().len(), 1);
    let log = deliveries(&f);
    assert_eq!(log[0]["ok"], false, "{log:?}");
    assert!(log[0].get("status").is_none(), "{log:?}");
    assert!(
        log[0]["error"]
            .as_str()
            .unwrap()
            .contains("no answer within 1s"),
        "{log:?}"
    );
}

#[test]
fn a_notify_command_gets_the_event_json_on_stdin_and_the_message_as_an_argument() {
    let f = Fleet::new();
    let got = f.repo.home().join("got");
    std::fs::create_dir_all(&got).unwrap();
    // No shell: `tee` copies stdin to the file named by the argument, and
    // the message argument becomes a file name only if it was filled in.
    let cfg = format!(
        "notify:\n  desktop:\n    on: [task.blocked]\n    command: [tee, {}, '{}/{{event}}.txt']\n",
        got.join("event.json").display(),
        got.display()
    );
    f.repo.write(".git-sprint.yaml", &cfg);
    f.repo.git(["add", "-A"]);
    f.repo.git(["commit", "-q", "-m", "notify"]);
    f.ok(&["notify", "test", "task.blocked"]);
    let event: Value =
        serde_json::from_slice(&std::fs::read(got.join("event.json")).unwrap()).unwrap();
    assert_eq!(event["event"], "task.blocked");
    assert!(got.join("task.blocked.txt").is_file());
    // A receiver that does not list the event is not sent it.
    let out = f.ok(&["notify", "test", "task.failed"]);
    assert!(out.contains("no receiver wants task.failed"), "{out}");
}

#[test]
fn a_committed_literal_secret_in_notify_is_refused_naming_the_key_and_the_variable_to_use() {
    let f = fleet_with(
        "notify:\n  chat:\n    webhook: https://chat.example.com/hook\n    headers: { Authorization: Bearer abc123 }\n",
    );
    let out = f.run(&["notify", "test", "task.failed"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("notify.chat.headers.Authorization") && err.contains("secret_env"),
        "{err}"
    );
}

/// The events a command receiver wrote with `tee -a` (JSON objects back to
/// back).
fn events_in(path: &Path) -> Vec<Value> {
    let bytes = std::fs::read(path).unwrap_or_default();
    serde_json::Deserializer::from_slice(&bytes)
        .into_iter::<Value>()
        .map(|v| v.unwrap())
        .collect()
}

#[test]
fn a_failing_sprint_tells_a_command_of_task_failed_blocked_and_stalled_once_while_a_hanging_webhook_holds_nothing_up(
) {
    let server = Receiver::start(Answer::Hang);
    let f = Fleet::new();
    let events_path = f.repo.home().join("events.jsonl");
    let notify = format!(
        "notify:\n  log:\n    command: [tee, -a, {}]\n  slow:\n    on: [task.failed]\n    webhook: {}\n    timeout: 1s\n    retries: 0\n",
        events_path.display(),
        server.url()
    );
    // An agent that changes nothing: its one attempt fails, and the task
    // that depends on it is blocked, which stalls the feature.
    f.repo.write("check.sh", super::sprint::CHECK);
    f.repo.write(
        ".git-sprint.yaml",
        &config(
            "echo 'Done.'",
            &format!("policy: {{ max_attempts: 1, retry_backoff: 1s }}\n{notify}"),
        ),
    );
    f.repo.write(
        "specs/f/tasks.md",
        "- [ ] T001 Write src/a.txt\n- [ ] T002 Write src/b.txt (depends on T001)\n",
    );
    f.repo.git(["add", "-A"]);
    f.repo.git(["commit", "-q", "-m", "spec"]);
    let s = Sprint { f };
    s.start(&[]);
    s.wait("T001 failed and T002 blocked", 60, |t| {
        t["T001"]["status"] == "failed" && t["T002"]["status"] == "blocked"
    });
    let wanted = [
        ("task.failed", "f/T001"),
        ("task.blocked", "f/T002"),
        ("feature.stalled", "f"),
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got: Vec<(String, String)> = events_in(&events_path)
            .iter()
            .map(|e| {
                (
                    e["event"].as_str().unwrap().to_owned(),
                    e["subject"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        if wanted
            .iter()
            .all(|(e, s)| got.iter().any(|(ge, gs)| ge == e && gs == s))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {wanted:?}; the command got {got:?}\n{}",
            s.f.ok(&["notify", "log"])
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The event names the commit that made it, in the audit trail.
    let failed = events_in(&events_path)
        .into_iter()
        .find(|e| e["event"] == "task.failed")
        .unwrap();
    let commit = failed["commit"].as_str().unwrap();
    let msg = s.f.repo.git(["log", "-1", "--format=%B", commit]);
    assert!(
        msg.contains("Sprint-Task: f/T001\nSprint-From: in_progress\nSprint-To: failed"),
        "{msg}"
    );
    assert_eq!(failed["key"], format!("{commit}/task.failed/f/T001"));
    // The receiver that never answers was tried, timed out and recorded.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !deliveries(&s.f)
        .iter()
        .any(|d| d["receiver"] == "slow" && d["ok"] == false)
    {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for the hanging webhook's failed delivery\n{}",
            s.f.ok(&["notify", "log"])
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(server.requests().len(), 1);
    // A restarted orchestrator sends nothing again.
    s.f.ok(&["stop"]);
    s.start(&[]);
    super::support::holds_for(
        "each event sent once",
        Duration::from_secs(3),
        || match events_in(&events_path).len() {
            3 => Ok(()),
            n => Err(format!("{n} events: {:?}", events_in(&events_path))),
        },
    );
}
