// Line charts drawn as SVG by hand: a few per-epoch series need axes, ticks, lines, points and
// a legend, which is ~150 lines here against a vendored library's ~50 KB. SVG stays sharp at
// any size, inherits the page's fonts and colours, and is plain DOM (each series is a <path>
// with data-series/data-points, each point a <circle> with a <title> tooltip).
import { h, s, fmtValue } from "./dom.js";

const W = 560;
const H = 250;
const M = { left: 56, right: 16, top: 14, bottom: 38 };
export const COLORS = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2"];

// A round step (1, 2, 2.5 or 5 times a power of ten) giving about `count` ticks over [lo, hi].
function niceStep(lo, hi, count) {
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 2.5, 5, 10].map((m) => m * mag).find((st) => raw <= st) || 10 * mag;
}

function ticks(lo, hi, step) {
  const out = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) {
    out.push(Number(v.toPrecision(12)));
  }
  return out;
}

function extent(values, relative = true) {
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (lo === hi) {
    const pad = (relative && Math.abs(lo) * 0.1) || 1;
    lo -= pad;
    hi += pad;
  }
  return [lo, hi];
}

/**
 * One chart. `series`: [{name, points: [[x, y], ...]}]; points with a non-finite y are skipped.
 */
export function lineChart({ title, series, xLabel = "epoch", integerX = true, yMax = Infinity }) {
  const shown = series
    .map((sr, i) => ({
      ...sr,
      color: COLORS[i % COLORS.length],
      points: sr.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)),
    }))
    .filter((sr) => sr.points.length);
  const all = shown.flatMap((sr) => sr.points);
  const svg = s("svg", {
    viewBox: `0 0 ${W} ${H}`,
    class: "chart",
    role: "img",
    "aria-label": title,
  });
  if (!all.length) return h("figure", { class: "chart-box" }, h("figcaption", {}, title), svg);

  const [x0, x1] = extent(
    all.map((p) => p[0]),
    false,
  );
  const [yLo, yHiRaw] = extent(all.map((p) => p[1]));
  const yHi = Math.max(Math.min(yHiRaw, yMax), Math.max(...all.map((p) => p[1])));
  // The domain widened to whole steps, so that the top and bottom grid lines carry a label.
  const yStep = niceStep(yLo, yHi, 5);
  const y0 = Math.floor(yLo / yStep + 1e-9) * yStep;
  const y1 = Math.max(yHi, Math.min(Math.ceil(yHi / yStep - 1e-9) * yStep, yMax));
  const yt = ticks(y0, y1, yStep);
  const px = (x) => M.left + ((x - x0) / (x1 - x0)) * (W - M.left - M.right);
  const py = (y) => H - M.bottom - ((y - y0) / (y1 - y0)) * (H - M.top - M.bottom);
  const xt = ticks(x0, x1, niceStep(x0, x1, 6)).filter((x) => !integerX || Number.isInteger(x));

  for (const y of yt) {
    svg.append(
      s("line", { class: "grid", x1: M.left, x2: W - M.right, y1: py(y), y2: py(y) }),
      s("text", { class: "tick", x: M.left - 6, y: py(y) + 4, "text-anchor": "end" }, fmtValue(y)),
    );
  }
  for (const x of xt) {
    svg.append(
      s("line", { class: "grid", x1: px(x), x2: px(x), y1: M.top, y2: H - M.bottom }),
      s("text", { class: "tick", x: px(x), y: H - M.bottom + 16, "text-anchor": "middle" }, x),
    );
  }
  svg.append(
    s("line", { class: "axis", x1: M.left, x2: W - M.right, y1: H - M.bottom, y2: H - M.bottom }),
    s("text", { class: "axis-label", x: (M.left + W - M.right) / 2, y: H - 4 }, xLabel),
  );

  for (const sr of shown) {
    const d = sr.points
      .map(([x, y], i) => `${i ? "L" : "M"}${px(x).toFixed(1)},${py(y).toFixed(1)}`)
      .join(" ");
    const group = s("g", { class: "series", dataset: { series: sr.name } });
    group.append(
      s("path", {
        d,
        stroke: sr.color,
        class: "line",
        dataset: { series: sr.name, points: sr.points.length },
      }),
    );
    for (const [x, y] of sr.points) {
      group.append(
        s(
          "circle",
          { cx: px(x), cy: py(y), r: 3.5, fill: sr.color, class: "point" },
          s("title", {}, `${sr.name} at ${xLabel} ${fmtValue(x)}: ${fmtValue(y)}`),
        ),
      );
    }
    svg.append(group);
  }

  const legend = h(
    "div",
    { class: "legend" },
    shown.map((sr) =>
      h(
        "span",
        {},
        h("i", { class: "swatch", style: `background:${sr.color}` }),
        `${sr.name} `,
        h("b", {}, fmtValue(sr.points[sr.points.length - 1][1])),
      ),
    ),
  );
  return h(
    "figure",
    { class: "chart-box", dataset: { chart: title } },
    h("figcaption", {}, title),
    svg,
    legend,
  );
}

// Keys that place a point rather than measure something.
const AXIS_KEYS = new Set(["epoch", "epochs", "step", "steps", "time", "timestamp"]);

function family(key) {
  if (/loss/i.test(key)) return "Loss";
  if (/acc/i.test(key)) return "Accuracy";
  const words = key.replace(/_/g, " ");
  return words[0].toUpperCase() + words.slice(1);
}

// Loss and accuracy charts first; within a chart train, then validation, then test series.
const FAMILY_RANK = { Loss: 0, Accuracy: 1 };
const rank = (key) => [/^train/, /^val/, /^test/].findIndex((re) => re.test(key)) >>> 0;

/**
 * Charts for whatever numeric series `points` (dicts) hold, x from `xKey` (or the point's
 * position when some point lacks it). Series sharing a family (loss, accuracy) share a chart,
 * since their scales match; any other series gets its own. Series with fewer than `minPoints`
 * points are left out (a live task's one-off values are no curve yet).
 */
export function seriesCharts(points, xKey = "epoch", { minPoints = 1 } = {}) {
  const useKey = points.length && points.every((p) => typeof p[xKey] === "number");
  const xOf = (p, i) => (useKey ? p[xKey] : i + 1);
  const keys = [];
  for (const p of points) {
    for (const [k, v] of Object.entries(p)) {
      if (typeof v === "number" && !AXIS_KEYS.has(k) && !/_total$/.test(k) && !keys.includes(k)) {
        keys.push(k);
      }
    }
  }
  keys.sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
  const groups = new Map();
  for (const k of keys) {
    const pts = points.flatMap((p, i) => (typeof p[k] === "number" ? [[xOf(p, i), p[k]]] : []));
    if (pts.length < minPoints) continue;
    const fam = family(k);
    if (!groups.has(fam)) groups.set(fam, []);
    groups.get(fam).push({ name: k, points: pts });
  }
  // Accuracies are fractions: no tick above 1 (100 %) however close the values get.
  const ordered = [...groups.entries()].sort(
    ([a], [b]) => (FAMILY_RANK[a] ?? 2) - (FAMILY_RANK[b] ?? 2),
  );
  return ordered.map(([title, series]) =>
    lineChart({
      title,
      series,
      xLabel: useKey ? xKey : "report",
      yMax:
        title === "Accuracy" && series.every((sr) => sr.points.every((p) => p[1] <= 1))
          ? 1
          : Infinity,
    }),
  );
}
