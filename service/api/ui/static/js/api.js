// The UI's only way to the server: the JSON API, with its error bodies turned into exceptions.

/** An API error body: {error, field, code} plus the HTTP status. */
export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error || `HTTP ${status}`);
    this.status = status;
    this.field = body?.field ?? null;
    this.code = body?.code ?? null;
  }
}

const KEY = "warmzoo.apiKey";
/** The API key writes are sent with (kept for this browser tab only), or "" for none. */
export function apiKey() { return sessionStorage.getItem(KEY) ?? ""; }
export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY, key);
  else sessionStorage.removeItem(KEY);
}

async function request(path, { method = "GET", body } = {}) {
  const init = { method, headers: { Accept: "application/json" } };
  if (apiKey()) init.headers.Authorization = `Bearer ${apiKey()}`;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (!response.ok) {
    const error = await response.json().catch(() => null);
    throw new ApiError(response.status, error);
  }
  return response;
}

export async function getJson(path) { return (await request(path)).json(); }
export async function getText(path) { return (await request(path)).text(); }
export async function postJson(path, body) { return (await request(path, { method: "POST", body })).json(); }

let schemas = null;
/** Enums, defaults and descriptions of the request bodies, read once from the OpenAPI document
 *  so that the form never drifts from the API. */
export async function apiSchemas() {
  schemas ??= getJson("/openapi.json").then((doc) => doc.components.schemas);
  return schemas;
}

/** The `enum` of a schema property (also inside `anyOf`, as for optional fields). */
export function enumOf(property) {
  return property.enum ?? property.anyOf?.find((p) => p.enum)?.enum ?? [];
}
