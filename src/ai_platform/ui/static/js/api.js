// The platform's REST API on the same origin. Every failure becomes an ApiError carrying the
// envelope's code and message unchanged, so pages show exactly what the API said.

const KEY_STORAGE = "aip.apiKey";
const BASE = "/api/v1";

export class ApiError extends Error {
  constructor(code, message, status = 0) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

export function getKey() {
  return localStorage.getItem(KEY_STORAGE) || "";
}

export function setKey(key) {
  if (key) localStorage.setItem(KEY_STORAGE, key);
  else localStorage.removeItem(KEY_STORAGE);
}

function headers(json) {
  const out = {};
  if (json) out["Content-Type"] = "application/json";
  const key = getKey();
  if (key) out.Authorization = `Bearer ${key}`;
  return out;
}

async function toError(resp) {
  const text = await resp.text();
  try {
    const err = JSON.parse(text).error;
    if (err && err.code) return new ApiError(err.code, err.message ?? "", resp.status);
  } catch {
    // not the envelope (a proxy's page, say): shown as it came, below
  }
  return new ApiError(`HTTP_${resp.status}`, text.slice(0, 500) || resp.statusText, resp.status);
}

// One request. `raw` hands back the Response (for streams); otherwise JSON or text by type.
export async function request(method, path, { body, signal, raw = false } = {}) {
  const json = body !== undefined;
  let resp;
  try {
    resp = await fetch(BASE + path, {
      method,
      headers: headers(json),
      body: json ? JSON.stringify(body) : undefined,
      signal,
    });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError("NETWORK_ERROR", `cannot reach the platform: ${err.message}`);
  }
  if (!resp.ok) throw await toError(resp);
  if (raw) return resp;
  if (resp.status === 204) return null;
  const type = resp.headers.get("content-type") || "";
  return type.includes("json") ? resp.json() : resp.text();
}

export const api = {
  get: (path, opts) => request("GET", path, opts),
  post: (path, body = {}, opts) => request("POST", path, { ...opts, body }),
  del: (path, opts) => request("DELETE", path, opts),
};

// Path segments come from the API or the URL; encode them so none can change the route.
export const seg = (value) => encodeURIComponent(String(value));
