// What both console pages share: the CSRF-carrying POST, distance in words, durations, and every time in
// the site's time zone with its offset (console.timezone, from /api/state), never the browser's locale.
"use strict";
const $ = (sel, root = document) => root.querySelector(sel);
let csrf = "";  // the session's CSRF token, from /api/state: sent with every state-changing request
window.edgeTZ = "UTC";

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

// "2026-12-06 08:12:03 +00:00": an ISO time or Unix seconds, in the site's zone, with its offset
function siteTime(v, timeOnly = false) {
  const d = typeof v === "number" ? new Date(v * 1000) : new Date(v);
  if (isNaN(d)) return "";
  const p = Object.fromEntries(new Intl.DateTimeFormat("en-GB", {timeZone: window.edgeTZ, year: "numeric",
    month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
    timeZoneName: "longOffset"}).formatToParts(d).map(x => [x.type, x.value]));
  const off = (p.timeZoneName || "").replace("GMT", "") || "+00:00";
  const clock = `${p.hour}:${p.minute}:${p.second} ${off}`;
  return timeOnly ? clock : `${p.year}-${p.month}-${p.day} ${clock}`;
}

// A date-time field's "2026-12-06T08:00" read as the site's time (not the browser's): Unix seconds
function siteEpoch(value) {
  if (!value) return "";
  const [d, t] = value.split("T"), [y, mo, da] = d.split("-").map(Number), [h, mi] = t.split(":").map(Number);
  const guess = Date.UTC(y, mo - 1, da, h, mi) / 1000;
  const off = s => { const m = siteTime(s).slice(20).match(/([+-])(\d\d):(\d\d)/); return m ? (m[1] === "-" ? -1 : 1) * (m[2] * 3600 + m[3] * 60) : 0; };
  return String(guess - off(guess - off(guess)));
}
