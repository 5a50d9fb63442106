// The console's only way to the server: the same HTTP API any client uses, with the bearer
// token the operator typed. The token lives in this module's memory for the life of the tab:
// never in a URL, a cookie or storage, so closing the tab forgets it.

let token = null;

/** An error answer of the API: its status and the `{code, message}` body. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(`${status} ${code}: ${message}`);
    this.status = status;
    this.code = code;
  }
}

export function setToken(t) {
  token = t || null;
}

export function signedIn() {
  return token !== null;
}

/** Headers for a call (the stream reader adds `Last-Event-ID`). */
export function authHeaders(extra = {}) {
  return { ...extra, authorization: `Bearer ${token}` };
}

let onUnauthorized = () => {};
/** Called with the error when any call answers 401 (the token stopped working). */
export function whenUnauthorized(fn) {
  onUnauthorized = fn;
}

/** Turns a non-2xx response into an `ApiError` (401s also reach `whenUnauthorized`). */
export async function failure(res) {
  let code = "http_error";
  let message = res.statusText || "request failed";
  try {
    const body = await res.json();
    code = body.code ?? code;
    message = body.message ?? message;
  } catch {
    // not JSON: keep the status text
  }
  const error = new ApiError(res.status, code, message);
  if (res.status === 401) onUnauthorized(error);
  return error;
}

async function call(method, path, body) {
  const init = { method, headers: authHeaders(), cache: "no-store" };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, "network_error", String(e?.message ?? e));
  }
  if (!res.ok) throw await failure(res);
  if (res.status === 204) return null;
  return res.json();
}

/** `GET path?query` (empty values left out). */
export function get(path, query = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, v);
  }
  const qs = q.toString();
  return call("GET", qs ? `${path}?${qs}` : path);
}

export const post = (path, body) => call("POST", path, body);
export const del = (path) => call("DELETE", path);

/** `POST /sessions/{id}/input`. A reply that lost the race rejects with status 409. */
export const input = (id, body) => post(`/sessions/${encodeURIComponent(id)}/input`, body);
