//! What the `agent-run` wrapper makes of an agent's output, with scripted
//! agents that need no CLI installed: a hostile one (escape sequences, an
//! endless line), ones that replay output captured from Claude Code
//! (`fixtures/streams/`), and a slow one that keeps talking.

use std::path::Path;

use serde_json::Value;

use super::fleet::{agent, Fleet};
use super::sprint::{config, scripted, Sprint};

fn stream(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/streams")
        .join(name)
        .display()
        .to_string()
}

/// Worker `id`'s whole log, once its wrapper wrote its last line ("agent
/// exited …"). Logs go with their feature once it is done, so the next stage
/// must still be running while this waits (the tests slow their tester).
pub(crate) fn whole_log(f: &Fleet, id: &str, secs: u64) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    let end = format!("git-sprint: {id}: agent ");
    loop {
        // Before the worker exists `logs` says there is no such worker.
        let out = f.run(&["logs", id, "-n", "1000"]);
        let log = super::support::stdout(&out);
        if out.status.success() && log.contains(&end) {
            return log;
        }
        assert!(
            !log.starts_with("No log for"),
            "{id}'s log went with its feature before it was read whole"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "{id}'s log never ended:\n{log}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

fn assert_clean(log: &str) {
    assert!(!log.contains('\u{1b}'), "escape in the log: {log:?}");
    assert!(!log.contains('\u{7}'), "bell in the log: {log:?}");
    for line in log.lines() {
        assert!(
            !line.trim_start().starts_with("{\"type\""),
            "raw event in the log: {line}"
        );
    }
}

#[test]
fn a_hostile_agents_escapes_and_endless_line_never_reach_the_log() {
    let f = Fleet::new();
    // Colours, a terminal title, a screen clear, a redrawn progress line, a
    // 5 MiB line, all on both pipes; then it does its work.
    let cmd = format!(
        r#"printf '\033]0;pwned\007\033[2J\033[1;31mred alert\033[0m\n'
printf '10%%\r50%%\r100%% done\n' >&2
head -c 5242880 /dev/zero | tr '\0' 'x'; echo
printf '\033[31mafter the long line\033[0m\n' >&2
exec {}"#,
        agent()
    );
    f.ok(&["spawn", "h1", "--prompt", "x", "--agent-command", &cmd]);
    let rows = f.wait_list("h1 to exit", |r| {
        r.iter()
            .any(|w| w["id"] == "h1" && w["status"] == "exited 0")
    });
    assert_eq!(rows[0]["ahead"], 1, "the agent's work went on: {rows:#?}");
    let log = f.ok(&["logs", "h1", "-n", "50"]);
    assert_clean(&log);
    assert!(log.contains("red alert"), "{log}");
    assert!(log.contains("100% done"), "{log}");
    assert!(
        !log.contains("50%"),
        "a redrawn line shows as it ended: {log}"
    );
    assert!(log.contains("after the long line"), "{log}");
    assert!(
        log.contains("git-sprint: (a line longer than 4 MiB was cut)"),
        "{log}"
    );
    assert!(log.contains("scripted-agent: committed"), "{log}");
    assert!(
        log.lines().all(|l| l.chars().count() < 1000),
        "a long line is cut for the log"
    );
    // The raw log file itself is clean too: tmux copies the pane as written.
    let raw = std::fs::read(f.repo.path().join(".git/sprint/logs/h1.log")).unwrap();
    assert!(!raw.contains(&0x1b), "escape in the log file");
}

/// A config whose `fake-claude` agent replays `fixture` as Claude Code's
/// stream-json output, after doing the scripted agent's work.
fn replay(fixture: &str, status: i32) -> String {
    // The tester waits for `$HOME/tester-go` (at most a minute), so the
    // developer's log is read before the feature is done (and its logs
    // removed), however slow the machine.
    let cmd = format!(
        "'{}' >/dev/null 2>&1; case \"$SPRINT_WORKER\" in *.test.*) i=0; while [ ! -e \"$HOME/tester-go\" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done;; esac; cat '{}'; exit {status}",
        agent(),
        stream(fixture)
    );
    config(&cmd, "").replace(
        "  scripted:\n",
        "  scripted:\n    output: claude\n    model: claude-sonnet-4-5-20250929\n",
    )
}

#[test]
fn claude_stream_json_usage_is_recorded_on_each_run_and_added_up_on_the_task() {
    let s = Sprint::new(
        &replay("claude-ok.stdout", 0),
        "- [ ] T001 Write src/a.txt\n",
    );
    s.start(&[]);
    let log = whole_log(&s.f, "f.T001.dev.1", 60);
    std::fs::write(s.f.repo.home().join("tester-go"), "").unwrap();
    s.wait_done(60);
    let status = s.status();
    let agents = status["agents"].as_array().unwrap();
    let run = |id: &str| -> Value {
        agents
            .iter()
            .find(|a| a["id"] == id)
            .unwrap_or_else(|| {
                // Why a run was retried is on the audit trail.
                let trail = s.f.repo.git(["log", "--format=%B", "refs/ai-sprint"]);
                panic!("no {id}: {agents:#?}\n--- refs/ai-sprint ---\n{trail}")
            })
            .clone()
    };
    for id in ["f.T001.dev.1", "f.T001.test.1"] {
        let a = run(id);
        let u = &a["usage"];
        // The figures claude-ok.stdout reports in its result event.
        assert_eq!(u["input_tokens"], 7311, "{a:#}");
        assert_eq!(u["output_tokens"], 573);
        assert_eq!(u["cache_read_tokens"], 37200);
        assert_eq!(u["cache_write_tokens"], 1500);
        assert_eq!(u["turns"], 3);
        assert_eq!(u["model"], "claude-sonnet-4-5-20250929");
        assert_eq!(u["cost_usd"], 0.047312999999999994);
        assert!(a["cause"].is_null(), "{a:#}");
    }
    let t = &s.tasks()["T001"];
    assert_eq!(t["tokens"], 2 * (7311 + 573 + 37200 + 1500), "{t:#}");
    assert!((t["cost_usd"].as_f64().unwrap() - 2.0 * 0.047313).abs() < 1e-9);
    assert_clean(&log);
    assert!(
        log.contains("» Bash: git add -A && git commit -q -m 'T003: Write src/c.txt'"),
        "{log}"
    );
    assert!(
        log.contains("claude: finished: Wrote src/c.txt and committed."),
        "{log}"
    );
    assert!(log.contains("46,584 tokens, $0.0473, 3 turns"), "{log}");
}

#[test]
fn a_failed_claude_run_records_its_cause_and_the_clis_own_line() {
    let s = Sprint::new(
        &replay("claude-401.stdout", 1),
        "- [ ] T001 Write src/a.txt\n",
    );
    s.start(&[]);
    let dev = || -> Value {
        s.status()["agents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == "f.T001.dev.1")
            .cloned()
            .unwrap_or(Value::Null)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while dev()["cause"].is_null() {
        assert!(
            std::time::Instant::now() < deadline,
            "no cause recorded: {:#}",
            dev()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let dev = dev();
    assert_eq!(dev["cause"], "auth", "{dev:#}");
    assert_eq!(dev["error"], "Invalid API key · Fix external API key");
    let trail = s.f.repo.git(["log", "--format=%B", "refs/ai-sprint"]);
    assert!(
        trail.contains("exited 1 (auth: Invalid API key · Fix external API key)"),
        "{trail}"
    );
}

#[test]
fn regression_a_librarian_the_api_refused_is_run_again_not_taken_for_no_docs() {
    // The first Librarian run gets a 401 from the API; the next one works.
    // Before the fix the convoy went done with "the librarian changed no
    // docs" and the docs were never written.
    let mark = tempfile::tempdir().unwrap();
    let mark = mark.path().join("refused-once");
    let librarian = format!(
        "if [ ! -e '{m}' ]; then : > '{m}'; cat '{s}'; exit 1; fi; exec '{a}'",
        m = mark.display(),
        s = stream("claude-401.stdout"),
        a = agent()
    );
    let cfg = config(
        &scripted(),
        &format!(
            "docs: [docs/guide.md]\npolicy: {{ retry_backoff: 1s }}\nsandbox: {{ writable: ['{}'] }}\n",
            mark.parent().unwrap().display()
        ),
    )
        .replace(
            "  tester: { agent: scripted, count: 2 }\n",
            "  tester: { agent: scripted, count: 2 }\n  librarian: { agent: lib, count: 1 }\n",
        )
        .replace(
            "roles:\n",
            &format!(
                "  lib:\n    command: [\"sh\", \"-c\", {}]\n    prompt: env\n    output: claude\nroles:\n",
                serde_json::to_string(&librarian).unwrap()
            ),
        );
    let s = Sprint::new(&cfg, "- [ ] T001 [US1] One in a.txt\n");
    s.start(&[]);
    s.wait_done(90);
    let trail = s.transitions();
    assert!(
        trail.iter().any(|(t, from, to, why)| t == "f/US1"
            && from == "in_docs"
            && to == "open"
            && why.contains("failed (auth)")
            && why.contains("no attempt spent")),
        "{trail:?}"
    );
    assert!(
        !trail
            .iter()
            .any(|(_, _, _, why)| why.contains("changed no docs")),
        "{trail:?}"
    );
    let guide = s.f.repo.git(["show", "sprint/f/integration:docs/guide.md"]);
    assert!(guide.contains("f/docs-US1"), "{guide}");
    let status = s.status();
    let convoy = &status["features"][0]["convoys"][0];
    assert_eq!(convoy["attempts"], 1, "{convoy:#}");
    assert_eq!(convoy["runs"], 2, "{convoy:#}");
}

#[test]
fn an_agent_that_keeps_talking_renews_its_lease_past_its_length() {
    // Prints a line every 0.3 s for 4.5 s, then works: twice its 2 s lease.
    let talk = format!(
        "i=0; while [ $i -lt 15 ]; do echo \"thinking $i\"; sleep 0.3; i=$((i+1)); done; {}",
        scripted()
    );
    let s = Sprint::new(
        &config(&talk, "timeouts: { lease: 2s, hung: 2s }\n"),
        "- [ ] T001 Write src/a.txt\n",
    );
    s.start(&[]);
    s.wait_done(60);
    assert_eq!(s.tasks()["T001"]["attempts"], 1);
    let beats =
        s.f.repo
            .git(["log", "--format=%s", "refs/ai-sprint"])
            .lines()
            .filter(|l| *l == "f/T001: heartbeat from f.T001.dev.1")
            .count();
    // At most one per third of the lease: about 6 in 4.5 s, never one a line.
    assert!((2..=8).contains(&beats), "{beats} heartbeats for 15 lines");
}
