// Hash routes (#/page/arg?query): the server serves one index.html, and links, reloads and the
// back button work without any server-side routing.
import { getKey, setKey } from "./api.js";
import { errorBox, replace } from "./dom.js";
import * as datasets from "./pages/datasets.js";
import * as models from "./pages/models.js";
import * as pad from "./pages/pad.js";
import * as services from "./pages/services.js";
import * as tasks from "./pages/tasks.js";

const PAGES = { datasets, tasks, models, services, pad };
const main = document.getElementById("page");
let cleanup = null;

function parseHash() {
  const [path, query = ""] = location.hash.replace(/^#\/?/, "").split("?");
  const [page, ...args] = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { page: page || "datasets", args, query: new URLSearchParams(query) };
}

async function route() {
  // Each page may return a cleanup function: it stops its timers and aborts its streams.
  if (cleanup) cleanup();
  cleanup = null;
  const { page, args, query } = parseHash();
  for (const a of document.querySelectorAll(".tabs a")) {
    a.classList.toggle("active", a.dataset.page === page);
  }
  const mod = PAGES[page];
  if (!mod) {
    replace(main, errorBox({ code: "NOT_FOUND", message: `no page ${page}` }));
    return;
  }
  const ctx = { alive: true };
  cleanup = () => {
    ctx.alive = false;
    ctx.stop?.();
  };
  replace(main);
  main.dataset.page = page;
  try {
    await mod.render(main, { args, query, ctx });
  } catch (err) {
    if (ctx.alive) main.append(errorBox(err));
  }
}

function setupKeyForm() {
  const toggle = document.getElementById("key-toggle");
  const form = document.getElementById("key-form");
  const input = document.getElementById("key-input");
  const show = (open) => {
    form.hidden = !open;
    toggle.setAttribute("aria-expanded", String(open));
  };
  const mark = () => toggle.classList.toggle("has-key", Boolean(getKey()));
  toggle.addEventListener("click", () => {
    input.value = getKey();
    show(form.hidden);
    if (!form.hidden) input.focus();
  });
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    setKey(input.value.trim());
    show(false);
    mark();
    route();
  });
  document.getElementById("key-forget").addEventListener("click", () => {
    setKey("");
    input.value = "";
    show(false);
    mark();
    route();
  });
  mark();
}

setupKeyForm();
window.addEventListener("hashchange", route);
route();
