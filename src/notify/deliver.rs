//! Delivering one event to one receiver: a command (argv, no shell, the
//! event JSON on stdin, killed at the timeout) or a webhook (HTTP POST of the
//! JSON, bounded by the timeout), retried with a growing, jittered pause.
//!
//! Every way it can go wrong ends in an [`Outcome`], never a panic or a wait
//! without end: a delivery runs on a receiver's own thread, so the worst a
//! receiver can do is delay its own later events.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::events::Event;
use super::receiver::{Receiver, Value};

/// How a delivery ended, as the ledger records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Outcome {
    pub(crate) ok: bool,
    /// Attempts made, retries included.
    pub(crate) attempts: u32,
    /// The last HTTP status, for a webhook that answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) status: Option<u16>,
    /// The last exit code, for a command that exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) exit: Option<i32>,
    /// What went wrong with the last attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
    /// Milliseconds from the first attempt to the end.
    pub(crate) took_ms: u64,
}

/// One attempt's result: whether to try again, and what to record.
struct Attempt {
    ok: bool,
    retry: bool,
    status: Option<u16>,
    exit: Option<i32>,
    error: Option<String>,
}

/// The first pause between attempts; it doubles, with ±25 % jitter.
const FIRST_PAUSE: Duration = Duration::from_secs(1);
const MAX_PAUSE: Duration = Duration::from_secs(60);

/// Sends `event` to `receiver`, retrying as it says. `env` reads the
/// variables secrets come from; commands run with `vars` as their whole
/// environment (the one of the last `git sprint start`).
pub(crate) fn deliver(
    receiver: &Receiver,
    event: &Event,
    env: &dyn Fn(&str) -> Option<String>,
    vars: &[(String, String)],
) -> Outcome {
    let started = Instant::now();
    let body = serde_json::to_vec(event).unwrap_or_default();
    let timeout = receiver.timeout.0;
    let mut attempts = 0;
    let mut pause = FIRST_PAUSE;
    loop {
        attempts += 1;
        let a = match (&receiver.command, &receiver.webhook) {
            (Some(argv), _) => run_command(argv, event, &body, timeout, vars),
            (None, Some(url)) => post(url, &receiver.headers, &body, timeout, env),
            (None, None) => Attempt {
                ok: false,
                retry: false,
                status: None,
                exit: None,
                error: Some("the receiver has neither a command nor a webhook".into()),
            },
        };
        if a.ok || !a.retry || attempts > receiver.retries {
            return Outcome {
                ok: a.ok,
                attempts,
                status: a.status,
                exit: a.exit,
                error: a.error,
                took_ms: started.elapsed().as_millis() as u64,
            };
        }
        std::thread::sleep(jitter(pause, &event.key, attempts));
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

fn jitter(pause: Duration, seed: &str, n: u32) -> Duration {
    use std::hash::BuildHasher;
    let noise = std::collections::hash_map::RandomState::new().hash_one((seed, n));
    let ms = pause.as_millis() as u64;
    let spread = ms / 4;
    Duration::from_millis(ms - spread + noise % (2 * spread + 1))
}

/// Replaces `{event}`, `{subject}` and `{message}` in one argument: the
/// values are data in an argv, never parsed by a shell.
fn fill(arg: &str, event: &Event) -> String {
    arg.replace("{event}", event.event.as_str())
        .replace("{subject}", &event.subject)
        .replace("{message}", &event.message)
}

fn run_command(
    argv: &[String],
    event: &Event,
    body: &[u8],
    timeout: Duration,
    vars: &[(String, String)],
) -> Attempt {
    let failed = |error: String, retry: bool, exit: Option<i32>| Attempt {
        ok: false,
        retry,
        status: None,
        exit,
        error: Some(error),
    };
    let args: Vec<String> = argv.iter().map(|a| fill(a, event)).collect();
    let Some((program, rest)) = args.split_first() else {
        return failed("no program to run".into(), false, None);
    };
    let mut cmd = Command::new(program);
    cmd.args(rest)
        .env_clear()
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .env("SPRINT_EVENT", event.event.as_str())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        // Its own group, so the timeout kills what it started too.
        .process_group(0);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return failed(
                format!("could not start `{program}`: {e}"),
                e.kind() != std::io::ErrorKind::NotFound,
                None,
            )
        }
    };
    let pgid = child.id() as i32;
    // Stdin and stderr on threads of their own: a receiver that reads
    // nothing or prints a lot never stalls this one.
    if let Some(mut stdin) = child.stdin.take() {
        let body = body.to_vec();
        std::thread::spawn(move || {
            let _ = stdin.write_all(&body);
        });
    }
    let (err_tx, err_rx) = mpsc::channel();
    if let Some(mut stderr) = child.stderr.take() {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = (&mut stderr).take(4096).read_to_end(&mut buf);
            let _ = err_tx.send(buf);
        });
    }
    let (exit_tx, exit_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = exit_tx.send(child.wait());
    });
    let status = match exit_rx.recv_timeout(timeout) {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return failed(format!("waiting for `{program}`: {e}"), true, None),
        Err(_) => {
            kill_group(pgid);
            let _ = exit_rx.recv_timeout(Duration::from_secs(5));
            return failed(
                format!(
                    "`{program}` did not finish within {}; killed",
                    crate::clock::human_duration(timeout)
                ),
                true,
                None,
            );
        }
    };
    // What it left behind in its group goes with it.
    kill_group(pgid);
    if status.success() {
        return Attempt {
            ok: true,
            retry: false,
            status: None,
            exit: Some(0),
            error: None,
        };
    }
    let stderr = err_rx
        .recv_timeout(Duration::from_millis(200))
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let mut error = format!("`{program}` {status}");
    if !stderr.is_empty() {
        error.push_str(": ");
        error.push_str(stderr.lines().last().unwrap_or_default());
    }
    failed(error, true, status.code())
}

fn kill_group(pgid: i32) {
    if pgid > 1 {
        // SAFETY: kill(2) has no memory-safety preconditions; ESRCH (the
        // group is gone) is fine.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

fn post(
    url: &Value,
    headers: &std::collections::BTreeMap<String, Value>,
    body: &[u8],
    timeout: Duration,
    env: &dyn Fn(&str) -> Option<String>,
) -> Attempt {
    let failed = |error: String, retry: bool, status: Option<u16>| Attempt {
        ok: false,
        retry,
        status,
        exit: None,
        error: Some(error),
    };
    let url = match url.resolve(env) {
        Ok(u) => u,
        Err(e) => return failed(e, false, None),
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        // A redirect would resend the body elsewhere: a webhook answers.
        .max_redirects(0)
        .user_agent(concat!("git-sprint/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let mut request = agent.post(&url).header("Content-Type", "application/json");
    for (name, value) in headers {
        match value.resolve(env) {
            Ok(v) => request = request.header(name, &v),
            Err(e) => return failed(format!("header {name}: {e}"), false, None),
        }
    }
    match request.send(body) {
        Ok(response) => {
            let status = response.status().as_u16();
            if (200..300).contains(&status) {
                return Attempt {
                    ok: true,
                    retry: false,
                    status: Some(status),
                    exit: None,
                    error: None,
                };
            }
            // Only what may pass by itself is worth another try.
            let retry = status >= 500 || status == 408 || status == 429;
            failed(
                format!(
                    "answered HTTP {status}{}",
                    response
                        .status()
                        .canonical_reason()
                        .map(|r| format!(" {r}"))
                        .unwrap_or_default()
                ),
                retry,
                Some(status),
            )
        }
        Err(ureq::Error::Timeout(_)) => failed(
            format!("no answer within {}", crate::clock::human_duration(timeout)),
            true,
            None,
        ),
        // The address itself is wrong: trying again will not help.
        Err(e @ (ureq::Error::BadUri(_) | ureq::Error::Http(_))) => {
            failed(format!("{e}"), false, None)
        }
        Err(e) => failed(format!("{e}"), true, None),
    }
}
