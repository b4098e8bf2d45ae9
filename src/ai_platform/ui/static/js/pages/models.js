// Models: the list with their headline metric, and one model's metrics, params and curves.
import { api, seg } from "../api.js";
import { seriesCharts } from "../chart.js";
import {
  add,
  card,
  dateCell,
  errorBox,
  fmtBytes,
  fmtDate,
  fmtInt,
  fmtPercent,
  fmtValue,
  h,
  kvTable,
  stat,
  table,
} from "../dom.js";
import { lineageCard } from "./lakeops.js";

export async function render(root, { args }) {
  return args[0] ? detail(root, args[0]) : list(root);
}

// "mnist_cnn: conv3x3(...), ..." -> "mnist_cnn"; the whole text is on the model's page.
const shortArch = (a) => (a ? a.split(":")[0] : "–");

async function list(root) {
  add(root, h("h1", {}, "Models"));
  const items = await api.get("/models");
  const rows = items.map((m) =>
    h(
      "tr",
      { dataset: { id: m.id } },
      h(
        "td",
        { class: "name" },
        h("a", { href: `#/models/${seg(m.id)}` }, m.id),
        ` v${m.version}`,
        h("small", { class: "sub" }, shortArch(m.architecture)),
      ),
      h("td", { class: "num" }, fmtPercent(m.metrics?.test_accuracy)),
      h("td", { class: "num" }, fmtValue(m.metrics?.epochs ?? m.history?.length)),
      h("td", { class: "name" }, m.source?.name ? `${m.source.name} v${m.source.version}` : "–"),
      h("td", { class: "num" }, fmtBytes(m.weights_bytes || m.size_bytes)),
      dateCell(m.created_at),
    ),
  );
  add(
    root,
    card(
      null,
      table(["Name", "Test accuracy", "Epochs", "Trained on", "Weights", "Created"], rows, {
        empty: h(
          "span",
          {},
          "No models yet: ",
          h("a", { href: "#/tasks?kind=training" }, "start a training task"),
          ".",
        ),
      }),
    ),
  );
}

async function detail(root, id) {
  const m = await api.get(`/models/${seg(id)}`);
  const problem = h("div");
  const del = h("button", { class: "danger", type: "button" }, "Delete model");
  del.addEventListener("click", async () => {
    if (!confirm(`Delete model ${id} and all its versions?`)) return;
    try {
      await api.del(`/models/${seg(id)}`);
      location.hash = "#/models";
    } catch (err) {
      problem.replaceChildren(errorBox(err));
    }
  });
  const history = Array.isArray(m.history) ? m.history : [];
  const charts = seriesCharts(history, "epoch");
  const src = m.source || {};
  const { error, ...record } = m.info || {};
  add(
    root,
    h("p", { class: "crumbs" }, h("a", { href: "#/models" }, "Models"), " / "),
    h(
      "div",
      { class: "title-row" },
      h("h1", {}, m.id, " ", h("span", { class: "muted" }, `v${m.version}`)),
      h(
        "div",
        { class: "actions" },
        h("a", { class: "button", href: `#/services?model=${seg(m.id)}` }, "Serve it"),
        del,
      ),
    ),
    problem,
    error ? errorBox({ code: "NOT_A_MODEL", message: error }) : null,
    h(
      "div",
      { class: "stats" },
      stat("test accuracy", fmtPercent(m.metrics?.test_accuracy)),
      stat("test loss", fmtValue(m.metrics?.test_loss)),
      stat("parameters", fmtInt(record.num_parameters)),
      stat("weights", fmtBytes(m.weights_bytes)),
      stat("created", fmtDate(m.created_at, false)),
    ),
    card(
      "Training curves",
      charts.length
        ? h("div", { class: "charts", dataset: { testid: "curves" } }, charts)
        : h("p", { class: "empty" }, "This model has no per-epoch history."),
      history.length === 1
        ? h("p", { class: "hint" }, "One epoch: each curve is a single point.")
        : null,
    ),
    h(
      "div",
      { class: "columns" },
      card("Metrics", kvTable(m.metrics)),
      card("Params", kvTable(m.params)),
    ),
    h(
      "div",
      { class: "columns" },
      card(
        "Source",
        kvTable({ dataset: src.name, version: src.version, path: src.path }),
        src.name ? h("a", { href: `#/datasets/${seg(src.name)}` }, "Open the dataset") : null,
      ),
      card("Input", kvTable(m.input_spec)),
    ),
    await lineageCard(m.id),
    card("Record", h("p", {}, m.architecture || ""), kvTable({ path: m.path, ...record })),
  );
}
