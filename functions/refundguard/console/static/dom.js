// Building the page without ever parsing data as HTML: every text goes through textContent or a
// text node (never innerHTML), and control or format characters (bidi overrides, zero-width
// characters...) are shown as escapes, as the CLI does, so a store-supplied string can neither run
// nor disguise itself.

const HIDDEN_CHARS = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu;

/** A value as text a person can read: control and format characters shown as \uXXXX. */
export function visible(value) {
  if (value === null || value === undefined) return "";
  return String(value).replace(HIDDEN_CHARS, (c) => {
    const code = c.codePointAt(0).toString(16).padStart(4, "0");
    return `\\u${code}`;
  });
}

/**
 * h("p", {class: "x"}, "text", child): an element. Strings become text nodes (through visible);
 * attributes are set with setAttribute, so never pass data as a URL attribute (href, src).
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") el.className = value;
    else if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(visible(child)));
  }
  return el;
}

/** Show or hide an element (the hidden attribute). */
export function show(el, on = true) {
  el.hidden = !on;
}

const DATE = new Intl.DateTimeFormat("en-GB", {
  day: "numeric",
  month: "short",
  year: "numeric",
  hour: "2-digit",
  minute: "2-digit",
  timeZoneName: "short",
});

/** <time> for milliseconds since the epoch, e.g. "3 Nov 2026, 14:02 UTC"; "-" when none. */
export function when(ms) {
  if (typeof ms !== "number" || !Number.isFinite(ms)) return h("span", {}, "-");
  const date = new Date(ms);
  if (Number.isNaN(date.getTime())) return h("span", {}, "-");
  return h("time", { datetime: date.toISOString(), title: date.toISOString() }, DATE.format(date));
}

/** The same date as plain text. */
export function whenText(ms) {
  if (typeof ms !== "number" || !Number.isFinite(ms)) return "";
  const date = new Date(ms);
  return Number.isNaN(date.getTime()) ? "" : DATE.format(date);
}
