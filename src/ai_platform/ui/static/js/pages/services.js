// Inference services: the list, a form to serve a model, delete.
import { api, seg } from "../api.js";
import { add, badge, card, dateCell, errorBox, errorRow, h, replace, table } from "../dom.js";

const NAME_OK = /[^A-Za-z0-9_.-]/g;
const HEADERS = ["Name", "Model", "Status", "Endpoint", "Since", ""];

export async function render(root, { query, ctx }) {
  add(root, h("h1", {}, "Inference services"));
  const holder = h("div");
  const problem = h("div");
  const form = await serviceForm(query, () => refresh());
  add(root, h("div", { class: "columns wide-right" }, form, card("Services", problem, holder)));

  let timer = null;
  ctx.stop = () => clearTimeout(timer);

  const remove = async (svc, button) => {
    if (!confirm(`Stop and delete service ${svc.name}?`)) return;
    button.disabled = true;
    try {
      await api.del(`/inference-services/${seg(svc.id)}`);
      replace(problem);
    } catch (err) {
      replace(problem, errorBox(err));
    }
    refresh();
  };

  const refresh = async () => {
    let items;
    try {
      items = await api.get("/inference-services");
    } catch (err) {
      if (ctx.alive) replace(holder, errorBox(err));
      return;
    }
    if (!ctx.alive) return;
    const rows = items.map((svc) => {
      const del = h("button", { class: "danger small", type: "button" }, "Delete");
      del.addEventListener("click", () => remove(svc, del));
      return [
        h(
          "tr",
          { class: svc.error ? "has-error" : null, dataset: { id: svc.id } },
          h("td", { class: "name" }, svc.name),
          h(
            "td",
            { class: "wrap" },
            h("a", { href: `#/models/${seg(svc.model)}` }, svc.model),
            ` v${svc.model_version ?? "?"}`,
            h("small", { class: "sub" }, svc.device),
          ),
          h("td", {}, badge(svc.status)),
          h("td", {}, endpoint(svc.endpoint)),
          dateCell(svc.started_at || svc.created_at),
          h(
            "td",
            {},
            h(
              "div",
              { class: "actions" },
              svc.status === "running"
                ? h("a", { class: "button small", href: `#/pad?service=${seg(svc.id)}` }, "Draw")
                : null,
              del,
            ),
          ),
        ),
        svc.error ? errorRow(svc.error, HEADERS.length, svc.id) : null,
      ];
    });
    replace(
      holder,
      table(HEADERS, rows, {
        empty: "No services: serve a model with the form.",
      }),
    );
    clearTimeout(timer);
    if (items.some((svc) => svc.status === "starting")) timer = setTimeout(refresh, 1500);
  };
  await refresh();
}

async function serviceForm(query, onChanged) {
  const models = (await api.get("/models")).map((m) => m.id);
  const model = h(
    "select",
    { name: "model", required: true },
    models.map((id) => h("option", { value: id }, id)),
  );
  if (query.get("model") && models.includes(query.get("model"))) model.value = query.get("model");
  const name = h("input", { name: "name", required: true, autocomplete: "off" });
  const device = h("input", { name: "device", value: "cpu", autocomplete: "off" });
  const port = h("input", {
    name: "port",
    type: "number",
    min: 0,
    max: 65535,
    placeholder: "any free port",
  });
  const problem = h("div", { dataset: { testid: "form-error" } });
  const submit = h("button", { type: "submit", disabled: !models.length }, "Start service");
  // A name derived from the model until the person types one of their own.
  let named = false;
  const suggest = () => {
    if (!named) name.value = `${model.value}_svc`.replace(NAME_OK, "_");
  };
  name.addEventListener("input", () => (named = true));
  model.addEventListener("change", suggest);
  suggest();

  const form = h(
    "form",
    { class: "task-form", dataset: { testid: "service-form" } },
    h("label", { class: "field" }, h("span", {}, "Model"), model),
    h("label", { class: "field" }, h("span", {}, "Name"), name),
    h(
      "label",
      { class: "field" },
      h("span", {}, "Device"),
      device,
      h("small", {}, "cpu, cuda or cuda:N"),
    ),
    h(
      "label",
      { class: "field" },
      h("span", {}, "Port"),
      port,
      h("small", {}, "empty: a free port"),
    ),
    models.length ? null : h("p", { class: "empty" }, "No models yet: train one first."),
    problem,
    h("div", { class: "row" }, submit),
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    replace(problem);
    submit.disabled = true;
    submit.textContent = "Starting… (the model loads)";
    try {
      const body = {
        name: name.value.trim(),
        model: model.value,
        device: device.value.trim() || "cpu",
      };
      if (port.value !== "") body.port = Number(port.value);
      await api.post("/inference-services", body);
      onChanged();
    } catch (err) {
      replace(problem, errorBox(err));
      // A start that failed leaves a failed service behind (its error says why): list it.
      onChanged();
    } finally {
      submit.disabled = false;
      submit.textContent = "Start service";
    }
  });
  return card("Serve a model", form);
}

// An endpoint may break after its scheme (http://) where the column is short, never inside
// its host or port.
function endpoint(url) {
  const [scheme, rest] = String(url).split("://");
  return rest === undefined ? h("code", {}, url) : h("code", {}, `${scheme}://`, h("wbr"), rest);
}
