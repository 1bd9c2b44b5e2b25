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
    const open = document.createElement("td");
    const link = document.createElement("a");
    link.href = "#"; link.textContent = c.call_id.slice(-10); link.className = "call-link";
    link.dataset.call = c.call_id;
    link.addEventListener("click", (e) => { e.preventDefault(); showCall(c.call_id); });
    open.appendChild(link); tr.appendChild(open);
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
function show(view) {
  for (const v of ["live", "history", "call"]) $(v).classList.toggle("hidden", v !== view);
  $("tab-live").classList.toggle("on", view === "live");
  $("tab-history").classList.toggle("on", view !== "live");
}
$("tab-live").addEventListener("click", () => show("live"));
$("tab-history").addEventListener("click", () => { show("history"); searchHistory(); });
$("back").addEventListener("click", () => { $("player").pause(); show("history"); });

// ---- the call page
let audioGraph = null;
function drawWave(peaks) {
  const cv = $("wave"), g = cv.getContext("2d"), w = cv.width, h = cv.height, half = h / 2;
  g.fillStyle = "#fff"; g.fillRect(0, 0, w, h);
  const lanes = [[peaks.customer, 0, "#17803d"], [peaks.business, half, "#2453a6"]];
  for (const [ch, top, color] of lanes) {
    g.fillStyle = color;
    const n = ch.length, mid = top + half / 2;
    for (let i = 0; i < n; i++) {
      const [lo, hi] = ch[i];
      const x = Math.floor(i * w / n), y0 = mid - (hi / 32768) * (half / 2), y1 = mid - (lo / 32768) * (half / 2);
      g.fillRect(x, y0, Math.max(1, Math.ceil(w / n)), Math.max(1, y1 - y0));
    }
  }
  g.fillStyle = "#ccc"; g.fillRect(0, half, w, 1);
}
function drawQuality(samples) {
  const cv = $("qplot"), g = cv.getContext("2d"), w = cv.width, h = cv.height;
  g.fillStyle = "#fff"; g.fillRect(0, 0, w, h);
  if (samples.length === 0) { g.fillStyle = "#7a8491"; g.fillText("No quality reports for this call.", 10, 20); return; }
  const series = [["loss_pct", "#b3261e"], ["jitter_ms", "#a86400"], ["rtt_ms", "#2453a6"]];
  const max = Math.max(1, ...samples.flatMap((s) => series.map(([k]) => s[k] || 0)));
  for (const [k, color] of series) {
    g.strokeStyle = color; g.beginPath();
    samples.forEach((s, i) => {
      const x = samples.length === 1 ? w / 2 : (i * (w - 10)) / (samples.length - 1) + 5;
      const y = h - 5 - ((s[k] || 0) / max) * (h - 10);
      if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
    });
    g.stroke();
  }
  g.fillStyle = "#5a6472"; g.fillText("max " + max.toFixed(1), 5, 12);
}
function solo(which) {
  // Each side alone: the two channels routed to both ears, or one of them.
  const player = $("player");
  if (!audioGraph) {
    const ctx = new AudioContext();
    const src = ctx.createMediaElementSource(player);
    const split = ctx.createChannelSplitter(2), merge = ctx.createChannelMerger(2);
    src.connect(split); merge.connect(ctx.destination);
    audioGraph = { ctx, split, merge };
  }
  const { ctx, split, merge } = audioGraph;
  split.disconnect();
  if (which === "both") { split.connect(merge, 0, 0); split.connect(merge, 1, 1); }
  else { const ch = which === "customer" ? 0 : 1; split.connect(merge, ch, 0); split.connect(merge, ch, 1); }
  if (ctx.state === "suspended") ctx.resume();
}
for (const w of ["both", "customer", "business"]) $("solo-" + w).addEventListener("click", () => solo(w));
function hungUpBy(reason) {
  if (!reason) return "";
  if (reason.startsWith("customer_hangup") || reason.startsWith("caller_")) return " (the customer hung up)";
  if (reason.startsWith("business_hangup")) return " (the business hung up)";
  return "";
}
async function showCall(id) {
  const r = await api("/console/api/calls/" + encodeURIComponent(id));
  if (!r.ok) { alert(await r.text()); return; }
  const d = await r.json(), c = d.record;
  show("call");
  $("call-id").textContent = c.call_id;
  const fields = $("call-fields"); fields.replaceChildren();
  const rows = [["Direction", c.direction], ["Customer", c.customer], ["Name", c.caller_name],
    ["Agent or bot", edgeName(c.edge)], ["Answered by", edgeName(c.answered_by)], ["Duration", c.duration_s != null ? c.duration_s + " s" : ""],
    ["Waited in queue", c.queue_wait_s != null ? c.queue_wait_s + " s" : ""], ["Overflow", c.overflow],
    ["Outcome", c.end_reason], ["Keys pressed", c.dtmf], ["Recording", c.recording]];
  for (const [k, v] of rows) { const tr = document.createElement("tr"); cell(tr, k, "muted"); cell(tr, v); fields.appendChild(tr); }
  const tl = $("timeline"); tl.replaceChildren();
  const firstAudio = d.quality.find((s) => s.packets_received > 0);
  const connected = c.quality && c.quality.media_connected_ms
    ? new Date(c.quality.media_connected_ms).toISOString() : null;
  const events = [[c.offered_at, c.direction === "inbound" ? "webhook: the customer calls" : "connect: dialled"],
    [c.pre_accepted_at, "pre_accept"], [c.accepted_at, "accept"],
    [connected, "media connected (ICE and DTLS up at the edge)"],
    [firstAudio && firstAudio.at, "audio flowing (first of the 2 s quality reports with audio)"],
    ...(c.dtmf_at && c.dtmf_at.length
      ? [...c.dtmf].map((k, i) => [c.dtmf_at[i], "key pressed: " + k])
      : [[c.dtmf ? c.ended_at : null, "keys pressed: " + c.dtmf]]),
    [c.ended_at, "end: " + (c.end_reason || "") + hungUpBy(c.end_reason)]];
  events.sort((a, b) => String(a[0] || "").localeCompare(String(b[0] || "")));
  for (const [at, what] of events) {
    if (!at) continue;
    const li = document.createElement("li");
    li.textContent = at.replace("T", " ").slice(0, 23) + " · " + what;
    tl.appendChild(li);
  }
  drawQuality(d.quality);
  $("no-recording").classList.toggle("hidden", d.has_recording);
  $("recording-box").classList.toggle("hidden", !d.has_recording);
  if (d.has_recording) {
    $("player").src = "/console/api/calls/" + encodeURIComponent(id) + "/recording";
    const p = await api("/console/api/calls/" + encodeURIComponent(id) + "/peaks?n=900");
    if (p.ok) drawWave(await p.json());
  }
}
$("filters").addEventListener("submit", (e) => { e.preventDefault(); page = 0; searchHistory(); });
$("prev").addEventListener("click", () => { if (page > 0) { page--; searchHistory(); } });
$("next").addEventListener("click", () => { page++; searchHistory(); });

fetch("/console/api/me", { credentials: "same-origin" })
  .then((r) => r.json())
  .then((d) => (d.name ? showApp(d.name) : showSignIn()))
  .catch(showSignIn);
