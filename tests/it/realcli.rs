//! Sprints run by the real agent CLIs — Claude Code and Codex, installed from
//! npm — against the loopback API stand-in (`fixtures/standin/standin.js`),
//! so the real clients' streams, retries and exit codes are what git-sprint
//! sees. The stand-in writes every answer it completed to a ledger; the
//! checks compare what git-sprint recorded with it.
//!
//! A CLI is found through `GIT_SPRINT_CLAUDE_BIN` / `GIT_SPRINT_CODEX_BIN`
//! (what `.ci/run` exports after installing them) or on `PATH`, and `node`
//! on `PATH`. When one is missing the test prints `SKIPPED: …` to stderr and
//! returns: CI installs them, so there the tests run.
//!
//! Each test keeps its CLI fast and contained: retries off, short leases, a
//! temp `HOME` (Codex reads `$HOME/.codex`), no telemetry, update checks or
//! plugin syncs — checked with strace: neither CLI resolves or connects to
//! anything but the stand-in.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::sprint::Sprint;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Claude,
    Codex,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Claude => "claude",
            Kind::Codex => "codex",
        }
    }

    fn env_var(self) -> &'static str {
        match self {
            Kind::Claude => "GIT_SPRINT_CLAUDE_BIN",
            Kind::Codex => "GIT_SPRINT_CODEX_BIN",
        }
    }

    /// The model the agent profile names (the stand-in answers as it).
    fn model(self) -> &'static str {
        match self {
            Kind::Claude => "claude-sonnet-4-5-20250929",
            Kind::Codex => "gpt-5.5",
        }
    }

    /// US dollars per million tokens: for Claude Code, what it charges for
    /// the model (Anthropic's published Sonnet 4.5 prices: the CLI reports
    /// the cost itself); for Codex, which reports none, the config's table.
    fn price(self) -> [f64; 4] {
        match self {
            Kind::Claude => [3.0, 15.0, 0.30, 3.75],
            Kind::Codex => [1.25, 10.0, 0.125, 0.0],
        }
    }
}

fn on_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    })
}

/// The CLI and node, or why the test cannot run.
fn tools(kind: Kind) -> Result<(PathBuf, PathBuf), String> {
    let node = on_path("node").ok_or("node is not on PATH")?;
    let cli = match std::env::var_os(kind.env_var()) {
        Some(p) if !p.is_empty() => {
            let p = PathBuf::from(p);
            if !p.is_file() {
                return Err(format!(
                    "{} names {}, which does not exist",
                    kind.env_var(),
                    p.display()
                ));
            }
            p
        }
        _ => on_path(kind.name()).ok_or_else(|| {
            format!(
                "`{}` is not on PATH and {} is not set (.ci/run installs it from npm)",
                kind.name(),
                kind.env_var()
            )
        })?,
    };
    Ok((cli, node))
}

macro_rules! need {
    ($kind:expr) => {
        match tools($kind) {
            Ok(t) => t,
            Err(why) => {
                eprintln!("SKIPPED: {}: {why}", $kind.name());
                return;
            }
        }
    };
}

/// The stand-in API on a free loopback port, killed on drop.
struct StandIn {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl StandIn {
    fn start(node: &Path, config: Value) -> StandIn {
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/standin/standin.js");
        let mut s = StandIn {
            child: Command::new(node)
                .arg(script)
                .arg(dir.path().join("config.json"))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("start the stand-in"),
            port: 0,
            dir,
        };
        s.set(config);
        let stdout = s.child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the stand-in to say which port it listens on");
        s.port = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("stand-in said {line:?}"));
        s
    }

    /// Replaces the stand-in's config (it re-reads it on every request);
    /// the ledger stays where it is.
    fn set(&self, mut config: Value) {
        config["ledger"] = json!(self.dir.path().join("ledger.jsonl"));
        let tmp = self.dir.path().join("config.json.tmp");
        std::fs::write(&tmp, config.to_string()).unwrap();
        std::fs::rename(&tmp, self.dir.path().join("config.json")).unwrap();
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every answer completed so far.
    fn ledger(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("ledger.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Token sums of the answers to `role` on `task`: input, output,
    /// cache read, cache write.
    fn spent(&self, role: &str, task: &str) -> [u64; 4] {
        let mut sum = [0; 4];
        for e in self.ledger() {
            if e["role"] == role && e["task"] == task {
                for (i, k) in ["input", "output", "cache_read", "cache_write"]
                    .iter()
                    .enumerate()
                {
                    sum[i] += e["usage"][*k].as_u64().unwrap();
                }
            }
        }
        sum
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A sprint whose agents are `kind` talking to `standin`; stopped on drop.
struct Run {
    s: Sprint,
    kind: Kind,
    path: String,
}

impl Run {
    fn new(kind: Kind, cli: &Path, standin: &StandIn, extra: &str, tasks: &str) -> Run {
        let [input, output, cache_read, cache_write] = kind.price();
        let env = match kind {
            Kind::Claude => format!(
                r#"    env:
      ANTHROPIC_BASE_URL: "{url}"
      ANTHROPIC_API_KEY: sk-ant-standin
      IS_SANDBOX: "1"
      CLAUDE_CODE_MAX_RETRIES: "0"
      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1"
      DISABLE_AUTOUPDATER: "1"
"#,
                url = standin.url()
            ),
            Kind::Codex => "    env:\n      STANDIN_API_KEY: sk-standin\n".to_owned(),
        };
        let config = format!(
            r#"agents:
  {name}:
    preset: {name}
    model: {model}
{env}roles:
  developer: {{ agent: {name}, count: 1 }}
  tester: {{ agent: {name}, count: 1 }}
gates:
  review:
    - name: has-commits
      run: test "$(git rev-list --count sprint/f/integration..HEAD)" -gt 0
  test: []
  post_merge: []
prices:
  {model}: {{ input: {input}, output: {output}, cache_read: {cache_read}, cache_write: {cache_write} }}
{extra}"#,
            name = kind.name(),
            model = kind.model(),
        );
        let s = Sprint::new(&config, tasks);
        if kind == Kind::Codex {
            // $HOME is the test's own: Codex reads $HOME/.codex/config.toml.
            let home = s.f.repo.home().join(".codex");
            std::fs::create_dir_all(&home).unwrap();
            std::fs::write(
                home.join("config.toml"),
                format!(
                    r#"model_provider = "standin"
check_for_update_on_startup = false

[analytics]
enabled = false

# Else it syncs its curated plugins from github.com (and chatgpt.com) at start.
[features]
plugins = false

[model_providers.standin]
name = "git-sprint stand-in"
base_url = "{url}/v1"
wire_api = "responses"
env_key = "STANDIN_API_KEY"
request_max_retries = 0
stream_max_retries = 0
stream_idle_timeout_ms = 600000
"#,
                    url = standin.url()
                ),
            )
            .unwrap();
        }
        let dir = cli.parent().unwrap();
        let path = match std::env::var_os("PATH") {
            Some(p) => {
                let mut all = vec![dir.to_owned()];
                all.extend(std::env::split_paths(&p));
                std::env::join_paths(all).unwrap()
            }
            None => dir.as_os_str().to_owned(),
        };
        Run {
            s,
            kind,
            path: path.to_string_lossy().into_owned(),
        }
    }

    fn start(&self) {
        self.s.start(&[("PATH", &self.path)]);
    }

    fn agents(&self) -> Vec<Value> {
        self.s.status()["agents"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    fn agent(&self, id: &str) -> Value {
        self.agents()
            .into_iter()
            .find(|a| a["id"] == id)
            .unwrap_or_else(|| panic!("no agent {id}: {:#?}", self.agents()))
    }

    /// Polls the agents until `done` holds (the test waits; the product does not poll).
    fn wait_agents(&self, what: &str, secs: u64, done: impl Fn(&[Value]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let agents = self.agents();
            if done(&agents) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}\n{agents:#?}\n{}",
                    self.s.f.ok(&["log", "-n", "30"])
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The recorded usage of agent `id`: input, output, cache read, cache write, and cost.
    fn usage(&self, id: &str) -> ([u64; 4], f64) {
        let a = self.agent(id);
        let u = &a["usage"];
        let n = |k: &str| u[k].as_u64().unwrap_or(0);
        (
            [
                n("input_tokens"),
                n("output_tokens"),
                n("cache_read_tokens"),
                n("cache_write_tokens"),
            ],
            u["cost_usd"].as_f64().unwrap_or(0.0),
        )
    }

    fn expected_cost(&self, tokens: [u64; 4]) -> f64 {
        let p = self.kind.price();
        tokens
            .iter()
            .zip(p)
            .map(|(t, p)| *t as f64 * p)
            .sum::<f64>()
            / 1e6
    }

    fn logs(&self, id: &str) -> String {
        self.s.f.ok(&["logs", id, "-n", "400"])
    }

    /// The audit trail and every agent's log, for a failure message.
    fn story(&self) -> String {
        let mut out = self.s.f.ok(&["log", "-n", "40"]);
        for a in self.agents() {
            let id = a["id"].as_str().unwrap_or_default();
            out.push_str(&format!("\n--- {id} ---\n{}", self.logs(id)));
        }
        out
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        // The orchestrator and the agents (and so the CLIs) stop here; the
        // Fleet's own guard then removes the tmux server.
        let _ = self.s.f.run(&["stop", "--all"]);
    }
}

fn assert_readable(log: &str) {
    assert!(
        !log.contains('\u{1b}'),
        "escape sequences in the log:\n{log}"
    );
    for line in log.lines() {
        let t = line.trim_start();
        assert!(
            !(t.starts_with('{') && t.contains("\"type\"")),
            "raw JSON in the log: {line}\n{log}"
        );
    }
}

const ONE: &str = "- [ ] T001 Write src/a.txt\n";

fn happy_path(kind: Kind) {
    let (cli, node) = need!(kind);
    // The tester's answers wait for a go file, so the developer's log is
    // read before the feature is done (and its logs removed).
    let gate = tempfile::tempdir().unwrap();
    let go = gate.path().join("tester-go");
    let standin = StandIn::start(
        &node,
        json!({"slow": {"role": "tester", "ms": 0, "until": go.to_str().unwrap()}}),
    );
    let run = Run::new(kind, &cli, &standin, "", ONE);
    run.start();
    let log = super::transcript::whole_log(&run.s.f, "f.T001.dev.1", 60);
    std::fs::write(&go, "").unwrap();
    run.s.wait_done(90);

    // What the stand-in answered is what was recorded, run by run.
    let dev = standin.spent("developer", "T001");
    let test = standin.spent("tester", "T001");
    assert!(dev[0] > 0 && test[0] > 0, "{:#?}", standin.ledger());
    let (dev_tokens, dev_cost) = run.usage("f.T001.dev.1");
    let (test_tokens, test_cost) = run.usage("f.T001.test.1");
    assert_eq!(dev_tokens, dev, "developer tokens vs the stand-in's ledger");
    assert_eq!(test_tokens, test, "tester tokens vs the stand-in's ledger");
    for (cost, tokens) in [(dev_cost, dev), (test_cost, test)] {
        let expected = run.expected_cost(tokens);
        assert!(
            (cost - expected).abs() < 1e-9,
            "{}: cost {cost} recorded, {expected} expected for {tokens:?}",
            kind.name()
        );
    }
    let dev_agent = run.agent("f.T001.dev.1");
    assert_eq!(dev_agent["usage"]["model"], kind.model());
    assert!(dev_agent["cause"].is_null(), "{dev_agent:#}");
    // The task pays for both runs.
    let t = &run.s.tasks()["T001"];
    let all: u64 = dev.iter().chain(test.iter()).sum();
    assert_eq!(t["tokens"].as_u64(), Some(all), "{t:#}");
    assert!((t["cost_usd"].as_f64().unwrap() - (dev_cost + test_cost)).abs() < 1e-9);
    // Every answer went to a run of this task: nothing else was asked.
    assert!(
        standin.ledger().iter().all(|e| e["task"] == "T001"),
        "{:#?}",
        standin.ledger()
    );

    // The work is merged, and the log reads like a transcript.
    let file = run.s.f.repo.git(["show", "sprint/f/integration:src/a.txt"]);
    assert!(
        file.contains("T001: written by the stand-in developer"),
        "{file}"
    );
    assert_readable(&log);
    let call = match kind {
        Kind::Claude => "» Bash: git add -A && git commit",
        Kind::Codex => "» $ /bin/bash -lc \"git add -A && git commit",
    };
    assert!(log.contains(call), "{log}");
    assert!(log.contains("Wrote src/a.txt and committed."), "{log}");
    assert!(log.contains("tokens, $"), "{log}");
}

#[test]
fn claude_code_happy_path_records_the_tokens_and_cost_the_api_reported() {
    happy_path(Kind::Claude);
}

#[test]
fn codex_happy_path_records_the_tokens_and_cost_the_api_reported() {
    happy_path(Kind::Codex);
}

fn bad_key(kind: Kind) {
    let (cli, node) = need!(kind);
    let standin = StandIn::start(&node, json!({"faults": [{"status": 401}]}));
    let run = Run::new(kind, &cli, &standin, "policy: { max_attempts: 1 }\n", ONE);
    run.start();
    run.wait_agents("the developer to end", 60, |a| {
        a.iter()
            .any(|a| a["id"] == "f.T001.dev.1" && !a["cause"].is_null())
    });
    let a = run.agent("f.T001.dev.1");
    assert_eq!(a["cause"], "auth", "{a:#}");
    let error = a["error"].as_str().unwrap();
    let line = match kind {
        Kind::Claude => "Invalid API key",
        Kind::Codex => "unexpected status 401 Unauthorized",
    };
    assert!(error.contains(line), "{error}");
    // The audit trail says it too, not just "exited 1".
    let trail = run.s.f.repo.git(["log", "--format=%B", "refs/ai-sprint"]);
    assert!(
        trail.contains(&format!("exited 1 (auth: {error})")),
        "{trail}"
    );
    assert_readable(&run.logs("f.T001.dev.1"));
}

#[test]
fn claude_code_with_a_bad_key_records_auth_and_its_own_error_line() {
    bad_key(Kind::Claude);
}

#[test]
fn codex_with_a_bad_key_records_auth_and_its_own_error_line() {
    bad_key(Kind::Codex);
}

fn stalled_stream(kind: Kind) {
    let (cli, node) = need!(kind);
    // Step 1 of the developer comes after it wrote its file: the stream
    // stalls before it commits.
    let standin = StandIn::start(
        &node,
        json!({"faults": [{"stall": true, "count": 1, "role": "developer", "step": 1}]}),
    );
    let run = Run::new(
        kind,
        &cli,
        &standin,
        "timeouts: { lease: 15s, hung: 15s }\n",
        ONE,
    );
    run.start();
    run.s.wait_done(120);
    let trail = run.s.transitions();
    assert!(
        trail
            .iter()
            .any(|(t, _, to, why)| t == "f/T001" && to == "todo" && why.contains("hung")),
        "{trail:?}"
    );
    assert_eq!(run.s.tasks()["T001"]["attempts"], 2, "{}", run.story());
    // What the stalled agent wrote was saved and merged.
    let log = run
        .s
        .f
        .repo
        .git(["log", "--format=%s", "sprint/f/integration"]);
    assert!(
        log.lines().any(|l| l.starts_with("WIP: f.T001.dev.1")),
        "{log}"
    );
    let file = run.s.f.repo.git(["show", "sprint/f/integration:src/a.txt"]);
    assert_eq!(
        file.matches("T001: written by the stand-in developer")
            .count(),
        2,
        "{file}"
    );
}

#[test]
fn claude_code_on_a_stalled_stream_is_hung_after_the_timeout_and_its_work_kept() {
    stalled_stream(Kind::Claude);
}

#[test]
fn codex_on_a_stalled_stream_is_hung_after_the_timeout_and_its_work_kept() {
    stalled_stream(Kind::Codex);
}

fn slow_but_streaming(kind: Kind) {
    let (cli, node) = need!(kind);
    // Eight answers of 2.5 s each: the developer runs over 20 s, well past
    // its lease, and says something every 2.5 s. (The lease leaves room for
    // a CLI that starts slowly on a busy machine.)
    let standin = StandIn::start(
        &node,
        json!({"slow": {"role": "developer", "ms": 2500, "extra_steps": 5}}),
    );
    let run = Run::new(
        kind,
        &cli,
        &standin,
        "timeouts: { lease: 12s, hung: 12s }\n",
        ONE,
    );
    run.start();
    run.s.wait_done(120);
    assert_eq!(run.s.tasks()["T001"]["attempts"], 1);
    let trail = run.s.transitions();
    assert!(
        !trail.iter().any(|(_, _, _, why)| why.contains("hung")),
        "{trail:?}"
    );
    let dev = run.agent("f.T001.dev.1");
    let took = dev["ended"].as_i64().unwrap() - dev["started"].as_i64().unwrap();
    assert!(took > 12, "the run ({took}s) outlived its lease (12s)");
    // Its heartbeats renewed the lease while it streamed.
    let beats = run
        .s
        .f
        .repo
        .git(["log", "--format=%s", "refs/ai-sprint"])
        .lines()
        .filter(|l| *l == "f/T001: heartbeat from f.T001.dev.1")
        .count();
    assert!(beats >= 2, "{beats} heartbeats");
}

#[test]
fn claude_code_slow_but_streaming_outlives_a_shorter_lease() {
    slow_but_streaming(Kind::Claude);
}

#[test]
fn codex_slow_but_streaming_outlives_a_shorter_lease() {
    slow_but_streaming(Kind::Codex);
}

fn no_change(kind: Kind) {
    let (cli, node) = need!(kind);
    // The model only ever says "Done.": the developer commits nothing.
    let standin = StandIn::start(&node, json!({"script": "done"}));
    let run = Run::new(
        kind,
        &cli,
        &standin,
        "policy: { max_attempts: 2, retry_backoff: 1s }\n",
        ONE,
    );
    run.start();
    run.s
        .wait("T001 failed", 90, |t| t["T001"]["status"] == "failed");
    let t = &run.s.tasks()["T001"];
    assert_eq!(t["attempts"], 2, "{t:#}");
    assert_eq!(t["cause"], "no_change", "{t:#}");
    let history = t["history"].as_array().unwrap();
    assert!(
        history
            .iter()
            .all(|h| h["cause"] == "no_change" && h["counted"] == true),
        "{t:#}"
    );
    assert!(run.s.merges().is_empty(), "{:?}", run.s.merges());
    assert!(t["merged"].is_null());
}

#[test]
fn claude_code_that_changes_nothing_fails_its_attempts_and_nothing_is_merged() {
    no_change(Kind::Claude);
}

#[test]
fn codex_that_changes_nothing_fails_its_attempts_and_nothing_is_merged() {
    no_change(Kind::Codex);
}

fn overloaded_once(kind: Kind) {
    let (cli, node) = need!(kind);
    let standin = StandIn::start(
        &node,
        json!({"faults": [{"status": 529, "count": 1, "role": "developer"}]}),
    );
    let run = Run::new(
        kind,
        &cli,
        &standin,
        "policy: { max_attempts: 1, retry_backoff: 1s }\n",
        ONE,
    );
    run.start();
    run.s.wait_done(90);
    let t = &run.s.tasks()["T001"];
    // The overload consumed no attempt: one attempt was enough.
    assert_eq!(t["attempts"], 1, "{t:#}");
    let first = run.agent("f.T001.dev.1");
    assert_eq!(first["cause"], "overloaded", "{first:#}");
    let history = t["history"].as_array().unwrap();
    assert!(
        history
            .iter()
            .any(|h| h["cause"] == "overloaded" && h["counted"] != true),
        "{t:#}"
    );
    assert_eq!(run.s.merges().get("T001"), Some(&1));
}

#[test]
fn claude_code_overloaded_once_backs_off_and_then_succeeds() {
    overloaded_once(Kind::Claude);
}

#[test]
fn codex_overloaded_once_backs_off_and_then_succeeds() {
    overloaded_once(Kind::Codex);
}

fn breaker(kind: Kind) {
    let (cli, node) = need!(kind);
    let standin = StandIn::start(&node, json!({"faults": [{"status": 401}]}));
    let run = Run::new(
        kind,
        &cli,
        &standin,
        "policy: { max_attempts: 2, retry_backoff: 1s, breaker_threshold: 2, breaker_cooldown: 10m }\n",
        ONE,
    );
    run.start();
    let deadline = Instant::now() + Duration::from_secs(90);
    let breaker = loop {
        let b = run.s.status()["meta"]["breakers"][kind.name()].clone();
        if !b["open_since"].is_null() {
            break b;
        }
        assert!(
            Instant::now() < deadline,
            "no breaker opened: {b:#}\n{}",
            run.s.f.ok(&["log", "-n", "30"])
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(breaker["cause"], "auth", "{breaker:#}");
    assert!(breaker["failures"].as_u64().unwrap() >= 2, "{breaker:#}");
    // Infrastructure failures are not the task's: no attempt is spent.
    let t = &run.s.tasks()["T001"];
    assert_ne!(t["status"], "failed", "{t:#}");
    assert!(t["attempts"].as_u64().unwrap_or(0) <= 1, "{t:#}");
    let health = run.s.f.run(&["health"]);
    assert_eq!(health.status.code(), Some(1));
    let said = super::support::stdout(&health);
    assert!(
        said.contains(kind.name()) && said.contains("breaker"),
        "{said}"
    );
    // The key is fixed; resume closes the breaker and the sprint finishes.
    standin.set(json!({}));
    // Agents get the environment of the last start or resume: this one's.
    let out = run
        .s
        .f
        .cmd(super::support::BIN)
        .arg("resume")
        .env("PATH", &run.path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", super::support::stderr(&out));
    run.s.wait_done(90);
    let mut by_role = BTreeMap::new();
    for e in standin.ledger() {
        *by_role
            .entry(e["role"].as_str().unwrap().to_owned())
            .or_insert(0) += 1;
    }
    assert!(by_role.contains_key("developer"), "{by_role:?}");
}

#[test]
fn claude_code_with_a_bad_key_opens_the_breaker_and_resume_after_the_fix_finishes() {
    breaker(Kind::Claude);
}

#[test]
fn codex_with_a_bad_key_opens_the_breaker_and_resume_after_the_fix_finishes() {
    breaker(Kind::Codex);
}

#[test]
fn the_stand_in_answers_both_apis_and_its_faults() {
    // The stand-in on its own, so a broken fixture shows as itself.
    let Some(node) = on_path("node") else {
        eprintln!("SKIPPED: the stand-in: node is not on PATH");
        return;
    };
    let standin = StandIn::start(&node, json!({"faults": [{"status": 529, "count": 1}]}));
    let post = |path: &str, body: &Value| -> (u16, String) {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", standin.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let body = body.to_string();
        write!(
            s,
            "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut out = String::new();
        std::io::Read::read_to_string(&mut s, &mut out).unwrap();
        let status = out[9..12].parse().unwrap();
        (status, out)
    };
    let prompt = "You are a Developer on feature f, working on task T009 in a git worktree of your own.\n\nFiles this task names (only you touch them while you work): a.txt, b.txt\n";
    let messages = json!({"model": "m", "stream": true, "tools": [{"name": "Bash"}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": prompt}]}]});
    let (status, text) = post("/v1/messages", &messages);
    assert_eq!(status, 529, "{text}");
    assert!(text.contains("overloaded_error"), "{text}");
    let (status, text) = post("/v1/messages", &messages);
    assert_eq!(status, 200, "{text}");
    for event in [
        "message_start",
        "content_block_delta",
        "message_delta",
        "message_stop",
    ] {
        assert!(text.contains(&format!("event: {event}")), "{event}: {text}");
    }
    assert!(
        text.contains("printf") && text.contains("a.txt") && text.contains("b.txt"),
        "{text}"
    );
    let responses = json!({"model": "m", "stream": true, "tools": [{"type": "function", "name": "exec_command"}],
        "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": prompt}]}]});
    let (status, text) = post("/v1/responses", &responses);
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains("response.completed") && text.contains("exec_command"),
        "{text}"
    );
    let ledger = standin.ledger();
    assert_eq!(ledger.len(), 2, "{ledger:#?}");
    assert!(ledger
        .iter()
        .all(|e| e["task"] == "T009" && e["role"] == "developer"));
}

#[test]
fn claude_code_as_root_without_is_sandbox_is_refused_with_its_own_line() {
    let (cli, node) = need!(Kind::Claude);
    let standin = StandIn::start(&node, json!({}));
    let run = Run::new(Kind::Claude, &cli, &standin, "", ONE);
    // The same config without the variable that lets Claude Code skip
    // permissions as root — and without the Landlock sandbox, which sets it
    // for the agents it confines.
    let file = run.s.f.repo.path().join(".git-sprint.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        format!(
            "{}sandbox: off\n",
            text.replace("      IS_SANDBOX: \"1\"\n", "")
        ),
    )
    .unwrap();
    run.s.f.repo.git(["commit", "-q", "-am", "no IS_SANDBOX"]);
    let uid = Command::new("id").arg("-u").output().unwrap();
    let root = String::from_utf8_lossy(&uid.stdout).trim() == "0";
    run.start();
    if root {
        run.wait_agents("the developer to end", 60, |a| {
            a.iter()
                .any(|a| a["id"] == "f.T001.dev.1" && !a["cause"].is_null())
        });
        let a = run.agent("f.T001.dev.1");
        assert_eq!(a["cause"], "refused", "{a:#}");
        let error = a["error"].as_str().unwrap();
        assert!(error.contains("cannot be used with root"), "{error}");
        assert!(standin.ledger().is_empty(), "it never asked the API");
    } else {
        // Not root: nothing to refuse.
        run.s.wait_done(90);
        assert!(run.agent("f.T001.dev.1")["cause"].is_null());
    }
}

/// A real Claude Code as the AI Reviewer at the CAB: it can only say its
/// verdict in its last words (a fenced ```verdict block), which the wrapper
/// reads from the real stream; the gate's result carries what the stand-in
/// charged for the review.
#[test]
fn claude_code_as_the_ai_reviewer_approves_in_its_final_message_and_the_review_is_paid_for() {
    let kind = Kind::Claude;
    let (cli, node) = need!(kind);
    let standin = StandIn::start(&node, json!({}));
    let run = Run::new(kind, &cli, &standin, "", ONE);
    // The review stage gets an AI gate played by the same profile.
    let repo = &run.s.f.repo;
    let config = std::fs::read_to_string(repo.path().join(".git-sprint.yaml")).unwrap();
    let gate = "      run: test \"$(git rev-list --count sprint/f/integration..HEAD)\" -gt 0\n";
    assert!(config.contains(gate), "{config}");
    repo.write(
        ".git-sprint.yaml",
        &config.replacen(
            gate,
            &format!("{gate}    - {{ name: ai, kind: agent, agent: claude, timeout: 5m }}\n"),
            1,
        ),
    );
    repo.git(["commit", "-q", "-am", "an AI review gate"]);
    run.start();
    run.s.wait("T001 past review", 120, |t| {
        matches!(
            t["T001"]["status"].as_str(),
            Some("in_tests" | "in_docs" | "done" | "failed")
        )
    });
    let t = &run.s.tasks()["T001"];
    let ai: Vec<&Value> = t["gates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["gate"] == "ai")
        .collect();
    assert_eq!(ai.len(), 1, "{t:#}\n{}", run.story());
    assert_eq!(ai[0]["verdict"], "APPROVE", "{t:#}\n{}", run.story());
    assert_eq!(ai[0]["agent"], "f.T001.review.1", "{t:#}");
    // What the review cost is what the stand-in answered it.
    let review = standin.spent("reviewer", "T001");
    assert!(review[0] > 0, "{:#?}", standin.ledger());
    let (tokens, cost) = run.usage("f.T001.review.1");
    assert_eq!(tokens, review, "reviewer tokens vs the stand-in's ledger");
    assert_eq!(ai[0]["tokens"].as_u64(), Some(tokens.iter().sum()), "{t:#}");
    let expected = run.expected_cost(tokens);
    assert!(
        (ai[0]["cost_usd"].as_f64().unwrap() - expected).abs() < 1e-9
            && (cost - expected).abs() < 1e-9,
        "cost {} recorded, {expected} expected\n{t:#}",
        ai[0]["cost_usd"]
    );
    // It changed nothing, so nothing was put back.
    assert!(ai[0]["output_tail"].is_null(), "{t:#}");
    run.s.wait_done(90);
}
