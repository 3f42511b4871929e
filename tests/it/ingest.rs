//! tasks.md committed with plain `git commit` becomes tasks in state, through
//! the installed hooks; edits reconcile; user hooks keep running.

use crate::support::{stderr, Repo, BIN};

const TASKS_V1: &str = "\
# Tasks: demo

## Phase 1: Setup

- [ ] T001 Create `src/lib.rs`
- [ ] T002 [P] Add CI in .github/workflows/ci.yml
- [ ] T003 [P] Add lint config in clippy.toml

## Phase 2: User Story 1 - Browse (Priority: P1)

- [ ] T004 [US1] Product model in src/models/product.rs
- [ ] T005 [US1] List endpoint in src/api/products.rs (depends on T004)
";

fn json(repo: &Repo, args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&repo.sprint(args)).expect("valid JSON")
}

fn task<'a>(status: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    status["features"][0]["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap_or_else(|| panic!("no task {id}"))
}

#[test]
fn committing_tasks_md_ingests_it_and_an_edit_reconciles() {
    let repo = Repo::with_commit();
    // A hook the user already had: it must keep running.
    repo.write(
        ".git/hooks/post-commit",
        "#!/bin/sh\necho ran >> \"$(git rev-parse --git-dir)/user-hook-ran\"\n",
    );
    repo.command("chmod")
        .args(["+x", ".git/hooks/post-commit"])
        .status()
        .unwrap();
    let init = repo.sprint(["init"]);
    assert!(
        init.contains("post-commit hook installed; your existing hook is kept"),
        "{init}"
    );

    repo.write("specs/001-demo/tasks.md", TASKS_V1);
    repo.git(["add", "specs"]);
    let out = repo
        .command("git")
        .args(["commit", "-q", "-m", "spec"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        stderr(&out).contains("001-demo: specs/001-demo/tasks.md ingested: 5 added"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_to_string(repo.path().join(".git/user-hook-ran")).unwrap(),
        "ran\n"
    );

    let status = json(&repo, &["status", "--json"]);
    assert_eq!(status["features"][0]["tasks"].as_array().unwrap().len(), 5);
    assert_eq!(task(&status, "T005")["deps"], serde_json::json!(["T004"]));
    assert_eq!(
        task(&status, "T004")["deps"],
        serde_json::json!(["T002", "T003"]),
        "phase barrier"
    );
    assert_eq!(
        status["features"][0]["feature"]["integration_branch"],
        "sprint/001-demo/integration"
    );
    repo.git(["rev-parse", "--verify", "sprint/001-demo/integration"]);

    // Work starts on T001 before the file changes.
    repo.sprint(["claim", "T001", "--as", "dev-1"]);

    // Edit: T003 removed, T006 added, T002 reworded, T004 checked off.
    let v2 = TASKS_V1
        .replace("- [ ] T003 [P] Add lint config in clippy.toml\n", "")
        .replace("Add CI in", "Add CI workflow in")
        .replace("- [ ] T004", "- [x] T004")
        + "- [ ] T006 [US1] Cart in src/models/cart.rs\n";
    repo.write("specs/001-demo/tasks.md", &v2);
    repo.git(["commit", "-q", "-am", "spec: revise"]);
    let status = json(&repo, &["status", "--json"]);
    assert_eq!(
        task(&status, "T001")["status"],
        "in_progress",
        "progress kept"
    );
    assert_eq!(task(&status, "T001")["attempts"], 1);
    assert_eq!(
        task(&status, "T002")["title"],
        "Add CI workflow in .github/workflows/ci.yml"
    );
    assert_eq!(task(&status, "T003")["status"], "cancelled");
    assert_eq!(task(&status, "T004")["status"], "done");
    assert_eq!(task(&status, "T006")["status"], "todo");
    // T005 is updated too: with T004 checked, it also waits for what T004
    // waited for (T002), so a checked task opens nothing early.
    assert_eq!(
        task(&status, "T005")["deps"],
        serde_json::json!(["T002", "T004"])
    );
    let log = repo.sprint(["log", "001-demo", "-n", "1"]);
    assert!(
        log.contains("1 added, 2 updated, 1 cancelled, 1 checked off"),
        "{log}"
    );

    // The same blob again changes nothing.
    let tip = repo.git(["rev-parse", "refs/ai-sprint"]);
    let again = repo.sprint(["ingest"]);
    assert!(
        again.contains("already ingested; nothing changed"),
        "{again}"
    );
    assert_eq!(repo.git(["rev-parse", "refs/ai-sprint"]), tip);

    // Putting T003 back reinstates it, history intact.
    repo.write("specs/001-demo/tasks.md", TASKS_V1);
    repo.git(["commit", "-q", "-am", "spec: back"]);
    let show = repo.sprint(["show", "T003"]);
    assert!(show.starts_with("001-demo/T003  todo"), "{show}");
    assert!(
        show.contains("removed from tasks.md") && show.contains("back in tasks.md"),
        "{show}"
    );
}

#[test]
fn a_malformed_tasks_md_never_fails_the_commit_and_changes_nothing() {
    let repo = Repo::with_commit();
    repo.sprint(["init"]);
    let tip = repo.git(["rev-parse", "refs/ai-sprint"]);
    repo.write(
        "specs/bad/tasks.md",
        "- [ ] T001 one (depends on T002)\n- [ ] T002 two (depends on T001)\n",
    );
    repo.git(["add", "specs"]);
    let out = repo
        .command("git")
        .args(["commit", "-q", "-m", "bad spec"])
        .output()
        .unwrap();
    assert!(out.status.success(), "the commit stands");
    let err = stderr(&out);
    assert!(
        err.contains("specs/bad/tasks.md:1: dependency cycle"),
        "{err}"
    );
    assert!(err.contains("not ingested"), "{err}");
    assert_eq!(repo.git(["rev-parse", "refs/ai-sprint"]), tip);
    // status shows what is wrong with the working-tree file.
    let status = repo.sprint(["status"]);
    assert!(
        status.contains("not committable: specs/bad/tasks.md:1: dependency cycle"),
        "{status}"
    );
    // The explicit command fails with the same message and exit 1.
    let out = repo.run(["ingest", "bad"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("error: specs/bad/tasks.md:1: dependency cycle"));
}

#[test]
fn hooks_are_off_with_git_sprint_hooks_0_and_off_branch() {
    let repo = Repo::with_commit();
    repo.sprint(["init"]);
    repo.write("specs/f/tasks.md", "- [ ] T001 one\n");
    repo.git(["add", "specs"]);
    let out = repo
        .command("git")
        .env("GIT_SPRINT_HOOKS", "0")
        .args(["commit", "-q", "-m", "quiet"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(repo.sprint(["status"]).contains("0 features"));
    // Commits on another branch are not the base branch's spec.
    repo.git(["checkout", "-q", "-b", "topic"]);
    repo.write("specs/f/tasks.md", "- [ ] T001 one\n- [ ] T002 two\n");
    repo.git(["commit", "-q", "-am", "on topic"]);
    assert!(repo.sprint(["status"]).contains("0 features"));
    // ...until asked for explicitly.
    assert!(repo
        .sprint(["ingest", "--rev", "topic"])
        .contains("f: ingested specs/f/tasks.md: 2 added"));
}

#[test]
fn hooks_honour_core_hooks_path_and_uninstall_restores_them() {
    let repo = Repo::with_commit();
    repo.git(["config", "core.hooksPath", ".githooks"]);
    let mine = "#!/bin/sh\necho mine\n";
    repo.write(".githooks/post-merge", mine);
    repo.sprint(["init"]);
    let shim = std::fs::read_to_string(repo.path().join(".githooks/post-commit")).unwrap();
    assert!(
        shim.contains("# BEGIN git-sprint") && shim.contains(BIN),
        "{shim}"
    );
    assert!(!repo.path().join(".git/hooks/post-commit").exists());
    let out = repo.sprint(["uninstall"]);
    assert!(
        out.contains("post-merge: removed; your hook is back in place"),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(repo.path().join(".githooks/post-merge")).unwrap(),
        mine
    );
    assert!(!repo.path().join(".githooks/post-commit").exists());
}

#[test]
fn a_missing_binary_does_not_fail_the_commit() {
    let repo = Repo::with_commit();
    let copy = repo.home().join("git-sprint-copy");
    std::fs::copy(BIN, &copy).unwrap();
    let out = repo.command(&copy).arg("init").output().unwrap();
    assert!(out.status.success());
    std::fs::remove_file(&copy).unwrap();
    repo.write("a.txt", "a\n");
    repo.git(["add", "a.txt"]);
    let out = repo
        .command("git")
        .args(["commit", "-q", "-m", "a"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        stderr(&out).contains("git-sprint: binary not found, post-commit hook skipped"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn every_corpus_file_ingests() {
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/tasks-md");
    let repo = Repo::with_commit();
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&corpus).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if name == "SOURCES" {
            continue;
        }
        repo.write(
            &format!("specs/{name}/tasks.md"),
            &std::fs::read_to_string(&path).unwrap(),
        );
        names.push(name);
    }
    assert_eq!(names.len(), 10);
    repo.git(["add", "specs"]);
    repo.git(["commit", "-q", "-m", "corpus"]);
    let out = repo.sprint(["ingest", "--json"]);
    let outcomes: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(outcomes.as_array().unwrap().len(), 10);
    for o in outcomes.as_array().unwrap() {
        assert!(!o["added"].as_array().unwrap().is_empty(), "{o}");
    }
    repo.git(["fsck", "--no-progress"]);
}
