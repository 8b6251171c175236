// The shift panel beside the queue (issue 18): who is logged in, each operator's decisions this shift, and
// open alerts waiting longer than N minutes marked OVERDUE on their cards (in words and outline, no glyph
// that needs an emoji font). Server side: edge/console/shift.py.
"use strict";
(() => {
  const $ = s => document.querySelector(s);
  let overdueMin = Number(localStorage.getItem("edge-overdue-min") || 5);
  const panel = document.createElement("div"); panel.id = "handover"; panel.setAttribute("aria-label", "shift handover");
  const head = Object.assign(document.createElement("h2"), {textContent: "Shift"});
  const who = Object.assign(document.createElement("div"), {id: "logged-in"});
  const counts = Object.assign(document.createElement("div"), {id: "decision-counts"});
  const od = Object.assign(document.createElement("input"), {id: "overdue-min", type: "number", min: 1, max: 240,
    value: overdueMin, size: 4});
  const odLine = document.createElement("div"); odLine.id = "overdue-line";
  const odCount = Object.assign(document.createElement("b"), {id: "overdue-count"});
  odLine.append("Open alerts waiting longer than ", od, " min: ", odCount);
  panel.append(head, who, counts, odLine);
  $("#side").prepend(panel);
  od.onchange = () => { overdueMin = Math.max(1, Number(od.value) || 5); localStorage.setItem("edge-overdue-min", overdueMin); mark(); };

  async function loadShift() {
    const r = await fetch("/api/shift"); if (!r.ok) return;
    const s = await r.json();
    who.textContent = `Logged in: ${s.logged_in.join(", ") || "nobody"}`;
    const parts = Object.entries(s.decisions).map(([name, n]) => `${name} ${n}`);
    counts.textContent = `Decisions this shift (last ${s.hours} h): ${parts.join(" · ") || "none yet"}`;
  }

  function mark() {  // OVERDUE in words and outline, not only colour
    let n = 0;
    for (const card of document.querySelectorAll("#queue .card")) {
      const w = card.querySelector(".waiting");
      const over = w && Date.now() / 1000 - Number(w.dataset.received) > overdueMin * 60;
      card.classList.toggle("overdue", !!over);
      let tag = card.querySelector(".overdue-tag");
      if (over && !tag) { tag = document.createElement("div"); tag.className = "overdue-tag"; card.querySelector(".facts").prepend(tag); }
      if (tag) { tag.hidden = !over; tag.textContent = `OVERDUE: waiting over ${overdueMin} min`; }
      n += over ? 1 : 0;
    }
    odCount.textContent = String(n);
  }
  document.addEventListener("edge-state", () => { loadShift(); mark(); });
  setInterval(mark, 5000);
})();
