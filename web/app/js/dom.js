// Building the page: `h()` makes elements from plain data. Text is always set as text (never
// parsed as HTML) and events are attached as listeners, so nothing the API returns can become
// markup or code, and the page needs no inline script (the Content-Security-Policy forbids it).

/**
 * @typedef {string | number | Node | null | undefined | false | unknown[]} Child
 * @typedef {{[name: string]: unknown}} Props
 */

/**
 * An element with properties, attributes, listeners and children.
 * `text` is the text; `on<event>` functions become listeners; keys the element has as a property
 * (`value`, `checked`, `readOnly`, ...) are set as properties, the rest (`class`, `for`,
 * `tabindex`, `data-*`, `aria-*`, ...) as attributes.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Props} [props]
 * @param {...Child} children
 * @returns {HTMLElementTagNameMap[K]}
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), /** @type {EventListener} */ (value));
    } else if (key === "text") {
      el.textContent = String(value);
    } else if (key in el && !key.includes("-")) {
      /** @type {any} */ (el)[key] = value;
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

/**
 * Appends children (strings as text; nested arrays flattened; empty values skipped).
 * @param {Element | DocumentFragment} parent
 * @param {Child[]} children
 */
export function append(parent, children) {
  for (const child of /** @type {unknown[]} */ (children.flat(Infinity))) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : String(child));
  }
}

/**
 * Replaces an element's children.
 * @param {Element} el
 * @param {...Child} children
 */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

/**
 * An inline SVG element (charts).
 * @param {string} tag
 * @param {{[name: string]: string | number}} [attrs]
 * @param {...(SVGElement | string)} children
 * @returns {SVGElement}
 */
export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  for (const child of children) el.append(child);
  return el;
}
