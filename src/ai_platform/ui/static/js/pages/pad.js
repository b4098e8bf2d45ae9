// The drawing pad: draw a digit, send the canvas as a PNG to a service's predict endpoint.
// The server normalises any PNG the way MNIST was made (invert a light background, crop to the
// ink, fit 20x20, centre by mass), so the canvas goes as it is: black ink on white.
import { api, seg } from "../api.js";
import { add, card, errorBox, fmtPercent, h, replace } from "../dom.js";
import { neighboursCard } from "./lakeops.js";

const SERVICE_STORAGE = "aip.padService";
const SIZE = 320; // CSS pixels; the bitmap is SIZE * devicePixelRatio for sharp strokes
const PEN = 0.075; // stroke width as a fraction of the side: like MNIST's thick pen
const AUTO_DELAY = 250; // ms after a stroke ends before predicting, so quick strokes batch

export async function render(root, { query, ctx }) {
  add(root, h("h1", {}, "Drawing pad"));
  const services = (await api.get("/inference-services")).filter((svc) => svc.status === "running");
  const wanted = query.get("service") || localStorage.getItem(SERVICE_STORAGE);
  const select = h(
    "select",
    { id: "pad-service", "aria-label": "Inference service" },
    services.map((svc) => h("option", { value: svc.id }, `${svc.name} (${svc.model})`)),
  );
  if (services.some((svc) => svc.id === wanted)) select.value = wanted;
  select.addEventListener("change", () => localStorage.setItem(SERVICE_STORAGE, select.value));

  const canvas = h("canvas", { class: "pad", dataset: { testid: "pad" } });
  const predictBtn = h("button", { type: "button", disabled: !services.length }, "Predict");
  const clearBtn = h("button", { type: "button", class: "ghost" }, "Clear");
  const auto = h("input", { type: "checkbox", id: "pad-auto", checked: true });
  const result = h("div", { class: "result", dataset: { testid: "result" } });
  const pad = makePad(canvas);
  const neighbours = neighboursCard();
  const modelOf = new Map(services.map((svc) => [svc.id, svc.model]));
  let seq = 0; // only the latest request's answer is shown
  let autoTimer = null;

  const idle = () =>
    replace(result, h("p", { class: "muted" }, "Draw a digit, then Predict."), bars(null));
  const predict = async () => {
    clearTimeout(autoTimer);
    if (!select.value) return;
    if (pad.isBlank()) {
      replace(
        result,
        h("p", { class: "muted" }, "The pad is empty: draw a digit first."),
        bars(null),
      );
      return;
    }
    const mine = ++seq;
    result.classList.add("busy");
    try {
      const png = pad.pngBase64();
      const answer = await api.post(`/inference-services/${seg(select.value)}/predict`, {
        image: png,
      });
      if (mine === seq && ctx.alive) {
        showAnswer(result, answer);
        neighbours.show(modelOf.get(select.value), png);
      }
    } catch (err) {
      if (mine === seq && ctx.alive) replace(result, errorBox(err), bars(null));
    } finally {
      if (mine === seq) result.classList.remove("busy");
    }
  };
  pad.onStrokeEnd = () => {
    clearTimeout(autoTimer);
    if (auto.checked && select.value) autoTimer = setTimeout(predict, AUTO_DELAY);
  };
  predictBtn.addEventListener("click", predict);
  clearBtn.addEventListener("click", () => {
    seq += 1; // an answer still on its way is for the old drawing
    result.classList.remove("busy");
    pad.clear();
    idle();
    neighbours.idle();
  });
  ctx.stop = () => clearTimeout(autoTimer);

  const picker = services.length
    ? h("label", { class: "field inline" }, h("span", {}, "Service"), select)
    : h(
        "p",
        { class: "empty" },
        "No running inference service: ",
        h("a", { href: "#/services" }, "serve a model"),
        " first.",
      );
  add(
    root,
    h(
      "div",
      { class: "pad-layout" },
      card(
        null,
        picker,
        h("div", { class: "pad-frame" }, canvas),
        h(
          "div",
          { class: "row" },
          predictBtn,
          clearBtn,
          h("label", { class: "check", for: "pad-auto" }, auto, " predict when a stroke ends"),
        ),
        h(
          "p",
          { class: "hint" },
          "Draw with the mouse, a pen or a finger; thick strokes work best.",
        ),
      ),
      card("Prediction", result),
    ),
    neighbours.el,
  );
  idle();
}

// Ten bars, one per digit; empty (zero) until there is an answer.
function bars(probabilities, best = -1) {
  return h(
    "div",
    { class: "bars", dataset: { testid: "bars" } },
    Array.from({ length: 10 }, (_, digit) => {
      const p = probabilities ? (probabilities[digit] ?? 0) : 0;
      return h(
        "div",
        {
          class: `bar-row${digit === best ? " best" : ""}`,
          dataset: { digit: String(digit), prob: String(p) },
        },
        h("span", { class: "bar-label" }, digit),
        h("div", { class: "bar" }, h("i", { style: `width:${(p * 100).toFixed(2)}%` })),
        h("span", { class: "bar-value" }, probabilities ? fmtPercent(p) : ""),
      );
    }),
  );
}

function showAnswer(result, answer) {
  replace(
    result,
    h(
      "div",
      { class: "answer" },
      h("div", { class: "digit", dataset: { testid: "prediction" } }, String(answer.prediction)),
      h(
        "div",
        {},
        h("div", { class: "muted" }, "confidence"),
        h(
          "div",
          { class: "confidence", dataset: { testid: "confidence" } },
          fmtPercent(answer.confidence),
        ),
      ),
    ),
    bars(answer.probabilities, answer.prediction),
  );
}

// A canvas that takes pointer strokes (mouse, pen, touch alike) as thick round black lines.
function makePad(canvas) {
  const dpr = window.devicePixelRatio || 1;
  canvas.width = canvas.height = Math.round(SIZE * dpr);
  canvas.style.width = canvas.style.height = `${SIZE}px`;
  const g = canvas.getContext("2d");
  let drawing = false;
  let blank = true;
  let last = null;

  const clear = () => {
    // Opaque white, not transparent: the PNG then reads as paper with ink on it.
    g.fillStyle = "#fff";
    g.fillRect(0, 0, canvas.width, canvas.height);
    blank = true;
  };
  const at = (ev) => {
    const r = canvas.getBoundingClientRect();
    return [
      ((ev.clientX - r.left) * canvas.width) / r.width,
      ((ev.clientY - r.top) * canvas.height) / r.height,
    ];
  };
  const line = (from, to) => {
    g.strokeStyle = "#111";
    g.lineWidth = PEN * canvas.width;
    g.lineCap = g.lineJoin = "round";
    g.beginPath();
    g.moveTo(...from);
    g.lineTo(...to);
    g.stroke();
  };
  const pad = {
    onStrokeEnd: null,
    clear,
    isBlank: () => blank,
    pngBase64: () => canvas.toDataURL("image/png").split(",")[1],
  };
  canvas.addEventListener("pointerdown", (ev) => {
    ev.preventDefault();
    canvas.setPointerCapture(ev.pointerId);
    drawing = true;
    blank = false;
    last = at(ev);
    line(last, last); // a tap leaves a dot
  });
  canvas.addEventListener("pointermove", (ev) => {
    if (!drawing) return;
    // Coalesced events keep fast strokes smooth where the browser batches moves.
    const events = ev.getCoalescedEvents?.() || [ev];
    for (const e of events.length ? events : [ev]) {
      const p = at(e);
      line(last, p);
      last = p;
    }
  });
  const end = () => {
    if (!drawing) return;
    drawing = false;
    pad.onStrokeEnd?.();
  };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  clear();
  return pad;
}
