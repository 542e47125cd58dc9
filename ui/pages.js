// The pages. Each `render(ctx)` builds its DOM from API answers with text nodes only and may
// return `{onEvent(kind, detection)}` for live updates.

import {
  h, clear, mount, api, qs, ApiError, STAGES, STAGE_LABEL, stagePill, riskBadge, riskBand, timeEl,
  fmtTime, fmtRel, fmtBytes, fmtNum, resolveSince, RANGES, riskBreakdown, csvCell, download,
  toast, errorBox,
} from "./lib.js";
import { timelineChart, stageLegend, proportionBar } from "./chart.js";

const hostLink = (ip) => h("a", { href: "#/hosts/" + encodeURIComponent(ip), class: "mono" }, ip);
const detLink = (d, text) => h("a", { href: "#/detections/" + encodeURIComponent(d.id) }, text);
const poolLink = (p) => h("a", { href: "#/detections" + qs({ pool: p }), class: "mono" }, p);

function card(title, ...kids) {
  return h("section", { class: "panel" }, h("h2", {}, title), ...kids);
}

function table(cols, rows, opts = {}) {
  return h("div", { class: "table-wrap" },
    h("table", { class: "grid-table" + (opts.compact ? " compact" : ""), id: opts.id || null },
      opts.caption ? h("caption", { class: "sr" }, opts.caption) : null,
      h("thead", {}, h("tr", {}, cols.map((c) => h("th", { scope: "col", class: c.cls || null }, c.label)))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: cols.length, class: "muted empty" }, opts.empty || "Nothing here.")))));
}

// ---------------------------------------------------------------------------------------------
// Overview
// ---------------------------------------------------------------------------------------------

export async function overview(ctx) {
  const range = ctx.params.get("range") || "all";
  const main = ctx.main;
  const since = range === "all" ? "" : resolveSince(range);
  const q = qs({ since });
  const [sum, latest] = await Promise.all([
    api("/summary" + q),
    api("/detections" + qs({ since, limit: 8 })),
  ]);
  const rangeNav = h("div", { class: "seg-ctl", role: "group", "aria-label": "Time range" },
    [["1h", "1 h"], ["24h", "24 h"], ["7d", "7 d"], ["30d", "30 d"], ["all", "All"]].map(([v, l]) =>
      h("a", { href: "#/" + (v === "all" ? "" : qs({ range: v })), class: v === range ? "on" : null, "aria-current": v === range ? "true" : null }, l)));

  const stageCards = h("div", { class: "stage-cards", id: "stage-counts" },
    STAGES.slice().reverse().map((st) =>
      h("a", { class: "stat st-border-" + st, href: "#/detections" + qs({ stage: st, since: range === "all" ? "" : range }), dataset: { stage: st } },
        h("span", { class: "stat-label" }, STAGE_LABEL[st]),
        h("span", { class: "stat-value", dataset: { count: st } }, fmtNum(sum.by_stage[st])))));

  const kpis = h("div", { class: "kpis" },
    kpi("Detections", fmtNum(sum.total), "kpi-total", sum.truncated ? "newest " + fmtNum(sum.total) + " counted" : null),
    kpi("Hosts", fmtNum(sum.hosts), "kpi-hosts"),
    kpi("New hosts · 24 h", fmtNum(sum.new_hosts_24h), "kpi-new24", fmtNum(sum.new_hosts) + " new in range"),
    kpi("Critical · High", `${fmtNum(sum.by_risk.critical)} · ${fmtNum(sum.by_risk.high)}`, "kpi-risk"),
    kpi("Suppressed", fmtNum(sum.suppressed), "kpi-suppressed"),
    kpi("Last detection", sum.last_seen ? fmtRel(sum.last_seen) : "—", "kpi-last", sum.last_seen ? fmtTime(sum.last_seen) : null));

  const riskParts = [
    { label: "Critical ≥ 90", value: sum.by_risk.critical, cls: "r-critical" },
    { label: "High 80–89", value: sum.by_risk.high, cls: "r-high" },
    { label: "Medium 60–79", value: sum.by_risk.medium, cls: "r-medium" },
    { label: "Low < 60", value: sum.by_risk.low, cls: "r-low" },
  ];
  const chart = timelineChart(sum.timeline, (b, secs) => {
    const end = new Date(new Date(b.ts).getTime() + secs * 1000 - 1).toISOString();
    location.hash = "#/detections" + qs({ since: b.ts, until: end });
  });

  const pools = table(
    [{ label: "Pool" }, { label: "Detections", cls: "num" }, { label: "Hosts", cls: "num" }, { label: "Strongest" }, { label: "Max risk", cls: "num" }],
    sum.top_pools.map((p) => h("tr", {},
      h("td", {}, poolLink(p.pool_domain)), h("td", { class: "num" }, fmtNum(p.detections)),
      h("td", { class: "num" }, fmtNum(p.clients)), h("td", {}, stagePill(p.strongest_stage)),
      h("td", { class: "num" }, riskBadge(p.max_risk)))),
    { compact: true, id: "top-pools", empty: "No pools in this range." });
  const hosts = table(
    [{ label: "Host" }, { label: "Strongest" }, { label: "Max risk", cls: "num" }, { label: "Pools", cls: "num" }, { label: "Last seen" }],
    sum.top_hosts.map((x) => h("tr", {},
      h("td", {}, hostLink(x.client_ip), x.is_new ? h("span", { class: "tag new" }, "new") : null),
      h("td", {}, stagePill(x.strongest_stage)), h("td", { class: "num" }, riskBadge(x.max_risk)),
      h("td", { class: "num" }, fmtNum(x.pools)), h("td", {}, timeEl(x.last_seen)))),
    { compact: true, id: "top-hosts", empty: "No hosts in this range." });
  const latestBody = h("tbody", {});
  const latestTable = h("div", { class: "table-wrap" }, h("table", { class: "grid-table compact", id: "latest" },
    h("thead", {}, h("tr", {}, ["Last seen", "Host", "Stage", "Risk", "Pool"].map((l) => h("th", { scope: "col" }, l)))), latestBody));
  const latestRow = (d, fresh) => h("tr", { class: fresh ? "fresh" : null, dataset: { id: d.id } },
    h("td", {}, detLink(d, fmtTime(d.last_seen))), h("td", {}, hostLink(d.client_ip)), h("td", {}, stagePill(d.stage)),
    h("td", { class: "num" }, riskBadge(d.risk_score)), h("td", { class: "mono" }, d.pool_domain));
  for (const d of latest.items) latestBody.appendChild(latestRow(d, false));
  if (!latest.items.length) latestBody.appendChild(h("tr", {}, h("td", { colspan: 5, class: "muted empty" }, "No detections yet.")));

  mount(main, 
    h("div", { class: "page-head" }, h("h1", {}, "Overview"), rangeNav),
    kpis,
    stageCards,
    h("div", { class: "cols-2 wide-left" },
      card("Detections over time", h("p", { class: "muted small" }, `by first seen, ${sum.timeline.buckets.length} × ${bucketLabel(sum.timeline.bucket_secs)} buckets, UTC`), chart, stageLegend()),
      card("Risk", proportionBar(riskParts), h("ul", { class: "legend" }, riskParts.map((p) => h("li", {}, h("span", { class: "swatch " + p.cls }), `${p.label}: ${fmtNum(p.value)}`))),
        h("h2", { class: "sub" }, "Exposure"),
        dl([
          ["Mining protocol seen", h("a", { href: "#/detections" + qs({ stage: "stratum" }) }, fmtNum(sum.by_stage.stratum))],
          ["Reached a pool", fmtNum(sum.by_stage.connection_attempt + sum.by_stage.connection + sum.by_stage.direct_ip + sum.by_stage.stratum) + " (attempt, connection, direct IP, Stratum)"],
          ["Looked up only", fmtNum(sum.by_stage.lookup)],
          ["Blocked by the resolver", fmtNum(sum.by_stage.blocked_lookup)],
          ["Pools seen", fmtNum(sum.top_pools.length) + (sum.top_pools.length >= 10 ? "+" : "")],
          ["First detection", sum.first_seen ? timeEl(sum.first_seen) : "—"],
        ]))),
    h("div", { class: "cols-2" }, card("Top pools", pools), card("Top hosts", hosts)),
    card("Latest detections", latestTable, h("p", {}, h("a", { href: "#/detections" }, "All detections →"))));

  let timer = null;
  return {
    onEvent(kind, d) {
      if (kind === "new") {
        latestBody.querySelectorAll("td.empty").forEach((td) => td.parentNode.remove());
        const old = latestBody.querySelector(`tr[data-id="${CSS.escape(d.id)}"]`);
        if (old) old.remove();
        latestBody.insertBefore(latestRow(d, true), latestBody.firstChild);
        while (latestBody.children.length > 8) latestBody.lastChild.remove();
      }
      // Counts and chart: refetch at most once per 800 ms, also during a flood of events.
      if (!timer) timer = setTimeout(() => { timer = null; ctx.refresh(); }, 800);
    },
  };
}

function bucketLabel(s) {
  return s < 60 ? s + " s" : s < 3600 ? s / 60 + " min" : s < 86400 ? s / 3600 + " h" : s / 86400 + " d";
}

function kpi(label, value, id, sub) {
  return h("div", { class: "kpi", id }, h("span", { class: "kpi-label" }, label), h("span", { class: "kpi-value" }, value),
    sub ? h("span", { class: "kpi-sub" }, sub) : null);
}

// ---------------------------------------------------------------------------------------------
// Detections
// ---------------------------------------------------------------------------------------------

const FILTERS = ["client", "pool", "stage", "min_risk", "since", "until", "suppressed"];
/** Most detections one download fetches (50 pages of 1000). */
const MAX_EXPORT = 50000;
const SORTS = {
  last_seen: (d) => d.last_seen, first_seen: (d) => d.first_seen, client_ip: (d) => ipKey(d.client_ip),
  stage: (d) => STAGES.indexOf(d.stage), risk_score: (d) => d.risk_score, pool_domain: (d) => d.pool_domain,
};

function ipKey(ip) {
  if (ip.includes(".")) return "4" + ip.split(".").map((x) => x.padStart(3, "0")).join(".");
  return "6" + ip;
}

function apiFilter(p) {
  const out = {};
  for (const k of FILTERS) {
    const v = p.get(k);
    if (v) out[k] = k === "since" || k === "until" ? resolveSince(v) : v;
  }
  return out;
}

export async function detections(ctx) {
  const p = ctx.params;
  const limit = p.get("limit") || "50";
  const cursor = p.get("cursor") || "";
  const sort = p.get("sort") || "last_seen:desc";
  const filter = apiFilter(p);
  let page;
  let err = null;
  try {
    page = await api("/detections" + qs(Object.assign({}, filter, { limit, cursor })));
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 400) throw e;
    err = e;
    page = { items: [], next_cursor: null };
  }
  const form = filterForm(p, ctx);
  const [sk, sd] = sort.split(":");
  const key = SORTS[sk] ? sk : "last_seen";
  const dir = sd === "asc" ? 1 : -1;
  const items = page.items.slice().sort((a, b) => {
    const x = SORTS[key](a), y = SORTS[key](b);
    return (x < y ? -1 : x > y ? 1 : 0) * dir || (a.last_seen < b.last_seen ? 1 : -1);
  });
  const sortHead = (label, k, cls) => {
    const on = key === k;
    const next = on && dir === -1 ? "asc" : "desc";
    return h("th", { scope: "col", class: cls || null, "aria-sort": on ? (dir === 1 ? "ascending" : "descending") : "none" },
      h("a", { href: "#/detections" + qsFrom(p, { sort: k + ":" + next }), class: "sort" }, label, on ? (dir === 1 ? " ▲" : " ▼") : ""));
  };
  const seen = new Set(page.items.map((d) => d.id));
  const row = (d, fresh) => h("tr", { class: [fresh ? "fresh" : "", d.suppressed ? "suppressed" : ""].join(" ").trim() || null, dataset: { id: d.id } },
    h("td", {}, detLink(d, fmtTime(d.last_seen))),
    h("td", {}, hostLink(d.client_ip), d.is_new ? h("span", { class: "tag new" }, "new") : null),
    h("td", {}, stagePill(d.stage)),
    h("td", { class: "num" }, riskBadge(d.risk_score)),
    h("td", { class: "mono" }, d.pool_domain),
    h("td", { class: "mono names" }, (d.query_names || []).join(", ")),
    h("td", { class: "mono" }, (d.dst_ports || []).join(", ")),
    h("td", {}, d.suppressed ? h("span", { class: "tag muted-tag", title: "suppression " + (d.suppression_id || "") }, "suppressed") : ""));
  const tbody = h("tbody", {}, items.map((d) => row(d, false)));
  if (!items.length) tbody.appendChild(h("tr", {}, h("td", { colspan: 8, class: "muted empty" }, "No detections match these filters.")));
  const tbl = h("div", { class: "table-wrap" }, h("table", { class: "grid-table", id: "detections" },
    h("caption", { class: "sr" }, "Detections; sorting applies to the loaded page"),
    h("thead", {}, h("tr", {},
      sortHead("Last seen", "last_seen"), sortHead("Host", "client_ip"), sortHead("Stage", "stage"),
      sortHead("Risk", "risk_score", "num"), sortHead("Pool", "pool_domain"), h("th", { scope: "col" }, "Query names"),
      h("th", { scope: "col" }, "Ports"), h("th", { scope: "col" }, ""))),
    tbody));
  // Previous pages: the cursors that led here travel in the URL (`prev`), newest last.
  const prev = (p.get("prev") || "").split(",").filter(Boolean);
  const pager = h("nav", { class: "pager", "aria-label": "Pages" },
    h("span", { class: "muted", id: "page-info" }, `${items.length} shown${cursor ? " (later page)" : ""}`),
    cursor ? h("a", { class: "btn ghost", href: "#/detections" + qsFrom(p, { cursor: prev.length ? prev[prev.length - 1].replace(/^-$/, "") : "", prev: prev.slice(0, -1).join(",") }) }, "← Newer") : null,
    page.next_cursor ? h("a", { class: "btn ghost", id: "next-page", href: "#/detections" + qsFrom(p, { cursor: page.next_cursor, prev: prev.concat([cursor || "-"]).join(",") }) }, "Older →") : null,
    h("label", { class: "inline" }, "Per page ",
      h("select", { "aria-label": "Detections per page", onchange: (e) => { location.hash = "#/detections" + qsFrom(p, { limit: e.target.value, cursor: "", prev: "" }); } },
        ["25", "50", "100", "250", "1000"].map((n) => h("option", { value: n, selected: n === limit }, n)))));
  const exp = h("div", { class: "row" },
    h("button", { class: "btn ghost", type: "button", id: "export-csv", onclick: () => exportSet(filter, "csv") }, "Download CSV"),
    h("button", { class: "btn ghost", type: "button", id: "export-json", onclick: () => exportSet(filter, "json") }, "Download JSON"));
  mount(ctx.main, 
    h("div", { class: "page-head" }, h("h1", {}, "Detections"), exp),
    form,
    err ? errorBox(err) : null,
    h("section", { class: "panel flush" }, tbl, pager),
    h("p", { class: "muted small" }, "Newest first from the API, one page at a time; column sorting orders the loaded page. Downloads fetch every page of the filtered set (at most " + fmtNum(MAX_EXPORT) + ")."));

  let timer = null;
  return {
    onEvent() {
      if (cursor) return; // a later page does not change under the reader
      if (timer) return; // one refetch per 300 ms, also during a flood of events
      timer = setTimeout(async () => {
        timer = null;
        try {
          const fresh = await api("/detections" + qs(Object.assign({}, filter, { limit })));
          const rows = fresh.items.map((d) => row(d, !seen.has(d.id)));
          if (!rows.length) return;
          mount(tbody, rows);
          fresh.items.forEach((d) => seen.add(d.id));
          const info = document.getElementById("page-info");
          if (info) info.textContent = `${rows.length} shown · updated live`;
        } catch (e) { /* the next event retries */ }
      }, 300);
    },
  };
}

function qsFrom(p, changes) {
  const o = {};
  for (const [k, v] of p.entries()) o[k] = v;
  Object.assign(o, changes);
  return qs(o);
}

function filterForm(p, ctx) {
  const inp = (name, label, attrs = {}) => h("label", { class: "field" }, h("span", {}, label),
    h("input", Object.assign({ name, value: p.get(name) || "", spellcheck: "false", autocomplete: "off" }, attrs)));
  const sel = (name, label, options) => h("label", { class: "field" }, h("span", {}, label),
    h("select", { name }, options.map(([v, l]) => h("option", { value: v, selected: (p.get(name) || "") === v }, l))));
  const sinceV = p.get("since") || "";
  const custom = sinceV && !RANGES[sinceV];
  const form = h("form", { class: "panel filters", id: "filters", role: "search", "aria-label": "Filter detections" },
    inp("client", "Client IP / CIDR", { placeholder: "192.0.2.0/24", id: "f-client" }),
    inp("pool", "Pool", { placeholder: "supportxmr.com", id: "f-pool" }),
    sel("stage", "Stage", [["", "Any stage"]].concat(STAGES.map((st) => [st, STAGE_LABEL[st]]))),
    inp("min_risk", "Min risk", { type: "number", min: "0", max: "100", placeholder: "0–100", id: "f-risk" }),
    sel("since_preset", "Time range", [["", "Any time"], ["1h", "Last hour"], ["24h", "Last 24 h"], ["7d", "Last 7 days"], ["30d", "Last 30 days"], ["custom", "Custom…"]].map(([v, l]) => [v, l])),
    inp("since", "Since (RFC 3339)", { placeholder: "2026-11-26T00:00:00Z", class: custom ? null : "hidden-custom" }),
    inp("until", "Until (RFC 3339)", { placeholder: "2026-11-27T00:00:00Z", class: custom || p.get("until") ? null : "hidden-custom" }),
    sel("suppressed", "Suppressed", [["", "Shown"], ["false", "Hidden"], ["true", "Only suppressed"]]),
    h("div", { class: "field actions" },
      h("button", { class: "btn primary", type: "submit", id: "apply" }, "Apply"),
      h("a", { class: "btn ghost", href: "#/detections" }, "Reset")));
  const preset = form.querySelector('select[name="since_preset"]');
  preset.value = custom ? "custom" : (RANGES[sinceV] ? sinceV : "");
  const sinceIn = form.querySelector('input[name="since"]');
  const untilIn = form.querySelector('input[name="until"]');
  preset.addEventListener("change", () => {
    const c = preset.value === "custom";
    sinceIn.parentNode.classList.toggle("hidden-custom", !c);
    untilIn.parentNode.classList.toggle("hidden-custom", !c);
    if (c) sinceIn.focus();
  });
  // The class sits on the label (the whole field hides).
  for (const i of [sinceIn, untilIn]) {
    if (i.classList.contains("hidden-custom")) { i.classList.remove("hidden-custom"); i.parentNode.classList.add("hidden-custom"); }
  }
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const fd = new FormData(form);
    const o = {};
    for (const k of ["client", "pool", "stage", "min_risk", "until", "suppressed"]) o[k] = (fd.get(k) || "").trim();
    const pr = fd.get("since_preset");
    o.since = pr === "custom" ? (fd.get("since") || "").trim() : pr || "";
    if (pr !== "custom") o.until = "";
    o.limit = p.get("limit") || "";
    o.sort = p.get("sort") || "";
    location.hash = "#/detections" + qs(o);
  });
  return form;
}

async function exportSet(filter, fmt) {
  const all = [];
  let cursor = "";
  toast("Fetching the filtered set…");
  try {
    do {
      const pg = await api("/detections" + qs(Object.assign({}, filter, { limit: 1000, cursor })));
      all.push(...pg.items);
      cursor = pg.next_cursor || "";
    } while (cursor && all.length < MAX_EXPORT);
  } catch (e) {
    toast("Download failed: " + e.message, "error");
    return;
  }
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  if (fmt === "json") {
    download(`poolwatch-detections-${stamp}.json`, "application/json", JSON.stringify(all, null, 2));
  } else {
    const cols = ["id", "first_seen", "last_seen", "client_ip", "stage", "risk_score", "pool_domain", "query_names", "pool_ips", "dst_ports", "is_new", "suppressed", "suppression_id", "sources", "agents"];
    const lines = [cols.join(",")].concat(all.map((d) => cols.map((c) => csvCell(d[c])).join(",")));
    download(`poolwatch-detections-${stamp}.csv`, "text/csv", lines.join("\r\n") + "\r\n");
  }
  toast(`Downloaded ${fmtNum(all.length)} detection(s)${cursor ? " (limit reached)" : ""}`);
}

// ---------------------------------------------------------------------------------------------
// Detection detail
// ---------------------------------------------------------------------------------------------

const KIND_LABEL = { dns_lookup: "DNS lookup", dns_blocked: "Blocked lookup", flow: "Flow", tls_sni: "TLS SNI", stratum: "Stratum" };

/** The evidence as steps: a lookup shows as query, then answer; flows and Stratum after. */
function evidenceSteps(evidence) {
  const steps = [];
  const ev = (evidence || []).slice().sort((a, b) => (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : 0));
  for (const e of ev) {
    if (e.kind === "dns_lookup" || e.kind === "dns_blocked") {
      steps.push({ e, cls: "k-query", title: "Query", main: e.qname || e.summary, details: [] });
      const ans = (e.answers || []).join(", ");
      steps.push({
        e, cls: e.kind === "dns_blocked" ? "k-blocked" : "k-answer",
        title: e.kind === "dns_blocked" ? "Blocked answer" : "Answer",
        main: ans ? "→ " + ans : (e.rcode || "no address"),
        details: [e.rcode ? "rcode " + e.rcode : null, e.summary].filter(Boolean),
      });
    } else {
      const ep = e.dst ? `${e.dst}${e.dst_port ? ":" + e.dst_port : ""}` : "";
      steps.push({
        e, cls: "k-" + e.kind, title: KIND_LABEL[e.kind] || e.kind,
        main: e.kind === "tls_sni" && e.qname ? `${e.qname} ${ep ? "@ " + ep : ""}` : ep || e.summary,
        details: [
          e.state ? "state " + e.state : null,
          e.bytes_out !== undefined || e.bytes_in !== undefined ? `${fmtBytes(e.bytes_out || 0)} out / ${fmtBytes(e.bytes_in || 0)} in` : null,
          e.duration_ms !== undefined ? `${(e.duration_ms / 1000).toFixed(1)} s` : null,
          e.method ? "method " + e.method : null,
          e.agent ? "agent " + e.agent : null,
          e.summary,
        ].filter(Boolean),
      });
    }
  }
  return steps;
}

export function evidenceTimeline(evidence, id) {
  const steps = evidenceSteps(evidence);
  return h("ol", { class: "evtl", id: id || null },
    steps.length ? steps.map((st) => h("li", { class: "ev " + st.cls, dataset: { kind: st.e.kind } },
      h("div", { class: "ev-time" }, timeEl(st.e.ts)),
      h("div", { class: "ev-body" },
        h("div", { class: "ev-head" }, h("span", { class: "ev-kind" }, st.title), h("span", { class: "mono ev-main" }, st.main)),
        h("div", { class: "ev-details" }, st.details.map((d) => h("span", {}, d))),
        h("div", { class: "ev-src muted small mono" }, st.e.source)))) : h("li", { class: "muted" }, "No evidence recorded."));
}

function dl(pairs) {
  return h("dl", { class: "kv" }, pairs.filter(Boolean).map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

export async function detail(ctx) {
  const id = ctx.args[0];
  const d = await api("/detections/" + encodeURIComponent(id));
  const rb = riskBreakdown(d);
  const c = d.counts || {};
  const main = ctx.main;
  const actions = h("div", { class: "row" },
    h("a", { class: "btn ghost", href: "#/hosts/" + encodeURIComponent(d.client_ip), id: "open-host" }, "Open host"),
    h("button", { class: "btn ghost", type: "button", id: "copy-json", onclick: () => copyJson(d) }, "Copy as JSON"),
    ctx.session.can_write
      ? h("button", { class: "btn danger", type: "button", id: "suppress-btn", onclick: () => suppressDialog(d, ctx) }, d.suppressed ? "Suppress again…" : "Suppress…")
      : h("span", { class: "muted small", title: "Suppressing needs the admin token" }, "read-only"));
  mount(main, 
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "#/detections" }, "Detections"), " / ", h("span", { class: "mono" }, d.id)),
    h("div", { class: "page-head detail-head" },
      h("div", {},
        h("h1", {}, d.title || "Detection", " ", h("span", { class: "mono light" }, d.client_ip)),
        h("div", { class: "row wrap" }, stagePill(d.stage), riskBadge(d.risk_score),
          h("span", { class: "mono" }, d.pool_domain),
          d.is_new ? h("span", { class: "tag new" }, "new host") : null,
          d.suppressed ? h("span", { class: "tag muted-tag", id: "suppressed-tag" }, "suppressed (" + (d.suppression_id || "") + ")") : null)),
      actions),
    h("div", { class: "cols-2 wide-left" },
      card("Evidence timeline", evidenceTimeline(d.evidence, "evidence"),
        h("p", { class: "muted small" }, `${(d.evidence || []).length} evidence item(s) kept (first 4 and the strongest); totals below.`)),
      h("div", { class: "stack" },
        card("Risk " + d.risk_score, h("table", { class: "grid-table compact", id: "risk-breakdown" },
          h("tbody", {}, rb.parts.map((p) => h("tr", {}, h("td", {}, p.label), h("td", { class: "num" }, "+" + p.points))),
            h("tr", { class: "total" }, h("td", {}, "Score (capped at 100)"), h("td", { class: "num" }, String(rb.sum))))),
          rb.matches ? null : h("p", { class: "muted small" }, `The stored score is ${d.risk_score} (computed when the incident was last updated).`)),
        card("MITRE ATT&CK", dl([
          ["Technique", h("span", {}, h("span", { class: "mono" }, d.mitre.technique), " " + d.mitre.technique_name)],
          ["Tactic", h("span", {}, h("span", { class: "mono" }, d.mitre.tactic_id), " " + d.mitre.tactic)],
          ["Kill chain", d.kill_chain],
        ])),
        card("Matched lists (provenance)", table(
          [{ label: "List" }, { label: "Entry" }, { label: "Category" }, { label: "Line", cls: "num" }],
          (d.lists || []).map((l) => h("tr", {},
            h("td", {}, h("a", { href: "#/lists" + qs({ name: l.list }) }, l.list)), h("td", { class: "mono" }, l.entry),
            h("td", {}, l.category), h("td", { class: "num" }, l.line ? String(l.line) : "—"))),
          { compact: true, id: "provenance", empty: "No list entry (identified by the mining protocol)." })))),
    h("div", { class: "cols-2" },
      card("Indicators", dl([
        ["Client", hostLink(d.client_ip)],
        ["Pool entry", poolLink(d.pool_domain)],
        ["Query names", h("span", { class: "mono" }, (d.query_names || []).join(", ") || "—")],
        ["Pool IPs", h("span", { class: "mono" }, (d.pool_ips || []).join(", ") || "—")],
        ["Ports", h("span", { class: "mono" }, (d.dst_ports || []).join(", ") || "—")],
        (d.agents || []).length ? ["Miner agents", h("span", { class: "mono" }, d.agents.join("; "))] : null,
        ["Sources", h("span", { class: "mono" }, (d.sources || []).join(", "))],
      ])),
      card("When and how much", dl([
        ["First seen", timeEl(d.first_seen)],
        ["Last seen", timeEl(d.last_seen)],
        d.stage_changed ? ["Stage rose", timeEl(d.stage_changed)] : null,
        ["Lookups", `${fmtNum(c.lookups)} (${fmtNum(c.blocked_lookups)} blocked)`],
        ["Flows", `${fmtNum(c.flows)} (${fmtNum(c.established_flows)} established, ${fmtNum(c.stratum_flows)} Stratum)`],
        ["Bytes", `${fmtBytes(c.bytes_out)} out / ${fmtBytes(c.bytes_in)} in`],
        ["Id", h("span", { class: "mono" }, d.id)],
      ]))));
  return {
    onEvent(kind, ev) {
      if (ev.id === d.id) { toast("This detection was updated", "info"); ctx.refresh(); }
    },
  };
}

async function copyJson(d) {
  const text = JSON.stringify(d, null, 2);
  try {
    await navigator.clipboard.writeText(text);
    toast("Detection JSON copied");
  } catch {
    // No clipboard permission (plain HTTP on a non-loopback address): show it to copy by hand.
    const ta = h("textarea", { class: "json-copy", readonly: true, rows: "12", "aria-label": "Detection JSON" });
    ta.value = text;
    const dlg = h("dialog", { class: "wide" }, h("h2", {}, "Detection JSON"), ta,
      h("div", { class: "row end" }, h("button", { class: "btn primary", type: "button", onclick: () => { dlg.close(); dlg.remove(); } }, "Close")));
    document.body.appendChild(dlg);
    dlg.showModal();
    ta.select();
  }
}

function suppressDialog(d, ctx) {
  const err = h("p", { class: "error", role: "alert" });
  const f = h("form", { method: "dialog", id: "suppress-form" },
    h("h2", {}, "Suppress"),
    h("p", { class: "muted" }, "Matching incidents are still recorded (marked suppressed) but kept out of the way."),
    h("fieldset", {}, h("legend", {}, "Scope"),
      h("label", { class: "inline" }, h("input", { type: "radio", name: "scope", value: "both", checked: true }), ` this host and this pool (${d.client_ip} · ${d.pool_domain})`),
      h("label", { class: "inline" }, h("input", { type: "radio", name: "scope", value: "client" }), ` every pool for ${d.client_ip}`),
      h("label", { class: "inline" }, h("input", { type: "radio", name: "scope", value: "pool" }), ` every host for ${d.pool_domain}`)),
    h("label", { class: "field" }, h("span", {}, "Reason (required)"), h("input", { name: "reason", id: "suppress-reason", required: true, maxlength: "1000", placeholder: "research lab, ticket 4711" })),
    h("label", { class: "field" }, h("span", {}, "Expires"),
      h("select", { name: "expires", id: "suppress-expires" }, [["", "Never"], ["3600", "in 1 hour"], ["86400", "in 24 hours"], ["604800", "in 7 days"], ["2592000", "in 30 days"]].map(([v, l]) => h("option", { value: v }, l)))),
    err,
    h("div", { class: "row end" },
      h("button", { class: "btn ghost", type: "button", onclick: () => { dlg.close(); dlg.remove(); } }, "Cancel"),
      h("button", { class: "btn danger", type: "submit", id: "suppress-submit" }, "Suppress")));
  const dlg = h("dialog", {}, f);
  f.addEventListener("submit", async (e) => {
    e.preventDefault();
    const fd = new FormData(f);
    const scope = fd.get("scope");
    const body = { reason: String(fd.get("reason") || "").trim() };
    if (scope !== "pool") body.client = d.client_ip;
    if (scope !== "client") body.pool = d.pool_domain;
    const exp = fd.get("expires");
    if (exp) body.expires = new Date(Date.now() + Number(exp) * 1000).toISOString();
    try {
      const sup = await api("/suppressions", { method: "POST", body });
      dlg.close();
      dlg.remove();
      toast(`Suppression ${sup.id} created; it applies to this incident from its next update and to new ones`);
      ctx.refresh();
    } catch (ex) {
      err.textContent = ex.message;
    }
  });
  document.body.appendChild(dlg);
  dlg.showModal();
}

// ---------------------------------------------------------------------------------------------
// Host
// ---------------------------------------------------------------------------------------------

export async function host(ctx) {
  const ip = ctx.args[0];
  let t;
  try {
    t = await api("/hosts/" + encodeURIComponent(ip));
  } catch (e) {
    if (e.status === 404 || e.status === 400) {
      mount(ctx.main, h("div", { class: "page-head" }, h("h1", {}, "Host ", h("span", { class: "mono" }, ip))), errorBox(e));
      return {};
    }
    throw e;
  }
  const now = Date.now();
  const isNew = t.detections.some((d) => d.is_new);
  const strongest = t.detections.reduce((a, d) => (STAGES.indexOf(d.stage) > STAGES.indexOf(a) ? d.stage : a), "lookup");
  const maxRisk = t.detections.reduce((a, d) => Math.max(a, d.risk_score), 0);
  mount(ctx.main, 
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "#/detections" }, "Detections"), " / host"),
    h("div", { class: "page-head" },
      h("div", {}, h("h1", {}, "Host ", h("span", { class: "mono", id: "host-ip" }, t.ip)),
        h("div", { class: "row wrap" }, t.detections.length ? stagePill(strongest) : null, t.detections.length ? riskBadge(maxRisk) : null,
          isNew ? h("span", { class: "tag new", id: "host-new" }, "new host") : h("span", { class: "tag muted-tag", id: "host-new" }, "known host"))),
      h("a", { class: "btn ghost", href: "#/detections" + qs({ client: t.ip }) }, "Filter detections")),
    h("div", { class: "kpis" },
      kpi("First seen", t.first_seen ? fmtTime(t.first_seen) : "—", "host-first", t.first_seen ? fmtRel(t.first_seen) : null),
      kpi("Detections", fmtNum(t.detections.length), "host-dets"),
      kpi("Live bindings", fmtNum(t.bindings.filter((b) => new Date(b.expires).getTime() > now).length), "host-bindings")),
    card("Detections", table(
      [{ label: "Last seen" }, { label: "Stage" }, { label: "Risk", cls: "num" }, { label: "Pool" }, { label: "Query names" }, { label: "" }],
      t.detections.map((d) => h("tr", { dataset: { id: d.id } },
        h("td", {}, detLink(d, fmtTime(d.last_seen))), h("td", {}, stagePill(d.stage)), h("td", { class: "num" }, riskBadge(d.risk_score)),
        h("td", { class: "mono" }, d.pool_domain), h("td", { class: "mono names" }, (d.query_names || []).join(", ")),
        h("td", {}, d.suppressed ? h("span", { class: "tag muted-tag" }, "suppressed") : ""))),
      { id: "host-detections" })),
    h("div", { class: "cols-2" },
      card("Bindings (pool answers that attribute this host's flows)", table(
        [{ label: "Pool IP" }, { label: "Pool" }, { label: "Name" }, { label: "TTL", cls: "num" }, { label: "Expires" }],
        t.bindings.map((b) => {
          const live = new Date(b.expires).getTime() > now;
          return h("tr", { class: live ? null : "expired" },
            h("td", { class: "mono" }, b.ip), h("td", { class: "mono" }, b.pool_domain), h("td", { class: "mono" }, b.qname),
            h("td", { class: "num" }, b.ttl + " s"),
            h("td", {}, h("span", { class: live ? "tag live-tag" : "tag muted-tag" }, live ? "live " + fmtRel(b.expires, now) : "expired"), " ", timeEl(b.expires)));
        }), { compact: true, id: "host-bindings-table", empty: "No bindings kept for this host." })),
      card("Recent evidence", evidenceTimeline(t.timeline.slice(0, 30), "host-timeline"))));
  return {
    onEvent(kind, d) {
      if (d.client_ip === t.ip) ctx.refresh();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Lists and feeds
// ---------------------------------------------------------------------------------------------

export async function lists(ctx) {
  const name = ctx.params.get("name");
  if (name) return listDetail(ctx, name);
  const [bl, feeds] = await Promise.all([api("/blocklists"), api("/feeds").catch(() => ({ items: [] }))]);
  const canWrite = ctx.session.can_write;
  const check = checkBox();
  const rows = (bl.items || []).map((l) => h("tr", { class: l.active === false ? "inactive" : null },
    h("td", {}, h("a", { href: "#/lists" + qs({ name: l.name }) }, l.name)),
    h("td", {}, h("span", { class: "tag kind-" + l.kind }, l.kind)), h("td", {}, l.category), h("td", {}, l.format || ""),
    h("td", { class: "num" }, fmtNum(l.entries)), h("td", { class: "num" }, fmtNum(l.kept)),
    h("td", { class: "num" }, l.invalid ? h("span", { class: "warn" }, fmtNum(l.invalid)) : "0"),
    h("td", {}, l.refreshed ? timeEl(l.refreshed) : "—"),
    h("td", { class: "mono small src" }, l.source || "")));
  const feedRows = (feeds.items || []).map((f) => h("tr", {},
    h("td", {}, h("a", { href: "#/lists" + qs({ name: f.name }) }, f.name)), h("td", { class: "mono small src" }, f.url),
    h("td", {}, f.origin), h("td", { class: "num" }, fmtNum(f.entries)),
    h("td", {}, f.last_success ? timeEl(f.last_success) : "never"),
    h("td", {}, f.last_error ? h("span", { class: "warn", title: f.last_error }, (f.stale ? "stale · " : "") + f.last_error) : h("span", { class: "ok" }, f.active ? "ok" : "inactive")),
    h("td", {}, f.next_refresh ? timeEl(f.next_refresh) : "—"),
    h("td", {}, canWrite ? h("div", { class: "row" },
      h("button", { class: "btn ghost small", type: "button", onclick: () => act(() => api("/feeds/" + encodeURIComponent(f.name) + "/refresh", { method: "POST" }), "Feed " + f.name + " refreshed", ctx) }, "Refresh"),
      f.origin === "api" ? h("button", { class: "btn ghost small danger-text", type: "button", onclick: () => { if (confirm("Unsubscribe feed " + f.name + "?")) act(() => api("/feeds/" + encodeURIComponent(f.name), { method: "DELETE" }), "Feed removed", ctx); } }, "Unsubscribe") : null) : "")));
  const set = bl.set || {};
  mount(ctx.main, 
    h("div", { class: "page-head" }, h("h1", {}, "Lists"),
      canWrite ? h("button", { class: "btn ghost", type: "button", id: "reload-lists", onclick: () => act(() => api("/blocklists/reload", { method: "POST" }), "Lists reloaded", ctx) }, "Reload lists") : readOnlyNote()),
    h("div", { class: "kpis" },
      kpi("Entries in the running set", fmtNum(set.entries), "set-entries"),
      kpi("Domains · addresses", `${fmtNum(set.domains)} · ${fmtNum(set.addresses)}`, "set-kinds"),
      kpi("Lists", fmtNum((bl.items || []).length), "set-lists"),
      kpi("Compile time", set.compile_ms !== undefined ? Number(set.compile_ms).toFixed(1) + " ms" : "—", "set-compile")),
    h("div", { class: "cols-2 wide-left" }, card("Check a name", check), canWrite ? card("New user list / add entries", newListForm(ctx)) : card("Editing", readOnlyNote())),
    card("Lists", table([{ label: "Name" }, { label: "Kind" }, { label: "Category" }, { label: "Format" }, { label: "Entries", cls: "num" }, { label: "Kept", cls: "num" }, { label: "Invalid", cls: "num" }, { label: "Refreshed" }, { label: "Source" }], rows, { id: "lists-table" })),
    card("Feeds", table([{ label: "Name" }, { label: "URL" }, { label: "Origin" }, { label: "Entries", cls: "num" }, { label: "Last success" }, { label: "State" }, { label: "Next refresh" }, { label: "" }], feedRows, { id: "feeds-table", empty: "No feeds subscribed." }),
      canWrite ? feedForm(ctx) : null));
  return {};
}

function readOnlyNote() {
  return h("p", { class: "muted small readonly-note" }, "Read-only: editing lists, feeds and suppressions needs the admin token (button at the top right).");
}

async function act(fn, okText, ctx) {
  try {
    await fn();
    toast(okText);
    ctx.refresh();
  } catch (e) {
    const first = e.problems && e.problems[0] ? ` (line ${e.problems[0].line}: ${e.problems[0].message})` : "";
    toast(e.message + first, "error");
  }
}

function checkBox() {
  const out = h("div", { id: "check-result", class: "check-result", "aria-live": "polite" });
  const f = h("form", { class: "row", id: "check-form", role: "search" },
    h("label", { class: "sr", for: "check-name" }, "Name to check"),
    h("input", { id: "check-name", name: "name", placeholder: "pool.supportxmr.com", spellcheck: "false", autocomplete: "off", required: true }),
    h("button", { class: "btn primary", type: "submit" }, "Check"));
  f.addEventListener("submit", async (e) => {
    e.preventDefault();
    const name = f.querySelector("input").value.trim();
    clear(out);
    try {
      const r = await api("/check" + qs({ name }));
      out.append(r.matched
        ? h("p", { class: "hit" }, h("strong", {}, "Match: "), h("span", { class: "mono" }, r.name), " is listed by ", h("span", { class: "mono" }, r.entry), " in ", h("a", { href: "#/lists" + qs({ name: r.list }) }, r.list), ` (${r.category})`)
        : r.category === "allow"
          ? h("p", { class: "allow" }, h("strong", {}, "Allowed: "), h("span", { class: "mono" }, r.name), " matches allowlist entry ", h("span", { class: "mono" }, r.entry), " in ", r.list)
          : h("p", { class: "miss" }, h("strong", {}, "No match: "), h("span", { class: "mono" }, r.name), " is not on any running list"));
    } catch (ex) {
      out.append(h("p", { class: "error" }, ex.message));
    }
  });
  return h("div", {}, f, out);
}

function splitEntries(text) {
  return text.split(/[\s,]+/).map((x) => x.trim()).filter(Boolean);
}

function newListForm(ctx) {
  const f = h("form", { id: "new-list-form" },
    h("div", { class: "row wrap" },
      h("label", { class: "field" }, h("span", {}, "User list name"), h("input", { name: "name", required: true, pattern: "[a-z0-9][a-z0-9._-]{0,63}", placeholder: "lab-pools" })),
      h("label", { class: "field" }, h("span", {}, "Category (when created)"), h("select", { name: "category" }, ["pool", "browser_miner", "miner_proxy", "allow"].map((c) => h("option", { value: c }, c))))),
    h("label", { class: "field" }, h("span", {}, "Entries (domains, IPs, CIDRs, ip:port; one per line)"), h("textarea", { name: "entries", rows: "3", required: true, spellcheck: "false" })),
    h("div", { class: "row end" }, h("button", { class: "btn primary", type: "submit" }, "Add entries")));
  f.addEventListener("submit", (e) => {
    e.preventDefault();
    const fd = new FormData(f);
    const name = String(fd.get("name") || "").trim();
    act(() => api("/blocklists/" + encodeURIComponent(name) + "/entries", { method: "POST", body: { entries: splitEntries(String(fd.get("entries") || "")), category: fd.get("category") } }), "Entries added to " + name, ctx);
  });
  return f;
}

function feedForm(ctx) {
  const f = h("form", { id: "feed-form", class: "row wrap feed-form" },
    h("label", { class: "field" }, h("span", {}, "Feed name"), h("input", { name: "name", required: true, placeholder: "abuse-pools" })),
    h("label", { class: "field grow" }, h("span", {}, "URL (http, https, file)"), h("input", { name: "url", required: true, placeholder: "https://lists.example.org/pools.txt", spellcheck: "false" })),
    h("label", { class: "field" }, h("span", {}, "Interval (s)"), h("input", { name: "interval_secs", type: "number", min: "60", value: "21600" })),
    h("label", { class: "field" }, h("span", {}, "Category"), h("select", { name: "category" }, ["pool", "browser_miner", "miner_proxy", "allow"].map((c) => h("option", { value: c }, c)))),
    h("div", { class: "field actions" }, h("button", { class: "btn primary", type: "submit" }, "Subscribe")));
  f.addEventListener("submit", (e) => {
    e.preventDefault();
    const fd = new FormData(f);
    act(() => api("/feeds", { method: "POST", body: { name: String(fd.get("name")).trim(), url: String(fd.get("url")).trim(), interval_secs: Number(fd.get("interval_secs")), category: fd.get("category") } }), "Feed subscribed", ctx);
  });
  return f;
}

async function listDetail(ctx, name) {
  const offset = Number(ctx.params.get("offset") || 0);
  const l = await api("/blocklists/" + encodeURIComponent(name) + qs({ offset: offset || "", limit: 500 }));
  const editable = ctx.session.can_write && l.kind === "user";
  const rows = (l.items || []).map((it) => h("tr", {},
    h("td", { class: "num muted" }, String(it.line)), h("td", { class: "mono" }, it.entry, it.exception ? h("span", { class: "tag" }, "exception") : null),
    h("td", {}, editable ? h("button", { class: "btn ghost small danger-text", type: "button", "aria-label": "Remove " + it.entry, onclick: () => act(() => api("/blocklists/" + encodeURIComponent(name) + "/entries", { method: "DELETE", body: { entries: [it.entry] } }), "Removed " + it.entry, ctx) }, "Remove") : "")));
  const add = editable ? (() => {
    const f = h("form", { class: "row", id: "add-entries-form" },
      h("label", { class: "sr", for: "add-entries" }, "Entries to add"),
      h("input", { id: "add-entries", name: "entries", placeholder: "pool.example, 203.0.113.0/24", spellcheck: "false", required: true }),
      h("button", { class: "btn primary", type: "submit" }, "Add"));
    f.addEventListener("submit", (e) => {
      e.preventDefault();
      act(() => api("/blocklists/" + encodeURIComponent(name) + "/entries", { method: "POST", body: { entries: splitEntries(f.querySelector("input").value) } }), "Entries added", ctx);
    });
    return f;
  })() : null;
  mount(ctx.main, 
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "#/lists" }, "Lists"), " / ", h("span", { class: "mono" }, l.name)),
    h("div", { class: "page-head" }, h("div", {}, h("h1", {}, l.name), h("div", { class: "row wrap" }, h("span", { class: "tag kind-" + l.kind }, l.kind), l.category, " · ", l.format || "", " · ", fmtNum(l.total) + " entries")),
      editable ? h("button", { class: "btn danger", type: "button", onclick: () => { if (confirm("Delete user list " + name + "?")) act(async () => { await api("/blocklists/" + encodeURIComponent(name), { method: "DELETE" }); location.hash = "#/lists"; }, "List deleted", ctx); } }, "Delete list") : (l.kind === "user" ? readOnlyNote() : null)),
    card("Metadata", dl([
      ["Source", h("span", { class: "mono" }, l.source || "—")], ["License", l.license || "—"], ["Refreshed", l.refreshed ? timeEl(l.refreshed) : "—"],
      ["Kept / duplicates / invalid / skipped", `${fmtNum(l.kept)} / ${fmtNum(l.duplicates)} / ${fmtNum(l.invalid)} / ${fmtNum(l.skipped)}`],
      l.feed ? ["Feed", `${l.feed.url} · last success ${l.feed.last_success ? fmtTime(l.feed.last_success) : "never"}${l.feed.last_error ? " · error: " + l.feed.last_error : ""}`] : null,
    ]), (l.problems || []).length ? h("ul", { class: "problems" }, l.problems.map((p) => h("li", {}, `line ${p.line} (${p.severity}): ${p.message}`))) : null),
    card("Entries", add, table([{ label: "Line", cls: "num" }, { label: "Entry" }, { label: "" }], rows, { compact: true, id: "entries-table" }),
      h("nav", { class: "pager" },
        offset ? h("a", { class: "btn ghost", href: "#/lists" + qs({ name, offset: Math.max(0, offset - 500) || "" }) }, "← Previous") : null,
        l.next_offset ? h("a", { class: "btn ghost", href: "#/lists" + qs({ name, offset: l.next_offset }) }, "Next →") : null)));
  return {};
}
