// The operator console page: the live queue (grouped by person), health, events. Plain JS, no external
// assets; common.js holds what the history page shares.
"use strict";
let known = new Set(), first = true, audio = null;

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
    document.title = n % 2 ? "Edge console" : "*** NEW ALERT ***"; if (++n > 7) { clearInterval(t); document.title = "Edge console"; }
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
    const cap = document.createElement("figcaption"); cap.textContent = `${s.camera_id} · ${siteTime(s.time, true)}`;
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

function decidedText(e, now) {  // "confirmed · arrested · by alice at 2026-12-06 08:12:03 +00:00 (1 min ago)"
  const when = e.decided ? ` at ${siteTime(e.decided)} (${ago(now - e.decided)} ago)` : "";
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
  $(".confidence .label", card).textContent = c.text + (a.model ? ` · ${a.model}` : "");  // the model that matched
  Object.assign($(".bar span", card).style, {width: `${c.fill}%`, background: c.colour});
  $(".camera", card).textContent = a.camera_id + (a.box_id ? ` (box ${a.box_id})` : "");
  $(".time", card).textContent = siteTime(a.time);
  card.addEventListener("click", ev => { if (!ev.target.closest("button, select, input, img, a") && window.edgeKeys) window.edgeKeys.select(card); });
  $(".confirm-btn", card).onclick = () => decide(card, a.alert_id, {decision: "confirm", action: $(".action", card).value});
  $(".dismiss-btn", card).onclick = () => decide(card, a.alert_id, {decision: "dismiss", reason: $(".reason", card).value});
  return card;
}

const WORDS = {confirm: "confirmed", dismiss: "dismissed"};

function renderEarlier(el, e) {  // the person's earlier decision this deployment, however long ago
  const key = e ? `${e.encounter_id}/${e.outcome}` : "";
  if (el.dataset.key === key) return;
  el.dataset.key = key; el.replaceChildren(); el.hidden = !e;
  if (!e) return;
  const a = document.createElement("a");
  a.href = `/history#enc-${e.encounter_id}`; a.textContent = "see it in the history";
  el.append(`KNOWN: decided before: ${e.outcome} · ${e.action || e.reason || ""} · by ${e.operator || "?"} at `
    + `${siteTime(e.decided)} · `, a);
}

function renderStage(card, v) {  // two-person verification: blind to the first choice until both have verified
  const el = $(".verify-stage", card);
  card.dataset.stage = v && v.policy === "two" ? v.stage : "";
  card.classList.toggle("verified-by-me", !!(v && v.mine));
  if (!v || v.policy !== "two") { el.hidden = true; return; }
  el.hidden = false;
  const mine = v.mine ? `Your verification: ${WORDS[v.mine.decision]} (${v.mine.action || v.mine.reason}). ` : "";
  el.textContent = v.stage === "first" ? "Two-person rule: verification 1 of 2. Your confirmation is a first verification."
    : v.stage === "second" ? (v.mine ? `${mine}Waiting for a second, different operator to verify.`
      : `Verification 2 of 2: ${v.by.join(", ")} verified; their choice is hidden. Decide on your own.`)
    : "The two verifications DISAGREE: " + (v.people || []).map(p => `${p.operator} ${WORDS[p.decision]} (${p.action || p.reason})`).join(" vs ")
      + (v.may_decide ? ". You are the supervisor: your decision counts." : ". A supervisor decides.");
}

function renderQueue(state) {
  const q = $("#queue");
  $("#open-count").textContent = state.open.length;
  const open = new Set(state.open.map(a => a.alert_id));
  const held = window.edgeKeys ? window.edgeKeys.held : new Map();
  for (const [id, card] of cards) if (!open.has(id) && !held.has(id)) { card.remove(); cards.delete(id); }
  const offset = Date.now() / 1000 - state.now;
  const want = [], count = {}, nth = {};
  state.open.forEach(a => { const k = `${a.box_id}/${a.ref}`; count[k] = (count[k] || 0) + 1; });
  state.open.forEach(a => {  // grouped by person (the server orders them): each card says which of how many
    const key = `${a.box_id}/${a.ref}`;
    nth[key] = (nth[key] || 0) + 1;
    let card = cards.get(a.alert_id);
    if (!card) { card = makeCard(a); cards.set(a.alert_id, card); }
    card.dataset.person = key;
    card.classList.toggle("group-start", nth[key] === 1);
    card.classList.toggle("group-more", nth[key] > 1);
    $(".person", card).textContent = count[key] > 1 ? `${a.ref}: ${nth[key]} of ${count[key]} open encounters` : "";
    $(".waiting", card).dataset.received = a.received + offset;
    renderStrip($(".sightings", card), a.sightings, state.now);
    renderEarlier($(".earlier", card), a.earlier);
    renderStage(card, a.verification);
    want.push(card);
  });
  for (const [id, card] of cards) if (!open.has(id)) want.push(card);  // a held decision finishes its countdown
  want.forEach((el, i) => { if (q.children[i] !== el) q.insertBefore(el, q.children[i] || null); });
  while (q.children.length > want.length) q.lastElementChild.remove();
  $("#empty").hidden = state.open.length > 0;
  tick();
}

function renderNotices(state) {  // this operator's decisions that were not counted: told until read
  const box = $("#notices"), list = state.notices || [], key = list.map(n => n.decision_id).join(",");
  if (box.dataset.key === key) return;
  box.dataset.key = key; box.replaceChildren();
  for (const n of list) {
    const el = document.createElement("div");
    el.className = "notice refused"; el.dataset.decisionId = n.decision_id; el.setAttribute("role", "alert");
    const t = document.createElement("span"); t.textContent = `NOT COUNTED (${siteTime(n.time)}): ${n.text}`;
    const ok = document.createElement("button"); ok.className = "notice-read"; ok.textContent = "Understood (x)";
    ok.onclick = async () => { await post(`/api/notices/${n.decision_id}/read`); refresh(); };
    el.append(t, ok); box.append(el);
  }
}

async function decide(card, id, body) {
  body.note = $(".note", card).value;
  const err = $(".error", card);
  if (body.decision === "confirm" && !body.action) { err.textContent = "Choose the action taken."; return; }
  if (body.decision === "dismiss" && !body.reason) { err.textContent = "Choose a reason."; return; }
  const r = await post(`/api/alerts/${id}/decision`, body);
  const j = await r.json();
  if (!r.ok) { err.textContent = j.error; if (j.refused) refresh(); return; }
  err.textContent = j.text || "";
  refresh();
}

function tick() {
  for (const el of document.querySelectorAll(".waiting")) {
    const s = Date.now() / 1000 - Number(el.dataset.received);
    el.textContent = ago(s); el.classList.toggle("long", s > 120);
  }
}

function renderEvents(state) {
  const ul = $("#events"); ul.replaceChildren();
  for (const e of state.events) {
    const li = document.createElement("li");
    li.textContent = `${siteTime(e.time)} · ${e.box_id} · ${e.text || e.event}`;  // in words: alarms.py
    li.dataset.event = e.event; li.classList.toggle("alarmish", /down|failed|refused|not_authorised|purged/.test(e.event));
    ul.append(li);
  }
}

async function refresh() {
  const r = await fetch("/api/state");
  if (r.status === 401) { location.href = "/login"; return; }
  const state = await r.json();
  csrf = state.csrf || csrf; window.edgeTZ = state.timezone || "UTC";
  $("#operator").textContent = state.user + (state.supervisor ? " (supervisor)" : "");
  $("#tz-label").textContent = `Times: ${window.edgeTZ} (${siteTime(state.now).slice(20)})`;
  const two = state.links.filter(l => l.verification === "two").map(l => l.box_id || l.endpoint);
  $("#verification-policy").textContent = two.length ? `Two-person verification: ON (box ${two.join(", ")})`
    : "Verification: one operator";
  $("#verification-policy").className = two.length ? "policy two" : "policy one";
  renderHealth(state); renderNotices(state); renderQueue(state); renderSeenAgain(state); renderEvents(state);
  document.dispatchEvent(new CustomEvent("edge-state", {detail: state}));  // banner.js, keys.js
  const ids = new Set(state.open.map(a => a.alert_id));
  if (!first && [...ids].some(id => !known.has(id))) cue();
  known = new Set([...known, ...ids]); first = false;
}

let pending = null;
function soon() { clearTimeout(pending); pending = setTimeout(refresh, 100); }

const events = new EventSource("/api/events");
events.onmessage = soon;
events.onopen = soon;
$("#logout").onclick = async () => { await post("/api/logout"); location.href = "/login"; };
setInterval(tick, 1000);
refresh();
