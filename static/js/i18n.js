// Messages of the page's language, embedded by the server as JSON (#messages).
const messages = JSON.parse(document.getElementById("messages")?.textContent || "{}");

export function t(key, vars = {}) {
  const text = messages[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in vars ? String(vars[name]) : `{${name}}`));
}

export const lang = document.body.dataset.lang || "en";

// A neuron's name: "Hidden layer 1, neuron 3", counted from 1; a classifier's output neurons
// are its classes, "Output layer, class 0", numbered as the drawing labels them.
export function neuronName(layer, j, isClass) {
  return isClass ? t("inspect.class_neuron", { layer, c: j }) : t("inspect.neuron", { layer, n: j + 1 });
}

// An API error body ({code, params, message}) in the reader's language. Every error code
// the page can meet has an "error.<code>" entry in both catalogs.
export function errorText(body, fallback = "") {
  if (body?.code && messages[`error.${body.code}`]) return t(`error.${body.code}`, body.params || {});
  return body?.message || fallback;
}
