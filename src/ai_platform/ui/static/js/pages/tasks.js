// Tasks of both kinds: one list, a form to start one, and a task's live progress and logs.
import { ApiError, api, request, seg } from "../api.js";
import { seriesCharts } from "../chart.js";
import {
  add,
  badge,
  card,
  dateCell,
  errorBox,
  errorRow,
  fmtDate,
  fmtDuration,
  h,
  kvTable,
  replace,
  stat,
  table,
} from "../dom.js";
import { progressView, waiting } from "../progress.js";
import { taskForm } from "./task_form.js";

export const KINDS = ["ingestion", "training"];
const ACTIVE = new Set(["pending", "running"]);
const LOG_LIMIT = 400_000; // characters kept in the log view; older text is dropped
const base = (kind) => `/${kind}-tasks`;

export async function render(root, { args, query, ctx }) {
  if (args.length >= 2) return detail(root, args[0], args[1], ctx);
  return list(root, query, ctx);
}

async function fetchAll() {
  const lists = await Promise.all(KINDS.map((kind) => api.get(base(kind))));
  return lists
    .flatMap((tasks, i) => tasks.map((t) => ({ ...t, kind: KINDS[i] })))
    .sort((a, b) => String(b.created_at).localeCompare(String(a.created_at)));
}

async function list(root, query, ctx) {
  add(root, h("h1", {}, "Tasks"));
  const form = await taskForm(query, (kind, task) => {
    location.hash = `#/tasks/${kind}/${seg(task.id)}`;
  });
  const holder = h("div");
  add(root, h("div", { class: "columns wide-right" }, form, card("All tasks", holder)));

  let timer = null;
  const refresh = async () => {
    let tasks;
    try {
      tasks = await fetchAll();
    } catch (err) {
      if (ctx.alive) replace(holder, errorBox(err));
      return;
    }
    if (!ctx.alive) return;
    const headers = ["Name", "Status", "Progress", "Input → output", "Created", "Took"];
    const rows = tasks.map((t) => [
      h(
        "tr",
        { class: t.error ? "has-error" : null, dataset: { id: t.id, kind: t.kind } },
        h(
          "td",
          { class: "name" },
          h("a", { href: `#/tasks/${t.kind}/${seg(t.id)}` }, t.name),
          h("small", { class: "sub" }, t.kind),
        ),
        h("td", {}, badge(t.status)),
        h(
          "td",
          { class: "progress-col" },
          progressView(t) || waiting(t) || h("span", { class: "muted" }, "–"),
        ),
        h("td", { class: "wrap" }, h("code", {}, t.input), " → ", h("code", {}, t.output)),
        dateCell(t.created_at),
        h("td", { class: "num nowrap" }, fmtDuration(t.started_at, t.completed_at)),
      ),
      t.error ? errorRow(errorText(t.error), headers.length, t.id) : null,
    ]);
    replace(
      holder,
      table(headers, rows, {
        empty: "No tasks yet: start one with the form.",
      }),
    );
    // Poll only while something is moving; a finished list does not change by itself.
    clearTimeout(timer);
    if (tasks.some((t) => ACTIVE.has(t.status))) timer = setTimeout(refresh, 1500);
  };
  ctx.stop = () => clearTimeout(timer);
  await refresh();
}

function outputLink(kind, task) {
  if (task.status !== "completed") return h("code", {}, task.output);
  const page = kind === "ingestion" ? "datasets" : "models";
  return h("a", { href: `#/${page}/${seg(task.output)}` }, task.output);
}

function liveView(kind, task) {
  const progress = progressView(task, { big: true });
  const result = kind === "ingestion" ? task.stats : task.metrics;
  // Training reports both steps within an epoch and one point per epoch: x is the step.
  const charts = seriesCharts(task.history || [], "step", { minPoints: 2 });
  return [
    h(
      "div",
      { class: "stats" },
      stat("status", badge(task.status)),
      stat("kind", kind),
      stat("running for", fmtDuration(task.started_at, task.completed_at)),
      stat("created", fmtDate(task.created_at, false)),
    ),
    task.error ? taskError(task.error) : null,
    progress ? null : waiting(task),
    progress
      ? card("Progress", progress, charts.length ? h("div", { class: "charts" }, charts) : null)
      : null,
    result ? card(kind === "ingestion" ? "Stats" : "Metrics", kvTable(result)) : null,
  ];
}

// A failed task's error is {reason, type, message} (e.g. exception, ValueError, "..."), as
// recorded by the Data Platform; shown in the same box as the API's errors.
function errorCode(error) {
  const reason = error.reason || error.code || "failed";
  return error.type ? `${reason}: ${error.type}` : reason;
}

function taskError(error) {
  return errorBox({ code: errorCode(error), message: error.message });
}

const errorText = (error) => `${errorCode(error)} — ${error.message ?? ""}`;

function appendLog(pre, text) {
  const stick = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
  pre.textContent = (pre.textContent + text).slice(-LOG_LIMIT);
  if (stick) pre.scrollTop = pre.scrollHeight;
}

async function loadLogs(kind, id, pre, ctx, follow) {
  const path = `${base(kind)}/${seg(id)}/logs?tail=2000${follow ? "&follow=true" : ""}`;
  if (!follow) {
    const text = await api.get(path);
    if (ctx.alive) {
      pre.textContent = text || "(no output)";
      pre.scrollTop = pre.scrollHeight;
    }
    return;
  }
  // The stream ends when the task does; aborted when the page is left.
  const resp = await request("GET", path, { signal: ctx.abort.signal, raw: true });
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  pre.textContent = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    appendLog(pre, value);
  }
}

async function detail(root, kind, id, ctx) {
  if (!KINDS.includes(kind)) throw new ApiError("NOT_FOUND", `no task kind ${kind}`);
  let task = await api.get(`${base(kind)}/${seg(id)}`);
  ctx.abort = new AbortController();
  let timer = null;
  ctx.stop = () => {
    clearTimeout(timer);
    ctx.abort.abort();
  };

  const problem = h("div");
  const live = h("div", { class: "live" });
  const info = h("div");
  const pre = h("pre", { class: "logs", dataset: { testid: "logs" } }, "loading…");
  const cancel = h("button", { class: "danger", type: "button" }, "Cancel task");
  const titleBadge = h("span");
  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    try {
      task = await api.post(`${base(kind)}/${seg(id)}/cancel`);
      show();
    } catch (err) {
      replace(problem, errorBox(err));
      cancel.disabled = false;
    }
  });

  const show = () => {
    replace(titleBadge, badge(task.status));
    cancel.hidden = !ACTIVE.has(task.status);
    replace(live, liveView(kind, task));
    replace(
      info,
      kvTable({
        id: task.id,
        input: task.input,
        script: task.script,
        params: task.params,
        created: fmtDate(task.created_at),
        started: fmtDate(task.started_at),
        completed: fmtDate(task.completed_at),
      }),
      h("p", {}, "Output: ", outputLink(kind, task)),
    );
  };

  add(
    root,
    h("p", { class: "crumbs" }, h("a", { href: "#/tasks" }, "Tasks"), ` / ${kind} / `),
    h(
      "div",
      { class: "title-row" },
      h("h1", {}, task.name, " ", titleBadge),
      h("div", { class: "actions" }, cancel),
    ),
    problem,
    live,
    h("div", { class: "columns wide-right" }, card("Task", info), card("Log", pre)),
  );
  show();

  const poll = async () => {
    try {
      task = await api.get(`${base(kind)}/${seg(id)}`);
    } catch (err) {
      if (ctx.alive) replace(problem, errorBox(err));
    }
    if (!ctx.alive) return;
    show();
    if (ACTIVE.has(task.status)) timer = setTimeout(poll, 1000);
  };
  const active = ACTIVE.has(task.status);
  if (active) timer = setTimeout(poll, 1000);
  loadLogs(kind, id, pre, ctx, active)
    .then(() => (active && ctx.alive ? loadLogs(kind, id, pre, ctx, false) : null))
    .catch((err) => {
      if (ctx.alive && err.name !== "AbortError") replace(pre, `${err.code}: ${err.message}`);
    });
}
