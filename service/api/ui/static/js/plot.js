// Line charts as inline SVG, built here so that no charting library (or CDN) is needed.

const NS = "http://www.w3.org/2000/svg";
const W = 640, H = 280, M = { left: 56, right: 28, top: 36, bottom: 48 };
const COLORS = ["#1f5fbf", "#b3461b", "#2e7d32", "#7b1fa2", "#00695c", "#ad1457"];

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

function ticks(max, count) {
  const raw = max / count;
  const step = [1, 2, 5, 10].map((m) => m * 10 ** Math.floor(Math.log10(raw))).find((s) => s >= raw);
  return Array.from({ length: Math.floor(max / step) + 1 }, (_, i) => i * step);
}

/**
 * series: [{label, points: [[x, y], ...]}]; y is drawn on [0, 1] (VAA and VAA* live there).
 * Returns an <svg role="img"> whose aria-label says what the curve shows in words.
 */
export function lineChart(series, { title, xLabel = "warm-up step", yLabel = "VAA*", xMax } = {}) {
  const longest = Math.max(1, xMax ?? 0, ...series.flatMap((s) => s.points.map(([x]) => x)));
  const x = (v) => M.left + (v / longest) * (W - M.left - M.right);
  const y = (v) => H - M.bottom - Math.min(1, Math.max(0, v)) * (H - M.top - M.bottom);
  const summary = series.map((s) => {
    const p = s.points;
    return p.length ? `${s.label}: ${p.length} points, from ${p[0][1].toFixed(3)} to ${p[p.length - 1][1].toFixed(3)}` : `${s.label}: no points yet`;
  }).join("; ");
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", class: "chart", "aria-label": `${title}. ${summary}` });
  root.append(svg("title", {}, title));
  for (const t of [0, 0.25, 0.5, 0.75, 1]) {
    root.append(svg("line", { x1: M.left, x2: W - M.right, y1: y(t), y2: y(t), class: "grid" }));
    root.append(svg("text", { x: M.left - 8, y: y(t) + 4, "text-anchor": "end" }, String(t)));
  }
  for (const t of ticks(longest, 6)) {
    root.append(svg("text", { x: x(t), y: H - M.bottom + 20, "text-anchor": "middle" }, String(t)));
  }
  root.append(svg("line", { x1: M.left, x2: W - M.right, y1: y(0), y2: y(0), class: "axis" }));
  root.append(svg("text", { x: (M.left + W - M.right) / 2, y: H - 4, "text-anchor": "middle", class: "label" }, xLabel));
  root.append(svg("text", { x: 8, y: 20, class: "label" }, yLabel)); // above the axis: readable at any width
  series.forEach((s, i) => {
    if (!s.points.length) return;
    const d = s.points.map(([px, py], j) => `${j ? "L" : "M"}${x(px).toFixed(1)},${y(py).toFixed(1)}`).join("");
    root.append(svg("path", { d, class: "series", stroke: COLORS[i % COLORS.length], "data-points": s.points.length }));
  });
  return root;
}

/** A chart with its legend (one entry per series) in a <figure>. */
export function chartFigure(series, options) {
  const figure = document.createElement("figure");
  figure.className = "chart-box";
  figure.append(lineChart(series, options));
  if (series.length > 1) {
    const legend = document.createElement("ul");
    legend.className = "legend";
    series.forEach((s, i) => {
      const item = document.createElement("li");
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = COLORS[i % COLORS.length];
      item.append(swatch, s.label);
      legend.append(item);
    });
    figure.append(legend);
  }
  return figure;
}

/** [[1, h0], [2, h1], ...]: a VAA* history as points over warm-up steps. */
export function historyPoints(history) { return (history || []).map((v, i) => [i + 1, v]); }
