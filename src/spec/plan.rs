//! From a parsed tasks.md to a schedule: the effective dependency graph, path-lock
//! serialization, convoys and waves.
//!
//! Phase barriers are stored as edges from the first tasks of a phase (those with no
//! dependency inside it) to the last tasks of the phase it waits for (those nothing inside
//! it waits for): every task of a phase reaches those, so the relation is the same as "all
//! of phase k before any of phase k+1" with far fewer edges. Story phases side by side each
//! wait for the barrier before their run; the phase after the run waits for all their ends.
//!
//! Done tasks (checked, or skipped chores) are then contracted out: a task that waited for
//! a done one waits for the open tasks that one waited for. Without that, a checked last
//! task of a phase would open the next phase while earlier tasks are still open.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::paths::Lock;
use super::{Options, Phase, SpecError, SpecFile, CHORE_REASON};

/// The schedule for one tasks.md.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub(crate) file: String,
    pub(crate) phases: Vec<Phase>,
    /// Tasks in file order.
    pub tasks: Vec<PlannedTask>,
    /// Convoys in order of their first task.
    pub(crate) convoys: Vec<Convoy>,
    /// Tasks not yet done, layered: wave 1 can start now, wave k+1 once wave k is through.
    pub(crate) waves: Vec<Vec<String>>,
    pub(crate) conflicts: Vec<Conflict>,
    /// The longest chain of open tasks, first to last: its length is the number of waves.
    pub(crate) critical_path: Vec<String>,
    pub(crate) warnings: Vec<Warning>,
}

/// A task with everything the state layer stores for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedTask {
    pub(crate) id: String,
    pub(crate) title: String,
    pub(crate) description: String,
    pub(crate) line: usize,
    pub(crate) done: bool,
    /// Why the task gets no agent though it is not checked (a chore git-sprint handles);
    /// it counts as done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) skipped: Option<String>,
    pub(crate) parallel: bool,
    pub(crate) story: Option<String>,
    pub(crate) labels: Vec<String>,
    /// Effective direct dependencies, in file order: explicit, in-phase order, phase
    /// barrier and serialized path conflicts. A task may start when all of them are done.
    pub(crate) deps: Vec<String>,
    pub(crate) paths: Vec<String>,
    /// [`Phase::index`].
    pub(crate) phase: usize,
    pub(crate) phase_title: String,
    pub(crate) convoy: String,
    /// 1-based wave for a task not yet done.
    pub(crate) wave: Option<usize>,
}

/// Tasks delivered together: one story, or the story-less tasks of one phase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Convoy {
    /// `US1`, or the phase's slug (`setup`, `polish`, `phase-3`).
    pub(crate) name: String,
    pub(crate) story: Option<String>,
    /// Set for a phase convoy.
    pub(crate) phase: Option<usize>,
    pub(crate) tasks: Vec<String>,
    pub(crate) done: usize,
}

/// Two tasks that name overlapping paths and were not otherwise ordered: `second` now
/// waits for `first`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Conflict {
    pub(crate) first: String,
    pub(crate) second: String,
    pub(crate) paths: Vec<String>,
}

/// Something a person should look at; the plan is still valid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Warning {
    pub(crate) line: usize,
    pub(crate) task: Option<String>,
    pub(crate) message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Edge {
    Explicit,
    Order,
    Phase,
    Conflict,
}

/// Dependency graph over task indices (file order). `deps[i]` are what task i waits for.
pub(crate) struct Graph {
    deps: Vec<Vec<(usize, Edge)>>,
    /// Dependencies before dependants.
    topo: Vec<usize>,
}

impl Graph {
    /// The graph of `spec`; `serial_stories` chains story phases like other phases.
    pub(crate) fn build(spec: &SpecFile, serial_stories: bool) -> Result<Graph, SpecError> {
        let tasks = &spec.tasks;
        let n = tasks.len();
        let mut index: HashMap<&str, usize> = HashMap::with_capacity(n);
        for (i, t) in tasks.iter().enumerate() {
            if let Some(&j) = index.get(t.id.as_str()) {
                return Err(SpecError::DuplicateId {
                    file: spec.file.clone(),
                    line: t.line,
                    id: t.id.clone(),
                    first_line: tasks[j].line,
                });
            }
            index.insert(&t.id, i);
        }
        let mut deps: Vec<Vec<(usize, Edge)>> = vec![Vec::new(); n];
        let add = |deps: &mut Vec<Vec<(usize, Edge)>>, i: usize, d: usize, e: Edge| {
            if !deps[i].iter().any(|&(x, _)| x == d) {
                deps[i].push((d, e));
            }
        };
        for (i, t) in tasks.iter().enumerate() {
            for d in &t.deps {
                match index.get(d.as_str()) {
                    Some(&j) => add(&mut deps, i, j, Edge::Explicit),
                    None => {
                        return Err(SpecError::UnknownDependency {
                            file: spec.file.clone(),
                            line: t.line,
                            task: t.id.clone(),
                            dep: d.clone(),
                        })
                    }
                }
            }
        }
        let mut by_phase: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (i, t) in tasks.iter().enumerate() {
            by_phase.entry(t.phase).or_default().push(i);
        }
        // In-phase order: a [P] group waits for the task before it; a task without [P]
        // waits for the group (or task) before it.
        for members in by_phase.values() {
            let mut last_seq: Option<usize> = None;
            let mut group: Vec<usize> = Vec::new();
            for &i in members {
                if tasks[i].parallel {
                    if let Some(s) = last_seq {
                        add(&mut deps, i, s, Edge::Order);
                    }
                    group.push(i);
                } else {
                    if group.is_empty() {
                        if let Some(s) = last_seq {
                            add(&mut deps, i, s, Edge::Order);
                        }
                    } else {
                        for &g in &group {
                            add(&mut deps, i, g, Edge::Order);
                        }
                    }
                    group.clear();
                    last_seq = Some(i);
                }
            }
        }
        // Barriers: sources of a phase wait for the sinks of what it waits for.
        let story =
            |p: usize| !serial_stories && spec.phases.iter().any(|ph| ph.index == p && ph.story);
        // What the next phase waits for, and for a run of story phases, what the run
        // started from and the sinks of its phases so far.
        let mut barrier: Vec<usize> = Vec::new();
        let mut run: Option<(Vec<usize>, Vec<usize>)> = None;
        for (&p, members) in &by_phase {
            let same = |x: usize| members.binary_search(&x).is_ok();
            let sinks: Vec<usize> = members
                .iter()
                .copied()
                .filter(|&s| {
                    !members
                        .iter()
                        .any(|&o| deps[o].iter().any(|&(d, _)| d == s))
                })
                .collect();
            let sources: Vec<usize> = members
                .iter()
                .copied()
                .filter(|&s| !deps[s].iter().any(|&(d, _)| same(d)))
                .collect();
            let wait: Vec<usize> = if story(p) {
                let (before, ends) = run.get_or_insert_with(|| (barrier.clone(), Vec::new()));
                ends.extend(&sinks);
                before.clone()
            } else {
                if let Some((_, ends)) = run.take() {
                    barrier = ends;
                }
                std::mem::replace(&mut barrier, sinks)
            };
            for &s in &sources {
                for &k in &wait {
                    add(&mut deps, s, k, Edge::Phase);
                }
            }
        }
        let topo = topo_order(spec, &deps)?;
        Ok(Graph { deps, topo })
    }
}

/// Dependencies-first order, or the first cycle found (scanning in file order).
fn topo_order(spec: &SpecFile, deps: &[Vec<(usize, Edge)>]) -> Result<Vec<usize>, SpecError> {
    let n = deps.len();
    let mut color = vec![0u8; n];
    let mut order = Vec::with_capacity(n);
    for start in 0..n {
        if color[start] != 0 {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        color[start] = 1;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if let Some(&(d, _)) = deps[node].get(*next) {
                *next += 1;
                match color[d] {
                    0 => {
                        color[d] = 1;
                        stack.push((d, 0));
                    }
                    1 => {
                        let pos = stack.iter().position(|&(x, _)| x == d).unwrap_or(0);
                        let cycle: Vec<usize> = stack[pos..].iter().map(|&(x, _)| x).collect();
                        return Err(cycle_error(spec, deps, cycle));
                    }
                    _ => {}
                }
            } else {
                color[node] = 2;
                order.push(node);
                stack.pop();
            }
        }
    }
    Ok(order)
}

fn cycle_error(spec: &SpecFile, deps: &[Vec<(usize, Edge)>], mut cycle: Vec<usize>) -> SpecError {
    let min = (0..cycle.len()).min_by_key(|&k| cycle[k]).unwrap_or(0);
    cycle.rotate_left(min);
    let first = cycle[0];
    cycle.push(first);
    let tasks = &spec.tasks;
    let through_order = cycle.windows(2).any(|w| {
        deps[w[0]]
            .iter()
            .any(|&(d, e)| d == w[1] && e != Edge::Explicit)
    });
    let path = cycle
        .iter()
        .map(|&i| format!("{} (line {})", tasks[i].id, tasks[i].line))
        .collect::<Vec<_>>()
        .join(" -> ");
    SpecError::Cycle {
        file: spec.file.clone(),
        line: tasks[first].line,
        ids: cycle.iter().map(|&i| tasks[i].id.clone()).collect(),
        path,
        hint: if through_order {
            " (`a -> b`: a waits for b; the cycle goes through phase or task order, so a task \
             depends on one that comes after it)"
                .to_string()
        } else {
            " (`a -> b`: a waits for b)".to_string()
        },
    }
}

struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Bits {
        Bits(vec![0; n.div_ceil(64)])
    }
    fn has(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn union(&mut self, other: &Bits) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a |= b;
        }
    }
}

/// Plans a parsed tasks.md with the default [`Options`]. Fails only on a graph error
/// (duplicate or unknown IDs, a cycle), which [`super::parse`] already rules out for files
/// it produced (with story phases side by side).
pub fn plan(spec: &SpecFile) -> Result<Plan, SpecError> {
    plan_with(spec, &Options::default())
}

/// Plans a parsed tasks.md as `options` say (story order, chores, the spec directory).
pub(crate) fn plan_with(spec: &SpecFile, options: &Options) -> Result<Plan, SpecError> {
    let Graph {
        deps: structure,
        topo,
    } = Graph::build(spec, options.serial_stories)?;
    let tasks = &spec.tasks;
    let n = tasks.len();
    let skipped: Vec<bool> = tasks
        .iter()
        .map(|t| !t.done && options.chores.iter().any(|re| re.is_match(t.title.trim())))
        .collect();
    let done = |i: usize| tasks[i].done || skipped[i];
    let spec_dir = options
        .spec_dir
        .clone()
        .unwrap_or_else(|| super::paths::spec_dir_of(&spec.file));
    let task_paths: Vec<Vec<String>> = tasks
        .iter()
        .map(|t| {
            let mut out: Vec<String> = Vec::new();
            for p in &t.paths {
                let p = super::paths::under_spec_dir(p, &spec_dir);
                if !out.contains(&p) {
                    out.push(p);
                }
            }
            out
        })
        .collect();

    // The schedule: each task waits for the nearest open tasks along its edges. `topo`
    // lists dependencies first, so a done task's frontier is known before its dependants.
    let mut deps: Vec<Vec<(usize, Edge)>> = vec![Vec::new(); n];
    let mut stamp = vec![usize::MAX; n];
    for &i in &topo {
        let mut out: Vec<(usize, Edge)> = Vec::new();
        for &(d, e) in &structure[i] {
            if done(d) {
                for &(x, _) in &deps[d] {
                    if stamp[x] != i {
                        stamp[x] = i;
                        out.push((x, e));
                    }
                }
            } else if stamp[d] != i {
                stamp[d] = i;
                out.push((d, e));
            }
        }
        deps[i] = out;
    }

    // reach[i]: every task i waits for, transitively.
    let mut reach: Vec<Bits> = (0..n).map(|_| Bits::new(n)).collect();
    for &i in &topo {
        for &(d, _) in &deps[i] {
            let mut r = Bits(reach[d].0.clone());
            r.set(d);
            reach[i].union(&r);
        }
    }

    // Path locks: order overlapping tasks the graph leaves unordered. Nearest earlier task
    // first, so a run of tasks on one file becomes a chain rather than a clique.
    let locks: Vec<Vec<Lock>> = task_paths
        .iter()
        .map(|ps| ps.iter().map(|p| Lock::new(p)).collect())
        .collect();
    let mut conflicts = Vec::new();
    let mut shared: Vec<Vec<String>> = vec![Vec::new(); n];
    for j in 0..n {
        if done(j) {
            continue;
        }
        for i in (0..j).rev() {
            if done(i) {
                continue;
            }
            let mut common: Vec<String> = Vec::new();
            for a in &locks[i] {
                for b in &locks[j] {
                    if a.overlaps(b) {
                        for p in [a.as_str(), b.as_str()] {
                            if !common.iter().any(|c| c == p) {
                                common.push(p.to_string());
                            }
                        }
                    }
                }
            }
            if common.is_empty() {
                continue;
            }
            if tasks[i].phase == tasks[j].phase {
                for (x, y) in [(i, j), (j, i)] {
                    if tasks[x].parallel && !shared[x].contains(&tasks[y].id) {
                        shared[x].push(tasks[y].id.clone());
                    }
                }
            }
            if reach[j].has(i) || reach[i].has(j) {
                continue;
            }
            deps[j].push((i, Edge::Conflict));
            let mut r = Bits(reach[i].0.clone());
            r.set(i);
            for (x, rx) in reach.iter_mut().enumerate() {
                if x == j || rx.has(j) {
                    rx.union(&r);
                }
            }
            conflicts.push(Conflict {
                first: tasks[i].id.clone(),
                second: tasks[j].id.clone(),
                paths: common,
            });
        }
    }
    conflicts.sort_by_key(|c| {
        let line = |id: &str| tasks.iter().position(|t| t.id == id).unwrap_or(0);
        (line(&c.second), line(&c.first))
    });

    // Waves over tasks not yet done; done tasks satisfy their dependants.
    let mut wave = vec![0usize; n];
    for &i in &topo_with_conflicts(&deps, &topo, &reach) {
        if done(i) {
            continue;
        }
        wave[i] = 1 + deps[i]
            .iter()
            .filter(|&&(d, _)| !done(d))
            .map(|&(d, _)| wave[d])
            .max()
            .unwrap_or(0);
    }
    let depth = wave.iter().copied().max().unwrap_or(0);
    let mut waves = vec![Vec::new(); depth];
    for (i, &w) in wave.iter().enumerate() {
        if w > 0 {
            waves[w - 1].push(tasks[i].id.clone());
        }
    }
    // One longest chain, walked back from the first task of the last wave.
    let mut critical_path = Vec::new();
    let mut at = (0..n).find(|&i| depth > 0 && wave[i] == depth);
    while let Some(i) = at {
        critical_path.push(tasks[i].id.clone());
        at = deps[i]
            .iter()
            .map(|&(d, _)| d)
            .filter(|&d| wave[d] + 1 == wave[i])
            .min();
    }
    critical_path.reverse();

    let phase_of = |p: usize| spec.phases.iter().find(|ph| ph.index == p);
    let mut convoys: Vec<Convoy> = Vec::new();
    let mut planned = Vec::with_capacity(n);
    for (i, t) in tasks.iter().enumerate() {
        let phase = phase_of(t.phase);
        let name = match (&t.story, phase) {
            (Some(s), _) => s.clone(),
            (None, Some(p)) => p.slug.clone(),
            (None, None) => format!("phase-{}", t.phase),
        };
        match convoys.iter_mut().find(|c| c.name == name) {
            Some(c) => {
                c.tasks.push(t.id.clone());
                c.done += usize::from(done(i));
            }
            None => convoys.push(Convoy {
                name: name.clone(),
                story: t.story.clone(),
                phase: t.story.is_none().then_some(t.phase),
                tasks: vec![t.id.clone()],
                done: usize::from(done(i)),
            }),
        }
        // The direct edges as written, and the open tasks behind done ones.
        let mut d: Vec<usize> = deps[i]
            .iter()
            .chain(&structure[i])
            .map(|&(d, _)| d)
            .collect();
        d.sort_unstable();
        d.dedup();
        planned.push(super::PlannedTask {
            id: t.id.clone(),
            title: t.title.clone(),
            description: t.description.clone(),
            line: t.line,
            done: t.done,
            skipped: skipped[i].then(|| CHORE_REASON.to_string()),
            parallel: t.parallel,
            story: t.story.clone(),
            labels: t.labels.clone(),
            deps: d.into_iter().map(|d| tasks[d].id.clone()).collect(),
            paths: task_paths[i].clone(),
            phase: t.phase,
            phase_title: phase.map(|p| p.title.clone()).unwrap_or_default(),
            convoy: name,
            wave: (wave[i] > 0).then_some(wave[i]),
        });
    }

    let mut warnings: Vec<Warning> = spec
        .notes
        .iter()
        .map(|n| Warning {
            line: n.line,
            task: None,
            message: n.message.clone(),
        })
        .collect();
    for (i, t) in tasks.iter().enumerate() {
        if done(i) {
            continue;
        }
        if t.paths.is_empty() {
            warnings.push(Warning {
                line: t.line,
                task: Some(t.id.clone()),
                message: format!(
                    "{} names no file path, so no path lock keeps it apart",
                    t.id
                ),
            });
        }
        if !shared[i].is_empty() {
            shared[i].sort_by_key(|id| tasks.iter().position(|t| &t.id == id));
            warnings.push(Warning {
                line: t.line,
                task: Some(t.id.clone()),
                message: format!(
                    "{} is [P] but shares paths with {} in its phase; serialized",
                    t.id,
                    shared[i].join(", ")
                ),
            });
        }
    }
    warnings.sort_by_key(|w| w.line);

    Ok(Plan {
        file: spec.file.clone(),
        phases: spec.phases.clone(),
        tasks: planned,
        convoys,
        waves,
        conflicts,
        critical_path,
        warnings,
    })
}

/// A dependencies-first order that also respects the conflict edges added after `topo`:
/// sort by the number of transitive dependencies, which grows along every edge.
fn topo_with_conflicts(deps: &[Vec<(usize, Edge)>], topo: &[usize], reach: &[Bits]) -> Vec<usize> {
    let count = |i: usize| reach[i].0.iter().map(|w| w.count_ones()).sum::<u32>();
    let mut order: Vec<usize> = topo.to_vec();
    order.sort_by_key(|&i| count(i));
    debug_assert!(deps.len() == order.len());
    order
}
