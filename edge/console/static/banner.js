// Loud failures (issue 18): banners above everything for what stops the console seeing people — a box
// disconnected, a camera down, a box NOT matching, a list about to expire — and a distinct alarm sound
// (low pulses, unlike the two-tone new-alert chime) for each new alarm, repeated every 30 s until
// acknowledged. The banners come from the server (/api/state "banners", edge/console/alarms.py); app.js
// hands each state it fetches over as an "edge-state" event, and this file also polls every 2 s so a
// quiet page still notices (and says so when the console server itself stops answering).
"use strict";
(() => {
  const box = document.getElementById("banners");
  const REPEAT_MS = 30000;
  let active = [], seen = new Set(), acked = new Set(), ctx = null, lastSound = 0, serverDown = false;
  window.edgeAlarm = {sounds: 0, last: "", active: []};  // read by the browser tests and by curious engineers

  function sound(key) {
    window.edgeAlarm.sounds += 1; window.edgeAlarm.last = key; lastSound = Date.now();
    document.body.dataset.alarmSounds = String(window.edgeAlarm.sounds);
    try {
      ctx = ctx || new AudioContext();
      for (let i = 0; i < 3; i++) {  // three low square-wave pulses: not the alert chime
        const o = ctx.createOscillator(), g = ctx.createGain();
        o.type = "square"; o.frequency.value = i === 2 ? 247 : 330; g.gain.value = 0.12;
        o.connect(g); g.connect(ctx.destination);
        o.start(ctx.currentTime + i * 0.35); o.stop(ctx.currentTime + i * 0.35 + 0.25);
      }
    } catch (e) { /* no audio device: the banner remains */ }
  }

  function render() {
    const list = serverDown ? [{level: "alarm", key: "console-server",
      text: "This console's server is NOT answering: nothing on this page is live. Call the engineer."}, ...active] : active;
    box.replaceChildren();
    for (const b of list) {
      const div = document.createElement("div");
      div.className = `banner ${b.level}`; div.dataset.key = b.key; div.setAttribute("role", "alert");
      const tag = document.createElement("b");
      tag.textContent = b.level === "alarm" ? "ALARM" : "WARNING";
      const text = document.createElement("span"); text.className = "text"; text.textContent = b.text;
      div.append(tag, text);
      if (b.level === "alarm") {
        const ack = document.createElement("button");
        ack.className = "ack"; ack.textContent = acked.has(b.key) ? "Acknowledged" : "Acknowledge (silence)";
        ack.disabled = acked.has(b.key);
        ack.onclick = () => { acked.add(b.key); render(); };
        div.append(ack);
      }
      if (ctx && ctx.state === "suspended" && b.level === "alarm") {
        const n = document.createElement("small"); n.textContent = " (sound blocked: click or press a key)"; div.append(n);
      }
      box.append(div);
    }
    window.edgeAlarm.active = list.map(b => b.key);
    document.body.classList.toggle("in-alarm", list.some(b => b.level === "alarm"));
  }

  function update(banners) {
    active = banners || [];
    const keys = new Set(active.map(b => b.key));
    const fresh = active.filter(b => b.level === "alarm" && !seen.has(b.key));
    seen = keys; acked = new Set([...acked].filter(k => keys.has(k)));
    render();
    if (fresh.length) sound(fresh[0].key);
  }

  document.addEventListener("edge-state", ev => { serverDown = false; update(ev.detail.banners); });
  async function poll() {
    try {
      const r = await fetch("/api/state");
      if (r.status === 401) return;
      const was = serverDown; serverDown = !r.ok;
      update((await r.json()).banners);
      if (serverDown && !was) sound("console-server");
    } catch (e) {
      if (!serverDown) { serverDown = true; render(); sound("console-server"); }
    }
  }
  setInterval(poll, 2000);
  setInterval(() => {  // an alarm nobody acknowledged sounds again
    const open = [...(serverDown ? ["console-server"] : []), ...active.filter(b => b.level === "alarm").map(b => b.key)]
      .filter(k => !acked.has(k));
    if (open.length && Date.now() - lastSound > REPEAT_MS) sound(open[0]);
  }, 5000);
  const resume = () => { if (ctx && ctx.state === "suspended") ctx.resume(); };
  document.addEventListener("keydown", resume); document.addEventListener("click", resume);
})();
