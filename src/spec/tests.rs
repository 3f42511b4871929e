//! Tests over the real-world corpus, the error messages, the fixtures' golden plans, and a
//! mutation fuzzer that checks nothing panics.

use std::collections::HashSet;

use super::*;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/tasks-md/");
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/specs/");

const CORPUS_FILES: &[&str] = &[
    "01-zh-packycode-status-markers.md",
    "02-long-backend-server-git-tags.md",
    "03-subbullets-T002a-attendance.md",
    "04-lowercase-x-fr-tags-conversation.md",
    "05-slices-no-phases-wrapped.md",
    "06-short-depends-on-host-uid.md",
    "07-fr-pipe-mots-space-colon.md",
    "08-prd-tags-metadata-subbullets.md",
    "09-heading-tasks-no-checkboxes.md",
    "10-ja-tiny-custom-tags.md",
];

fn corpus(name: &str) -> String {
    std::fs::read_to_string(format!("{CORPUS}{name}")).expect("corpus file")
}

fn planned(name: &str) -> (SpecFile, Plan) {
    let spec = parse(name, &corpus(name)).unwrap_or_else(|e| panic!("{e}"));
    let p = plan(&spec).unwrap_or_else(|e| panic!("{e}"));
    (spec, p)
}

fn task<'a>(spec: &'a SpecFile, id: &str) -> &'a Task {
    spec.tasks.iter().find(|t| t.id == id).expect(id)
}

fn rendered(p: &Plan) -> String {
    let mut out = Vec::new();
    render_plan(p, &mut out).expect("render");
    String::from_utf8(out).expect("utf-8")
}

/// Counted by hand from the files (SOURCES.md has the checkbox totals).
#[test]
fn corpus_counts() {
    // (file, tasks, done, phases, convoys)
    let expected = [
        (0, 48, 44, 7, 7),    // 24 [X] + 20 [A] archived; TPPC is its own convoy
        (1, 432, 31, 15, 27), // 12 stories + 15 phases that each hold [GIT] tasks
        (2, 34, 0, 8, 8),
        (3, 26, 25, 5, 5), // the late addendum section is a phase of its own
        (4, 21, 14, 1, 1), // no phase headings
        (5, 14, 14, 6, 6),
        (6, 26, 25, 9, 9),
        (7, 69, 69, 7, 7),
        (8, 11, 0, 3, 3), // heading tasks
        (9, 9, 7, 5, 3),  // [共通] tasks go to phase-5
    ];
    for (i, tasks, done, phases, convoys) in expected {
        let name = CORPUS_FILES[i];
        let (spec, p) = planned(name);
        assert_eq!(spec.tasks.len(), tasks, "{name}: tasks");
        assert_eq!(
            spec.tasks.iter().filter(|t| t.done).count(),
            done,
            "{name}: done"
        );
        assert_eq!(spec.phases.len(), phases, "{name}: phases");
        assert_eq!(p.convoys.len(), convoys, "{name}: convoys");
        assert_effective_order(&spec, &p);
    }
}

/// The stored direct deps imply every phase barrier and in-phase order, and no edge
/// points forward in file order except explicit ones.
fn assert_effective_order(spec: &SpecFile, p: &Plan) {
    let n = p.tasks.len();
    let idx = |id: &str| p.tasks.iter().position(|t| t.id == id).expect(id);
    let mut reach: Vec<HashSet<usize>> = vec![HashSet::new(); n];
    // Every dep is earlier in file order for these files, so one forward pass suffices.
    for i in 0..n {
        for d in &p.tasks[i].deps {
            let j = idx(d);
            assert!(
                j < i,
                "{}: {} waits for later {}",
                spec.file,
                p.tasks[i].id,
                d
            );
            let r = reach[j].clone();
            reach[i].extend(r);
            reach[i].insert(j);
        }
    }
    for (i, a) in p.tasks.iter().enumerate() {
        for (j, b) in p.tasks.iter().enumerate() {
            // Story phases side by side need not wait for each other.
            let side_by_side =
                (a.phase..=b.phase).all(|k| spec.phases.iter().any(|ph| ph.index == k && ph.story));
            if a.phase < b.phase && !side_by_side {
                assert!(
                    reach[j].contains(&i),
                    "{}: {} must wait for {}",
                    spec.file,
                    b.id,
                    a.id
                );
            }
            if a.phase == b.phase && i < j && !(a.parallel && b.parallel) {
                let between_all_p = (i..=j).all(|k| p.tasks[k].parallel);
                if !between_all_p {
                    assert!(
                        reach[j].contains(&i),
                        "{}: {} after {}",
                        spec.file,
                        b.id,
                        a.id
                    );
                }
            }
        }
    }
}

#[test]
fn corpus_details() {
    let (s1, _) = planned(CORPUS_FILES[0]);
    assert!(task(&s1, "T029").done, "[A] archived counts as done");
    assert_eq!(task(&s1, "T029").labels, ["TPPC"]);
    assert!(task(&s1, "T027").description.contains("cmd/server/main.go"));
    assert!(s1.tasks.iter().all(|t| t.line > 0));
    // `- [P] T005 与 T006 …` under Parallel Opportunities is not a task.
    assert_eq!(task(&s1, "T005").line, 19);

    let (s2, p2) = planned(CORPUS_FILES[1]);
    assert_eq!(task(&s2, "T001").labels, ["GIT"]);
    assert_eq!(task(&s2, "T315").story.as_deref(), Some("US10"));
    assert!(p2.convoys.iter().any(|c| c.name == "phase-3"));

    let (s3, _) = planned(CORPUS_FILES[2]);
    let t = task(&s3, "T002a");
    assert_eq!(
        t.paths,
        ["supabase/migrations/20260619000000_profiles_hourly_rate.sql"]
    );
    assert!(
        t.description.lines().count() > 3,
        "sub-bullets join the description"
    );

    let (s4, _) = planned(CORPUS_FILES[3]);
    assert_eq!(task(&s4, "T001").labels, ["FR-002, FR-004, FR-007"]);
    assert_eq!(task(&s4, "T026").labels, ["Traceability", "FR-007a"]);
    assert!(!task(&s4, "T026").done);

    let (s5, _) = planned(CORPUS_FILES[4]);
    let t = task(&s5, "T101");
    assert!(
        t.title.ends_with("Moved, not dropped."),
        "wrapped lines join: {}",
        t.title
    );
    assert!(task(&s5, "T105a").line < task(&s5, "T105").line);

    let (s6, _) = planned(CORPUS_FILES[5]);
    // `(depends on T003)`, and `T001 → T002 → T003-T007 (US1)` under MVP first.
    assert_eq!(task(&s6, "T004").deps, ["T003", "T002"]);
    assert_eq!(
        task(&s6, "T001").paths,
        Vec::<String>::new(),
        "commands are not paths"
    );

    let (s7, _) = planned(CORPUS_FILES[6]);
    assert!(task(&s7, "T023").title.starts_with('⏳'));
    assert_eq!(task(&s7, "T020b").phase, 8);

    let (s8, _) = planned(CORPUS_FILES[7]);
    assert_eq!(task(&s8, "T006").deps, ["T001", "T002", "T003"]);
    assert!(task(&s8, "T003").parallel);

    let (s9, p9) = planned(CORPUS_FILES[8]);
    assert_eq!(task(&s9, "T3").deps, ["T1"]);
    assert!(task(&s9, "T8").parallel && task(&s9, "T11").parallel);
    assert!(!task(&s9, "T1").parallel);
    assert_eq!(p9.convoys[0].name, "ship");

    let (s10, p10) = planned(CORPUS_FILES[9]);
    assert_eq!(task(&s10, "T001").labels, ["準備タスク"]);
    assert_eq!(task(&s10, "T008").paths, ["gwt-gui/package.json"]);
    assert_eq!(p10.convoys.last().map(|c| c.name.as_str()), Some("phase-5"));
    assert_eq!(p10.conflicts.len(), 1);
}

#[test]
fn duplicate_id_names_both_lines() {
    let text = "## Phase 1\n- [ ] T001 a in a.rs\n- [ ] T002 b\n- [ ] T001 c\n";
    let e = parse("specs/x/tasks.md", text).unwrap_err();
    assert_eq!(
        e.to_string(),
        "specs/x/tasks.md:4: duplicate task ID T001 (first defined at line 2)"
    );
}

#[test]
fn unknown_dependency_names_the_line() {
    let text = "- [ ] T001 a\n- [ ] T002 b\n  - depends: T009\n";
    let e = parse("t.md", text).unwrap_err();
    assert_eq!(
        e.to_string(),
        "t.md:3: task T002 depends on T009, which is not a task in this file"
    );
}

#[test]
fn cycle_shows_its_path() {
    let e = parse("t.md", &fixture("cycle")).unwrap_err();
    let SpecError::Cycle { ids, line, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!(ids, &["T002", "T003", "T002"]);
    assert_eq!(*line, 6);
    assert!(e
        .to_string()
        .starts_with("t.md:6: dependency cycle: T002 (line 6) -> T003 (line 7) -> T002 (line 6)"));
}

#[test]
fn cycle_through_phase_order() {
    let text = "## Phase 1\n- [ ] T001 a (depends on T002)\n## Phase 2\n- [ ] T002 b\n";
    let e = parse("t.md", text).unwrap_err();
    let msg = e.to_string();
    assert!(msg.starts_with("t.md:2: dependency cycle: T001 (line 2) -> T002 (line 4) -> T001"));
    assert!(msg.contains("phase or task order"), "{msg}");
}

#[test]
fn self_dependency_is_a_cycle() {
    let e = parse("t.md", "- [ ] T001 a (depends on T001)\n").unwrap_err();
    assert!(e
        .to_string()
        .starts_with("t.md:1: dependency cycle: T001 (line 1) -> T001"));
}

#[test]
fn no_tasks_is_an_error() {
    let e = parse("t.md", "# Tasks\n\n- [ ] write tests\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "t.md: no tasks found (expected lines like `- [ ] T001 Description`)"
    );
}

#[test]
fn fenced_and_commented_tasks_are_ignored() {
    let text = "- [ ] T001 real\n```\n- [ ] T001 in a fence\n```\n<!--\n- [ ] T001 comment\n-->\n";
    let spec = parse("t.md", text).unwrap();
    assert_eq!(spec.tasks.len(), 1);
}

#[test]
fn parallel_groups_and_barriers() {
    let text = "\
## Phase 1
- [ ] T001 a
- [ ] T002 [P] b
- [ ] T003 [P] c
- [ ] T004 d
## Phase 2
- [ ] T005 [P] e
- [ ] T006 [P] f
";
    let p = plan(&parse("t.md", text).unwrap()).unwrap();
    let deps = |id: &str| p.tasks.iter().find(|t| t.id == id).unwrap().deps.clone();
    assert_eq!(deps("T002"), ["T001"]);
    assert_eq!(deps("T003"), ["T001"]);
    assert_eq!(deps("T004"), ["T002", "T003"]);
    assert_eq!(deps("T005"), ["T004"]);
    assert_eq!(
        p.waves,
        [
            vec!["T001"],
            vec!["T002", "T003"],
            vec!["T004"],
            vec!["T005", "T006"]
        ]
    );
}

#[test]
fn done_tasks_satisfy_deps_and_leave_the_waves() {
    let text = "- [x] T001 a in a.rs\n- [ ] T002 b in a.rs\n";
    let p = plan(&parse("t.md", text).unwrap()).unwrap();
    assert_eq!(p.waves, [vec!["T002"]]);
    assert!(p.conflicts.is_empty());
}

#[test]
fn path_conflicts_are_serialized_in_file_order() {
    let text =
        "- [ ] T001 [P] a in src/a.rs\n- [ ] T002 [P] b in `src/`\n- [ ] T003 [P] c in src/c.rs\n";
    let p = plan(&parse("t.md", text).unwrap()).unwrap();
    let pairs: Vec<(&str, &str)> = p
        .conflicts
        .iter()
        .map(|c| (c.first.as_str(), c.second.as_str()))
        .collect();
    assert_eq!(pairs, [("T001", "T002"), ("T002", "T003")]);
    assert_eq!(p.waves, [vec!["T001"], vec!["T002"], vec!["T003"]]);
    assert_eq!(p.warnings.len(), 3);
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{FIXTURES}{name}/tasks.md")).expect("fixture")
}

/// `UPDATE_GOLDEN=1 cargo test` rewrites the golden files.
#[test]
fn fixtures_match_golden_plans() {
    for name in ["demo", "phases-only", "cycle"] {
        let file = format!("fixtures/specs/{name}/tasks.md");
        let actual = match parse(&file, &fixture(name)).and_then(|s| plan(&s)) {
            Ok(p) => rendered(&p),
            Err(e) => format!("error: {e}\n"),
        };
        let golden = format!("{FIXTURES}{name}/plan.txt");
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&golden, &actual).expect("write golden");
        }
        let expected = std::fs::read_to_string(&golden).unwrap_or_default();
        assert_eq!(
            actual, expected,
            "{golden} differs; rerun with UPDATE_GOLDEN=1 to accept"
        );
    }
}

#[test]
fn plan_serializes_to_json() {
    let (_, p) = planned(CORPUS_FILES[9]);
    let v = serde_json::to_value(&p).expect("json");
    assert_eq!(v["tasks"][0]["id"], "T001");
    assert_eq!(v["tasks"][0]["convoy"], "US1");
}

/// xorshift64*: deterministic, no crate needed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const SNIPPETS: &[&str] = &[
    "- [ ] T001 ",
    "- [x] T9999 ",
    "[P] ",
    "[US1] ",
    "[",
    "]",
    "(depends on T002, T003)",
    "depends: T001",
    "Dependencies: T1",
    "## Phase 9: Polish\n",
    "### T1 · heading task [P]\n",
    "```\n",
    "<!--",
    "`src/**/*.rs`",
    " src/a.rs:12 ",
    "\t",
    "\r\n",
    "---\n",
    "  - sub\n",
    "é中文",
    "`",
];

fn mutate(rng: &mut Rng, text: &str) -> String {
    let mut s: Vec<char> = text.chars().collect();
    for _ in 0..1 + rng.below(6) {
        let at = rng.below(s.len() + 1);
        match rng.below(6) {
            0 => s.truncate(at),
            1 => {
                let ins = SNIPPETS[rng.below(SNIPPETS.len())];
                s.splice(at..at, ins.chars());
            }
            2 => {
                let c = char::from_u32(rng.below(0x3000) as u32).unwrap_or('\u{fffd}');
                s.insert(at, c);
            }
            3 => {
                // Splice a random range of the file elsewhere (duplicates lines and IDs).
                let from = rng.below(s.len() + 1);
                let len = rng.below(400).min(s.len() - from);
                let piece: Vec<char> = s[from..from + len].to_vec();
                s.splice(at..at, piece);
            }
            4 => {
                let end = (at + rng.below(200)).min(s.len());
                s.drain(at..end);
            }
            _ => {
                let id = format!(" T{:03}", rng.below(60));
                s.splice(at..at, id.chars());
            }
        }
    }
    s.into_iter().collect()
}

/// A run of lines from `text` (the whole text if `whole`): keeps debug-build fuzzing fast
/// while every construct of the corpus still turns up.
fn window(rng: &mut Rng, text: &str, whole: bool) -> String {
    if whole {
        return text.to_string();
    }
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let start = rng.below(lines.len());
    let len = 5 + rng.below(60);
    lines[start..(start + len).min(lines.len())].concat()
}

#[test]
fn mutated_corpus_never_panics() {
    let texts: Vec<String> = CORPUS_FILES.iter().map(|f| corpus(f)).collect();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut ok, mut rejected) = (0, 0);
    for case in 0..3000 {
        let i = rng.below(texts.len());
        let piece = window(&mut rng, &texts[i], case < 20);
        let text = mutate(&mut rng, &piece);
        match parse("fuzz.md", &text) {
            Ok(spec) => {
                let p = plan(&spec).expect("parse accepted it, so plan must too");
                rendered(&p);
                ok += 1;
            }
            Err(e) => {
                assert!(e.to_string().starts_with("fuzz.md"), "{e}");
                rejected += 1;
            }
        }
    }
    assert!(ok > 100 && rejected > 100, "ok {ok}, rejected {rejected}");
}

#[test]
fn a_huge_title_or_description_is_rejected_with_its_line() {
    let big = "x".repeat(MAX_TEXT + 1);
    // One huge line is refused before any other work.
    let text = format!("# Tasks\n\n- [ ] T001 small\n- [ ] T002 {big}\n");
    let e = parse("tasks.md", &text).unwrap_err();
    assert!(matches!(e, SpecError::TooLong { line: 4, .. }), "{e}");
    assert!(e.to_string().starts_with("tasks.md:4: this line is"), "{e}");
    // A title wrapped over many lines, each short.
    let wrapped = "word ".repeat(1000);
    let mut text = String::from("- [ ] T001 first\n- [ ] T002 start\n");
    for _ in 0..20 {
        text.push_str(&format!("  {wrapped}\n"));
    }
    let e = parse("tasks.md", &text).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("tasks.md:2: task T002's title is"),
        "{e}"
    );
    // A description made of many sub-bullets.
    let mut text = String::from("- [ ] T001 short title\n");
    for _ in 0..20 {
        text.push_str(&format!("  - {wrapped}\n"));
    }
    let e = parse("tasks.md", &text).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("tasks.md:1: task T001's description is"),
        "{e}"
    );
    // Just under the bound is fine.
    let ok = format!("- [ ] T001 {}\n", "y".repeat(MAX_TEXT - 20));
    parse("tasks.md", &ok).unwrap();
}

fn deps_of(p: &Plan, id: &str) -> Vec<String> {
    p.tasks.iter().find(|t| t.id == id).expect(id).deps.clone()
}

fn wave_of(p: &Plan, id: &str) -> Option<usize> {
    p.tasks.iter().find(|t| t.id == id).expect(id).wave
}

/// spec-kit's template: Setup, Foundational, two stories, Polish.
const STORIES: &str = "\
## Phase 1: Setup
- [ ] T001 Create layout in src/lib.rs
## Phase 2: Foundational
- [ ] T002 Base types in src/types.rs
## Phase 3: User Story 1 - Browse (Priority: P1)
- [ ] T003 [US1] Model in src/browse.rs
- [ ] T004 [US1] View in src/browse_view.rs
## Phase 4: User Story 2 - Buy (Priority: P2)
- [ ] T005 [US2] Cart in src/cart.rs
- [ ] T006 [US2] Checkout in src/checkout.rs
## Phase 5: Polish & Cross-Cutting Concerns
- [ ] T007 Changelog in CHANGELOG.md
";

#[test]
fn story_phases_run_side_by_side_after_foundational() {
    let spec = parse("t.md", STORIES).unwrap();
    assert_eq!(
        spec.phases.iter().map(|p| p.story).collect::<Vec<_>>(),
        [false, false, true, true, false]
    );
    let p = plan(&spec).unwrap();
    assert_eq!(deps_of(&p, "T003"), ["T002"]);
    assert_eq!(deps_of(&p, "T005"), ["T002"], "US2 does not wait for US1");
    assert_eq!(deps_of(&p, "T004"), ["T003"], "a story keeps its own order");
    assert_eq!(
        p.waves,
        [
            vec!["T001"],
            vec!["T002"],
            vec!["T003", "T005"],
            vec!["T004", "T006"],
            vec!["T007"]
        ]
    );
    assert_eq!(p.critical_path, ["T001", "T002", "T003", "T004", "T007"]);
}

#[test]
fn polish_waits_for_every_story() {
    let p = plan(&parse("t.md", STORIES).unwrap()).unwrap();
    assert_eq!(deps_of(&p, "T007"), ["T004", "T006"]);
}

#[test]
fn serial_stories_chain_the_story_phases() {
    let options = Options {
        serial_stories: true,
        ..Options::default()
    };
    let p = plan_with(&parse("t.md", STORIES).unwrap(), &options).unwrap();
    assert_eq!(deps_of(&p, "T005"), ["T004"]);
    assert_eq!(deps_of(&p, "T007"), ["T006"]);
    assert_eq!(p.waves.len(), 7);
    assert!(p.waves.iter().all(|w| w.len() == 1));
}

#[test]
fn a_checked_last_task_keeps_the_next_phase_closed() {
    let text = "\
## Phase 1: Setup
- [ ] T001 a in a.rs
- [ ] T002 b in b.rs
- [x] T003 c in c.rs
## Phase 2: Foundational
- [ ] T004 d in d.rs
";
    let p = plan(&parse("t.md", text).unwrap()).unwrap();
    assert_eq!(deps_of(&p, "T004"), ["T002", "T003"]);
    assert_eq!(p.waves, [vec!["T001"], vec!["T002"], vec!["T004"]]);
    // A checked task in the middle of a [P] group's successor chain likewise.
    let text = "\
## Phase 1
- [ ] T001 [P] a in a.rs
- [ ] T002 [P] b in b.rs
- [x] T003 c in c.rs
## Phase 2
- [x] T004 d in d.rs
- [ ] T005 e in e.rs
";
    let p = plan(&parse("t.md", text).unwrap()).unwrap();
    assert_eq!(deps_of(&p, "T005"), ["T001", "T002", "T004"]);
    assert_eq!(p.waves, [vec!["T001", "T002"], vec!["T005"]]);
}

#[test]
fn dependency_ranges_name_every_task_between() {
    for (form, last) in [
        ("depends on T001 through T004", "T004"),
        ("depends on T001–T004", "T004"),
        ("depends on T001..T004", "T004"),
        ("depends on T001-T004", "T004"),
        ("Dependencies: T001 to T003", "T003"),
    ] {
        let text = format!(
            "- [ ] T001 [P] a\n- [ ] T002 [P] b\n- [ ] T002a [P] b2\n- [ ] T003 [P] c\n\
             - [ ] T004 [P] d\n- [ ] T009 [P] z\n  - {form}\n"
        );
        let spec = parse("t.md", &text).unwrap();
        let mut expected = vec!["T001", "T002", "T002a", "T003"];
        if last == "T004" {
            expected.push("T004");
        }
        assert_eq!(task(&spec, "T009").deps, expected, "{form}");
    }
    let e = parse(
        "t.md",
        "- [ ] T001 a\n- [ ] T002 b (depends on T001 through T007)\n",
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "t.md:2: task T002 depends on T007, which is not a task in this file"
    );
}

#[test]
fn prose_dependency_lines_become_edges() {
    let text = "\
## Phase 1
- [ ] T001 [P] a
- [ ] T002 [P] b
- [ ] T003 [P] c
- [ ] T004 [P] d
  - **Dependencies**: T004 requires T001–T003
- [ ] T010 [P] e
- [ ] T011 [P] f
- [ ] T012 [P] g
- [ ] T014 [P] h
- [ ] T015 [P] i

T012 depends on T010 and T011.

## Dependencies

- T014 → T015
- US1 → US2 (stories name no task: no edge)
- T099 depends on T001
";
    let spec = parse("t.md", text).unwrap();
    assert_eq!(task(&spec, "T004").deps, ["T001", "T002", "T003"]);
    assert_eq!(task(&spec, "T012").deps, ["T010", "T011"]);
    assert_eq!(task(&spec, "T015").deps, ["T014"]);
    assert!(task(&spec, "T014").deps.is_empty());
    assert_eq!(
        spec.notes.last().map(|n| (n.line, n.message.as_str())),
        Some((
            19,
            "T099 is not a task in this file; this dependency line is ignored"
        ))
    );
    let p = plan(&spec).unwrap();
    assert_eq!(wave_of(&p, "T012"), Some(2));
    assert_eq!(wave_of(&p, "T015"), Some(2));
}

#[test]
fn spec_documents_lock_under_the_feature_directory() {
    let text = "\
- [ ] T001 [P] Update spec.md and plan.md with the API
- [ ] T002 [P] Write contracts/api.yaml and README.md
- [ ] T003 [P] Fix the quickstart in `quickstart.md`
";
    let p = plan(&parse("specs/shop/tasks.md", text).unwrap()).unwrap();
    let paths = |id: &str| p.tasks.iter().find(|t| t.id == id).unwrap().paths.clone();
    assert_eq!(paths("T001"), ["specs/shop/spec.md", "specs/shop/plan.md"]);
    assert_eq!(
        paths("T002"),
        ["specs/shop/contracts/api.yaml", "README.md"]
    );
    assert_eq!(paths("T003"), ["specs/shop/quickstart.md"]);
    // `plan --rev` names the file `specs/shop/tasks.md@main`.
    let p = plan(&parse("specs/shop/tasks.md@main", text).unwrap()).unwrap();
    assert_eq!(p.tasks[0].paths[0], "specs/shop/spec.md");
}

#[test]
fn chores_of_corpus_file_02_are_skipped() {
    let name = CORPUS_FILES[1];
    let (spec, p) = planned(name);
    let skipped: Vec<&PlannedTask> = p.tasks.iter().filter(|t| t.skipped.is_some()).collect();
    assert_eq!(skipped.len(), 223, "every open [GIT] task of the file");
    assert!(skipped.iter().all(|t| t.labels == ["GIT"] && !t.done));
    assert!(skipped.iter().all(|t| t.wave.is_none()));
    let is_chore = |id: &str| {
        p.tasks
            .iter()
            .find(|t| t.id == id)
            .unwrap()
            .skipped
            .is_some()
    };
    for id in [
        "T032", "T034", "T051", "T052", "T053", "T054", "T055", "T056",
    ] {
        assert!(is_chore(id), "{id}: {}", task(&spec, id).title);
    }
    for id in ["T033", "T035", "T047", "T049", "T057"] {
        assert!(!is_chore(id), "{id}: {}", task(&spec, id).title);
    }
    // A chore between two tasks does not unorder them: T035 still waits for T033.
    assert!(deps_of(&p, "T035").contains(&"T033".to_string()));
    let text = rendered(&p);
    assert!(
        text.contains("(31 done, 223 skipped: handled by git-sprint)"),
        "{text}"
    );
    assert!(text.contains("[-] T034   Commit: add domain types  (skipped: handled by git-sprint)"));

    // `chores: run`: no pattern, every task gets an agent.
    let options = Options {
        chores: Vec::new(),
        ..Options::default()
    };
    let p = plan_with(&spec, &options).unwrap();
    assert!(p.tasks.iter().all(|t| t.skipped.is_none()));
    assert_eq!(p.waves.iter().map(Vec::len).sum::<usize>(), 401);
}

#[test]
fn real_work_that_mentions_git_words_is_no_chore() {
    let text = "\
- [ ] T001 Create PR template in .github/pull_request_template.md
- [ ] T002 Push notifications service in src/push.ts
- [ ] T003 Add a CI workflow in .github/workflows/ci.yml
- [ ] T004 Commit: add the workflow
- [ ] T005 Open a pull request to main
- [ ] T006 Wait for CI
";
    let p = plan(&parse("t.md", text).unwrap()).unwrap();
    let skipped: Vec<&str> = p
        .tasks
        .iter()
        .filter(|t| t.skipped.is_some())
        .map(|t| t.id.as_str())
        .collect();
    assert_eq!(skipped, ["T004", "T005", "T006"]);
}

/// The corpus's spec-kit files gain width from story phases running side by side.
#[test]
fn corpus_file_02_runs_stories_side_by_side() {
    let (_, p) = planned(CORPUS_FILES[1]);
    let widest = p.waves.iter().map(Vec::len).max().unwrap_or(0);
    assert!(widest >= 10, "widest wave {widest}");
    assert!(p.waves.len() < 100, "{} waves", p.waves.len());
    assert_eq!(p.critical_path.len(), p.waves.len());
}
