// The dashboard's parts: dialogs (native <dialog>: focus trapped, Escape closes), forms that
// show the server's validation messages beside their fields, tables that become cards on a
// narrow screen, the loading, empty and error states, copy buttons and notices.

import { ApiError } from "./api.js";
import { h, replace } from "./dom.js";

/**
 * @typedef {{name: string, label: string, type?: string, value?: unknown, required?: boolean,
 *   options?: [string, string][], hint?: string, placeholder?: string, min?: number,
 *   step?: string, autocomplete?: string, list?: boolean, rows?: number}} Field
 * @typedef {{[name: string]: unknown}} Values
 */

/**
 * The message to show for an error.
 * @param {unknown} err
 */
export function message(err) {
  if (err instanceof ApiError) return err.message;
  return "Something went wrong. Try again.";
}

/**
 * A notice at the bottom of the screen, read out by screen readers.
 * @param {string} text
 * @param {"ok" | "error"} [kind]
 */
export function toast(text, kind = "ok") {
  const box = document.getElementById("toasts");
  if (!box) return;
  const item = h("div", { class: `toast toast-${kind}`, role: kind === "error" ? "alert" : "status", text });
  box.append(item);
  setTimeout(() => item.remove(), 5000);
}

/** A spinner with its label. @param {string} [label] */
export const loading = (label = "Loading…") =>
  h("div", { class: "state state-loading", role: "status", "aria-live": "polite" }, h("span", { class: "spinner", "aria-hidden": "true" }), label);

/**
 * What a page shows when it has nothing yet.
 * @param {string} title
 * @param {string} text
 * @param {HTMLElement} [action]
 */
export const empty = (title, text, action) =>
  h("div", { class: "state state-empty" }, h("p", { class: "state-title", text: title }), h("p", { text }), action);

/**
 * What a page shows when loading failed, with a way to try again.
 * @param {unknown} err
 * @param {() => void} retry
 */
export const failed = (err, retry) =>
  h("div", { class: "state state-error", role: "alert" },
    h("p", { class: "state-title", text: "Could not load this" }),
    h("p", { text: message(err) }),
    h("button", { type: "button", class: "button", text: "Try again", onclick: retry }));

/**
 * Loads data into a container: the loading state, then `render(data)` or the error state.
 * @template T
 * @param {HTMLElement} container
 * @param {() => Promise<T>} load
 * @param {(data: T) => Node | Node[]} render
 */
export async function show(container, load, render) {
  replace(container, loading());
  container.setAttribute("aria-busy", "true");
  try {
    const data = await load();
    replace(container, render(data));
  } catch (err) {
    replace(container, failed(err, () => show(container, load, render)));
  } finally {
    container.removeAttribute("aria-busy");
  }
}

/**
 * A table; on a narrow screen each row becomes a card whose cells carry their column's name.
 * @template T
 * @param {{label: string, cell: (row: T) => import("./dom.js").Child, class?: string}[]} columns
 * @param {T[]} rows
 * @param {string} caption
 */
export function table(columns, rows, caption) {
  return h("div", { class: "table-wrap" },
    h("table", { class: "table" },
      h("caption", { class: "visually-hidden", text: caption }),
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", text: c.label, class: c.class })))),
      h("tbody", {}, rows.map((row) => h("tr", {}, columns.map((c) => h("td", { "data-label": c.label, class: c.class }, h("div", { class: "cell" }, c.cell(row)))))))));
}

/**
 * A small button.
 * @param {string} text
 * @param {() => void} onclick
 * @param {string} [kind]
 */
export const button = (text, onclick, kind = "") => h("button", { type: "button", class: `button ${kind}`.trim(), text, onclick });

/**
 * A button that copies text and says so.
 * @param {() => string} text
 * @param {string} [label]
 */
export function copyButton(text, label = "Copy") {
  const btn = h("button", { type: "button", class: "button", text: label });
  btn.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(text());
      btn.textContent = "Copied";
      toast("Copied to the clipboard");
    } catch {
      btn.textContent = "Select and copy by hand";
    }
    setTimeout(() => (btn.textContent = label), 2000);
  });
  return btn;
}

/**
 * Opens a modal dialog; resolves with what `close(value)` is given (undefined when dismissed).
 * @template T
 * @param {string} title
 * @param {(close: (value?: T) => void) => import("./dom.js").Child} body
 * @param {{wide?: boolean, dismissable?: boolean}} [opts]
 * @returns {Promise<T | undefined>}
 */
export function dialog(title, body, opts = {}) {
  return new Promise((resolve) => {
    const id = `dlg-${Math.random().toString(36).slice(2)}`;
    /** @type {T | undefined} */
    let result;
    const dlg = h("dialog", { class: opts.wide ? "dialog dialog-wide" : "dialog", "aria-labelledby": id });
    const close = (/** @type {T | undefined} */ value) => {
      result = value;
      dlg.close();
    };
    dlg.addEventListener("close", () => {
      dlg.remove();
      resolve(result);
    });
    if (opts.dismissable === false) dlg.addEventListener("cancel", (e) => e.preventDefault());
    dlg.append(h("h2", { id, class: "dialog-title", text: title }), h("div", { class: "dialog-body" }, body(close)));
    document.body.append(dlg);
    dlg.showModal();
  });
}

/**
 * Asks before something that cannot be undone.
 * @param {string} title
 * @param {string} text
 * @param {string} confirmLabel
 * @returns {Promise<boolean>}
 */
export async function confirm(title, text, confirmLabel) {
  const answer = await dialog(title, (close) => [
    h("p", { text }),
    h("div", { class: "actions" },
      h("button", { type: "button", class: "button", text: "Cancel", onclick: () => close(false) }),
      h("button", { type: "button", class: "button button-danger", text: confirmLabel, onclick: () => close(true) })),
  ]);
  return answer === true;
}

/**
 * One form field with its label, hint and error slot.
 * @param {Field} f
 * @param {string} prefix
 */
function field(f, prefix) {
  const id = `${prefix}-${f.name}`;
  const hintId = `${id}-hint`;
  const errorId = `${id}-error`;
  const common = { id, name: f.name, required: f.required, "aria-describedby": `${f.hint ? hintId : ""} ${errorId}`.trim() };
  /** @type {HTMLElement} */
  let input;
  if (f.type === "select") {
    input = h("select", common, (f.options ?? []).map(([value, label]) => h("option", { value, text: label, selected: value === f.value })));
  } else if (f.type === "textarea") {
    const value = Array.isArray(f.value) ? f.value.join("\n") : String(f.value ?? "");
    input = h("textarea", { ...common, rows: f.rows ?? 3, placeholder: f.placeholder, value });
  } else {
    input = h("input", {
      ...common,
      type: f.type ?? "text",
      value: f.value === null || f.value === undefined ? "" : String(f.value),
      placeholder: f.placeholder,
      min: f.min,
      step: f.step,
      autocomplete: f.autocomplete ?? "off",
      spellcheck: false,
    });
  }
  return h("div", { class: "field", "data-field": f.name },
    h("label", { for: id, text: f.label + (f.required || f.type === "select" ? "" : " (optional)") }),
    input,
    f.hint ? h("p", { class: "hint", id: hintId, text: f.hint }) : null,
    h("p", { class: "field-error", id: errorId, hidden: true }));
}

/**
 * The values of a form's fields: numbers as numbers, empty optional fields as null, list fields
 * (one item per line or comma) as arrays.
 * @param {HTMLFormElement} form
 * @param {Field[]} fields
 * @returns {Values}
 */
function values(form, fields) {
  /** @type {Values} */
  const out = {};
  for (const f of fields) {
    const el = /** @type {HTMLInputElement} */ (form.elements.namedItem(f.name));
    const raw = el.value.trim();
    if (f.list) out[f.name] = raw ? raw.split(/[\n,]+/).map((s) => s.trim()).filter(Boolean) : [];
    else if (f.type === "number") out[f.name] = raw === "" ? null : Number(raw);
    else if (f.type === "password") out[f.name] = el.value;
    else out[f.name] = raw === "" ? null : raw;
  }
  return out;
}

/**
 * A form: fields, a submit button, and the server's answer shown where it belongs (a field's
 * validation message beside it, anything else above the button). `submit` resolves when done.
 * @param {{fields: Field[], submitLabel: string, submit: (values: Values) => Promise<void>,
 *   cancel?: () => void, danger?: boolean, extra?: HTMLElement}} spec
 */
export function form(spec) {
  const prefix = `f${Math.random().toString(36).slice(2, 8)}`;
  const alert = h("p", { class: "form-error", role: "alert", hidden: true });
  const submitBtn = h("button", { type: "submit", class: spec.danger ? "button button-danger" : "button button-primary", text: spec.submitLabel });
  const el = h("form", { class: "form", novalidate: true },
    spec.fields.map((f) => field(f, prefix)),
    spec.extra,
    alert,
    h("div", { class: "actions" },
      spec.cancel ? h("button", { type: "button", class: "button", text: "Cancel", onclick: spec.cancel }) : null,
      submitBtn));
  el.addEventListener("submit", async (event) => {
    event.preventDefault();
    for (const err of el.querySelectorAll(".field-error")) /** @type {HTMLElement} */ (err).hidden = true;
    for (const inp of el.querySelectorAll("[aria-invalid]")) inp.removeAttribute("aria-invalid");
    alert.hidden = true;
    const missing = spec.fields.find((f) => f.required && !/** @type {HTMLInputElement} */ (el.elements.namedItem(f.name)).value.trim());
    if (missing) {
      showFieldError(el, missing.name, `${missing.label} is required`);
      return;
    }
    submitBtn.disabled = true;
    submitBtn.setAttribute("aria-busy", "true");
    try {
      await spec.submit(values(el, spec.fields));
    } catch (err) {
      const name = err instanceof ApiError && err.field ? err.field : null;
      if (!name || !showFieldError(el, name, message(err))) {
        alert.textContent = message(err);
        alert.hidden = false;
      }
    } finally {
      submitBtn.disabled = false;
      submitBtn.removeAttribute("aria-busy");
    }
  });
  return el;
}

/**
 * Shows a message beside a field (false when the form has no such field).
 * @param {HTMLFormElement} form
 * @param {string} name
 * @param {string} text
 */
function showFieldError(form, name, text) {
  const wrap = form.querySelector(`[data-field="${CSS.escape(name)}"]`);
  const input = /** @type {HTMLElement | null} */ (form.elements.namedItem(name));
  if (!wrap || !input) return false;
  const slot = /** @type {HTMLElement} */ (wrap.querySelector(".field-error"));
  slot.textContent = text.replace(new RegExp(`^${name}: `), "");
  slot.hidden = false;
  input.setAttribute("aria-invalid", "true");
  input.focus();
  return true;
}

/**
 * A form in a dialog; resolves with what `submit` returned (undefined when cancelled).
 * @template T
 * @param {string} title
 * @param {Field[]} fields
 * @param {string} submitLabel
 * @param {(values: Values) => Promise<T>} submit
 * @param {{intro?: string, danger?: boolean, extra?: HTMLElement}} [opts]
 * @returns {Promise<T | undefined>}
 */
export function formDialog(title, fields, submitLabel, submit, opts = {}) {
  return dialog(title, (close) => [
    opts.intro ? h("p", { text: opts.intro }) : null,
    form({ fields, submitLabel, danger: opts.danger, extra: opts.extra, cancel: () => close(), submit: async (v) => close(await submit(v)) }),
  ]);
}

/**
 * A page's heading row with its actions.
 * @param {string} title
 * @param {string} intro
 * @param {...HTMLElement} actions
 */
export const pageHeader = (title, intro, ...actions) =>
  h("div", { class: "page-header" },
    h("div", {}, h("h1", { tabindex: "-1", text: title }), h("p", { class: "lead", text: intro })),
    h("div", { class: "page-actions" }, actions));

/**
 * A status badge.
 * @param {string} text
 * @param {string} [kind]
 */
export const badge = (text, kind = text) => h("span", { class: `badge badge-${kind}`, text });
