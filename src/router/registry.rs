//! The agent registry: every profile the configuration knows, with its
//! labels and capabilities, and what its runs add up to (running now, runs,
//! successes, spend) from the live agent records and the tallies of
//! archived ones ([`crate::state::ProfileTally`]).

use std::collections::BTreeMap;

use serde::Serialize;

use super::rules::{Capabilities, RouteRule};
use crate::config::Config;
use crate::state::{liveness, ProfileTally, Snapshot};

/// What the router needs from the configuration.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Routing {
    pub(crate) rules: Vec<RouteRule>,
    /// Per configured profile; a preset used by name has none.
    pub(crate) capabilities: BTreeMap<String, Capabilities>,
    /// `budget.profile_usd`.
    pub(crate) profile_usd: BTreeMap<String, f64>,
}

impl Routing {
    pub(crate) fn from_config(config: &Config) -> Routing {
        Routing {
            rules: config.route.clone(),
            capabilities: config
                .agents
                .iter()
                .map(|(n, e)| (n.clone(), e.capabilities.clone()))
                .collect(),
            profile_usd: config.budget.profile_usd.clone(),
        }
    }

    /// Every profile a rule or `roles` names, and every configured one.
    pub(crate) fn names<'a>(&'a self, roles: &'a [&'a str]) -> Vec<&'a str> {
        let mut out: Vec<&str> = self.capabilities.keys().map(String::as_str).collect();
        out.extend(roles.iter().copied());
        for r in &self.rules {
            out.extend(r.agent.list());
            out.extend(r.fallback.iter().map(String::as_str));
        }
        out.sort();
        out.dedup();
        out
    }
}

/// One profile's runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct ProfileStats {
    pub(crate) running: usize,
    /// Finished runs, archived or not.
    pub(crate) runs: u32,
    pub(crate) succeeded: u32,
    pub(crate) cost_usd: f64,
}

impl ProfileStats {
    /// Successes over finished runs; `None` before the first.
    pub(crate) fn success_rate(&self) -> Option<f64> {
        (self.runs > 0).then(|| f64::from(self.succeeded) / f64::from(self.runs))
    }
}

/// Every profile's runs, by name.
pub(crate) fn stats(snapshot: &Snapshot) -> BTreeMap<String, ProfileStats> {
    let mut out: BTreeMap<String, ProfileStats> = BTreeMap::new();
    if let Some(meta) = &snapshot.meta {
        for (name, t) in &meta.profiles {
            let s = out.entry(name.clone()).or_default();
            s.runs += t.runs;
            s.succeeded += t.succeeded;
            s.cost_usd += t.cost_usd;
        }
    }
    for a in &snapshot.agents {
        let s = out.entry(a.profile.clone()).or_default();
        if liveness::is_running(a) {
            s.running += 1;
            s.cost_usd += a.usage.as_ref().and_then(|u| u.cost_usd).unwrap_or(0.0);
        } else if a.ended.is_some() {
            let mut t = ProfileTally::default();
            t.add(a);
            s.runs += t.runs;
            s.succeeded += t.succeeded;
            s.cost_usd += t.cost_usd;
        }
    }
    out
}

/// One line of `git sprint agents`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ProfileView {
    pub(crate) name: String,
    /// The program it runs (`claude`, `sh`), for people.
    pub(crate) program: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) labels: Vec<String>,
    pub(crate) capabilities: Capabilities,
    /// Roles the configuration gives it (`roles.<role>.agent`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) plays: Vec<String>,
    #[serde(flatten)]
    pub(crate) stats: ProfileStats,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) success_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) budget_usd: Option<f64>,
    /// `closed`, or `open` with the failure that opened it.
    pub(crate) breaker: String,
    /// The profile does not resolve (a typo in a rule is refused when the
    /// configuration loads, so this is a preset's or an entry's own error).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
}

/// Every profile the configuration knows or a record names, with its runs.
pub(crate) fn registry(config: &Config, snapshot: &Snapshot) -> Vec<ProfileView> {
    let routing = Routing::from_config(config);
    let roles = [
        ("developer", &config.roles.developer.agent),
        ("tester", &config.roles.tester.agent),
        ("librarian", &config.roles.librarian.agent),
    ];
    let role_agents: Vec<&str> = roles.iter().map(|(_, a)| a.as_str()).collect();
    let stats = stats(snapshot);
    let mut names: Vec<String> = routing
        .names(&role_agents)
        .into_iter()
        .map(str::to_owned)
        .collect();
    // Fleet agents may run a profile nothing in the config names.
    names.extend(stats.keys().filter(|k| !k.is_empty()).cloned());
    names.sort();
    names.dedup();
    let threshold = config.policy.breaker_threshold.max(1);
    names
        .into_iter()
        .map(|name| {
            let entry = config.agents.get(&name);
            let (program, error) = match config.agent(&name) {
                Ok(p) => (p.command.first().cloned().unwrap_or_default(), None),
                Err(e) => (String::new(), Some(e)),
            };
            let breaker = match snapshot.meta.as_ref().and_then(|m| m.breakers.get(&name)) {
                Some(b) if b.failures >= threshold => match b.cause {
                    Some(c) => format!("open ({c})"),
                    None => "open".to_owned(),
                },
                _ => "closed".to_owned(),
            };
            let s = stats.get(&name).cloned().unwrap_or_default();
            ProfileView {
                program,
                labels: entry.map(|e| e.labels.clone()).unwrap_or_default(),
                capabilities: entry.map(|e| e.capabilities.clone()).unwrap_or_default(),
                plays: roles
                    .iter()
                    .filter(|(_, a)| **a == name)
                    .map(|(r, _)| (*r).to_owned())
                    .collect(),
                success_rate: s.success_rate(),
                stats: s,
                budget_usd: routing.profile_usd.get(&name).copied(),
                breaker,
                error,
                name,
            }
        })
        .collect()
}
