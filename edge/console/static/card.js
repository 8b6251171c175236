// What an alert card shows beyond app.js's basics (issue 18): why the person is listed, the wider view
// around the face, and the entry's other reference images on demand. The fields come with each open
// alert in /api/state (edge/console/cards.py); an alert from an older box has none of them.
"use strict";
(() => {
  function fill(card, a) {
    if (card.dataset.cardFilled) return;
    card.dataset.cardFilled = "1";
    const cat = card.querySelector(".category");
    const why = document.createElement("div");
    why.className = "listed-for";
    const lab = document.createElement("b"); lab.textContent = "Listed for: ";
    why.append(lab, document.createTextNode(a.listed_for || "(no reason given by this box)"));
    cat.after(why);
    cat.textContent = a.category ? `Category: ${a.category}` : "";
    const ref = card.querySelector("img.reference");
    if (ref) { ref.alt = "the watch-list image that matched"; ref.nextElementSibling.textContent = "Watch list (matched image)"; }
    const images = card.querySelector(".images");
    if (a.has_context) {
      const fig = document.createElement("figure"), img = document.createElement("img"), cap = document.createElement("figcaption");
      fig.className = "context-fig"; img.className = "context";  // loaded now: the compact card hides it
      img.alt = "wider view around the face (face outlined)"; img.title = "click to zoom";
      img.src = `/api/alerts/${a.alert_id}/context.jpg`; cap.textContent = "Wider view";
      fig.append(img, cap); images.append(fig);
    }
    card.querySelector("img.crop").title = "click to zoom (z)";
    if (a.other_references > 0) {
      const btn = document.createElement("button"), strip = document.createElement("div");
      btn.className = "others-btn"; strip.className = "others"; strip.hidden = true;
      btn.textContent = `Other reference images (${a.other_references})`;
      btn.setAttribute("aria-expanded", "false");
      btn.onclick = () => {
        if (!strip.childElementCount) {
          for (let i = 0; i < a.other_references; i++) {
            const img = document.createElement("img");
            img.src = `/api/alerts/${a.alert_id}/other-${i}.jpg`; img.alt = `other reference image ${i + 1} of ${a.ref}`;
            strip.append(img);
          }
        }
        strip.hidden = !strip.hidden; btn.setAttribute("aria-expanded", String(!strip.hidden));
      };
      why.after(btn, strip);
    }
  }
  document.addEventListener("edge-state", ev => {
    for (const a of ev.detail.open || []) {
      const card = document.querySelector(`#queue .card[data-alert-id="${CSS.escape(a.alert_id)}"]`);
      if (card) fill(card, a);
    }
  });
})();
