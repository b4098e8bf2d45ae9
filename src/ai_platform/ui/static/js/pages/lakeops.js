// What the lake adds to the pages: the nearest training digits beside a prediction (search),
// and a model's lineage as a chain from its version back to the raw files.
import { api, seg } from "../api.js";
import { card, h, replace } from "../dom.js";

const NEIGHBOURS = 8;
const SIDE = 28;

// A 28x28 canvas from a row's stored image: 784 uint8 pixels or 784 float32 in [0, 1].
function digitCanvas(b64) {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const pixels =
    bytes.length === SIDE * SIDE * 4
      ? Array.from(new Float32Array(bytes.buffer), (v) => Math.round(v * 255))
      : Array.from(bytes);
  const canvas = h("canvas", { class: "neighbour", width: SIDE, height: SIDE });
  const g = canvas.getContext("2d");
  const img = g.createImageData(SIDE, SIDE);
  pixels.forEach((v, i) => {
    img.data.set([v, v, v, 255], i * 4);
  });
  g.putImageData(img, 0, 0);
  return canvas;
}

// The model's training dataset, once per model (the search runs there).
const sources = new Map();
async function sourceOf(model) {
  if (!sources.has(model)) {
    sources.set(model, api.get(`/models/${seg(model)}`).then((m) => m.source?.name || null));
  }
  return sources.get(model);
}

export function neighboursCard() {
  const body = h("div", { class: "neighbours", dataset: { testid: "neighbours" } });
  const idle = () => replace(body, h("p", { class: "muted" }, "Nearest training digits appear here."));
  idle();
  return {
    el: card("Nearest training digits", body),
    idle,
    async show(model, png) {
      let dataset = null;
      try {
        dataset = await sourceOf(model);
        if (!dataset) throw new Error("the model names no training dataset");
        const found = await api.post(`/datasets/${seg(dataset)}/search`, {
          input: png,
          model,
          k: NEIGHBOURS,
          filter: "split = 'train'",
          columns: ["label", "image"],
        });
        replace(
          body,
          h(
            "div",
            { class: "neighbour-row" },
            found.hits.map((hit) =>
              h(
                "figure",
                { dataset: { testid: "neighbour", label: String(hit.values.label) } },
                digitCanvas(hit.values.image),
                h("figcaption", {}, String(hit.values.label)),
              ),
            ),
          ),
          h("p", { class: "hint" }, found.indexed ? "from the vector index" : "by a flat scan"),
        );
      } catch (err) {
        const hint = dataset
          ? `Run a batch inference of ${model} on ${dataset} to search its digits (${err.message}).`
          : `No similar digits: ${err.message}`;
        replace(body, h("p", { class: "muted", dataset: { testid: "no-neighbours" } }, hint));
      }
    },
  };
}

function step(kind, title, ...lines) {
  return h(
    "div",
    { class: "chain-step", dataset: { testid: "lineage-step", kind } },
    h("div", { class: "chain-kind" }, kind),
    h("div", { class: "chain-title" }, title),
    lines.filter(Boolean).map((line) => h("div", { class: "chain-line muted" }, line)),
  );
}

function taskStep(kind, task) {
  const sha = task.script_sha256 ? `sha256 ${task.script_sha256.slice(0, 12)}` : "no sha256";
  const raw = Object.entries(task.input_checksums || {}).map(
    ([name, digest]) => `${name} ${String(digest).slice(0, 12)}`,
  );
  return step(
    kind,
    h("a", { href: `#/tasks/${seg(task.id)}` }, task.id),
    `${task.script} (${sha})`,
    Object.keys(task.params || {}).length ? `params ${JSON.stringify(task.params)}` : null,
    task.input ? `input ${task.input}${task.input_version ? ` v${task.input_version}` : ""}` : null,
    ...raw,
  );
}

// The chain, newest first: model version, training task, dataset version, its writers.
export async function lineageCard(model) {
  const body = h("div", { class: "chain", dataset: { testid: "lineage" } });
  try {
    const lin = await api.get(`/models/${seg(model)}/lineage`);
    const steps = [step("model", `${lin.model} v${lin.model_version}`)];
    if (lin.training) steps.push(taskStep("training", lin.training));
    if (lin.dataset) steps.push(step("dataset", `${lin.dataset} v${lin.dataset_version}`));
    for (const task of lin.producers) steps.push(taskStep(task.kind, task));
    const arrowed = steps.flatMap((s, i) => (i ? [h("div", { class: "chain-arrow" }, "\u2192"), s] : [s]));
    replace(
      body,
      h("div", { class: "chain-row" }, arrowed),
      lin.missing.map((gap) => h("p", { class: "hint" }, `not recorded: ${gap}`)),
    );
  } catch (err) {
    replace(body, h("p", { class: "muted" }, `No lineage: ${err.message}`));
  }
  return card("Lineage", body);
}
