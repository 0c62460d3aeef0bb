// Usage: today's live figures, requests, tokens or cost over time (all, or one key, share or
// model), the same broken down by key, share or model, and the CSV export of what is shown.

import * as api from "../api.js";
import { barChart } from "../chart.js";
import { h, replace } from "../dom.js";
import { count, money, short } from "../format.js";
import { badge, empty, failed, loading, pageHeader, show, table, toast } from "../ui.js";

const RANGES = /** @type {[string, string][]} */ ([["24h", "Last 24 hours"], ["7d", "Last 7 days"], ["30d", "Last 30 days"]]);
const METRICS = /** @type {[string, string][]} */ ([["requests", "Requests"], ["tokens", "Tokens"], ["cost", "Cost (USD)"]]);
const BREAKDOWNS = /** @type {[string, string][]} */ ([["model", "Model"], ["key", "Key"], ["share", "Share"]]);

const HOUR = 3_600_000;

/** @param {number} ms */
const hourIso = (ms) => new Date(Math.floor(ms / HOUR) * HOUR).toISOString().replace(".000Z", "Z");

/**
 * The query of the range: whole UTC hours up to the next one.
 * @param {string} range
 */
function span(range) {
  const to = Math.floor(Date.now() / HOUR) * HOUR + HOUR;
  const hours = range === "24h" ? 24 : range === "7d" ? 7 * 24 : 30 * 24;
  return { from: hourIso(to - hours * HOUR), to: hourIso(to), groupBy: range === "24h" ? "hour" : "day" };
}

/**
 * A figure of a row.
 * @param {api.Figures} f
 * @param {string} metric
 */
const value = (f, metric) => (metric === "cost" ? f.costUsd : metric === "tokens" ? f.inputTokens + f.outputTokens : f.requests);

/** @param {string} metric */
const formatter = (metric) => (metric === "cost" ? money : short);

/**
 * @param {HTMLElement} main
 * @param {import("../app.js").Session} s
 */
export async function render(main, s) {
  const [keys, shares] = await Promise.all([api.keys.list(), api.shares.list()]);
  const today = h("section", { class: "cards", "aria-label": "Today" });
  const results = h("div", {});
  const control = (/** @type {string} */ name, /** @type {string} */ label, /** @type {[string, string][]} */ options, /** @type {string} */ value) =>
    h("div", { class: "field field-inline" },
      h("label", { for: `usage-${name}`, text: label }),
      h("select", { id: `usage-${name}`, name, onchange: refresh }, options.map(([v, l]) => h("option", { value: v, text: l, selected: v === value }))));
  const filters = /** @type {[string, string][]} */ ([["", "Everything"],
    ...keys.map((k) => /** @type {[string, string]} */ ([`keyId=${k.id}`, `Key: ${k.name}`])),
    ...shares.map((s) => /** @type {[string, string]} */ ([`shareId=${s.id}`, `Share: ${s.name}`]))]);
  const controls = h("form", { class: "controls", onsubmit: (/** @type {Event} */ e) => e.preventDefault() },
    control("range", "Range", RANGES, "7d"),
    control("metric", "Show", METRICS, "requests"),
    control("filter", "Of", filters, ""),
    control("breakdown", "Broken down by", BREAKDOWNS, "model"),
    h("button", { type: "button", class: "button", text: "Export CSV", onclick: () => exportCsv() }));
  const bill = h("section", { class: "panel", "aria-labelledby": "billing" });
  main.replaceChildren(pageHeader("Usage", "What your shares used: requests, tokens and cost, live for today."), today, controls, results, bill);

  const names = new Map(/** @type {[string, string][]} */ ([...keys.map((k) => [k.id, k.name]), ...shares.map((s) => [s.id, s.name])]));
  const selected = (/** @type {string} */ name) => /** @type {HTMLSelectElement} */ (controls.elements.namedItem(name)).value;
  const params = () => {
    const [filterName, filterValue] = selected("filter").split("=");
    return { ...span(selected("range")), ...(filterName ? { [filterName]: filterValue } : {}) };
  };

  async function refresh() {
    replace(results, loading());
    const metric = selected("metric");
    const p = params();
    try {
      const [series, parts] = await Promise.all([api.analytics.usage(p), api.analytics.usage({ ...p, groupBy: selected("breakdown") })]);
      replace(results, charts(series, parts, metric, names));
    } catch (err) {
      replace(results, failed(err, refresh));
    }
  }

  async function exportCsv() {
    try {
      const text = await api.analytics.csv(params());
      const link = h("a", { href: URL.createObjectURL(new Blob([text], { type: "text/csv" })), download: `feen-usage-${params().from.slice(0, 10)}.csv` });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
    } catch (err) {
      toast(err instanceof api.ApiError ? err.message : "The export failed", "error");
    }
  }

  async function loadToday() {
    const midnight = Math.floor(Date.now() / 86_400_000) * 86_400_000;
    try {
      const t = (await api.analytics.usage({ from: hourIso(midnight), to: hourIso(Date.now() + HOUR), groupBy: "hour" })).totals;
      replace(today,
        card("Requests today", count(t.requests)),
        card("Tokens today", count(t.inputTokens + t.outputTokens), `${count(t.inputTokens)} in · ${count(t.outputTokens)} out`),
        card("Cost today", money(t.costUsd), t.unpricedRequests ? `${count(t.unpricedRequests)} without a known price` : undefined),
        card("Errors", count(t.errors)),
        card("Refused", count(t.refused), `${count(t.rateLimited)} for rate limits`),
        card("Latency p95", t.latencyMs.p95 === null ? "—" : `≤ ${count(t.latencyMs.p95)} ms`));
    } catch (err) {
      replace(today, failed(err, loadToday));
    }
  }

  billing(bill, s, names);
  await Promise.all([loadToday(), refresh()]);
}

/**
 * The bill of a month: the cost per key and per share, for you or one of your teams.
 * @param {HTMLElement} panel
 * @param {import("../app.js").Session} s
 * @param {Map<string, string>} names
 */
function billing(panel, s, names) {
  const month = new Date().toISOString().slice(0, 7);
  const owners = /** @type {[string, string][]} */ ([["", "You"], ...s.teams.map((t) => [t.id, `Team: ${t.name}`])]);
  const body = h("div", {});
  const controls = h("form", { class: "controls", onsubmit: (/** @type {Event} */ e) => e.preventDefault() },
    h("div", { class: "field field-inline" }, h("label", { for: "bill-month", text: "Month" }), h("input", { id: "bill-month", name: "month", type: "month", value: month, max: month, onchange: load })),
    h("div", { class: "field field-inline" }, h("label", { for: "bill-owner", text: "Owner" }),
      h("select", { id: "bill-owner", name: "owner", onchange: load }, owners.map(([v, l]) => h("option", { value: v, text: l })))));
  const value = (/** @type {string} */ name) => /** @type {HTMLInputElement} */ (controls.elements.namedItem(name)).value;
  panel.replaceChildren(h("h2", { id: "billing", text: "Bill" }), controls, body);
  const name = (/** @type {string} */ id) => names.get(id) ?? id;
  function load() {
    show(body, () => api.billing.month({ month: value("month") || month, teamId: value("owner") || undefined }), (b) => [
      h("p", { class: "bill-total" },
        h("strong", { text: money(b.total.costUsd) }),
        ` for ${count(b.total.requests)} requests in ${b.month}`,
        b.total.unpricedRequests ? ` (${count(b.total.unpricedRequests)} without a known price)` : "",
        " · ", badge(b.final ? "final" : "so far", b.final ? "active" : "role")),
      ...(b.byKey.length === 0 ? [h("p", { class: "muted", text: "Nothing was spent this month." })] : [
        table([
          { label: "Key", cell: (l) => name(l.keyId) },
          { label: "Requests", cell: (l) => count(l.requests) },
          { label: "Cost", cell: (l) => money(l.costUsd) },
        ], b.byKey, "Cost by key"),
        h("h3", { text: "By share" }),
        table([
          { label: "Share", cell: (l) => name(l.shareId) },
          { label: "Key", cell: (l) => name(l.keyId) },
          { label: "Requests", cell: (l) => count(l.requests) },
          { label: "Cost", cell: (l) => money(l.costUsd) },
        ], b.byShare, "Cost by share"),
      ]),
    ]);
  }
  load();
}

/**
 * @param {string} label
 * @param {string} figure
 * @param {string} [note]
 */
const card = (label, figure, note) =>
  h("div", { class: "card" }, h("p", { class: "card-label", text: label }), h("p", { class: "card-figure", text: figure }), note ? h("p", { class: "card-note", text: note }) : null);

/**
 * @param {api.Usage} series
 * @param {api.Usage} parts
 * @param {string} metric
 * @param {Map<string, string>} names
 */
function charts(series, parts, metric, names) {
  const fmt = formatter(metric);
  const metricName = METRICS.find(([m]) => m === metric)?.[1] ?? metric;
  if (series.totals.requests === 0 && series.totals.refused === 0) {
    return empty("No usage in this range", "Requests made with your shares' tokens show up here within seconds.");
  }
  const hourly = series.groupBy === "hour";
  // Every bucket of the range, empty ones too.
  const step = hourly ? HOUR : 24 * HOUR;
  const byStart = new Map(series.rows.map((r) => [Math.floor(Date.parse(r.group) / step) * step, r]));
  const bars = [];
  for (let t = Math.floor(Date.parse(series.from) / step) * step; t < Date.parse(series.to); t += step) {
    const d = new Date(t);
    const row = byStart.get(t);
    const v = row ? value(row, metric) : 0;
    const label = hourly ? `${String(d.getUTCHours()).padStart(2, "0")}:00` : `${d.getUTCMonth() + 1}/${d.getUTCDate()}`;
    bars.push({ label, value: v, title: `${d.toISOString().slice(0, hourly ? 13 : 10).replace("T", " ")}${hourly ? ":00" : ""} UTC: ${fmt(v)}` });
  }
  const name = (/** @type {string} */ g) => names.get(g) ?? g;
  const partBars = parts.rows.map((r) => ({ label: name(r.group).slice(0, 14), value: value(r, metric), title: `${name(r.group)}: ${fmt(value(r, metric))}` }));
  return [
    h("section", { class: "panel", "aria-label": `${metricName} over time` },
      h("h2", { text: `${metricName} over time (UTC ${hourly ? "hours" : "days"})` }),
      h("p", { class: "muted", text: `Total: ${fmt(value(series.totals, metric))}` }),
      h("div", { class: "chart-wrap", "data-chart": "series" }, barChart(bars, { caption: `${metricName} per ${hourly ? "hour" : "day"}`, format: fmt }))),
    h("section", { class: "panel", "aria-label": `${metricName} by ${parts.groupBy}` },
      h("h2", { text: `${metricName} by ${parts.groupBy}` }),
      h("div", { class: "chart-wrap", "data-chart": "breakdown" }, barChart(partBars, { caption: `${metricName} by ${parts.groupBy}`, format: fmt })),
      table([
        { label: parts.groupBy[0].toUpperCase() + parts.groupBy.slice(1), cell: (r) => name(r.group) },
        { label: "Requests", cell: (r) => count(r.requests) },
        { label: "Tokens in / out", cell: (r) => `${count(r.inputTokens)} / ${count(r.outputTokens)}` },
        { label: "Cost", cell: (r) => money(r.costUsd) },
        { label: "Errors", cell: (r) => count(r.errors) },
        { label: "Refused", cell: (r) => count(r.refused) },
        { label: "p95 latency", cell: (r) => (r.latencyMs.p95 === null ? "—" : `≤ ${count(r.latencyMs.p95)} ms`) },
      ], parts.rows, `Usage by ${parts.groupBy}`)),
  ];
}
