// Reads the gateway's JSON APIs. The session cookie authenticates these GETs (the browser sends it; no
// script can read it), so no key is ever held in script, storage or a URL.

/** A non-2xx answer, with the API's own message. */
export class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// Keeps every JSON number as its exact source text (JSON.parse source text access), so money such as
// 0.1234567890123 USD reaches the page digit for digit instead of through a binary float.
function exactNumbers(key, value, context) {
  if (typeof value !== 'number') {
    return value;
  }

  return context && typeof context.source === 'string' ? context.source : String(value);
}

export async function getJson(path) {
  const response = await fetch(path, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
  const text = await response.text();
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      const problem = JSON.parse(text);
      message = problem.detail || problem.title || problem.error?.message || message;
    } catch {
      // Not JSON: keep the status line.
    }

    throw new HttpError(response.status, message);
  }

  return JSON.parse(text, exactNumbers);
}
