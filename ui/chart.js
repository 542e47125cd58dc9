// Small SVG charts drawn from API data (no library). Colours come from CSS classes, so light and
// dark themes apply; every bar carries a <title> (tooltip and accessible name).

import { s, h, STAGES, STAGE_LABEL, fmtTime, fmtTimeShort } from "./lib.js";

function niceMax(v) {
  if (v <= 5) return Math.max(1, v);
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function fmtBucket(secs) {
  if (secs < 60) return secs + " s";
  if (secs < 3600) return secs / 60 + " min";
  if (secs < 86400) return secs / 3600 + " h";
  return secs / 86400 + " d";
}

/** Detections over time, stacked by stage. `tl` is the summary's `timeline`. */
export function timelineChart(tl, onPick) {
  const W = 720, H = 190, L = 34, R = 8, T = 10, B = 26;
  const buckets = tl.buckets || [];
  const svg = s("svg", {
    viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img",
    "aria-label": `Detections over time, ${buckets.length} buckets of ${fmtBucket(tl.bucket_secs)}`,
  });
  if (!buckets.length) {
    svg.appendChild(s("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "axis" }, "no detections in this range"));
    return svg;
  }
  const max = niceMax(Math.max(...buckets.map((b) => b.total)));
  const plotW = W - L - R, plotH = H - T - B;
  const bw = plotW / buckets.length;
  for (let i = 0; i <= 4; i++) {
    const y = T + plotH - (plotH * i) / 4;
    svg.appendChild(s("line", { x1: L, x2: W - R, y1: y, y2: y, class: "grid" }));
    const v = (max * i) / 4;
    svg.appendChild(s("text", { x: L - 4, y: y + 3, "text-anchor": "end", class: "axis" }, Number.isInteger(v) ? v : v.toFixed(1)));
  }
  const labelEvery = Math.max(1, Math.ceil(buckets.length / 6));
  buckets.forEach((b, i) => {
    const x = L + i * bw;
    let y = T + plotH;
    const g = s("g", { class: "bar" });
    const parts = STAGES.filter((st) => b.stages[st]).map((st) => `${STAGE_LABEL[st]}: ${b.stages[st]}`);
    g.appendChild(s("title", {}, `${fmtTime(b.ts)} UTC (+${fmtBucket(tl.bucket_secs)}): ${b.total} detection(s)${parts.length ? "\n" + parts.join("\n") : ""}`));
    // Full-height hit area so thin bars are easy to point at.
    g.appendChild(s("rect", { x, y: T, width: bw, height: plotH, class: "hit" }));
    for (const st of STAGES) {
      const n = b.stages[st] || 0;
      if (!n) continue;
      const hh = (plotH * n) / max;
      y -= hh;
      g.appendChild(s("rect", { x: x + Math.min(1, bw * 0.1), y, width: Math.max(1, bw - Math.min(2, bw * 0.2)), height: hh, class: "fill st-" + st }));
    }
    if (onPick && b.total) {
      g.classList.add("pick");
      g.addEventListener("click", () => onPick(b, tl.bucket_secs));
    }
    svg.appendChild(g);
    if (i % labelEvery === 0) {
      svg.appendChild(s("text", { x: x + 1, y: H - 8, class: "axis" }, tl.bucket_secs < 60 ? fmtTime(b.ts).slice(11) : tl.bucket_secs < 86400 ? fmtTimeShort(b.ts) : fmtTime(b.ts).slice(0, 10)));
    }
  });
  svg.appendChild(s("line", { x1: L, x2: W - R, y1: T + plotH, y2: T + plotH, class: "baseline" }));
  return svg;
}

/** A legend for stage colours. */
export function stageLegend() {
  return h("ul", { class: "legend", "aria-label": "Stages" },
    STAGES.map((st) => h("li", {}, h("span", { class: "swatch st-" + st }), STAGE_LABEL[st])));
}

/** A horizontal proportion bar, e.g. risk bands. `parts`: [{label, value, cls}]. */
export function proportionBar(parts) {
  const total = parts.reduce((a, p) => a + p.value, 0) || 1;
  return h("div", { class: "pbar", role: "img", "aria-label": parts.map((p) => `${p.label} ${p.value}`).join(", ") },
    parts.filter((p) => p.value).map((p) => {
      const seg = h("span", { class: "seg " + p.cls, title: `${p.label}: ${p.value}` });
      // Widths through the CSSOM (allowed by style-src 'self'; inline style attributes are not).
      seg.style.width = ((100 * p.value) / total).toFixed(2) + "%";
      return seg;
    }));
}
