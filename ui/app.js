// poolwatch web UI entry point: hash routing (`#/detections?stage=stratum` — the state is in
// the URL, so links are shareable), the token dialog, and the live event stream.

import { h, clear, api, getToken, setToken, liveStream, toast, errorBox, STAGE_LABEL } from "./lib.js";
import * as pages from "./pages.js";

const main = document.getElementById("main");
const liveEl = document.getElementById("live");
const authBtn = document.getElementById("auth-btn");
const dialog = document.getElementById("token-dialog");

let session = { token: "none", can_read: false, can_write: false, read_token_required: false, writes_enabled: false };
let current = null; // the page's live-update hooks
let renderSeq = 0;
let stopLive = null;

const ROUTES = [
  [/^$/, "overview", pages.overview],
  [/^detections$/, "detections", pages.detections],
  [/^detections\/([^/]+)$/, "detections", pages.detail],
  [/^hosts\/([^/]+)$/, "detections", pages.host],
  [/^lists$/, "lists", pages.lists],
];

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const q = raw.indexOf("?");
  const path = (q < 0 ? raw : raw.slice(0, q)).replace(/\/$/, "");
  const params = new URLSearchParams(q < 0 ? "" : raw.slice(q + 1));
  return { path, params };
}

async function render(keepScroll) {
  const seq = ++renderSeq;
  const { path, params } = parseHash();
  let route = null;
  let args = [];
  for (const [re, nav, fn] of ROUTES) {
    const m = path.match(re);
    if (m) { route = { nav, fn }; args = m.slice(1).map((a) => { try { return decodeURIComponent(a); } catch { return a; } }); break; }
  }
  for (const a of document.querySelectorAll("#nav a")) {
    const on = route && a.dataset.route === route.nav;
    a.classList.toggle("on", !!on);
    if (on) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  if (!route) {
    clear(main).append(h("div", { class: "panel" }, h("h1", {}, "Not found"), h("p", {}, "No such page. ", h("a", { href: "#/" }, "Overview"))));
    return;
  }
  if (!session.can_read) {
    renderLocked();
    return;
  }
  const y = window.scrollY;
  try {
    const ctx = { main: document.createElement("div"), params, args, session, refresh: () => render(true) };
    const hooks = await route.fn(ctx);
    if (seq !== renderSeq) return; // a newer navigation won
    clear(main);
    while (ctx.main.firstChild) main.appendChild(ctx.main.firstChild);
    ctx.main = main;
    current = hooks || null;
  } catch (e) {
    if (seq !== renderSeq) return;
    current = null;
    if (e.status === 401 || e.status === 403) { await refreshSession(); if (!session.can_read) { renderLocked(); return; } }
    clear(main).append(errorBox(e));
  }
  if (keepScroll) window.scrollTo(0, y);
  else if (!document.activeElement || document.activeElement === document.body) main.focus({ preventScroll: true });
  document.title = "poolwatch · " + (route.nav[0].toUpperCase() + route.nav.slice(1));
  // For the page-load benchmark (benches/ui_load.rs): when the first page finished rendering.
  if (!firstRendered) { firstRendered = true; performance.mark("poolwatch-rendered"); }
}
let firstRendered = false;

function renderLocked() {
  current = null;
  clear(main).append(h("section", { class: "panel locked", id: "locked" },
    h("h1", {}, "Token required"),
    h("p", {}, session.token === "invalid" ? "The token in this tab is not valid for this server." : "This poolwatch server needs a read (or admin) token to show data."),
    h("button", { class: "btn primary", type: "button", onclick: openDialog }, "Enter token")));
}

async function refreshSession() {
  try {
    session = await api("/session");
  } catch (e) {
    session = { token: "none", can_read: false, can_write: false };
  }
  const label = { none: session.can_read ? "No token · read" : "No token", read: "Read token", admin: "Admin", invalid: "Invalid token" }[session.token] || "Token";
  authBtn.textContent = label;
  authBtn.className = "btn ghost auth-" + session.token;
  authBtn.title = session.can_write ? "Admin token: reads and writes" : session.writes_enabled ? "Read-only; enter the admin token to suppress and edit lists" : "Read-only server (no admin token configured)";
  document.body.classList.toggle("can-write", !!session.can_write);
}

function startLive() {
  if (stopLive) stopLive();
  stopLive = null;
  if (!session.can_read) { setLive(false); return; }
  stopLive = liveStream(onEvent, setLive);
}

function setLive(on) {
  liveEl.textContent = on ? "live" : "offline";
  liveEl.classList.toggle("on", on);
  liveEl.classList.toggle("off", !on);
  liveEl.title = on ? "Receiving new detections as they happen" : "Not connected to the event stream; retrying";
}

function onEvent(kind, d) {
  if (kind === "lagged") { if (current && current.onEvent) current.onEvent("lagged", {}); return; }
  if (kind !== "new" && kind !== "upgraded") return;
  const what = `${kind === "new" ? "New" : "Upgraded"}: ${d.client_ip} · ${STAGE_LABEL[d.stage] || d.stage} · ${d.pool_domain}`;
  toast(what, d.risk_score >= 80 ? "alert" : "info", () => { location.hash = "#/detections/" + encodeURIComponent(d.id); });
  if (current && current.onEvent) current.onEvent(kind, d);
}

// ---------------------------------------------------------------------------------------------
// Token dialog
// ---------------------------------------------------------------------------------------------

function openDialog() {
  document.getElementById("token-error").textContent = "";
  document.getElementById("token-input").value = "";
  dialog.showModal();
  document.getElementById("token-input").focus();
}

document.getElementById("token-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const t = document.getElementById("token-input").value.trim();
  const old = getToken();
  setToken(t);
  await refreshSession();
  if (session.token === "invalid" || !t) {
    setToken(old);
    await refreshSession();
    document.getElementById("token-error").textContent = "This token is not valid for this server.";
    return;
  }
  dialog.close();
  toast(session.can_write ? "Admin token in use (this tab only)" : "Read token in use (this tab only)");
  startLive();
  render();
});
document.getElementById("token-cancel").addEventListener("click", () => dialog.close());
document.getElementById("token-forget").addEventListener("click", async () => {
  setToken("");
  dialog.close();
  await refreshSession();
  startLive();
  render();
});
authBtn.addEventListener("click", openDialog);

document.getElementById("hostjump").addEventListener("submit", (e) => {
  e.preventDefault();
  const v = document.getElementById("hostjump-ip").value.trim();
  if (v) location.hash = "#/hosts/" + encodeURIComponent(v);
});

// Keyboard: "/" focuses the first filter or the host box; g o / g d / g l switch pages.
let gPressed = 0;
document.addEventListener("keydown", (e) => {
  const tag = (e.target && e.target.tagName) || "";
  if (["INPUT", "TEXTAREA", "SELECT"].includes(tag) || e.metaKey || e.ctrlKey || e.altKey) return;
  if (e.key === "/") {
    e.preventDefault();
    (document.querySelector("#filters input") || document.getElementById("hostjump-ip")).focus();
  } else if (e.key === "g") {
    gPressed = Date.now();
  } else if (Date.now() - gPressed < 1000) {
    const to = { o: "#/", d: "#/detections", l: "#/lists" }[e.key];
    if (to) location.hash = to;
    gPressed = 0;
  }
});

window.addEventListener("hashchange", () => render(false));

// The live stream holds an HTTP/1.1 connection, and browsers allow only six per server: a tab
// in the background (or a page kept in the back/forward cache) gives its stream up, so that
// open tabs never starve each other's API calls. Coming back reconnects and catches up.
function pauseLive() {
  if (stopLive) { stopLive(); stopLive = null; }
}
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "hidden") pauseLive();
  else if (!stopLive) { startLive(); render(true); }
});
window.addEventListener("pagehide", pauseLive);
window.addEventListener("pageshow", (e) => { if (e.persisted && !stopLive) { startLive(); render(true); } });

(async function start() {
  await refreshSession();
  startLive();
  render();
})();
