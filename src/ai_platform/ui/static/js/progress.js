// A task's latest progress point (whatever its script reported) in words and as a bar.
import { fmtInt, fmtPercent, fmtSeconds, fmtValue, h } from "./dom.js";

const num = (p, key) => (typeof p[key] === "number" && Number.isFinite(p[key]) ? p[key] : null);
const ratio = (done, total) =>
  done !== null && total !== null && total > 0 ? Math.min(1, Math.max(0, done / total)) : null;

const of = (total) => (total === null ? "" : ` of ${fmtInt(total)}`);

// The counters people read, in the order they are named. Each says how it reads and what it
// is out of; the first that has a total gives the bar (steps before epochs: finer).
const COUNTERS = [
  { done: "epoch", total: "epochs", words: (d, t) => `epoch ${fmtInt(d)}${of(t)}` },
  {
    done: "records_done",
    total: "records_total",
    words: (d, t) => `${fmtInt(d)}${of(t)} records`,
  },
  { done: "done", total: "total", words: (d, t) => `${fmtInt(d)}${of(t)}` },
  { done: "step", total: "steps", words: (d, t) => `step ${fmtInt(d)}${of(t)}` },
];
const BAR_ORDER = ["step", "records_done", "done", "epoch"];

function detailOf(key, value) {
  const name = key.replaceAll("_", " ");
  if (typeof value === "number" && /accuracy$/.test(key)) return `${name} ${fmtPercent(value)}`;
  if (typeof value === "number" && key === "seconds") return `${fmtSeconds(value)} per epoch`;
  if (key === "split") return `${value} split`;
  return `${name} ${fmtValue(value)}`;
}

/**
 * The latest progress point in words, e.g. {text: "epoch 2 of 4 · 60 %", words: "epoch 2 of
 * 4", percent: "60 %", fraction: 0.6, detail: "loss 0.1234"}; null when the task reported
 * none. `fraction` and `percent` are null when no counter has a total (the words still say
 * how far it got).
 */
export function progressOf(task) {
  const p = task.progress;
  if (!p || typeof p !== "object") return null;
  const used = new Set(["time"]);
  const words = [];
  for (const c of COUNTERS) {
    const done = num(p, c.done);
    if (done === null) continue;
    words.push(c.words(done, num(p, c.total)));
    used.add(c.done).add(c.total);
  }
  let fraction = null;
  for (const key of BAR_ORDER) {
    const c = COUNTERS.find((x) => x.done === key);
    fraction = ratio(num(p, c.done), num(p, c.total));
    if (fraction !== null) break;
  }
  // Steps are the bar's unit; in words, the epoch (or records) says enough.
  const main = words.length > 1 ? words.filter((w) => !w.startsWith("step ")) : words;
  const percent = fraction === null ? null : `${Math.floor(fraction * 100)} %`;
  const detail = Object.entries(p)
    .filter(([key]) => !used.has(key))
    .map(([key, value]) => detailOf(key, value));
  if (!main.length && !percent) {
    // Nothing countable (a script's own keys only): its first value leads.
    if (!detail.length) return null;
    main.push(detail.shift());
  }
  const text = [...main, percent].filter(Boolean).join(" · ");
  return { fraction, percent, words: main.join(" · "), text, detail: detail.join(" · ") };
}

/** A bar with its words under it; `big` on a task's own page. */
export function progressView(task, { big = false } = {}) {
  const pr = progressOf(task);
  if (!pr) return null;
  const width = pr.fraction === null ? null : `width:${(pr.fraction * 100).toFixed(1)}%`;
  return h(
    "div",
    {
      class: big ? "progress big" : "progress",
      title: pr.detail ? `${pr.text} · ${pr.detail}` : pr.text,
      dataset: { testid: "progress" },
    },
    width === null
      ? null
      : h(
          "div",
          {
            class: "bar",
            role: "progressbar",
            "aria-valuemin": 0,
            "aria-valuemax": 100,
            "aria-valuenow": Math.floor(pr.fraction * 100),
            dataset: { testid: "progress-bar" },
          },
          h("i", { style: width }),
        ),
    h(
      "div",
      { class: "progress-text", dataset: { testid: "progress-text" } },
      pr.words,
      // "60 %" stays on one line.
      pr.percent ? [pr.words ? " · " : null, h("span", { class: "nowrap" }, pr.percent)] : null,
    ),
    big && pr.detail
      ? h("div", { class: "progress-detail", dataset: { testid: "progress-detail" } }, pr.detail)
      : null,
  );
}

// A pending task has no progress yet: say it waits, its place in the queue (1: next) and
// what holds the slots, as the record says.
export function waiting(task) {
  if (task.status !== "pending") return null;
  const queue = task.queue;
  const behind = queue && queue.running.length ? `, behind ${queue.running.join(", ")}` : "";
  const place = queue ? ` (#${queue.position} in the queue${behind})` : "";
  return h("div", { class: "muted", dataset: { testid: "waiting" } }, `waiting to start${place}`);
}
