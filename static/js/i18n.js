// Messages of the page's language, embedded by the server as JSON (#messages).
const messages = JSON.parse(document.getElementById("messages")?.textContent || "{}");

export function t(key, vars = {}) {
  const text = messages[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in vars ? String(vars[name]) : `{${name}}`));
}

export const lang = document.body.dataset.lang || "en";

// An API error body ({code, params, message}) in the reader's language. Every error code
// the page can meet has an "error.<code>" entry in both catalogs.
export function errorText(body, fallback = "") {
  if (body?.code && messages[`error.${body.code}`]) return t(`error.${body.code}`, body.params || {});
  return body?.message || fallback;
}
