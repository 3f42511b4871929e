//! The router with scripted agents: `route:` rules send each task to the
//! profile their labels or paths ask for, the choice and its rule are on
//! the agent's record and in the task's history, `plan --route` shows the
//! same choices before anything runs, and `agents` lists the profiles with
//! their runs.

use serde_json::Value;

use super::sprint::{scripted, Sprint};

const TASKS: &str = "\
- [ ] T001 [P] [Risk: High] Harden src/auth.txt
- [ ] T002 [P] Style web/app.css
- [ ] T003 [P] Note notes/a.txt
";

/// Three profiles running the same scripted agent under different names.
fn config() -> String {
    let cmd = serde_json::to_string(&scripted()).unwrap();
    format!(
        r#"agents:
  careful:
    command: ["sh", "-c", {cmd}]
    prompt: env
    labels: [slow]
    capabilities: {{ cost_tier: high, roles: [developer] }}
  webby:
    command: ["sh", "-c", {cmd}]
    prompt: env
    capabilities: {{ max_parallel: 1 }}
  plain:
    command: ["sh", "-c", {cmd}]
    prompt: env
roles:
  developer: {{ agent: plain, count: 3 }}
  tester: {{ agent: plain, count: 0 }}
route:
  - when: {{ labels: ["risk: high"] }}
    agent: careful
  - when: {{ paths: ["web/**"], role: developer }}
    agent: webby
gates:
  review:
    - name: has-commits
      run: test "$(git rev-list --count sprint/f/integration..HEAD)" -gt 0
"#
    )
}

fn developer(s: &Sprint, task: &str) -> Value {
    s.status()["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["task"] == format!("f/{task}") && a["role"] == "developer")
        .cloned()
        .unwrap_or_else(|| panic!("no developer of {task}"))
}

#[test]
fn label_and_path_rules_pick_each_tasks_profile_and_the_choice_is_recorded() {
    let s = Sprint::new(&config(), TASKS);

    // Before anything runs, plan --route says where each task will go.
    let plan: Value = serde_json::from_str(&s.f.ok(&["plan", "f", "--route", "--json"])).unwrap();
    let routes: Vec<(String, String, String)> = plan["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["task"].as_str().unwrap().to_owned(),
                r["profile"].as_str().unwrap().to_owned(),
                r["rule"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let want = [
        ("T001", "careful", "route[0]"),
        ("T002", "webby", "route[1]"),
        ("T003", "plain", "roles.developer.agent"),
    ];
    let want: Vec<(String, String, String)> = want
        .iter()
        .map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned()))
        .collect();
    assert_eq!(routes, want);
    let text = s.f.ok(&["plan", "f", "--route"]);
    assert!(
        text.contains("routes (developer profile per open task)"),
        "{text}"
    );

    s.start(&[]);
    s.wait_done(120);
    for (task, profile, rule) in &want {
        let a = developer(&s, task);
        assert_eq!(a["profile"], profile.as_str(), "{a}");
        assert_eq!(a["route"]["rule"], rule.as_str(), "{a}");
        let history = s.f.ok(&["show", &format!("f/{task}")]);
        assert!(
            history.contains(&format!("routed to {profile} by {rule}")),
            "{task}'s history names its route:\n{history}"
        );
    }

    let agents: Value = serde_json::from_str(&s.f.ok(&["agents", "--json"])).unwrap();
    let row = |name: &str| {
        agents
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in {agents}"))
    };
    for name in ["careful", "webby", "plain"] {
        let p = row(name);
        assert_eq!(p["runs"], 1, "{p}");
        assert_eq!(p["succeeded"], 1, "{p}");
        assert_eq!(p["running"], 0, "{p}");
        assert_eq!(p["breaker"], "closed", "{p}");
    }
    assert_eq!(row("careful")["labels"][0], "slow");
    assert_eq!(row("webby")["capabilities"]["max_parallel"], 1);
    assert_eq!(row("plain")["plays"][0], "developer");
    let text = s.f.ok(&["agents"]);
    assert!(
        text.contains("careful") && text.contains("100%") && text.contains("cost high"),
        "{text}"
    );
}

#[test]
fn a_route_naming_an_unknown_profile_is_refused_with_its_key() {
    let cfg = config().replace("agent: webby", "agent: [webby, nosuch]");
    let s = Sprint::new(&cfg, TASKS);
    let out = s.f.run(&["agents"]);
    assert_eq!(out.status.code(), Some(1));
    let err = super::support::stderr(&out);
    assert!(
        err.contains("route[1].agent") && err.contains("no agent profile `nosuch`"),
        "{err}"
    );
}

#[test]
fn a_profile_whose_breaker_opens_is_passed_over_for_the_rules_fallback() {
    let ok = serde_json::to_string(&scripted()).unwrap();
    // An agent whose API key is refused: an infrastructure failure, so no
    // attempt is spent and the profile's breaker opens (threshold 1).
    let refused =
        serde_json::to_string("echo 'error: 401 Unauthorized: invalid api key' >&2; exit 1")
            .unwrap();
    let cfg = format!(
        r#"agents:
  broken:
    command: ["sh", "-c", {refused}]
    prompt: env
  plain:
    command: ["sh", "-c", {ok}]
    prompt: env
roles:
  developer: {{ agent: plain, count: 1 }}
  tester: {{ agent: plain, count: 0 }}
policy: {{ max_attempts: 2, retry_backoff: 1s, breaker_threshold: 1, breaker_cooldown: 10m }}
route:
  - when: {{ labels: [US1] }}
    agent: broken
    fallback: [plain]
"#
    );
    let s = Sprint::new(&cfg, "- [ ] T001 [US1] Write src/a.txt\n");
    s.start(&[]);
    s.wait_done(120);
    let mut devs: Vec<Value> = s.status()["agents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["task"] == "f/T001" && a["role"] == "developer")
        .cloned()
        .collect();
    devs.sort_by_key(|a| a["started"].as_i64());
    let first = &devs[0];
    assert_eq!(first["profile"], "broken", "{first}");
    assert_eq!(first["route"]["rule"], "route[0]", "{first}");
    assert_eq!(first["cause"], "auth", "{first}");
    let last = devs.last().unwrap();
    assert_eq!(last["profile"], "plain", "{devs:#?}");
    assert_eq!(last["route"]["rule"], "route[0] fallback", "{last}");
    assert!(
        last["route"]["passed"][0]
            .as_str()
            .is_some_and(|p| p.starts_with("broken: circuit breaker open")),
        "{last}"
    );
    let agents: Value = serde_json::from_str(&s.f.ok(&["agents", "--json"])).unwrap();
    let broken = agents
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "broken")
        .unwrap();
    assert_eq!(broken["breaker"], "open (auth)", "{broken}");
    assert_eq!(broken["succeeded"], 0, "{broken}");
}
