// The history a controller searches and hands over (issue 18), on its own page (historypage.js): filters by
// reference, operator and time (besides camera and outcome), pages of PER_PAGE encounters, CSV export of
// what is filtered. Server side: edge/console/shift.py.
"use strict";
(() => {
  const $ = s => document.querySelector(s);
  const PER_PAGE = 50;
  let page = 1, pages = 1;
  const filters = $("#history-section .filters");

  function field(label, el) { const l = document.createElement("label"); l.append(label + " ", el); return l; }
  const ref = Object.assign(document.createElement("input"), {id: "f-ref", placeholder: "any", size: 12});
  const op = Object.assign(document.createElement("input"), {id: "f-operator", placeholder: "any", size: 10});
  const from = Object.assign(document.createElement("input"), {id: "f-from", type: "datetime-local"});
  const to = Object.assign(document.createElement("input"), {id: "f-to", type: "datetime-local"});
  const csv = Object.assign(document.createElement("button"), {id: "export-csv", textContent: "Export CSV"});
  filters.append(field("Ref", ref), field("Operator", op), field("From (site time)", from), field("To", to), csv);

  const pager = document.createElement("div"); pager.id = "pager";
  const prev = Object.assign(document.createElement("button"), {id: "page-prev", textContent: "< Newer"});
  const info = Object.assign(document.createElement("span"), {id: "page-info"});
  const next = Object.assign(document.createElement("button"), {id: "page-next", textContent: "Older >"});
  pager.append(prev, info, next);
  const table = $("#history"), wrap = document.createElement("div");  // a wide table scrolls, never the page
  wrap.id = "history-wrap"; table.before(wrap); wrap.append(table); wrap.after(pager);

  const epoch = siteEpoch;  // the From/To fields are the site's time (common.js), like every time shown
  function params(withPage = true) {
    const p = {ref: ref.value.trim(), operator: op.value.trim(), since: epoch(from.value), until: epoch(to.value)};
    if (withPage) Object.assign(p, {page: String(page), per_page: String(PER_PAGE)});
    for (const k of Object.keys(p)) if (!p[k]) delete p[k];
    return p;
  }
  window.historyParams = () => params(true);  // app.js's loadHistory() adds these to its query

  async function updatePager() {
    const q = new URLSearchParams({camera: $("#f-camera").value, outcome: $("#f-outcome").value, ...params(false),
      per_page: String(PER_PAGE), page: String(page)});
    const r = await fetch(`/api/history?${q}`); if (!r.ok) return;
    const j = await r.json();
    pages = j.pages; page = j.page;
    info.textContent = ` Page ${j.page} of ${j.pages} · ${j.total} encounter${j.total === 1 ? "" : "s"} `;
    prev.disabled = j.page <= 1; next.disabled = j.page >= j.pages;
  }
  const original = window.loadHistory;
  let busy = null, again = false;  // one load at a time (two at once would each append their rows)
  window.loadHistory = async () => {
    if (busy) { again = true; return busy; }
    busy = (async () => {
      do { again = false; await original(); await updatePager(); } while (again);
    })();
    try { await busy; } finally { busy = null; }
  };
  try { loadHistory = window.loadHistory; } catch (e) { /* app.js's binding is the window's */ }
  const reload = () => { page = 1; window.loadHistory(); };
  for (const el of [ref, op]) el.oninput = reload;
  for (const el of [from, to]) el.onchange = reload;
  $("#f-camera").onchange = reload; $("#f-outcome").onchange = reload;
  prev.onclick = () => { page = Math.max(1, page - 1); window.loadHistory(); };
  next.onclick = () => { page = Math.min(pages, page + 1); window.loadHistory(); };
  csv.onclick = () => {
    const q = new URLSearchParams({camera: $("#f-camera").value, outcome: $("#f-outcome").value, ...params(false)});
    location.href = `/api/history.csv?${q}`;
  };

})();
