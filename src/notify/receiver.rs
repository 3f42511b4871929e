//! `notify:` in the configuration: who is told of which sprint events, and
//! how — a command (argv, no shell, the event as JSON on stdin) or a webhook
//! (an HTTP POST of the event as JSON).
//!
//! The configuration is committed, so it must never hold a secret: header
//! values and webhook addresses that carry one name an environment variable
//! (`{ secret_env: NAME }`) read where the orchestrator runs, and a literal
//! that looks like a credential is refused when the configuration loads.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::HumanDuration;

/// The events a receiver may be told of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) enum EventKind {
    /// A task ran out of attempts.
    #[serde(rename = "task.failed")]
    TaskFailed,
    /// A task can never run (what it depends on failed or was cancelled).
    #[serde(rename = "task.blocked")]
    TaskBlocked,
    /// A task waits for a person's `git sprint approve` or `reject`.
    #[serde(rename = "approval.needed")]
    ApprovalNeeded,
    /// Every task of a feature is merged.
    #[serde(rename = "feature.done")]
    FeatureDone,
    /// Nothing of a feature can move until a person deals with a failed or
    /// blocked task.
    #[serde(rename = "feature.stalled")]
    FeatureStalled,
    /// An agent printed nothing and committed nothing for `timeouts.hung`.
    #[serde(rename = "agent.hung")]
    AgentHung,
    /// An agent profile's circuit breaker opened (API failures in a row).
    #[serde(rename = "breaker.open")]
    BreakerOpen,
    /// A spending limit was reached.
    #[serde(rename = "budget.reached")]
    BudgetReached,
}

impl EventKind {
    pub(crate) const ALL: [EventKind; 8] = [
        EventKind::TaskFailed,
        EventKind::TaskBlocked,
        EventKind::ApprovalNeeded,
        EventKind::FeatureDone,
        EventKind::FeatureStalled,
        EventKind::AgentHung,
        EventKind::BreakerOpen,
        EventKind::BudgetReached,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            EventKind::TaskFailed => "task.failed",
            EventKind::TaskBlocked => "task.blocked",
            EventKind::ApprovalNeeded => "approval.needed",
            EventKind::FeatureDone => "feature.done",
            EventKind::FeatureStalled => "feature.stalled",
            EventKind::AgentHung => "agent.hung",
            EventKind::BreakerOpen => "breaker.open",
            EventKind::BudgetReached => "budget.reached",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        EventKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
                format!("unknown event `{s}`; the events are {}", names.join(", "))
            })
    }
}

/// A value written in the file, or the name of an environment variable that
/// holds it (for secrets, which never go in a committed file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub(crate) enum Value {
    Literal(String),
    Env {
        /// The environment variable (of the shell that ran `git sprint
        /// start`) holding the value.
        secret_env: String,
    },
}

impl Value {
    /// The value, reading the environment through `env` for a secret.
    pub(crate) fn resolve(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
        match self {
            Value::Literal(s) => Ok(s.clone()),
            Value::Env { secret_env } => env(secret_env).filter(|v| !v.is_empty()).ok_or_else(|| {
                format!(
                    "the environment variable {secret_env} is not set: export it in the shell, then run 'git sprint start' again (the orchestrator reads the environment of the last start)"
                )
            }),
        }
    }
}

/// One receiver of notifications, `notify.<name>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Receiver {
    /// The events it is told of; empty or left out: all of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) on: Vec<EventKind>,
    /// A program and its arguments (no shell), given the event as JSON on
    /// stdin; `{event}`, `{subject}` and `{message}` in an argument are
    /// replaced by the event's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) command: Option<Vec<String>>,
    /// An http:// or https:// address the event is POSTed to as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) webhook: Option<Value>,
    /// Extra request headers for the webhook.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) headers: BTreeMap<String, Value>,
    /// The longest one delivery attempt may take.
    #[serde(default = "default_timeout")]
    pub(crate) timeout: HumanDuration,
    /// Attempts after the first when one fails (a 5xx, a timeout, a refused
    /// connection, a command's non-zero exit), with a growing pause.
    #[serde(default = "default_retries")]
    pub(crate) retries: u32,
}

fn default_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(10))
}

fn default_retries() -> u32 {
    3
}

/// The most retries a receiver may ask for: with the pause doubling, more
/// would keep one event in the queue for hours.
pub(crate) const MAX_RETRIES: u32 = 10;

impl Receiver {
    /// Whether it wants `kind`.
    pub(crate) fn wants(&self, kind: EventKind) -> bool {
        self.on.is_empty() || self.on.contains(&kind)
    }

    /// Checks what serde cannot: one way of delivery, a usable address, and
    /// no secret written into the committed file. The error is the key under
    /// `notify.<name>` and what is wrong.
    pub(crate) fn check(&self, name: &str) -> Result<(), (String, String)> {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err((
                String::new(),
                format!("receiver name `{name}` may hold only letters, digits, `-` and `_`"),
            ));
        }
        match (&self.command, &self.webhook) {
            (Some(_), Some(_)) => {
                return Err((
                    String::new(),
                    "give either `command` or `webhook`, not both: make two receivers to have both"
                        .into(),
                ))
            }
            (None, None) => {
                return Err((
                    String::new(),
                    "give `command: [program, args...]` or `webhook: https://...`".into(),
                ))
            }
            (Some(argv), None) => {
                if argv.first().is_none_or(|p| p.trim().is_empty()) {
                    return Err((
                        "command".into(),
                        "must name a program: `command: [notify-send, \"{message}\"]`".into(),
                    ));
                }
                if !self.headers.is_empty() {
                    return Err((
                        "headers".into(),
                        "headers are for a webhook; a command gets the event on stdin".into(),
                    ));
                }
            }
            (None, Some(url)) => {
                if let Value::Literal(url) = url {
                    check_url(url).map_err(|m| ("webhook".to_owned(), m))?;
                }
            }
        }
        for (header, value) in &self.headers {
            let key = format!("headers.{header}");
            if header.is_empty()
                || !header
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
            {
                return Err((key, "not a valid HTTP header name".into()));
            }
            if let Value::Literal(v) = value {
                if sensitive_header(header) || looks_secret(v) {
                    return Err((key, literal_secret(header)));
                }
                if v.contains(['\r', '\n']) {
                    return Err((key, "a header value must be one line".into()));
                }
            }
        }
        if self.retries > MAX_RETRIES {
            return Err(("retries".into(), format!("must be at most {MAX_RETRIES}")));
        }
        Ok(())
    }
}

fn literal_secret(what: &str) -> String {
    let var = what.to_ascii_uppercase().replace(['-', '.'], "_");
    format!(
        "holds what looks like a secret, and this file is committed: write `{{ secret_env: {var} }}` \
         and export {var} in the shell that runs 'git sprint start'"
    )
}

/// Header names whose values are credentials whatever they look like.
fn sensitive_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "authorization",
        "cookie",
        "token",
        "secret",
        "key",
        "signature",
        "password",
        "auth",
    ]
    .iter()
    .any(|w| n.contains(w))
}

/// Whether `s` looks like a credential: a known token prefix, an auth
/// scheme, or a long run of mixed letters and digits.
pub(crate) fn looks_secret(s: &str) -> bool {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    if lower.starts_with("bearer ") || lower.starts_with("basic ") || lower.starts_with("token ") {
        return true;
    }
    const PREFIXES: [&str; 9] = [
        "xoxb-",
        "xoxp-",
        "xoxa-",
        "ghp_",
        "gho_",
        "github_pat_",
        "sk-",
        "glpat-",
        "AKIA",
    ];
    if PREFIXES
        .iter()
        .any(|p| t.starts_with(p) && t.len() > p.len() + 8)
    {
        return true;
    }
    t.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .any(|word| {
            word.len() >= 20
                && word.chars().any(|c| c.is_ascii_digit())
                && word.chars().any(|c| c.is_ascii_alphabetic())
        })
}

/// A webhook address written in the file: http(s), no credentials in it.
fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("`{url}` must start with http:// or https://"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() {
        return Err(format!("`{url}` names no host"));
    }
    if authority.contains('@') {
        return Err(format!(
            "`{url}` has a user name or password in it; {}",
            literal_secret("webhook_url")
        ));
    }
    let secret_query = rest.split_once('?').is_some_and(|(_, q)| {
        q.split('&').any(|pair| {
            let k = pair.split('=').next().unwrap_or_default();
            sensitive_header(k)
        })
    });
    if secret_query || looks_secret(rest) {
        return Err(format!("`{url}` {}", literal_secret("webhook_url")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receiver(yaml: &str) -> Receiver {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn a_command_or_a_webhook_each_checks() {
        assert!(receiver("command: [notify-send, '{message}']")
            .check("desktop")
            .is_ok());
        assert!(
            receiver("webhook: http://127.0.0.1:8080/hook\nheaders: { X-Team: ops }")
                .check("chat")
                .is_ok()
        );
        let both = receiver("command: [true]\nwebhook: http://h/");
        assert!(both.check("x").unwrap_err().1.contains("not both"));
        let neither = receiver("on: [task.failed]");
        assert!(neither.check("x").unwrap_err().1.contains("command"));
        assert!(receiver("command: [true]").check("a b").is_err());
    }

    #[test]
    fn a_committed_literal_secret_is_refused_with_the_way_to_pass_it() {
        let r =
            receiver("webhook: https://example.com/hook\nheaders: { Authorization: Bearer abc }");
        let (key, msg) = r.check("chat").unwrap_err();
        assert_eq!(key, "headers.Authorization");
        assert!(msg.contains("secret_env: AUTHORIZATION"), "{msg}");
        let token = receiver(
            "webhook: https://example.com/hook\nheaders: { X-Thing: ghp_abcdefghijklmnopqrstuvwxyz012345 }",
        );
        assert!(token.check("chat").is_err());
        let slack = receiver(
            "webhook: https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX1",
        );
        assert_eq!(slack.check("chat").unwrap_err().0, "webhook");
        let userinfo = receiver("webhook: https://me:pw@example.com/hook");
        assert!(userinfo.check("chat").unwrap_err().1.contains("password"));
        let query = receiver("webhook: https://example.com/hook?token=abc");
        assert!(query.check("chat").is_err());
        // From the environment, the same are fine.
        let ok = receiver(
            "webhook: { secret_env: SLACK_URL }\nheaders: { Authorization: { secret_env: TOKEN } }",
        );
        assert!(ok.check("chat").is_ok());
    }

    #[test]
    fn a_secret_from_an_unset_variable_says_which_to_export() {
        let v = Value::Env {
            secret_env: "CHAT_TOKEN".into(),
        };
        let err = v.resolve(&|_| None).unwrap_err();
        assert!(
            err.contains("CHAT_TOKEN") && err.contains("export"),
            "{err}"
        );
        assert_eq!(v.resolve(&|_| Some("s3".into())).unwrap(), "s3");
    }

    #[test]
    fn events_parse_by_their_dotted_names_and_an_unknown_one_lists_them() {
        for k in EventKind::ALL {
            assert_eq!(k.as_str().parse::<EventKind>().unwrap(), k);
        }
        let err = "task.done".parse::<EventKind>().unwrap_err();
        assert!(err.contains("task.failed") && err.contains("budget.reached"));
        assert!(serde_yaml::from_str::<Receiver>("on: [task.done]\ncommand: [x]").is_err());
    }
}
