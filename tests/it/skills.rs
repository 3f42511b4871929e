//! Skills reach the agents whose tasks they apply to: a matching task's
//! prompt holds the skill and what it requires, another task's does not,
//! and a profile's own skill reaches only that profile. Scripted agents
//! against real git and tmux; `skill test` agrees with what ran.

use serde_json::Value;

use super::sprint::{scripted, Sprint};

const TASKS: &str = "\
- [ ] T001 [P] [US1] Parse in src/parse.rs
- [ ] T002 [P] Write docs/guide.txt
";

/// Developers run as `scripted`, testers as `checker`: the same command
/// under two profile names.
fn config() -> String {
    let cmd = serde_json::to_string(&scripted()).unwrap();
    format!(
        r#"agents:
  scripted:
    command: ["sh", "-c", {cmd}]
    prompt: env
  checker:
    command: ["sh", "-c", {cmd}]
    prompt: env
roles:
  developer: {{ agent: scripted, count: 2 }}
  tester: {{ agent: checker, count: 2 }}
gates:
  review:
    - name: has-commits
      run: test "$(git rev-list --count sprint/f/integration..HEAD)" -gt 0
"#
    )
}

fn skill(name: &str, front: &str, body: &str) -> String {
    format!("---\nname: {name}\ndescription: The {name} skill.\n{front}---\n{body}\n")
}

fn with_skills() -> Sprint {
    let s = Sprint::new(&config(), TASKS);
    let r = &s.f.repo;
    r.write(
        ".git-sprint/skills/rust/SKILL.md",
        &skill(
            "rust",
            "version: 3\napplies_to:\n  paths: ['src/**/*.rs']\nrequires: [style]\n",
            "RUST-SKILL-BODY: run clippy.",
        ),
    );
    r.write(
        ".git-sprint/skills/style/SKILL.md",
        &skill(
            "style",
            "version: '1.1'\napplies_to:\n  labels: [nothing-has-this]\n",
            "STYLE-SKILL-BODY",
        ),
    );
    r.write(
        ".git-sprint/skills/@checker/tests-first/SKILL.md",
        &skill("tests-first", "", "TESTER-SKILL-BODY"),
    );
    r.git(["add", "-A"]);
    r.git(["commit", "-q", "-m", "skills"]);
    s
}

fn agents(s: &Sprint, task: &str, role: &str) -> Vec<Value> {
    s.status()["agents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["task"] == format!("f/{task}") && a["role"] == role)
        .cloned()
        .collect()
}

fn skill_names(agent: &Value) -> Vec<String> {
    agent["skills"]
        .as_array()
        .map(|v| {
            v.iter()
                .map(|s| {
                    format!(
                        "{}@{}",
                        s["name"].as_str().unwrap(),
                        s["version"].as_str().unwrap()
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_matching_tasks_prompt_holds_its_skill_and_requirements_and_a_profiles_skill_only_that_profile()
{
    let s = with_skills();
    s.start(&[]);
    s.wait_done(120);

    let dev1 = &agents(&s, "T001", "developer")[0];
    let prompt = dev1["prompt"].as_str().unwrap();
    assert!(
        prompt.contains("## Skill: style (version 1.1)")
            && prompt.contains("## Skill: rust (version 3)")
            && prompt.contains("RUST-SKILL-BODY")
            && prompt.find("STYLE-SKILL-BODY") < prompt.find("RUST-SKILL-BODY"),
        "T001's developer gets rust and, before it, the style it requires:\n{prompt}"
    );
    assert!(!prompt.contains("TESTER-SKILL-BODY"), "{prompt}");
    assert_eq!(skill_names(dev1), ["style@1.1", "rust@3"]);

    let dev2 = &agents(&s, "T002", "developer")[0];
    let prompt = dev2["prompt"].as_str().unwrap();
    assert!(
        !prompt.contains("# Skills") && !prompt.contains("SKILL-BODY"),
        "a docs task gets no skill:\n{prompt}"
    );
    assert!(skill_names(dev2).is_empty());

    for task in ["T001", "T002"] {
        let tester = &agents(&s, task, "tester")[0];
        let prompt = tester["prompt"].as_str().unwrap();
        assert!(
            prompt.contains("TESTER-SKILL-BODY"),
            "the checker profile's own skill reaches its tester:\n{prompt}"
        );
        assert!(skill_names(tester).contains(&"tests-first@0".to_owned()));
    }

    // `skill test` says what the run got, and renders the same prompt.
    let test: Value =
        serde_json::from_str(&s.f.ok(&["skill", "test", "f/T001", "--json"])).unwrap();
    let names: Vec<&str> = test["skills"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["style", "rust"]);
    assert_eq!(test["skills"][0]["why"], "required by rust");
    assert_eq!(test["skills"][1]["why"], "applies");
    assert!(test["prompt"].as_str().unwrap().contains("RUST-SKILL-BODY"));
    let as_tester =
        s.f.ok(&["skill", "test", "T002", "--role", "tester", "--no-prompt"]);
    assert!(
        as_tester.contains("tests-first") && !as_tester.contains("rust"),
        "{as_tester}"
    );

    let list = s.f.ok(&["skill", "list"]);
    assert!(
        list.contains("rust") && list.contains("@checker") && list.contains("requires style"),
        "{list}"
    );
    let show =
        s.f.ok(&["skill", "show", "tests-first", "--profile", "checker"]);
    assert!(show.contains("TESTER-SKILL-BODY"), "{show}");
}

#[test]
fn a_broken_skill_file_is_refused_with_its_path_by_skill_list() {
    let s = Sprint::new(&config(), TASKS);
    s.f.repo
        .write(".git-sprint/skills/bad/SKILL.md", "no front matter\n");
    s.f.repo.git(["add", "-A"]);
    s.f.repo.git(["commit", "-q", "-m", "bad skill"]);
    let out = s.f.run(&["skill", "list"]);
    assert_eq!(out.status.code(), Some(1));
    let err = super::support::stderr(&out);
    assert!(
        err.contains(".git-sprint/skills/bad/SKILL.md: has no front matter")
            && err.contains("hint:"),
        "{err}"
    );
}
