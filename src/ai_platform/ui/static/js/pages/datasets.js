// Datasets: the lake's list, and one dataset's schema, size and Lance versions.
import { api, seg } from "../api.js";
import {
  add,
  card,
  dateCell,
  errorBox,
  fmtBytes,
  fmtDate,
  fmtInt,
  h,
  kvTable,
  stat,
  table,
} from "../dom.js";

export async function render(root, { args }) {
  return args[0] ? detail(root, args[0]) : list(root);
}

async function list(root) {
  add(root, h("h1", {}, "Datasets"));
  const items = await api.get("/datasets");
  const rows = items.map((d) =>
    h(
      "tr",
      { dataset: { id: d.id } },
      h("td", { class: "name" }, h("a", { href: `#/datasets/${seg(d.id)}` }, d.id)),
      h("td", { class: "num" }, fmtInt(d.num_rows)),
      h("td", { class: "num" }, Object.keys(d.schema || {}).length),
      h("td", { class: "num" }, fmtBytes(d.size_bytes)),
      h("td", { class: "num" }, d.version),
      dateCell(d.updated_at),
    ),
  );
  add(
    root,
    card(
      null,
      table(["Name", "Rows", "Columns", "Size", "Version", "Updated"], rows, {
        empty: h(
          "span",
          {},
          "No datasets yet: ",
          h("a", { href: "#/tasks?kind=ingestion" }, "start an ingestion task"),
          ".",
        ),
      }),
    ),
  );
}

async function detail(root, id) {
  const [d, versions] = await Promise.all([
    api.get(`/datasets/${seg(id)}`),
    api.get(`/datasets/${seg(id)}/versions`),
  ]);
  const problem = h("div");
  const del = h("button", { class: "danger", type: "button" }, "Delete dataset");
  del.addEventListener("click", async () => {
    if (!confirm(`Delete dataset ${id} and all its versions?`)) return;
    try {
      await api.del(`/datasets/${seg(id)}`);
      location.hash = "#/datasets";
    } catch (err) {
      problem.replaceChildren(errorBox(err));
    }
  });
  add(
    root,
    h("p", { class: "crumbs" }, h("a", { href: "#/datasets" }, "Datasets"), " / "),
    h(
      "div",
      { class: "title-row" },
      h("h1", {}, d.id),
      h(
        "div",
        { class: "actions" },
        h(
          "a",
          {
            class: "button",
            href: `#/tasks?kind=training&input=${seg(d.id)}`,
          },
          "Train a model on it",
        ),
        del,
      ),
    ),
    problem,
    h(
      "div",
      { class: "stats" },
      stat("rows", fmtInt(d.num_rows)),
      stat("on disk", fmtBytes(d.size_bytes)),
      stat("Lance version", d.version),
      stat("updated", fmtDate(d.updated_at, false)),
    ),
    h(
      "div",
      { class: "columns" },
      card(
        "Schema",
        table(
          ["Column", "Type"],
          Object.entries(d.schema || {}).map(([col, type]) =>
            h("tr", {}, h("td", {}, h("code", {}, col)), h("td", {}, type)),
          ),
        ),
      ),
      card(
        "Versions",
        table(
          ["Version", "Written", "Rows"],
          [...versions]
            .reverse()
            .map((v) =>
              h(
                "tr",
                {},
                h("td", { class: "num" }, v.version),
                h("td", { class: "nowrap" }, fmtDate(v.timestamp)),
                h("td", { class: "num" }, fmtInt(v.num_rows)),
              ),
            ),
        ),
      ),
    ),
    card("Details", kvTable({ path: d.path, created: fmtDate(d.created_at), ...d.metadata })),
  );
}
