// The operator console page: live queue, history, health. Plain JS, no external assets.
"use strict";
const $ = (sel, root = document) => root.querySelector(sel);
let known = new Set(), first = true, audio = null;
let csrf = "";  // the session's CSRF token, from /api/state: sent with every state-changing request

function post(url, body = {}) {
  return fetch(url, {method: "POST", headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
    body: JSON.stringify(body)});
}

function confidence(d, t) {  // distance -> words: how far inside the match threshold the face is
  const r = d / t;
  const label = r <= 0.75 ? "Strong match" : r <= 0.9 ? "Moderate match" : "Weak match (near the threshold)";
  const colour = r <= 0.75 ? "#1f7a3f" : r <= 0.9 ? "#a86b00" : "#b3261e";
  const fill = Math.max(5, Math.min(100, (1 - r) * 250));
  return {label, colour, fill, text: `${label} · distance ${d.toFixed(2)}, threshold ${t.toFixed(2)}`};
}

function ago(seconds) {
  seconds = Math.max(0, Math.round(seconds));
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${seconds % 60} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.floor(seconds % 3600 / 60)} min`;
}

function localTime(iso) { return new Date(iso).toLocaleString(); }

function cue() {  // a short two-tone beep (WebAudio, no sound file) and a blinking title
  try {
    audio = audio || new AudioContext();
    [880, 660].forEach((f, i) => {
      const o = audio.createOscillator(), g = audio.createGain();
      o.frequency.value = f; g.gain.value = 0.15; o.connect(g); g.connect(audio.destination);
      o.start(audio.currentTime + i * 0.2); o.stop(audio.currentTime + i * 0.2 + 0.18);
    });
  } catch (e) { /* no audio device: the visual cue remains */ }
  let n = 0; const t = setInterval(() => {
    document.title = n % 2 ? "Edge console" : "● NEW ALERT"; if (++n > 7) { clearInterval(t); document.title = "Edge console"; }
  }, 500);
}

function renderHealth(state) {
  const h = $("#health"); h.replaceChildren();
  for (const link of state.links) {
    const chip = document.createElement("span");
    chip.className = `chip ${link.state}`;
    chip.textContent = `box ${link.box_id || link.endpoint}: ${link.state}` + (link.problem ? ` — ${link.problem}` : "");
    h.append(chip);
    for (const [cam, st] of Object.entries(link.cameras || {})) {
      const c = document.createElement("span");
      c.className = `chip cam ${st}`; c.dataset.camera = cam; c.textContent = `${cam}: ${st}`;
      h.append(c);
    }
    const acc = link.accuracy || {};
    if (acc.expected_fpir !== undefined) {  // what the list's operating point promises, and what operators found
      const c = document.createElement("span");
      const oneIn = r => r > 0 ? `1 per ${Math.round(1 / r).toLocaleString("en")}` : "none yet";
      c.className = "chip accuracy"; c.dataset.accuracy = "1";
      c.textContent = `expected false alerts: ${oneIn(acc.expected_fpir)} faces · measured: ${oneIn(acc.measured_fpir || 0)}` +
        (acc.faces ? ` (${acc.false_alerts || 0} of ${acc.faces.toLocaleString("en")} faces)` : "");
      h.append(c);
    }
  }
}

const cards = new Map();  // alert id -> card: kept across refreshes so a half-filled decision survives

// An encounter's sightings as a compact strip: camera, time and thumbnail; the newest and the best
// first (the server orders them), the rest folded.
function renderStrip(el, sightings, now) {
  const key = sightings.map(s => s.alert_id).join(",");
  if (el.dataset.key === key) return;  // unchanged: keep the loaded thumbnails
  el.dataset.key = key; el.replaceChildren();
  const item = s => {
    const f = document.createElement("figure");
    f.className = "sighting"; f.dataset.alertId = s.alert_id; f.dataset.camera = s.camera_id;
    const img = document.createElement("img"); img.src = `/api/alerts/${s.alert_id}/crop.jpg`; img.alt = "sighting";
    const cap = document.createElement("figcaption"); cap.textContent = `${s.camera_id} · ${new Date(s.time).toLocaleTimeString()}`;
    f.append(img, cap); return f;
  };
  const head = document.createElement("div"); head.className = "strip-count";
  head.textContent = sightings.length === 1 ? "1 sighting" : `${sightings.length} sightings`;
  el.append(head, ...sightings.slice(0, 3).map(item));
  if (sightings.length > 3) {
    const more = document.createElement("details"); const sum = document.createElement("summary");
    sum.textContent = `${sightings.length - 3} more`; more.append(sum, ...sightings.slice(3).map(item)); el.append(more);
  }
}

function decidedText(e, now) {  // "confirmed · arrested · by alice 1 min ago"
  const when = e.decided ? ` ${ago(now - e.decided)} ago` : "";
  return `${e.outcome} · ${e.action || e.reason || ""} · by ${e.operator || "?"}${when}`;
}

function renderSeenAgain(state) {
  const box = $("#seen-again"); box.replaceChildren();
  $("#seen-again-section").hidden = !state.seen_again.length;
  for (const e of state.seen_again) {
    const el = $("#decided-tpl").content.firstElementChild.cloneNode(true);
    el.dataset.encounterId = e.encounter_id; el.dataset.alertId = e.alert_id; el.classList.add(e.outcome);
    $(".ref", el).textContent = e.ref;
    $(".decided", el).textContent = decidedText(e, state.now);
    $(".since", el).textContent = `seen ${e.after_decision} time(s) since the decision; not a new alert`;
    renderStrip($(".strip", el), e.sightings, state.now);
    box.append(el);
  }
}

function makeCard(a) {
  const card = $("#card-tpl").content.firstElementChild.cloneNode(true);
  card.dataset.alertId = a.alert_id;
  card.dataset.encounterId = a.encounter_id || a.alert_id;
  if (!first) card.classList.add("new");
  $(".crop", card).src = `/api/alerts/${a.alert_id}/crop.jpg`;
  $(".reference", card).src = `/api/alerts/${a.alert_id}/reference.jpg`;
  $(".ref", card).textContent = a.ref;
  $(".category", card).textContent = a.category || "";
  const c = confidence(a.distance, a.threshold);
  $(".confidence .label", card).textContent = c.text;
  Object.assign($(".bar span", card).style, {width: `${c.fill}%`, background: c.colour});
  $(".camera", card).textContent = a.camera_id + (a.box_id ? ` (box ${a.box_id})` : "");
  $(".time", card).textContent = localTime(a.time);
  $(".confirm-btn", card).onclick = () => decide(card, a.alert_id, {decision: "confirm", action: $(".action", card).value});
  $(".dismiss-btn", card).onclick = () => decide(card, a.alert_id, {decision: "dismiss", reason: $(".reason", card).value});
  return card;
}

function renderQueue(state) {
  const q = $("#queue");
  $("#open-count").textContent = state.open.length;
  const open = new Set(state.open.map(a => a.alert_id));
  for (const [id, card] of cards) if (!open.has(id)) { card.remove(); cards.delete(id); }
  const offset = Date.now() / 1000 - state.now;
  state.open.forEach((a, i) => {
    let card = cards.get(a.alert_id);
    if (!card) { card = makeCard(a); cards.set(a.alert_id, card); }
    $(".waiting", card).dataset.received = a.received + offset;
    renderStrip($(".sightings", card), a.sightings, state.now);
    if (q.children[i] !== card) q.insertBefore(card, q.children[i] || null);
  });
  $("#empty").hidden = state.open.length > 0;
  tick();
}

async function decide(card, id, body) {
  body.note = $(".note", card).value;
  const err = $(".error", card);
  if (body.decision === "confirm" && !body.action) { err.textContent = "Choose the action taken."; return; }
  if (body.decision === "dismiss" && !body.reason) { err.textContent = "Choose a reason."; return; }
  const r = await post(`/api/alerts/${id}/decision`, body);
  if (!r.ok) { err.textContent = (await r.json()).error; return; }
  refresh();
}

function tick() {
  for (const el of document.querySelectorAll(".waiting")) {
    const s = Date.now() / 1000 - Number(el.dataset.received);
    el.textContent = ago(s); el.classList.toggle("long", s > 120);
  }
}

async function loadHistory() {
  const p = new URLSearchParams({camera: $("#f-camera").value, outcome: $("#f-outcome").value,
    ...(window.historyParams ? window.historyParams() : {})});  // history.js: ref, operator, time, page
  const r = await fetch(`/api/history?${p}`); if (!r.ok) return;
  const tb = $("#history tbody"); tb.replaceChildren();
  for (const a of (await r.json()).alerts) {
    const tr = document.createElement("tr");
    tr.dataset.alertId = a.alert_id; tr.dataset.encounterId = a.encounter_id || a.alert_id;
    tr.className = `outcome-${a.outcome}`;  // one row per encounter
    const sent = a.outcome === "open" ? "" : a.refused ? `refused: ${a.refused}` : a.delivered ? "yes" : "pending";
    const ttd = a.seconds_to_decision === null || a.seconds_to_decision === undefined ? "" : ago(a.seconds_to_decision);
    const cells = [localTime(a.time), (a.cameras || [a.camera_id]).join(", "), a.ref,
      confidence(a.distance, a.threshold).label, a.outcome, a.action || a.reason || "", a.note || "", a.operator || "",
      ttd, a.sightings, sent];
    for (const v of cells) { const td = document.createElement("td"); td.textContent = v; tr.append(td); }
    tb.append(tr);
  }
}

function renderCameras(state) {
  const sel = $("#f-camera"), cur = sel.value;
  const cams = new Set(state.cameras);
  state.links.forEach(l => Object.keys(l.cameras || {}).forEach(c => cams.add(c)));
  sel.replaceChildren(new Option("all", ""), ...[...cams].sort().map(c => new Option(c, c)));
  sel.value = cur;
}

function renderEvents(state) {
  const ul = $("#events"); ul.replaceChildren();
  for (const e of state.events) {
    const li = document.createElement("li");
    li.textContent = `${localTime(e.time)} · ${e.box_id} · ${e.text || e.event}`;  // in words: alarms.py
    li.dataset.event = e.event; li.classList.toggle("alarmish", /down|failed|refused|not_authorised|purged/.test(e.event));
    ul.append(li);
  }
}

async function refresh() {
  const r = await fetch("/api/state");
  if (r.status === 401) { location.href = "/login"; return; }
  const state = await r.json();
  csrf = state.csrf || csrf;
  $("#operator").textContent = state.user;
  renderHealth(state); renderQueue(state); renderSeenAgain(state); renderCameras(state); renderEvents(state);
  document.dispatchEvent(new CustomEvent("edge-state", {detail: state}));  // banner.js, keys.js
  const ids = new Set(state.open.map(a => a.alert_id));
  if (!first && [...ids].some(id => !known.has(id))) cue();
  known = new Set([...known, ...ids]); first = false;
  loadHistory();
}

let pending = null;
function soon() { clearTimeout(pending); pending = setTimeout(refresh, 100); }

const events = new EventSource("/api/events");
events.onmessage = soon;
events.onopen = soon;
$("#f-camera").onchange = loadHistory;
$("#f-outcome").onchange = loadHistory;
$("#logout").onclick = async () => { await post("/api/logout"); location.href = "/login"; };
setInterval(tick, 1000);
refresh();
