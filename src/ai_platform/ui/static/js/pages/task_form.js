// The form that starts an ingestion or training task. It fills in the shipped MNIST scripts as
// a starting point; whatever the API refuses is shown as the API said it (code and message).
import { ApiError, api } from "../api.js";
import { card, errorBox, h, replace } from "../dom.js";

const PRESETS = {
  ingestion: {
    name: "mnist_ingestion",
    input: "raw/mnist",
    script: "pipelines/mnist_clean.py",
    params: { normalize: true },
    output: "mnist_clean",
    inputHint: "raw data path under the data root",
    outputHint: "dataset name",
    scripts: ["pipelines/mnist_clean.py"],
  },
  training: {
    name: "mnist_cnn_training",
    input: "mnist_clean",
    script: "training/mnist_cnn.py",
    params: { epochs: 2 },
    output: "mnist_cnn",
    inputHint: "dataset name",
    outputHint: "model name",
    scripts: ["training/mnist_cnn.py", "training/mnist_mlp.py"],
  },
};

function field(label, input, hint) {
  return h(
    "label",
    { class: "field" },
    h("span", {}, label),
    input,
    hint ? h("small", {}, hint) : null,
  );
}

function parseParams(text) {
  if (!text.trim()) return {};
  let value;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ApiError("INVALID_JSON", `params: ${err.message}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ApiError("INVALID_JSON", 'params must be a JSON object, e.g. {"epochs": 2}');
  }
  return value;
}

export async function taskForm(query, onCreated) {
  let datasets = [];
  try {
    datasets = (await api.get("/datasets")).map((d) => d.id);
  } catch {
    // suggestions only: the form works without them, and the list page shows the error
  }
  const inputs = {
    name: h("input", { name: "name", required: true, autocomplete: "off" }),
    input: h("input", { name: "input", required: true, list: "task-inputs", autocomplete: "off" }),
    script: h("input", {
      name: "script",
      required: true,
      list: "task-scripts",
      autocomplete: "off",
    }),
    params: h("textarea", { name: "params", rows: 3, spellcheck: "false" }),
    output: h("input", { name: "output", required: true, autocomplete: "off" }),
  };
  const kindSelect = h(
    "select",
    { name: "kind" },
    h("option", { value: "ingestion" }, "Ingestion"),
    h("option", { value: "training" }, "Training"),
  );
  const inputList = h("datalist", { id: "task-inputs" });
  const scriptList = h("datalist", { id: "task-scripts" });
  const hints = { input: h("small"), output: h("small") };
  const problem = h("div", { dataset: { testid: "form-error" } });
  const submit = h("button", { type: "submit" }, "Start task");

  const preset = (kind) => {
    const p = PRESETS[kind];
    for (const key of ["name", "input", "script", "output"]) inputs[key].value = p[key];
    inputs.params.value = JSON.stringify(p.params);
    hints.input.textContent = p.inputHint;
    hints.output.textContent = p.outputHint;
    const inputsFor = kind === "training" ? datasets : ["raw/mnist"];
    replace(
      inputList,
      inputsFor.map((v) => h("option", { value: v })),
    );
    replace(
      scriptList,
      p.scripts.map((v) => h("option", { value: v })),
    );
  };
  const kind = PRESETS[query.get("kind")] ? query.get("kind") : "ingestion";
  kindSelect.value = kind;
  preset(kind);
  if (query.get("input")) inputs.input.value = query.get("input");
  kindSelect.addEventListener("change", () => preset(kindSelect.value));

  const form = h(
    "form",
    { class: "task-form", dataset: { testid: "task-form" } },
    field("Kind", kindSelect),
    field("Name", inputs.name, "one active task per name"),
    field("Input", inputs.input, hints.input),
    field("Script", inputs.script, "path under the scripts root"),
    field("Params (JSON)", inputs.params),
    field("Output", inputs.output, hints.output),
    inputList,
    scriptList,
    problem,
    h("div", { class: "row" }, submit),
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    replace(problem);
    submit.disabled = true;
    try {
      const body = {
        name: inputs.name.value.trim(),
        input: inputs.input.value.trim(),
        script: inputs.script.value.trim(),
        params: parseParams(inputs.params.value),
        output: inputs.output.value.trim(),
      };
      const task = await api.post(`/${kindSelect.value}-tasks`, body);
      onCreated(kindSelect.value, task);
    } catch (err) {
      replace(problem, errorBox(err));
    } finally {
      submit.disabled = false;
    }
  });
  return card("Start a task", form);
}
