// The login form (a file, not inline: the console's CSP allows scripts from this origin only).
"use strict";
document.getElementById("login").addEventListener("submit", async (e) => {
  e.preventDefault();
  const r = await fetch("/api/login", {method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({name: document.getElementById("name").value,
                          password: document.getElementById("password").value})});
  if (r.ok) { location.href = "/"; return; }
  document.getElementById("error").textContent = (await r.json()).error || "login failed";
});
