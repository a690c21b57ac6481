// The console's configuration (config.json beside the page) and its calls to the payments API, with
// the signed-in person's bearer token. Errors are the API's problem documents.
let config = null;
const TOKEN_KEY = "mxflow.console.token";

export async function loadConfig() {
  if (!config) {
    const response = await fetch("config.json", { cache: "no-store" });
    if (!response.ok) throw new Error(`config.json: ${response.status}`);
    config = await response.json();
  }
  return config;
}

export function getConfig() { return config; }

export function token() { return window.sessionStorage.getItem(TOKEN_KEY); }
export function setToken(value) { window.sessionStorage.setItem(TOKEN_KEY, value); }
export function clearToken() { window.sessionStorage.removeItem(TOKEN_KEY); }

// The token's claims (read only to decide which controls to show; the API checks every call).
export function claims() {
  const value = token();
  if (!value) return null;
  try {
    const payload = value.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(payload + "=".repeat((4 - (payload.length % 4)) % 4)));
  } catch {
    return null;
  }
}

export function scopes() { return new Set(String((claims() || {}).scope || "").split(/\s+/).filter(Boolean)); }
export function can(scope) { return scopes().has(`payments/${scope}`); }
export function expired() {
  const c = claims();
  return !c || (typeof c.exp === "number" && c.exp * 1000 < Date.now());
}

export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title || problem.message)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
  }
}

export async function call(method, path, { body, accept = "application/json", raw = false } = {}) {
  const headers = { Accept: accept };
  const value = token();
  if (value) headers.Authorization = `Bearer ${value}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(`${config.apiBase || ""}${path}`, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store",
  });
  if (!response.ok) {
    let problem = null;
    try { problem = await response.json(); } catch { problem = null; }
    if (response.status === 401) window.dispatchEvent(new CustomEvent("mxflow:unauthorized"));
    throw new ApiError(response.status, problem);
  }
  if (raw) return response;
  return response.status === 204 ? null : response.json();
}
