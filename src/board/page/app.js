// The board's page: renders /api/v1/status and follows /api/v1/events.
// Hand-written, no framework, no build step; the server sends it as is.
"use strict";

const STATUSES = ["todo", "in_progress", "in_review", "in_tests", "in_docs", "done", "blocked", "failed", "cancelled"];
const $ = (id) => document.getElementById(id);
let state = null;
let agents = [];
let open = null; // the task shown in the dialog, "feature/id"
let lastEventId = null;

function token() { return localStorage.getItem("sprint-token") || ""; }
function headers(extra) {
  const h = Object.assign({}, extra || {});
  if (token()) h["X-Sprint-Token"] = token();
  return h;
}
async function get(path) {
  const r = await fetch(path, { headers: headers() });
  const body = await r.json();
  if (!r.ok) throw new Error((body.error || r.statusText) + (body.hint ? " — " + body.hint : ""));
  return body;
}
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else if (k.startsWith("data-")) e.setAttribute(k, v); else e[k] = v;
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}
function notice(text) { const n = $("notice"); n.textContent = text || ""; n.hidden = !text; }
function age(secs) {
  if (secs == null) return "-";
  if (secs < 60) return secs + "s";
  if (secs < 3600) return Math.floor(secs / 60) + "m";
  return Math.floor(secs / 3600) + "h" + Math.floor((secs % 3600) / 60) + "m";
}
function money(usd) { return usd ? "$" + usd.toFixed(2) : ""; }
function lastGate(t) {
  const g = (t.gates || [])[t.gates ? t.gates.length - 1 : 0];
  return g ? el("span", { class: g.passed ? "pass" : "fail" }, `${g.stage}/${g.gate} ${g.passed ? "passed" : "failed"}`) : null;
}
function agentOf(name) {
  return (state.agents || []).find((a) => a.task === name && (a.state === "running" || a.state === "starting"));
}

function renderStatus() {
  const started = performance.now();
  $("tip").textContent = state.tip ? state.tip.slice(0, 10) : "no sprint state";
  $("spend").textContent = state.spend ? "$" + state.spend.total_usd.toFixed(2) + " spent" : "";
  const paused = state.meta && state.meta.paused;
  $("pause").hidden = !!paused; $("resume").hidden = !paused;
  $("trouble").replaceChildren(...(state.trouble || []).map((t) =>
    el("div", {}, `${t.kind}: ${t.subject}: ${t.message} → ${t.hint}`)));
  const now = Date.now() / 1000;
  $("features").replaceChildren(...state.features.map((fs) => {
    const tasks = fs.tasks.filter((t) => t.status !== "cancelled");
    const done = tasks.filter((t) => t.status === "done").length;
    const pct = tasks.length ? Math.round((100 * done) / tasks.length) : 0;
    const started = Date.parse(fs.feature.created) / 1000;
    let eta = "";
    if (done > 0 && done < tasks.length && started) {
      const left = ((now - started) / done) * (tasks.length - done);
      eta = " · ETA " + age(Math.round(left));
    }
    const usd = state.spend && state.spend.features ? state.spend.features[fs.feature.name] : 0;
    return el("div", { class: "feature", "data-feature": fs.feature.name },
      el("strong", {}, fs.feature.name),
      el("div", { class: "bar" }, el("span", { style: `width:${pct}%` })),
      el("span", {}, `${done}/${tasks.length} done (${pct}%)${eta} ${money(usd)}`));
  }));
  const columns = {};
  for (const s of STATUSES) columns[s] = el("div", { class: "column", "data-status": s }, el("h2", {}, s.replace("_", " ")));
  for (const fs of state.features) {
    for (const t of fs.tasks) {
      const name = `${fs.feature.name}/${t.id}`;
      const a = agentOf(name);
      const spent = t.tokens ? `${t.tokens} tok ${money(t.cost_usd)}` : "";
      const card = el("div", { class: "card " + t.status, "data-task": name, "data-status": t.status },
        el("div", {}, el("span", { class: "id" }, t.id), " ", t.title),
        el("div", { class: "meta" },
          [t.convoy, a ? a.id : null, t.attempts ? `attempt ${t.attempts}` : null, spent].filter(Boolean).join(" · ")),
        el("div", { class: "meta" }, lastGate(t)));
      card.onclick = () => showTask(name);
      (columns[t.status] || columns.todo).append(card);
    }
  }
  $("columns").replaceChildren(...STATUSES.map((s) => columns[s]));
  document.body.dataset.tip = state.tip || "";
  // What drawing took, for the benchmark (benches/board.rs).
  document.body.dataset.renderMs = (performance.now() - started).toFixed(1);
}

async function renderAgents() {
  // Rows are `git sprint list --json`: the agent record, flattened, plus
  // what was measured (age, CPU, RSS).
  const running = agents.filter((r) => r.state === "running" || r.state === "starting");
  const rows = await Promise.all(running.map(async (r) => {
    let last = "";
    try {
      const log = await get(`/api/v1/agents/${encodeURIComponent(r.id)}/log`);
      last = (log.tail || "").trim().split("\n").pop() || "";
    } catch (_) { /* a log that is gone is no output */ }
    return el("tr", { "data-agent": r.id },
      el("td", {}, r.id), el("td", {}, r.role), el("td", {}, r.task || "-"),
      el("td", {}, age(r.age_secs)), el("td", {}, r.cpu_percent != null ? r.cpu_percent.toFixed(0) + "%" : "-"),
      el("td", {}, r.rss_bytes != null ? Math.round(r.rss_bytes / 1048576) + "M" : "-"), el("td", {}, last));
  }));
  $("agents").tBodies[0].replaceChildren(...rows);
}

function renderMachines(list) {
  // Rows are `git sprint list --machines --json`; the table shows only
  // when the sprint is shared through a remote.
  const rows = list.map((m) => {
    const hb = m.heartbeat || {}, info = m.machine || {};
    return el("tr", { "data-machine": m.name },
      el("td", {}, m.name), el("td", {}, m.status), el("td", {}, info.host || "-"),
      el("td", {}, info.cores != null ? String(info.cores) : "-"),
      el("td", {}, hb.cpu_percent != null ? hb.cpu_percent.toFixed(0) + "%" : "-"),
      el("td", {}, hb.load1 != null ? hb.load1.toFixed(2) : "-"),
      el("td", {}, hb.disk_free_mb != null ? hb.disk_free_mb + "M" : "-"),
      el("td", {}, hb.agents != null ? String(hb.agents) : "-"),
      el("td", {}, m.beat_age_secs != null ? age(m.beat_age_secs) + " ago" : "-"));
  });
  $("machines").tBodies[0].replaceChildren(...rows);
  $("machines-box").hidden = rows.length === 0;
}

function auditLine(e) {
  const when = new Date(e.time * 1000).toLocaleTimeString();
  return el("li", { "data-commit": e.commit }, `${when} ${e.actor} ${e.subject}`);
}

let refreshing = false, again = false;
async function refresh() {
  if (refreshing) { again = true; return; }
  refreshing = true;
  try {
    do {
      again = false;
      state = await get("/api/v1/status");
      renderStatus();
      if (open) await fillTask(open);
      notice("");
      agents = await get("/api/v1/agents").catch(() => []);
      await renderAgents();
      renderMachines(await get("/api/v1/machines").catch(() => []));
    } while (again);
  } catch (e) {
    notice(e.message);
  } finally {
    refreshing = false;
  }
}

async function fillTask(name) {
  const [f, id] = [name.slice(0, name.indexOf("/")), name.slice(name.indexOf("/") + 1)];
  const base = `/api/v1/tasks/${encodeURIComponent(f)}/${encodeURIComponent(id)}`;
  const s = await get(base);
  const t = s.task;
  $("task-title").textContent = `${name} · ${t.status}`;
  $("task").dataset.task = name;
  $("task").dataset.status = t.status;
  $("task-meta").textContent = [t.title, t.convoy && "convoy " + t.convoy, `attempts ${t.attempts || 0}`,
    t.tokens ? `${t.tokens} tokens ${money(t.cost_usd)}` : null, t.branch, t.reason].filter(Boolean).join(" · ");
  $("task-gates").replaceChildren(...(t.gates || []).map((g) =>
    el("li", { class: g.passed ? "pass" : "fail" }, `${g.stage}/${g.gate} ${g.passed ? "passed" : "failed"} at ${g.at}`,
      g.output ? el("pre", {}, g.output) : null)));
  $("task-feedback").replaceChildren(...(t.feedback || []).map((x) => el("li", {}, el("pre", {}, x))));
  $("task-history").replaceChildren(...s.history.map(auditLine));
  const d = await get(base + "/diffstat").catch(() => ({}));
  $("task-diffstat").textContent = d.diffstat || "(no branch yet)";
  const a = (state.agents || []).filter((x) => x.task === name).pop();
  let tail = "";
  if (a) { try { tail = (await get(`/api/v1/agents/${encodeURIComponent(a.id)}/log`)).tail || ""; } catch (_) { /* none */ } }
  $("task-log").textContent = tail.split("\n").slice(-40).join("\n") || "(no agent log)";
}

async function showTask(name) {
  open = name;
  try { await fillTask(name); $("task").showModal(); } catch (e) { notice(e.message); }
}

async function act(path) {
  const r = await fetch(path, { method: "POST", headers: headers({ "Content-Type": "application/json" }), body: "{}" });
  const body = await r.json();
  notice(r.ok ? body.message : (body.error + (body.hint ? " — " + body.hint : "")));
}
function taskPath(action) {
  const i = open.indexOf("/");
  return `/api/v1/tasks/${encodeURIComponent(open.slice(0, i))}/${encodeURIComponent(open.slice(i + 1))}/${action}`;
}

// Server-Sent Events read with fetch, not EventSource: EventSource cannot
// send the token header that reads need off loopback.
async function follow() {
  for (;;) {
    try {
      const h = headers({ Accept: "text/event-stream" });
      if (lastEventId) h["Last-Event-ID"] = lastEventId;
      const r = await fetch("/api/v1/events", { headers: h });
      if (!r.ok) throw new Error("events: " + r.status);
      $("live").className = "on"; $("live").textContent = "live"; document.body.dataset.live = "on";
      // Whatever happened while disconnected is in the next read.
      refresh();
      const reader = r.body.getReader();
      const text = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += text.decode(value, { stream: true });
        let end;
        while ((end = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, end); buf = buf.slice(end + 2);
          let id = null, data = "";
          for (const line of block.split("\n")) {
            if (line.startsWith("id:")) id = line.slice(3).trim();
            else if (line.startsWith("data:")) data += line.slice(5).trim();
          }
          if (!data) continue; // a keep-alive comment
          lastEventId = id || lastEventId;
          try { $("audit").prepend(auditLine(JSON.parse(data))); } catch (_) { /* not an entry */ }
          refresh();
        }
      }
    } catch (e) {
      notice(e.message);
    }
    $("live").className = "off"; $("live").textContent = "reconnecting"; document.body.dataset.live = "off";
    // Reconnect after a pause; the stream resumes from the last event id.
    await new Promise((ok) => setTimeout(ok, 1000));
  }
}

async function start() {
  $("token").value = token();
  $("token").onchange = () => { localStorage.setItem("sprint-token", $("token").value.trim()); refresh(); };
  $("pause").onclick = () => act("/api/v1/pause");
  $("resume").onclick = () => act("/api/v1/resume");
  $("retry").onclick = () => act(taskPath("retry"));
  $("cancel").onclick = () => act(taskPath("cancel"));
  $("task").onclose = () => { open = null; };
  try {
    const log = await get("/api/v1/log?limit=50");
    $("audit").replaceChildren(...log.map(auditLine));
    if (log.length) lastEventId = log[0].commit;
  } catch (e) { notice(e.message); }
  follow();
}
start();
