//! `route:` rules and the choice they make for one task.
//!
//! The first rule whose `when` matches the task names the profiles that may
//! take it; no rule matching means the role's own agent. Among the named
//! profiles, those that can start an agent now (circuit breaker not open,
//! `budget.profile_usd` not spent, fewer than `capabilities.max_parallel`
//! running, and able to play the role and a language of the task, where
//! the profile says) are balanced by load: the fewest running, then the
//! cheaper `cost_tier`, then the rule's order. When none can, the rule's
//! `fallback` chain is tried in order; when that is spent too, the task
//! waits. A pure function of what it is given, like a stage.

use std::collections::BTreeMap;

use globset::{GlobBuilder, GlobMatcher};
use serde::{Deserialize, Serialize};

/// How expensive a profile is to run, for the router's tie-break.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum CostTier {
    Low,
    Medium,
    High,
}

/// What a profile can do, for the router and `git sprint agents`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Capabilities {
    /// Languages it is good at (`rust`, `python`, …); empty: any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) languages: Vec<String>,
    /// Roles it may play (`developer`, `tester`, …); empty: any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) roles: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cost_tier: Option<CostTier>,
    /// Agents of this profile running at once, across roles; none: no limit
    /// beyond the roles' counts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_parallel: Option<u32>,
}

impl Capabilities {
    pub(crate) fn is_empty(&self) -> bool {
        self == &Capabilities::default()
    }
}

/// One profile name or several.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub(crate) enum Names {
    One(String),
    Many(Vec<String>),
}

impl Default for Names {
    fn default() -> Self {
        Names::Many(Vec::new())
    }
}

impl Names {
    pub(crate) fn list(&self) -> Vec<&str> {
        match self {
            Names::One(n) => vec![n.as_str()],
            Names::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

/// When a rule applies; every non-empty part must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct When {
    /// Task labels; any one, case-insensitively.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) labels: Vec<String>,
    /// Globs over the task's paths; any one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) paths: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) role: Option<String>,
}

/// `route: - when: {…}  agent: name | [names]  fallback: [names]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteRule {
    #[serde(default)]
    pub(crate) when: When,
    /// The profile, or profiles balanced by load, that take matching tasks.
    pub(crate) agent: Names,
    /// Tried in order when none of `agent` can start one now.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) fallback: Vec<String>,
}

/// The task a choice is made for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TaskView<'a> {
    pub(crate) role: &'a str,
    pub(crate) labels: &'a [String],
    pub(crate) paths: &'a [String],
}

/// What the router knows of one profile right now.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Candidate {
    pub(crate) running: usize,
    pub(crate) capabilities: Capabilities,
    /// How many more may start now, whatever the load: `None` for no
    /// limit; `Some(0)` with `blocked` saying why.
    pub(crate) slots: Option<usize>,
    pub(crate) blocked: Option<String>,
}

/// The router's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Choice {
    pub(crate) profile: String,
    /// `route[2]`, or `roles.developer.agent` when no rule matched.
    pub(crate) rule: String,
    /// Profiles passed over and why (breaker open, budget spent, full).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) passed: Vec<String>,
}

impl Choice {
    /// One line for a history note or a table.
    pub(crate) fn describe(&self) -> String {
        let mut s = format!("{} by {}", self.profile, self.rule);
        if !self.passed.is_empty() {
            s.push_str(&format!(" (passed over: {})", self.passed.join("; ")));
        }
        s
    }
}

/// Whether rule `when` matches the task.
pub(crate) fn matches(when: &When, task: &TaskView<'_>) -> bool {
    let role = when.role.as_deref().is_none_or(|r| r == task.role);
    let labels = when.labels.is_empty()
        || when
            .labels
            .iter()
            .any(|l| task.labels.iter().any(|t| t.eq_ignore_ascii_case(l)));
    let paths = when.paths.is_empty()
        || when.paths.iter().filter_map(|g| glob(g)).any(|g| {
            task.paths
                .iter()
                .any(|p| g.is_match(p.trim_end_matches('/')))
        });
    role && labels && paths
}

/// A rule's glob; config validation has refused any that does not build.
pub(crate) fn glob(pattern: &str) -> Option<GlobMatcher> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .ok()
        .map(|g| g.compile_matcher())
}

/// The profile for `task`, or `Err` with why every one it may use is
/// unavailable. `default` is the role's own agent; `candidates` has an entry
/// for every profile named anywhere (a missing one counts as idle).
pub(crate) fn choose(
    rules: &[RouteRule],
    default: &str,
    task: &TaskView<'_>,
    candidates: &BTreeMap<String, Candidate>,
) -> Result<Choice, String> {
    let idle = Candidate::default();
    let get = |p: &str| candidates.get(p).unwrap_or(&idle);
    let mut passed = Vec::new();
    let why_not = |p: &str, passed: &mut Vec<String>| -> bool {
        let c = get(p);
        let reason = if let Some(b) = &c.blocked {
            Some(b.clone())
        } else if c.slots == Some(0) {
            Some("no free slot".into())
        } else if !c.capabilities.roles.is_empty()
            && !c.capabilities.roles.iter().any(|r| r == task.role)
        {
            Some(format!("does not play {}", task.role))
        } else {
            None
        };
        match reason {
            Some(r) => {
                passed.push(format!("{p}: {r}"));
                false
            }
            None => true,
        }
    };
    let Some((i, rule)) = rules
        .iter()
        .enumerate()
        .find(|(_, r)| matches(&r.when, task))
    else {
        return if why_not(default, &mut passed) {
            Ok(Choice {
                profile: default.to_owned(),
                rule: format!("roles.{}.agent", task.role),
                passed,
            })
        } else {
            Err(passed.join("; "))
        };
    };
    let langs = crate::router::languages(task.paths);
    let speaks = |p: &str| {
        let l = &get(p).capabilities.languages;
        langs.is_empty()
            || l.is_empty()
            || langs
                .iter()
                .any(|x| l.iter().any(|y| y.eq_ignore_ascii_case(x)))
    };
    let named = rule.agent.list();
    let able: Vec<&str> = named
        .iter()
        .copied()
        .filter(|p| why_not(p, &mut passed))
        .collect();
    // Prefer those that know the task's language; any able one otherwise.
    let fluent: Vec<&str> = able.iter().copied().filter(|p| speaks(p)).collect();
    let pool = if fluent.is_empty() { &able } else { &fluent };
    let best = pool.iter().enumerate().min_by_key(|(order, p)| {
        let c = get(p);
        (
            c.running,
            c.capabilities.cost_tier.unwrap_or(CostTier::Medium),
            *order,
        )
    });
    if let Some((_, p)) = best {
        return Ok(Choice {
            profile: (*p).to_owned(),
            rule: format!("route[{i}]"),
            passed,
        });
    }
    for p in &rule.fallback {
        if why_not(p, &mut passed) {
            return Ok(Choice {
                profile: p.clone(),
                rule: format!("route[{i}] fallback"),
                passed,
            });
        }
    }
    Err(passed.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(yaml: &str) -> Vec<RouteRule> {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn view<'a>(labels: &'a [String], paths: &'a [String]) -> TaskView<'a> {
        TaskView {
            role: "developer",
            labels,
            paths,
        }
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| (*x).to_owned()).collect()
    }

    const RULES: &str = "
- when: { labels: ['risk: high'] }
  agent: careful
- when: { paths: ['web/**'] }
  agent: [a, b]
  fallback: [c]
";

    #[test]
    fn a_label_rule_and_a_path_rule_pick_their_profiles_and_nothing_matching_takes_the_roles_agent()
    {
        let r = rules(RULES);
        let none = BTreeMap::new();
        let high = s(&["Risk: High"]);
        let c = choose(&r, "dev", &view(&high, &s(&["web/x.ts"])), &none).unwrap();
        assert_eq!(
            (c.profile.as_str(), c.rule.as_str()),
            ("careful", "route[0]")
        );
        let c = choose(&r, "dev", &view(&[], &s(&["web/app/x.ts"])), &none).unwrap();
        assert_eq!((c.profile.as_str(), c.rule.as_str()), ("a", "route[1]"));
        let c = choose(&r, "dev", &view(&[], &s(&["src/x.rs"])), &none).unwrap();
        assert_eq!(
            (c.profile.as_str(), c.rule.as_str()),
            ("dev", "roles.developer.agent")
        );
    }

    #[test]
    fn load_balances_by_running_count_then_cost_tier() {
        let r = rules(RULES);
        let web = s(&["web/x.ts"]);
        let mut cands = BTreeMap::new();
        cands.insert(
            "a".to_owned(),
            Candidate {
                running: 2,
                ..Default::default()
            },
        );
        cands.insert(
            "b".to_owned(),
            Candidate {
                running: 1,
                ..Default::default()
            },
        );
        assert_eq!(
            choose(&r, "dev", &view(&[], &web), &cands).unwrap().profile,
            "b"
        );
        cands.get_mut("a").unwrap().running = 1;
        cands.get_mut("a").unwrap().capabilities.cost_tier = Some(CostTier::High);
        cands.get_mut("b").unwrap().capabilities.cost_tier = Some(CostTier::Low);
        assert_eq!(
            choose(&r, "dev", &view(&[], &web), &cands).unwrap().profile,
            "b"
        );
    }

    #[test]
    fn an_open_breaker_or_full_profile_is_passed_over_then_the_fallback_then_the_task_waits() {
        let r = rules(RULES);
        let web = s(&["web/x.ts"]);
        let mut cands = BTreeMap::new();
        cands.insert(
            "a".to_owned(),
            Candidate {
                blocked: Some("breaker open".into()),
                slots: Some(0),
                ..Default::default()
            },
        );
        cands.insert(
            "b".to_owned(),
            Candidate {
                running: 5,
                ..Default::default()
            },
        );
        let c = choose(&r, "dev", &view(&[], &web), &cands).unwrap();
        assert_eq!(c.profile, "b");
        assert_eq!(c.passed, ["a: breaker open"]);
        cands.get_mut("b").unwrap().slots = Some(0);
        let c = choose(&r, "dev", &view(&[], &web), &cands).unwrap();
        assert_eq!(
            (c.profile.as_str(), c.rule.as_str()),
            ("c", "route[1] fallback")
        );
        assert!(
            c.describe()
                .contains("passed over: a: breaker open; b: no free slot"),
            "{}",
            c.describe()
        );
        cands.insert(
            "c".to_owned(),
            Candidate {
                blocked: Some("budget spent".into()),
                slots: Some(0),
                ..Default::default()
            },
        );
        let err = choose(&r, "dev", &view(&[], &web), &cands).unwrap_err();
        assert_eq!(err, "a: breaker open; b: no free slot; c: budget spent");
    }

    #[test]
    fn a_profile_that_knows_the_tasks_language_is_preferred_and_roles_are_kept() {
        let r = rules("- when: {}\n  agent: [py, rs]\n");
        let mut cands = BTreeMap::new();
        let mut py = Candidate::default();
        py.capabilities.languages = s(&["python"]);
        let mut rs = Candidate {
            running: 3,
            ..Default::default()
        };
        rs.capabilities.languages = s(&["rust"]);
        cands.insert("py".to_owned(), py);
        cands.insert("rs".to_owned(), rs);
        assert_eq!(
            choose(&r, "d", &view(&[], &s(&["src/a.rs"])), &cands)
                .unwrap()
                .profile,
            "rs"
        );
        cands.get_mut("rs").unwrap().capabilities.roles = s(&["tester"]);
        let c = choose(&r, "d", &view(&[], &s(&["src/a.rs"])), &cands).unwrap();
        assert_eq!(c.profile, "py");
        assert_eq!(c.passed, ["rs: does not play developer"]);
    }
}
