// Bar charts as SVG, drawn here (no chart library): one bar per time bucket or group, a few
// labelled gridlines, and a text alternative (each bar's <title>, and the table beside it).

import { svg } from "./dom.js";

/**
 * @param {{label: string, value: number, title: string}[]} bars
 * @param {{caption: string, format: (n: number) => string}} opts
 * @returns {SVGElement}
 */
export function barChart(bars, opts) {
  const width = 720, height = 240, left = 56, bottom = 28, top = 12, right = 8;
  const plotW = width - left - right, plotH = height - top - bottom;
  const max = Math.max(0, ...bars.map((b) => b.value));
  const ceiling = niceCeiling(max);
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img", "aria-label": opts.caption });
  for (let i = 0; i <= 4; i++) {
    const value = (ceiling * i) / 4;
    const y = top + plotH - (plotH * i) / 4;
    chart.append(
      svg("line", { x1: left, x2: width - right, y1: y, y2: y, class: "grid" }),
      svg("text", { x: left - 6, y: y + 4, class: "axis", "text-anchor": "end" }, opts.format(value)));
  }
  const slot = plotW / Math.max(1, bars.length);
  const barW = Math.max(1, Math.min(48, slot * 0.75));
  const every = Math.ceil(bars.length / 8);
  bars.forEach((b, i) => {
    const h = ceiling > 0 ? (plotH * b.value) / ceiling : 0;
    const x = left + slot * i + (slot - barW) / 2;
    chart.append(svg("rect", { x, y: top + plotH - h, width: barW, height: Math.max(h, b.value > 0 ? 1 : 0), class: "bar", "data-value": b.value },
      svg("title", {}, b.title)));
    if (i % every === 0) {
      chart.append(svg("text", { x: x + barW / 2, y: height - 8, class: "axis", "text-anchor": "middle" }, b.label));
    }
  });
  return chart;
}

/**
 * A round number at or above `n` for the top of the scale.
 * @param {number} n
 */
function niceCeiling(n) {
  if (n <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(n));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= n) return step * power;
  return 10 * power;
}
