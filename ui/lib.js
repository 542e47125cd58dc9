// poolwatch UI helpers: DOM building (text only, never HTML strings), the API client, the
// token store, the live event stream, formatting. No dependencies.

const TOKEN_KEY = "poolwatch.token";

// ---------------------------------------------------------------------------------------------
// DOM
// ---------------------------------------------------------------------------------------------

/** Appends children: strings become text nodes (so data can never become markup). */
function append(el, kids) {
  for (const k of kids) {
    if (k === null || k === undefined || k === false) continue;
    if (Array.isArray(k)) append(el, k);
    else if (k instanceof Node) el.appendChild(k);
    else el.appendChild(document.createTextNode(String(k)));
  }
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.setAttribute("class", v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "value") el.value = v;
    else if (k === "checked" || k === "disabled" || k === "selected") el[k] = !!v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
}

/** `h("a", {href, class}, "text", child…)`: an HTML element. */
export function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  return append(el, kids);
}

const SVG_NS = "http://www.w3.org/2000/svg";
/** An SVG element. */
export function s(tag, attrs, ...kids) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, String(v));
  }
  return append(el, kids);
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

/** Replaces the children of `el` (null/false children are skipped, strings become text). */
export function mount(el, ...kids) {
  return append(clear(el), kids);
}

// ---------------------------------------------------------------------------------------------
// Token and API
// ---------------------------------------------------------------------------------------------

export function getToken() {
  try { return sessionStorage.getItem(TOKEN_KEY) || ""; } catch { return ""; }
}
export function setToken(t) {
  try {
    if (t) sessionStorage.setItem(TOKEN_KEY, t);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch { /* storage disabled: the token lives only in memory for this page */ }
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
  }
}

function authHeaders(extra) {
  const hd = Object.assign({}, extra || {});
  const t = getToken();
  if (t) hd["Authorization"] = "Bearer " + t;
  return hd;
}

/** `api("/detections?…")` → parsed JSON; throws ApiError with the API's code and message. */
export async function api(path, opts = {}) {
  const init = { method: opts.method || "GET", headers: authHeaders(), cache: "no-store" };
  if (opts.body !== undefined) {
    if (typeof opts.body === "string") {
      init.body = opts.body;
      init.headers["Content-Type"] = "text/plain; charset=utf-8";
    } else {
      init.body = JSON.stringify(opts.body);
      init.headers["Content-Type"] = "application/json";
    }
  }
  if (opts.signal) init.signal = opts.signal;
  let resp;
  try {
    resp = await fetch("/api/v1" + path, init);
  } catch (e) {
    if (e && e.name === "AbortError") throw e;
    throw new ApiError(0, "network", "cannot reach the poolwatch server");
  }
  if (resp.status === 204) return null;
  const text = await resp.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = null; }
  if (!resp.ok) {
    const err = body && body.error ? body.error : {};
    const e = new ApiError(resp.status, err.code || "http_" + resp.status, err.message || resp.statusText);
    if (err.problems) e.problems = err.problems;
    throw e;
  }
  return body;
}

/** Builds a query string from an object, skipping empty values. */
export function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === "") continue;
    u.set(k, String(v));
  }
  const t = u.toString();
  return t ? "?" + t : "";
}

// ---------------------------------------------------------------------------------------------
// Live event stream: fetch + ReadableStream, so the bearer token goes in a header (EventSource
// cannot set one, and a token must never be put in a URL).
// ---------------------------------------------------------------------------------------------

/** Longest SSE event kept in the buffer; a server never sends more (one detection ≈ 10 KB). */
const MAX_SSE_BUFFER = 1 << 20;

export function liveStream(onEvent, onState) {
  let ctl = null;
  let stopped = false;
  let delay = 1000;
  async function run() {
    while (!stopped) {
      ctl = new AbortController();
      try {
        const resp = await fetch("/api/v1/detections/stream", {
          headers: authHeaders({ Accept: "text/event-stream" }),
          signal: ctl.signal,
          cache: "no-store",
        });
        if (!resp.ok || !resp.body) throw new Error("HTTP " + resp.status);
        onState(true);
        delay = 1000;
        const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          if (buf.length > MAX_SSE_BUFFER) buf = "";
          let i;
          while ((i = buf.search(/\r?\n\r?\n/)) >= 0) {
            const chunk = buf.slice(0, i);
            buf = buf.slice(i).replace(/^\r?\n\r?\n/, "");
            let ev = "message";
            const data = [];
            for (const line of chunk.split(/\r?\n/)) {
              if (line.startsWith(":")) continue;
              const c = line.indexOf(":");
              const field = c < 0 ? line : line.slice(0, c);
              const val = c < 0 ? "" : line.slice(c + 1).replace(/^ /, "");
              if (field === "event") ev = val;
              else if (field === "data") data.push(val);
            }
            if (!data.length) continue;
            let parsed = null;
            try { parsed = JSON.parse(data.join("\n")); } catch { continue; }
            try { onEvent(ev, parsed); } catch (e) { console.error(e); }
          }
        }
      } catch (e) {
        if (stopped) return;
      }
      onState(false);
      if (stopped) return;
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 15000);
    }
  }
  run();
  return () => { stopped = true; if (ctl) ctl.abort(); onState(false); };
}

// ---------------------------------------------------------------------------------------------
// Domain vocabulary and formatting
// ---------------------------------------------------------------------------------------------

export const STAGES = ["lookup", "blocked_lookup", "connection_attempt", "connection", "direct_ip", "stratum"];
export const STAGE_LABEL = {
  lookup: "Lookup",
  blocked_lookup: "Blocked lookup",
  connection_attempt: "Connection attempt",
  connection: "Connection",
  direct_ip: "Direct IP",
  stratum: "Stratum",
};
export const STAGE_HELP = {
  lookup: "Resolved a pool name",
  blocked_lookup: "Pool lookup was blocked (NXDOMAIN / sinkhole)",
  connection_attempt: "Tried to connect to a pool address, no handshake",
  connection: "Connected to an address from its own pool lookup",
  direct_ip: "Connected to a pool address it never resolved",
  stratum: "Mining protocol seen on the wire",
};

export function stagePill(stage) {
  return h("span", { class: "pill st-" + stage, title: STAGE_HELP[stage] || "" }, STAGE_LABEL[stage] || stage);
}

export function riskBand(r) {
  return r >= 90 ? "critical" : r >= 80 ? "high" : r >= 60 ? "medium" : "low";
}
export function riskBadge(r) {
  return h("span", { class: "risk r-" + riskBand(r), title: riskBand(r) + " risk" }, String(r));
}

const pad = (n) => String(n).padStart(2, "0");
/** `2026-11-26 20:00:01` (UTC, the API's time). */
export function fmtTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (isNaN(d)) return String(iso);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
}
export function fmtTimeShort(iso) {
  const d = new Date(iso);
  if (isNaN(d)) return "";
  return `${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
}
/** "3 min ago", "in 4 h". */
export function fmtRel(iso, now = Date.now()) {
  const t = new Date(iso).getTime();
  if (isNaN(t)) return "";
  let s = Math.round((t - now) / 1000);
  const future = s > 0;
  s = Math.abs(s);
  let v;
  if (s < 60) v = s + " s";
  else if (s < 3600) v = Math.round(s / 60) + " min";
  else if (s < 86400) v = Math.round(s / 3600) + " h";
  else v = Math.round(s / 86400) + " d";
  return future ? "in " + v : v + " ago";
}
export function timeEl(iso) {
  return h("time", { datetime: iso || "", title: iso ? fmtRel(iso) + " · " + iso : "" }, fmtTime(iso));
}
export function fmtBytes(n) {
  if (n === null || n === undefined) return "—";
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = Number(n);
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return (i ? v.toFixed(1) : String(v)) + " " + u[i];
}
export function fmtNum(n) {
  return Number(n || 0).toLocaleString("en-US");
}

/** Relative range names used in URLs (`since=24h`) → RFC 3339. */
export const RANGES = { "1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400 };
export function resolveSince(v) {
  if (!v) return "";
  if (RANGES[v]) return new Date(Date.now() - RANGES[v] * 1000).toISOString();
  return v;
}

/**
 * The risk score's parts, from the documented rules (docs/detections.md, "Risk score"):
 * highest base among the stages reached, plus bonuses, capped at 100.
 */
export function riskBreakdown(d) {
  const BASE = { blocked_lookup: 45, lookup: 60, connection_attempt: 84, connection: 88, direct_ip: 90, stratum: 95 };
  const c = d.counts || {};
  const contact = ["connection_attempt", "connection", "direct_ip", "stratum"].includes(d.stage);
  let base = BASE[d.stage] || 0;
  let baseWhy = STAGE_LABEL[d.stage] || d.stage;
  if (d.stage === "blocked_lookup" && (c.lookups || 0) > 0) { base = BASE.lookup; baseWhy = "Lookup (also resolved)"; }
  const parts = [{ label: "Base: " + baseWhy, points: base }];
  if (contact && (d.agents || []).length) parts.push({ label: "Miner agent string seen", points: 2 });
  const longFlow = (d.evidence || []).some((e) => e.state === "established" || e.state === "closed" ? (e.duration_ms || 0) >= 600000 : false);
  if (contact && ((c.bytes_out || 0) + (c.bytes_in || 0) >= 1048576 || longFlow)) parts.push({ label: "Sustained session (≥ 1 MiB or ≥ 10 min)", points: 3 });
  if ((c.lookups || 0) >= 10) parts.push({ label: "Retried lookups (≥ 10)", points: 1 });
  const sum = Math.min(100, parts.reduce((a, p) => a + p.points, 0));
  return { parts, sum, matches: sum === d.risk_score };
}

// ---------------------------------------------------------------------------------------------
// Downloads
// ---------------------------------------------------------------------------------------------

/** A CSV cell: quoted, and defused when a spreadsheet would run it as a formula. */
export function csvCell(v) {
  let t = v === null || v === undefined ? "" : Array.isArray(v) ? v.join(" ") : String(v);
  if (/^[=+\-@\t\r]/.test(t)) t = "'" + t;
  return '"' + t.replace(/"/g, '""') + '"';
}

export function download(name, type, text) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = h("a", { href: url, download: name, class: "sr" });
  document.body.appendChild(a);
  a.click();
  setTimeout(() => { URL.revokeObjectURL(url); a.remove(); }, 1000);
}

export function toast(text, kind = "info", onClick) {
  const box = document.getElementById("toasts");
  if (!box) return;
  const t = h("div", { class: "toast " + kind, role: kind === "error" ? "alert" : "status" }, text);
  if (onClick) {
    t.classList.add("clickable");
    t.tabIndex = 0;
    t.addEventListener("click", onClick);
    t.addEventListener("keydown", (e) => { if (e.key === "Enter") onClick(); });
  }
  box.appendChild(t);
  while (box.children.length > 4) box.firstChild.remove();
  setTimeout(() => t.remove(), 6000);
}

export function errorBox(e) {
  return h("div", { class: "panel error-panel", role: "alert" },
    h("strong", {}, e.status ? `Error ${e.status} (${e.code})` : "Error"), " ", e.message || String(e));
}
