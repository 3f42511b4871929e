//! The routes: `/api/v1/…` reads and actions, `/api/v1/events`, and the page.
//!
//! A read calls the same domain function as the matching read command
//! ([`crate::view`]) and serialises the same typed view its `--json`
//! prints, so the API and the command line cannot drift apart; an action
//! calls the same function as the command ([`crate::control`]) and answers
//! with the words the command prints. The work is blocking (git, tmux), so
//! each request runs on tokio's blocking pool.

use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use super::auth::refuse;
use super::{page, Shared};
use crate::commands::{self, CommandError, Ctx};
use crate::fleet::Fleet;
use crate::hint::Hint;
use crate::state::{Actor, Refusal, StateError};
use crate::{control, view};

type Shared_ = State<Arc<Shared>>;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(page::index))
        .route("/app.js", get(page::script))
        .route("/style.css", get(page::style))
        .route("/api/v1/status", get(status))
        .route("/api/v1/features/{feature}", get(feature))
        .route("/api/v1/tasks/{feature}/{id}", get(task))
        .route("/api/v1/tasks/{feature}/{id}/diffstat", get(diffstat))
        .route("/api/v1/tasks/{feature}/{id}/retry", post(retry))
        .route("/api/v1/tasks/{feature}/{id}/cancel", post(cancel))
        .route("/api/v1/agents", get(agents))
        .route("/api/v1/agents/{id}/log", get(agent_log))
        .route("/api/v1/machines", get(machines))
        .route("/api/v1/log", get(log))
        .route("/api/v1/health", get(health))
        .route("/api/v1/events", get(events))
        .route("/api/v1/pause", post(pause))
        .route("/api/v1/resume", post(resume))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&shared),
            super::auth::guard,
        ))
        .with_state(shared)
}

async fn not_found() -> Response {
    refuse(
        StatusCode::NOT_FOUND,
        "no such page or endpoint",
        "the API is under /api/v1/ (status, features/F, tasks/F/ID, agents, log, health, events)",
    )
}

/// Runs `run` with its output captured, off the async threads.
async fn capture<F>(shared: &Arc<Shared>, run: F) -> Result<Vec<u8>, Response>
where
    F: FnOnce(&mut Ctx<'_>) -> commands::Result + Send + 'static,
{
    let cwd = shared.cwd.clone();
    let done = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        let result = run(&mut Ctx { cwd, out: &mut out });
        (result, out)
    })
    .await;
    match done {
        Ok((Ok(()), out)) => Ok(out),
        Ok((Err(e), _)) => Err(failure(&e)),
        Err(e) => Err(refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("the request's worker failed: {e}"),
            "see the serve command's output; retry the request",
        )),
    }
}

/// A command's error as an HTTP answer: an unknown name is 404, a refused
/// change 409, another mistake 400, anything else 500.
fn failure(e: &CommandError) -> Response {
    let status = match e {
        CommandError::State(StateError::Refused(
            Refusal::UnknownTask { .. }
            | Refusal::UnknownFeature { .. }
            | Refusal::UnknownAgent { .. },
        )) => StatusCode::NOT_FOUND,
        CommandError::State(StateError::Refused(Refusal::AmbiguousTask { .. })) => {
            StatusCode::BAD_REQUEST
        }
        CommandError::State(StateError::Refused(_)) => StatusCode::CONFLICT,
        e if e.exit_code() == 2 => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    refuse(status, &message, &e.hint().unwrap_or_default())
}

fn json(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn reply(result: Result<Vec<u8>, Response>) -> Response {
    match result {
        Ok(body) => json(body),
        Err(r) => r,
    }
}

/// `git sprint status --json`.
async fn status(State(shared): Shared_) -> Response {
    reply(status_body(&shared).await)
}

/// How long a status answer is reused for the same state commit. A page
/// asks again on every event, and 1,000 tasks take far longer to gather
/// than to send; what status reads beside the state (agents' liveness,
/// uncommitted drafts) may lag by this much.
const STATUS_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// A `status --json` answer and the state commit it was made at.
pub(crate) struct CachedStatus {
    tip: Option<gix::ObjectId>,
    at: std::time::Instant,
    body: Vec<u8>,
}

/// `status --json`, made again only when the state moved or the last
/// answer is older than [`STATUS_TTL`].
async fn status_body(shared: &Arc<Shared>) -> Result<Vec<u8>, Response> {
    let tip = shared.events.tip();
    let cache = || shared.status.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(c) = cache().as_ref() {
        if c.tip == tip && c.at.elapsed() < STATUS_TTL {
            return Ok(c.body.clone());
        }
    }
    let at = std::time::Instant::now();
    let body = capture(shared, status_json).await?;
    *cache() = Some(CachedStatus {
        tip,
        at,
        body: body.clone(),
    });
    Ok(body)
}

fn status_json(ctx: &mut Ctx<'_>) -> commands::Result {
    let view = view::status::gather(&ctx.store()?, true)?;
    commands::write_json(ctx.out, &view)
}

/// One feature of `status --json`: its record, convoys and tasks, what it
/// has cost, and the trouble that concerns it.
async fn feature(State(shared): Shared_, Path(name): Path<String>) -> Response {
    let body = match status_body(&shared).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let all: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let found = all["features"]
        .as_array()
        .and_then(|fs| fs.iter().find(|f| f["feature"]["name"] == name.as_str()));
    let Some(found) = found else {
        return refuse(
            StatusCode::NOT_FOUND,
            &format!("no feature '{name}'"),
            "GET /api/v1/status lists the features",
        );
    };
    let prefix = format!("{name}/");
    let trouble: Vec<&serde_json::Value> = all["trouble"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .filter(|t| {
                    t["subject"]
                        .as_str()
                        .is_some_and(|s| s == name || s.starts_with(&prefix))
                })
                .collect()
        })
        .unwrap_or_default();
    axum::Json(serde_json::json!({
        "tip": all["tip"],
        "spend_usd": all["spend"]["features"][&name],
        "trouble": trouble,
        "feature": found,
    }))
    .into_response()
}

/// `git sprint show <feature>/<id> --json`.
async fn task(State(shared): Shared_, Path((feature, id)): Path<(String, String)>) -> Response {
    let name = format!("{feature}/{id}");
    reply(
        capture(&shared, move |ctx| {
            let view = view::task::show(&ctx.store()?, &name)?;
            commands::write_json(ctx.out, &view)
        })
        .await,
    )
}

/// What the task's branch changed against its feature's integration
/// branch: `git diff --stat integration...branch`.
async fn diffstat(State(shared): Shared_, Path((feature, id)): Path<(String, String)>) -> Response {
    let name = format!("{feature}/{id}");
    reply(
        capture(&shared, move |ctx| {
            let store = ctx.store()?;
            let (task, base) = store.read(|txn| {
                let r = crate::state::ops::resolve(txn, &name)?;
                let task = txn.task(&r.feature, &r.id)?;
                let base = txn
                    .feature(&r.feature)?
                    .and_then(|f| f.integration_branch);
                Ok((task, base))
            })?;
            let branch = task.and_then(|t| t.branch);
            let stat = match (&branch, &base) {
                (Some(b), Some(base)) => git_diffstat(&ctx.cwd, base, b),
                _ => String::new(),
            };
            commands::write_json(
                ctx.out,
                &serde_json::json!({ "task": name, "branch": branch, "base": base, "diffstat": stat }),
            )
        })
        .await,
    )
}

fn git_diffstat(cwd: &std::path::Path, base: &str, branch: &str) -> String {
    std::process::Command::new("git")
        .args(["diff", "--stat", "--no-color", "--end-of-options"])
        .arg(format!("{base}...{branch}"))
        .current_dir(cwd)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// `git sprint list --all --json`: every worker, live or ended.
async fn agents(State(shared): Shared_) -> Response {
    reply(
        capture(&shared, move |ctx| {
            let fleet = Fleet::open(&ctx.cwd)?;
            let all = view::workers::Filter {
                batch: None,
                all: true,
            };
            let workers = view::workers::list(&fleet, &commands::person(&fleet.store, None), &all)?;
            commands::write_json(ctx.out, &workers)
        })
        .await,
    )
}

/// `git sprint list --machines --json`: the machines sharing the sprint
/// through its remote (none without `sprint.remote`).
async fn machines(State(shared): Shared_) -> Response {
    reply(
        capture(&shared, move |ctx| {
            let rows = view::workers::machines(&ctx.store()?)?;
            commands::write_json(ctx.out, &rows)
        })
        .await,
    )
}

/// How much of the end of an agent's log is sent.
const LOG_TAIL: u64 = 16 * 1024;

/// The end of an agent's log as plain text (terminal escapes stripped).
async fn agent_log(State(shared): Shared_, Path(id): Path<String>) -> Response {
    let valid = !id.is_empty()
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !valid {
        return refuse(
            StatusCode::BAD_REQUEST,
            &format!("'{id}' is not an agent id"),
            "GET /api/v1/agents lists the agents",
        );
    }
    reply(
        capture(&shared, move |ctx| {
            let fleet = crate::fleet::Fleet::open(&ctx.cwd)?;
            let path = fleet.log_path(&id);
            let tail = read_tail(&path);
            commands::write_json(ctx.out, &serde_json::json!({ "id": id, "tail": tail }))
        })
        .await,
    )
}

fn read_tail(path: &std::path::Path) -> Option<String> {
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL))).ok()?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).ok()?;
    let text = crate::fleet::terminal_text::TerminalText::plain(&buf);
    Some(String::from_utf8_lossy(&text).into_owned())
}

#[derive(Deserialize)]
struct LogQuery {
    /// Only the commits after this state commit.
    after: Option<String>,
    /// At most this many entries.
    limit: Option<usize>,
}

/// `git sprint log --json`, or with `after=` only what came after that
/// state commit; newest first either way.
async fn log(State(shared): Shared_, Query(q): Query<LogQuery>) -> Response {
    let after = match q
        .after
        .as_deref()
        .map(|a| gix::ObjectId::from_hex(a.as_bytes()))
    {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(_)) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                &format!(
                    "after={} is not a state commit id",
                    q.after.unwrap_or_default()
                ),
                "pass the full 40-hex-digit id of a state commit (an event's id)",
            )
        }
    };
    let limit = q.limit;
    reply(
        capture(&shared, move |ctx| {
            let store = ctx.store()?;
            let mut entries = match after {
                Some(a) => {
                    let mut v = crate::state::log::since(&store, Some(a))?;
                    v.reverse();
                    v
                }
                None => crate::state::log::history_from(&store, store.tip()?, limit, |_| true)?,
            };
            if let Some(n) = limit {
                entries.truncate(n);
            }
            commands::write_json(ctx.out, &entries)
        })
        .await,
    )
}

/// `git sprint health --json`; answered 200 when unhealthy too (the body
/// says `"healthy": false`).
async fn health(State(shared): Shared_) -> Response {
    reply(
        capture(&shared, move |ctx| {
            let report = view::health::check(&Fleet::open(&ctx.cwd)?)?;
            commands::write_json(ctx.out, &report)
        })
        .await,
    )
}

/// Server-Sent Events, one per state commit; `Last-Event-ID` resumes.
async fn events(State(shared): Shared_, headers: HeaderMap) -> Response {
    let last = match headers.get("last-event-id") {
        None => None,
        Some(v) => match gix::ObjectId::from_hex(v.as_bytes()) {
            Ok(id) => Some(id),
            Err(_) => {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    "Last-Event-ID is not a state commit id",
                    "send the id of the last event received, or none to start from now",
                )
            }
        },
    };
    let hub = Arc::clone(&shared.events);
    // Reading the backlog walks the history: not on the async threads.
    match tokio::task::spawn_blocking(move || hub.stream(last)).await {
        Ok(sse) => sse.into_response(),
        Err(e) => refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("cannot start the event stream: {e}"),
            "retry the request",
        ),
    }
}

#[derive(Deserialize, Default)]
struct ActionBody {
    /// Why, recorded in the audit trail.
    reason: Option<String>,
}

/// Who the audit trail names for an action from the board.
fn board() -> Actor {
    Actor::named("board")
}

fn body(raw: &[u8]) -> Result<ActionBody, serde_json::Error> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Ok(ActionBody::default());
    }
    serde_json::from_slice(raw)
}

fn bad_body(e: serde_json::Error) -> Response {
    refuse(
        StatusCode::BAD_REQUEST,
        &format!("the request body is not valid: {e}"),
        "send no body, or JSON like {\"reason\": \"why\"}",
    )
}

/// An action's answer: `ok` and what the command would have printed.
fn done(result: Result<Vec<u8>, Response>) -> Response {
    match result {
        Ok(out) => axum::Json(serde_json::json!({
            "ok": true,
            "message": String::from_utf8_lossy(&out).trim(),
        }))
        .into_response(),
        Err(r) => r,
    }
}

/// `git sprint retry`.
async fn retry(
    State(shared): Shared_,
    Path((feature, id)): Path<(String, String)>,
    raw: axum::body::Bytes,
) -> Response {
    task_action(
        shared,
        &raw,
        format!("{feature}/{id}"),
        |ctx, task, reason| {
            let retried = control::retry(&ctx.store()?, &board(), &task, reason.as_deref())?;
            write!(ctx.out, "{retried}")?;
            Ok(())
        },
    )
    .await
}

/// `git sprint cancel`.
async fn cancel(
    State(shared): Shared_,
    Path((feature, id)): Path<(String, String)>,
    raw: axum::body::Bytes,
) -> Response {
    task_action(
        shared,
        &raw,
        format!("{feature}/{id}"),
        |ctx, task, reason| {
            let cancelled = control::cancel(&ctx.store()?, &board(), &task, reason.as_deref())?;
            write!(ctx.out, "{cancelled}")?;
            Ok(())
        },
    )
    .await
}

/// Runs `act` on `task` with the request body's reason, as actor `board`.
async fn task_action(
    shared: Arc<Shared>,
    raw: &[u8],
    task: String,
    act: fn(&mut Ctx<'_>, String, Option<String>) -> commands::Result,
) -> Response {
    let b = match body(raw) {
        Ok(b) => b,
        Err(e) => return bad_body(e),
    };
    done(capture(&shared, move |ctx| act(ctx, task, b.reason)).await)
}

/// `git sprint pause`.
async fn pause(State(shared): Shared_, raw: axum::body::Bytes) -> Response {
    set_paused(shared, &raw, true).await
}

/// `git sprint resume`.
async fn resume(State(shared): Shared_, raw: axum::body::Bytes) -> Response {
    set_paused(shared, &raw, false).await
}

async fn set_paused(shared: Arc<Shared>, raw: &[u8], paused: bool) -> Response {
    let b = match body(raw) {
        Ok(b) => b,
        Err(e) => return bad_body(e),
    };
    done(
        capture(&shared, move |ctx| {
            let store = ctx.store()?;
            let outcome =
                control::set_paused(&store, &ctx.cwd, &board(), paused, b.reason.as_deref())?;
            write!(ctx.out, "{outcome}")?;
            Ok(())
        })
        .await,
    )
}
