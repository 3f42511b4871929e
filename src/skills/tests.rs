use super::*;

fn skill_file(name: &str, extra: &str, body: &str) -> Vec<u8> {
    format!("---\nname: {name}\ndescription: The {name} skill\n{extra}---\n{body}\n").into_bytes()
}

fn set(files: &[(&str, Vec<u8>)]) -> SkillSet {
    let owned: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|(p, b)| ((*p).to_owned(), b.clone()))
        .collect();
    from_files(&owned).unwrap()
}

fn names(skills: &[&Skill]) -> Vec<String> {
    skills
        .iter()
        .map(|s| match &s.profile {
            Some(p) => format!("@{p}/{}", s.name),
            None => s.name.clone(),
        })
        .collect()
}

fn query<'a>(
    role: &'a str,
    profile: &'a str,
    labels: &'a [String],
    paths: &'a [String],
) -> Query<'a> {
    Query {
        role,
        profile,
        labels,
        paths,
    }
}

#[test]
fn a_skill_applies_by_role_label_and_path_together() {
    let s = set(&[
        (
            "rust/SKILL.md",
            skill_file(
                "rust",
                "applies_to:\n  roles: [developer]\n  paths: ['src/**/*.rs']\n",
                "Use clippy.",
            ),
        ),
        (
            "risky/SKILL.md",
            skill_file(
                "risky",
                "applies_to:\n  labels: ['risk: high']\n",
                "Go slowly.",
            ),
        ),
        ("everyone/SKILL.md", skill_file("everyone", "", "Be kind.")),
    ]);
    let rs = vec!["src/auth/login.rs".to_owned()];
    let high = vec!["Risk: High".to_owned()];
    let none: Vec<String> = Vec::new();
    assert_eq!(
        names(
            &s.resolve(&query("developer", "claude", &none, &rs))
                .unwrap()
        ),
        ["everyone", "rust"]
    );
    assert_eq!(
        names(&s.resolve(&query("tester", "claude", &none, &rs)).unwrap()),
        ["everyone"],
        "a developer-only skill reaches no tester"
    );
    assert_eq!(
        names(&s.resolve(&query("tester", "claude", &high, &none)).unwrap()),
        ["everyone", "risky"],
        "labels match without regard to case"
    );
}

#[test]
fn requirements_come_first_and_a_cycle_ends() {
    let s = set(&[
        (
            "api/SKILL.md",
            skill_file(
                "api",
                "applies_to:\n  labels: [US1]\nrequires: [style]\n",
                "",
            ),
        ),
        (
            "style/SKILL.md",
            skill_file(
                "style",
                "applies_to:\n  labels: [never]\nrequires: [api]\n",
                "",
            ),
        ),
    ]);
    let us1 = vec!["US1".to_owned()];
    assert_eq!(
        names(&s.resolve(&query("developer", "x", &us1, &[])).unwrap()),
        ["style", "api"]
    );
}

#[test]
fn a_missing_requirement_names_the_skill_and_its_file() {
    let s = set(&[("api/SKILL.md", skill_file("api", "requires: [ghost]\n", ""))]);
    let err = s.resolve(&query("developer", "x", &[], &[])).unwrap_err();
    assert!(
        err.to_string()
            .contains("skill `api` (.git-sprint/skills/api/SKILL.md) requires `ghost`"),
        "{err}"
    );
}

#[test]
fn a_profiles_own_skill_reaches_only_that_profile_and_replaces_a_shared_one() {
    let s = set(&[
        (
            "style/SKILL.md",
            skill_file("style", "version: 1\n", "shared"),
        ),
        (
            "@codex/style/SKILL.md",
            skill_file("style", "version: 2\n", "codex's"),
        ),
        ("@codex/sandbox/SKILL.md", skill_file("sandbox", "", "")),
    ]);
    let claude = s.resolve(&query("developer", "claude", &[], &[])).unwrap();
    assert_eq!(names(&claude), ["style"]);
    assert_eq!(claude[0].version, "1");
    let codex = s.resolve(&query("developer", "codex", &[], &[])).unwrap();
    assert_eq!(names(&codex), ["@codex/sandbox", "@codex/style"]);
    assert_eq!(codex[1].body, "codex's");
}

#[test]
fn bad_skill_files_are_refused_with_their_path() {
    let cases: &[(&str, &[u8], &str)] = &[
        ("a/SKILL.md", b"no front matter", "has no front matter"),
        (
            "a/SKILL.md",
            b"---\nname: b\ndescription: x\n---\n",
            "must be the directory's name `a`",
        ),
        (
            "A/SKILL.md",
            b"---\nname: A\ndescription: x\n---\n",
            "lowercase",
        ),
        (
            "a/SKILL.md",
            b"---\nname: a\ndescription: ' '\n---\n",
            "`description` is empty",
        ),
        (
            "a/SKILL.md",
            b"---\nname: a\ndescription: x\napplies_to:\n  roles: [boss]\n---\n",
            "`boss` is not a role",
        ),
        (
            "a/SKILL.md",
            b"---\nname: a\ndescription: x\napplies_to:\n  path: [x]\n---\n",
            "unknown field `path`",
        ),
        ("a/notes.md", b"x", ".git-sprint/skills/a: has no SKILL.md"),
    ];
    for (path, bytes, want) in cases {
        let err = from_files(&[((*path).to_owned(), bytes.to_vec())]).unwrap_err();
        assert!(err.to_string().contains(want), "{path}: {err}");
    }
}

#[test]
fn unknown_front_matter_keys_are_kept_for_the_cli() {
    let text = b"---\nname: a\ndescription: x\nallowed-tools: Read\n---\nbody\n".to_vec();
    let s = set(&[
        ("a/SKILL.md", text.clone()),
        ("a/ref/notes.md", b"n".to_vec()),
    ]);
    let a = &s.skills[0];
    assert_eq!(a.version, "0");
    assert_eq!(a.body, "body");
    assert!(a.files.contains(&("SKILL.md".to_owned(), text)));
    assert!(a
        .files
        .contains(&("ref/notes.md".to_owned(), b"n".to_vec())));
}

#[test]
fn the_prompt_section_holds_each_skill_in_order() {
    let s = set(&[
        ("a/SKILL.md", skill_file("a", "version: '1.2'\n", "Do A.")),
        ("b/SKILL.md", skill_file("b", "", "")),
    ]);
    let all = s.resolve(&query("developer", "x", &[], &[])).unwrap();
    let text = deliver::prompt_section(&all);
    assert!(
        text.contains("## Skill: a (version 1.2)\nThe a skill\n\nDo A.\n")
            && text.contains("## Skill: b (version 0)\nThe b skill\n"),
        "{text}"
    );
    assert_eq!(deliver::prompt_section(&[]), "");
}

#[test]
fn native_files_are_written_for_claude_only_and_replaced_on_the_next_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join(".claude/skills/mine")).unwrap();
    std::fs::write(dir.join(".claude/skills/mine/SKILL.md"), "the repo's").unwrap();
    let s = set(&[
        ("a/SKILL.md", skill_file("a", "", "A")),
        ("mine/SKILL.md", skill_file("mine", "", "ours")),
        ("b/ref/x.md", b"x".to_vec()),
        ("b/SKILL.md", skill_file("b", "", "B")),
    ]);
    let all = s.resolve(&query("developer", "claude", &[], &[])).unwrap();
    let claude = crate::worker::profile::AgentProfile::preset("claude").unwrap();
    let codex = crate::worker::profile::AgentProfile::preset("codex").unwrap();
    let written = deliver::write_native(dir, &claude, &all).unwrap();
    assert_eq!(written.len(), 2, "{written:?}");
    assert!(
        std::fs::read_to_string(dir.join(".claude/skills/a/SKILL.md"))
            .unwrap()
            .contains("A")
    );
    assert_eq!(
        std::fs::read(dir.join(".claude/skills/b/ref/x.md")).unwrap(),
        b"x"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join(".claude/skills/mine/SKILL.md")).unwrap(),
        "the repo's",
        "a directory the worktree has stays"
    );
    // Git never sees what was written: not in status, not in `add -A`.
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    git(&["init", "-q"]);
    git(&["add", "-A"]);
    assert_eq!(
        git(&["ls-files"]),
        ".claude/skills/mine/SKILL.md\n",
        "only the repository's own file is added"
    );
    // The next run is codex's: what claude's run got is gone, the repo's stays.
    assert!(deliver::write_native(dir, &codex, &all).unwrap().is_empty());
    assert!(!dir.join(".claude/skills/a").exists());
    assert!(dir.join(".claude/skills/mine/SKILL.md").exists());
}
