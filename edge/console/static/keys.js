// Working the queue from the keyboard (issue 18), and the hold-then-send of every decision.
//   j or Down, k or Up move through the open alerts (the selected card is outlined, marked SELECTED and
//                  expanded; nothing is selected until the first key press)
//   c then 1-4     confirm with the action taken     d then 1-3   dismiss with the reason
//   n              write a note on the selected card (Esc leaves the note)
//   z              zoom the live crop beside the reference (also: click a crop)      u   undo
//   o              the entry's other reference images h  the history page   x  "understood" on a notice
//   ?              this help                          Esc          close / cancel
// A decision (by key or button) is held here for HOLD_S seconds with an Undo button before it goes
// to the console server; Undo (or u) takes it back, nothing has been sent. app.js's decide() sends it.
"use strict";
(() => {
  const HOLD_S = 5;
  const ACTIONS = ["approached", "no action", "arrested", "other"];
  const REASONS = ["not the person", "poor image", "other"];
  const send = window.decide;  // app.js: validates and posts the decision
  const held = new Map();  // alert id -> {timer, card, body, until}
  let selectedId = "", mode = "";  // mode: "" | "confirm" | "dismiss"
  let started = false;  // nothing is selected until the operator presses a key (a wrong card was confirmed so)
  window.edgeKeys = {held, holdSeconds: HOLD_S, select: c => { started = true; select(c); }};

  const cardsNow = () => [...document.querySelectorAll("#queue .card")];
  const selected = () => cardsNow().find(c => c.dataset.alertId === selectedId) || null;

  function select(card) {
    for (const c of cardsNow()) { c.classList.toggle("selected", c === card); c.setAttribute("aria-current", c === card); }
    selectedId = card ? card.dataset.alertId : "";
    setMode("");
    if (card) card.scrollIntoView({block: "nearest"});
  }

  function setMode(m) {
    mode = m;
    for (const c of cardsNow()) {
      let hint = c.querySelector(".key-hint");
      if (!hint) { hint = document.createElement("div"); hint.className = "key-hint"; c.querySelector(".facts").prepend(hint); }
      const on = c.dataset.alertId === selectedId;
      hint.textContent = !on ? "" : m === "confirm" ? "CONFIRM — action taken: " + ACTIONS.map((a, i) => `${i + 1} ${a}`).join(" · ") + " · Esc cancel"
        : m === "dismiss" ? "DISMISS — reason: " + REASONS.map((a, i) => `${i + 1} ${a}`).join(" · ") + " · Esc cancel"
        : "SELECTED · c confirm · d dismiss · z zoom · o other references · n note · ? help";
      hint.hidden = !on;
    }
  }

  function move(step) {
    started = true;
    const cs = cardsNow().filter(c => !held.has(c.dataset.alertId));
    if (!cs.length) { select(null); return; }
    const i = cs.findIndex(c => c.dataset.alertId === selectedId);
    select(cs[i < 0 ? 0 : Math.max(0, Math.min(cs.length - 1, i + step))]);
  }

  function hold(card, id, body) {  // replaces app.js's decide: the same checks, then a held decision
    const err = card.querySelector(".error");
    if ((body.decision === "confirm" && !body.action) || (body.decision === "dismiss" && !body.reason)) {
      return send(card, id, body);  // app.js says what is missing
    }
    if (held.has(id)) return;
    err.textContent = "";
    const bar = document.createElement("div");
    bar.className = "held"; bar.setAttribute("role", "status");
    const text = document.createElement("span");
    const undo = document.createElement("button"); undo.className = "undo"; undo.textContent = "Undo (u)";
    undo.onclick = () => cancel(id);
    bar.append(text, undo);
    card.querySelector(".actions").before(bar);
    card.classList.add("is-held");
    const until = Date.now() + HOLD_S * 1000;
    const what = body.decision === "confirm" ? `Confirming · ${body.action}` : `Dismissing · ${body.reason}`;
    const show = () => { text.textContent = `${what} — sending in ${Math.max(0, Math.ceil((until - Date.now()) / 1000))} s `; };
    show();
    const ticker = setInterval(show, 250);
    const timer = setTimeout(() => { clearInterval(ticker); held.delete(id); bar.remove(); card.classList.remove("is-held"); send(card, id, body); }, HOLD_S * 1000);
    held.set(id, {timer, ticker, card, bar, body, until});
    if (id === selectedId) move(1);
  }

  function cancel(id) {
    const h = held.get(id);
    if (!h) return false;
    clearTimeout(h.timer); clearInterval(h.ticker); h.bar.remove(); h.card.classList.remove("is-held");
    held.delete(id);
    select(h.card);
    return true;
  }

  function undoLast() {
    const last = [...held.entries()].sort((a, b) => b[1].until - a[1].until)[0];
    if (last) cancel(last[0]);
  }

  window.decide = hold;
  try { decide = hold; } catch (e) { /* app.js's binding is the window's */ }

  // -- overlays --------------------------------------------------------------------------------
  function overlay(id, build) {
    let el = document.getElementById(id);
    if (!el) {
      el = document.createElement("div"); el.id = id; el.className = "overlay"; el.hidden = true;
      el.setAttribute("role", "dialog"); el.setAttribute("aria-modal", "true");
      el.onclick = ev => { if (ev.target === el) el.hidden = true; };
      document.body.append(el);
    }
    if (build) { el.replaceChildren(...build()); el.hidden = false; }
    return el;
  }
  const closeAll = () => { let any = false; for (const el of document.querySelectorAll(".overlay")) { any = any || !el.hidden; el.hidden = true; } return any; };

  function zoom(card) {
    if (!card) return;
    overlay("zoom", () => {
      const box = document.createElement("div"); box.className = "zoom-box";
      for (const [sel, cap] of [["img.context", "Wider view"], ["img.crop", "Live camera"], ["img.reference", "Watch-list image that matched"]]) {
        const src = card.querySelector(sel);
        if (!src || !src.src || src.hidden) continue;
        const fig = document.createElement("figure"), img = document.createElement("img"), fc = document.createElement("figcaption");
        img.src = src.src; img.alt = cap; fc.textContent = cap; fig.append(img, fc); box.append(fig);
      }
      const p = document.createElement("p"); p.textContent = `${card.querySelector(".ref").textContent} · Esc or z to close`;
      return [box, p];
    });
  }

  function help() {
    overlay("help", () => {
      const h = document.createElement("h2"); h.textContent = "Keyboard";
      const dl = document.createElement("dl");
      for (const [k, v] of [["j or Down", "next open alert"], ["k or Up", "previous open alert"],
        ["c, then 1-4", "confirm: " + ACTIONS.map((a, i) => `${i + 1} ${a}`).join(", ")],
        ["d, then 1-3", "dismiss: " + REASONS.map((a, i) => `${i + 1} ${a}`).join(", ")],
        ["n", "write a note on the selected alert (Esc to leave it)"], ["z", "zoom the crop (or click it)"],
        ["o", "the entry's other reference images (again to hide)"], ["h", "the history page (q comes back)"],
        ["x", "understood: clear the first NOT COUNTED notice"],
        ["u", `undo the last decision (held ${HOLD_S} s before it is sent)`], ["?", "this help"], ["Esc", "close / cancel"]]) {
        const dt = document.createElement("dt"), dd = document.createElement("dd");
        const kbd = document.createElement("kbd"); kbd.textContent = k; dt.append(kbd); dd.textContent = v; dl.append(dt, dd);
      }
      return [h, dl];
    });
  }

  document.addEventListener("keydown", ev => {
    const t = ev.target;
    if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT")) {
      if (ev.key === "Escape") { t.blur(); ev.preventDefault(); }
      return;
    }
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const card = selected();
    if (mode && /^[1-9]$/.test(ev.key) && card) {
      const n = Number(ev.key) - 1, list = mode === "confirm" ? ACTIONS : REASONS;
      if (n < list.length) {
        const body = mode === "confirm" ? {decision: "confirm", action: list[n]} : {decision: "dismiss", reason: list[n]};
        setMode("");
        hold(card, card.dataset.alertId, body);
      }
      ev.preventDefault(); return;
    }
    switch (ev.key) {
      case "j": case "ArrowDown": move(1); break;
      case "k": case "ArrowUp": move(-1); break;
      case "c": if (card && !held.has(card.dataset.alertId)) setMode("confirm"); break;
      case "d": if (card && !held.has(card.dataset.alertId)) setMode("dismiss"); break;
      case "n": if (card) { card.querySelector(".note").focus(); } break;
      case "o": { started = true; const b = card && card.querySelector(".others-btn"); if (b) b.click(); break; }
      case "h": location.href = "/history"; break;
      case "x": { const b = document.querySelector("#notices .notice-read"); if (b) b.click(); break; }
      case "z": { const z = document.getElementById("zoom"); if (z && !z.hidden) z.hidden = true; else zoom(card); break; }
      case "u": undoLast(); break;
      case "?": { const h = document.getElementById("help"); if (h && !h.hidden) h.hidden = true; else help(); break; }
      case "Escape": if (!closeAll()) setMode(""); break;
      default: return;
    }
    ev.preventDefault();
  });

  document.addEventListener("click", ev => {  // click-to-zoom on the live crop
    const img = ev.target.closest && ev.target.closest(".card img.crop, .card img.context");
    if (img) zoom(img.closest(".card"));
  });

  document.addEventListener("edge-state", () => {  // keep a selection; drop holds whose card has gone
    for (const [id, h] of held) if (!h.card.isConnected) { clearTimeout(h.timer); clearInterval(h.ticker); held.delete(id); }
    if (!selected()) { if (started) move(0); } else setMode(mode);
  });

  const tip = document.createElement("button");
  tip.id = "help-button"; tip.textContent = "Keys (?)"; tip.onclick = help;
  const who = document.querySelector(".who"); if (who) who.prepend(tip);
})();
