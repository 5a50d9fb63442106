// DOM helpers. Everything the API returns is data, never markup: `h` sets text with
// `textContent` and attributes with `setAttribute`, and nothing in the console parses a string
// as HTML, so a message or tool input holding `<img onerror=...>` shows those characters.

/** An element: `h("button", {class: "x", onclick: fn}, "text", child, ...)`. Attributes named
 * `on*` with a function become listeners; `false`/`null` attributes are left out. Children
 * are nodes or strings (text nodes); arrays are flattened, `null`s skipped. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (name === "value") {
      el.value = value;
    } else if (name === "checked") {
      el.checked = Boolean(value);
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** JSON shown as text, pretty-printed. */
export function json(value) {
  return h("pre", { class: "json" }, JSON.stringify(value, null, 2));
}

/** A labelled input: `field("Status", select)`. */
export function field(label, control) {
  return h("label", { class: "field" }, h("span", {}, label), control);
}

/** A time as the API sends it (RFC 3339) shown in local time, with the original as title. */
export function time(value) {
  if (!value) return h("span", { class: "muted" }, "—");
  const d = new Date(value);
  return h("time", { datetime: value, title: value }, isNaN(d) ? value : d.toLocaleString());
}

/** A select with `[value, label]` options. */
export function select(name, options, current = "") {
  return h(
    "select",
    { name },
    options.map(([v, label]) => h("option", { value: v, selected: v === current }, label ?? v)),
  );
}

/** The values of a container's named inputs, empty ones left out. */
export function values(container) {
  const out = {};
  for (const el of container.querySelectorAll("input[name], select[name], textarea[name]")) {
    const v = el.type === "checkbox" ? (el.checked ? "true" : "") : el.value.trim();
    if (v !== "") out[el.name] = v;
  }
  return out;
}
