// The supervisor console: plain DOM, no framework. Every value from the server is set as text
// (textContent), never as HTML, so a caller's name cannot inject markup.
"use strict";
const $ = (id) => document.getElementById(id);
let page = 0, total = 0, perPage = 50, events = null, lastLive = null;

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text == null || text === "" ? "–" : String(text);
  if (cls) td.className = cls;
  tr.appendChild(td);
}
function since(iso) {
  if (!iso) return "";
  const s = Math.max(0, Math.floor((Date.now() - Date.parse(iso)) / 1000));
  return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
}
async function api(path, opts) {
  const r = await fetch(path, Object.assign({ credentials: "same-origin" }, opts || {}));
  if (r.status === 401) { showSignIn(); throw new Error("signed out"); }
  return r;
}
// History stores the edge's id (`ana-1a2b3c4d`); people know the name.
const edgeName = (e) => (e || "").replace(/-[0-9a-f]{8}$/, "");
function showSignIn() {
  if (events) { events.close(); events = null; }
  lastLive = null;
  $("calls").replaceChildren(); $("edges").replaceChildren(); $("rows").replaceChildren();
  $("app").classList.add("hidden"); $("signin").classList.remove("hidden");
}
function showApp(name) {
  $("me").textContent = name;
  $("signin").classList.add("hidden"); $("app").classList.remove("hidden");
  startLive();
}
function renderLive(v) {
  lastLive = v;
  const calls = $("calls"); calls.replaceChildren();
  for (const c of v.calls) {
    const tr = document.createElement("tr");
    cell(tr, c.customer); cell(tr, c.caller_name); cell(tr, c.edge);
    cell(tr, c.state.replace(/_/g, " "));
    cell(tr, since(c.accepted_at || c.offered_at));
    cell(tr, c.grade, c.grade || "muted");
    calls.appendChild(tr);
  }
  $("no-calls").classList.toggle("hidden", v.calls.length > 0);
  $("queue").textContent = v.queue_waiting > 0
    ? "· " + v.queue_waiting + " waiting, longest " + Math.floor(v.queue_longest_s / 60) + ":" + String(v.queue_longest_s % 60).padStart(2, "0")
    : "";
  const edges = $("edges"); edges.replaceChildren();
  for (const e of v.edges) {
    const tr = document.createElement("tr");
    cell(tr, e.name);
    cell(tr, e.calls > 0 ? "on a call" : (e.available ? "available" : "away"), e.available ? "good" : "muted");
    cell(tr, e.calls);
    edges.appendChild(tr);
  }
  $("updated").textContent = "Updated " + new Date().toLocaleTimeString();
}
function startLive() {
  if (events) return;
  events = new EventSource("/console/api/events");
  events.addEventListener("live", (ev) => renderLive(JSON.parse(ev.data)));
  events.onerror = async () => {
    // Session gone (signed out elsewhere, expired): back to sign-in; else it reconnects.
    try { await api("/console/api/me"); } catch (_) { /* showSignIn ran */ }
  };
}
// Running durations tick between pushes.
setInterval(() => { if (lastLive) renderLive(lastLive); }, 1000);

function query(extra) {
  const p = new URLSearchParams();
  for (const [k, v] of new FormData($("filters"))) if (v !== "") p.set(k, v);
  for (const [k, v] of Object.entries(extra || {})) p.set(k, v);
  return p.toString();
}
async function searchHistory() {
  const r = await api("/console/api/history?" + query({ page: page, per_page: perPage }));
  if (!r.ok) { $("page").textContent = await r.text(); return; }
  const d = await r.json();
  total = d.total;
  const rows = $("rows"); rows.replaceChildren();
  for (const c of d.rows) {
    const tr = document.createElement("tr");
    cell(tr, (c.offered_at || "").replace("T", " ").slice(0, 19));
    cell(tr, c.direction === "inbound" ? "in" : "out");
    cell(tr, c.customer); cell(tr, c.caller_name); cell(tr, edgeName(c.edge));
    cell(tr, c.duration_s != null ? c.duration_s + " s" : "");
    cell(tr, c.queue_wait_s != null ? c.queue_wait_s + " s" : "");
    cell(tr, c.end_reason || "(live)");
    cell(tr, c.quality ? c.quality.loss_pct.toFixed(2) + " %" : "");
    rows.appendChild(tr);
  }
  const pages = Math.max(1, Math.ceil(total / perPage));
  $("page").textContent = "Page " + (page + 1) + " of " + pages + " · " + total + (total === 1 ? " call" : " calls");
  $("prev").disabled = page === 0; $("next").disabled = page + 1 >= pages;
  $("csv").href = "/console/api/history?" + query({ format: "csv" });
}

$("signin-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("signin-error").textContent = "";
  const r = await fetch("/console/session", {
    method: "POST", credentials: "same-origin",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ token: $("token").value }),
  });
  $("token").value = "";
  if (r.ok) showApp((await r.json()).name);
  else $("signin-error").textContent = await r.text();
}, false);
window.addEventListener("unhandledrejection", () => {
  if (!$("signin").classList.contains("hidden")) $("signin-error").textContent = "The bridge did not answer; try again.";
});
$("logout").addEventListener("click", async () => {
  await fetch("/console/logout", { method: "POST", credentials: "same-origin" });
  showSignIn();
});
$("tab-live").addEventListener("click", () => {
  $("tab-live").classList.add("on"); $("tab-history").classList.remove("on");
  $("live").classList.remove("hidden"); $("history").classList.add("hidden");
});
$("tab-history").addEventListener("click", () => {
  $("tab-history").classList.add("on"); $("tab-live").classList.remove("on");
  $("history").classList.remove("hidden"); $("live").classList.add("hidden");
  searchHistory();
});
$("filters").addEventListener("submit", (e) => { e.preventDefault(); page = 0; searchHistory(); });
$("prev").addEventListener("click", () => { if (page > 0) { page--; searchHistory(); } });
$("next").addEventListener("click", () => { page++; searchHistory(); });

fetch("/console/api/me", { credentials: "same-origin" })
  .then((r) => r.json())
  .then((d) => (d.name ? showApp(d.name) : showSignIn()))
  .catch(showSignIn);
