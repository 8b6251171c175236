// The history page (its own full-width page, issue 26): one row per encounter, every column visible,
// times in the site's time zone. history.js adds the filters, pages and CSV export.
"use strict";
async function loadHistory() {
  const p = new URLSearchParams({camera: $("#f-camera").value, outcome: $("#f-outcome").value,
    ...(window.historyParams ? window.historyParams() : {})});  // history.js: ref, operator, time, page
  const r = await fetch(`/api/history?${p}`); if (!r.ok) return;
  const tb = $("#history tbody"); tb.replaceChildren();
  for (const a of (await r.json()).alerts) {
    const tr = document.createElement("tr");
    tr.dataset.alertId = a.alert_id; tr.dataset.encounterId = a.encounter_id || a.alert_id;
    tr.id = `enc-${a.encounter_id || a.alert_id}`;  // the queue's "decided before" links here
    tr.className = `outcome-${a.outcome}`;  // one row per encounter
    const sent = a.outcome === "open" ? "" : a.refused ? `refused: ${a.refused}` : a.delivered ? "yes" : "pending";
    const ttd = a.seconds_to_decision === null || a.seconds_to_decision === undefined ? "" : ago(a.seconds_to_decision);
    const cells = [siteTime(a.time), (a.cameras || [a.camera_id]).join(", "), a.ref,
      confidence(a.distance, a.threshold).label, a.outcome, a.action || a.reason || "", a.note || "", a.operator || "",
      ttd, a.sightings, a.verified_by || "", a.not_counted ? `${a.not_counted} decision(s)` : "", sent];
    for (const v of cells) { const td = document.createElement("td"); td.textContent = v; tr.append(td); }
    tb.append(tr);
  }
  if (location.hash) { const row = document.getElementById(location.hash.slice(1)); if (row) { row.classList.add("linked"); row.scrollIntoView({block: "center"}); } }
}

(async () => {
  const r = await fetch("/api/state");
  if (r.status === 401) { location.href = "/login"; return; }
  const state = await r.json();
  csrf = state.csrf || csrf; window.edgeTZ = state.timezone || "UTC";
  $("#operator").textContent = state.user;
  $("#tz-label").textContent = `Times: ${window.edgeTZ} (${siteTime(state.now).slice(20)})`;
  const sel = $("#f-camera"), cams = new Set(state.cameras);
  state.links.forEach(l => Object.keys(l.cameras || {}).forEach(c => cams.add(c)));
  sel.replaceChildren(new Option("all", ""), ...[...cams].sort().map(c => new Option(c, c)));
  window.loadHistory();
})();
document.addEventListener("keydown", ev => {
  if (ev.key === "q" && !/INPUT|SELECT|TEXTAREA/.test(ev.target.tagName)) location.href = "/";
});
