// The console's only way to the farm: the public HTTP API, with the token
// the user typed (kept in this tab's sessionStorage, sent as a bearer token).

const TOKEN_KEY = "leanfarm.token";

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

/**
 * Use another token (or none). What the console remembered for the old
 * one in this tab (submitted sources, prove job ids) is forgotten, so that
 * a second tenant in the same tab sees none of the first tenant's work.
 */
export function setToken(value) {
  for (const key of Object.keys(sessionStorage)) {
    if (key.startsWith("leanfarm.") && key !== TOKEN_KEY) sessionStorage.removeItem(key);
  }
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(`${code}: ${message}`);
    this.status = status;
    this.code = code;
  }
}

export async function api(path, { method = "GET", body } = {}) {
  const headers = {};
  const current = token();
  if (current) headers.authorization = `Bearer ${current}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    throw new ApiError(0, "unreachable", `the farm did not answer (${error.message})`);
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    throw new ApiError(response.status, "invalid_json", "the farm's answer is not JSON");
  }
  if (!response.ok) {
    throw new ApiError(response.status, data?.code || "error", data?.message || response.statusText);
  }
  return data;
}
