// Small DOM helpers. Text always goes in as text nodes (never innerHTML), so names, messages
// and logs from the API cannot inject markup.

function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

function setAttrs(el, attrs) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (name === "dataset") {
      Object.assign(el.dataset, value);
    } else if (name === "text") {
      el.textContent = String(value);
    } else if (name === "value" || name === "checked" || name === "disabled") {
      el[name] = value;
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
}

// h("a", {href: "#/x", class: "link"}, "text", child, [more]) -> element
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

const SVG_NS = "http://www.w3.org/2000/svg";

export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

// Decimal units, as the CLI shows them: 1 kB = 1,000 bytes, 1 MB = 1,000,000 bytes.
export function fmtBytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  let v = Number(n);
  // 999.7 kB would round to "1000 kB": such a value is shown in the next unit.
  while (v >= 999.5 && i < units.length - 1) {
    v /= 1000;
    i += 1;
  }
  return `${v >= 99.95 || i === 0 ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
}

export function fmtInt(n) {
  return n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US");
}

// Local time, as "2026-11-28 14:04:16" (or without the seconds, where space is short).
export function fmtDate(iso, seconds = true) {
  if (!iso) return "–";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const pad = (x) => String(x).padStart(2, "0");
  const day = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  return `${day} ${time}${seconds ? `:${pad(d.getSeconds())}` : ""}`;
}

// A date for a table cell: it breaks between day and time, never inside either.
export function dateCell(iso) {
  const [day, time] = fmtDate(iso, false).split(" ");
  return h("td", { class: "date" }, h("span", {}, day), time ? [" ", h("span", {}, time)] : null);
}

export function fmtDuration(startIso, endIso) {
  if (!startIso) return "–";
  const ms = (endIso ? new Date(endIso) : new Date()) - new Date(startIso);
  return fmtSeconds(ms / 1000);
}

// Rounded once, to the unit shown last: 179.6 s is "3 min 0 s", never "2 min 60 s".
export function fmtSeconds(sec) {
  if (!(sec >= 0)) return "–";
  if (sec < 59.95) return `${sec.toFixed(1)} s`;
  if (sec < 3599.5) {
    const whole = Math.round(sec);
    return `${Math.floor(whole / 60)} min ${whole % 60} s`;
  }
  const minutes = Math.round(sec / 60);
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

// Numbers as people read them: integers whole, small floats with 4 significant digits.
export function fmtValue(v) {
  if (typeof v === "number") {
    if (Number.isInteger(v)) return fmtInt(v);
    return Math.abs(v) >= 1000 ? v.toFixed(1) : String(Number(v.toPrecision(4)));
  }
  if (v === null || v === undefined) return "–";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

export const fmtPercent = (v) => (typeof v === "number" ? `${(v * 100).toFixed(2)} %` : "–");

// A two-column table of an object's entries.
export function kvTable(obj, { empty = "none" } = {}) {
  const entries = Object.entries(obj || {});
  if (!entries.length) return h("p", { class: "muted" }, empty);
  return h(
    "table",
    { class: "kv" },
    h(
      "tbody",
      {},
      entries.map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", {}, fmtValue(v)))),
    ),
  );
}

export function table(headers, rows, { empty = "Nothing here yet." } = {}) {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "grid" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          headers.map((x) => h("th", {}, x)),
        ),
      ),
      h("tbody", {}, rows),
    ),
  );
}

// The row under a table row that holds its error across every column, so that no error,
// however long, widens a column.
export function errorRow(text, columns, forId) {
  return h(
    "tr",
    { class: "error-row", dataset: { errorFor: forId } },
    h("td", { colspan: columns }, clipped(text, "error-inline")),
  );
}

export function badge(status) {
  return h("span", { class: `badge status-${status}`, dataset: { status } }, status);
}

// An API error exactly as the API gave it: its code and its message.
export function errorBox(err) {
  const code = err?.code || err?.name || "ERROR";
  const message = err?.message ?? String(err);
  return h(
    "div",
    { class: "error", role: "alert", dataset: { testid: "error", code } },
    h("code", { class: "error-code" }, code),
    h("span", { class: "error-message" }, message),
    code === "UNAUTHORIZED"
      ? h("span", { class: "hint" }, " — set the API key at the top right.")
      : null,
  );
}

export function card(title, ...children) {
  return h("section", { class: "card" }, title ? h("h2", {}, title) : null, children);
}

export function stat(label, value) {
  return h("div", { class: "stat" }, h("div", { class: "stat-value" }, value), h("div", {}, label));
}

// Element.append would print null as "null"; this skips null, undefined and false.
export function add(el, ...children) {
  append(el, children);
  return el;
}

export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// Text that may be long (an error, a path): at most two lines in a table, the full text on
// hover, and all of it on a click (again to fold it). Long words break instead of widening.
export function clipped(text, cls = "") {
  const el = h(
    "div",
    { class: `clip ${cls}`.trim(), title: text, dataset: { testid: "clip" } },
    text,
  );
  el.addEventListener("click", () => el.classList.toggle("open"));
  return el;
}
