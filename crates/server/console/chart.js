// Small SVG charts drawn here: stacked bars over time, and a line. Each
// chart is an <svg role="img"> with a title and a description that states
// its numbers in words, so it reads without sight.

const SVG = "http://www.w3.org/2000/svg";

function node(name, attributes = {}, text) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  if (text !== undefined) element.textContent = text;
  return element;
}

function clock(millis) {
  return new Date(millis).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

/** A round upper bound for an axis whose largest value is `max`. */
export function niceMax(max) {
  if (max <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(max));
  for (const step of [1, 2, 5, 10]) if (step * power >= max) return step * power;
  return 10 * power;
}

function frame({ width, height, title, description }) {
  const svg = node("svg", {
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    class: "chart",
  });
  const id = `chart-${Math.random().toString(36).slice(2)}`;
  svg.setAttribute("aria-labelledby", `${id}-title ${id}-desc`);
  svg.append(node("title", { id: `${id}-title` }, title), node("desc", { id: `${id}-desc` }, description));
  return svg;
}

function axes(svg, { left, top, plotWidth, plotHeight, max, firstLabel, lastLabel }) {
  svg.append(
    node("line", { x1: left, y1: top + plotHeight, x2: left + plotWidth, y2: top + plotHeight, class: "axis" }),
    node("line", { x1: left, y1: top, x2: left, y2: top + plotHeight, class: "axis" }),
    node("text", { x: left - 4, y: top + 4, class: "tick", "text-anchor": "end" }, String(max)),
    node("text", { x: left - 4, y: top + plotHeight, class: "tick", "text-anchor": "end" }, "0"),
    node("text", { x: left, y: top + plotHeight + 14, class: "tick" }, firstLabel),
    node("text", { x: left + plotWidth, y: top + plotHeight + 14, class: "tick", "text-anchor": "end" }, lastLabel),
  );
}

/**
 * Stacked bars: `buckets` are `{start, values: {key: count}}`, `series`
 * `{key, label}` in stacking order (each series' colour is its CSS class
 * `series-KEY`).
 */
export function stackedBars({ buckets, series, title, bucketSeconds }) {
  const width = 640;
  const height = 220;
  const left = 40;
  const top = 10;
  const plotWidth = width - left - 10;
  const plotHeight = height - top - 30;
  const totals = buckets.map((bucket) => series.reduce((sum, s) => sum + (bucket.values[s.key] || 0), 0));
  const max = niceMax(Math.max(0, ...totals));
  const sums = Object.fromEntries(series.map((s) => [s.key, buckets.reduce((sum, b) => sum + (b.values[s.key] || 0), 0)]));
  const description =
    `${buckets.length} buckets of ${bucketSeconds} s; totals: ` +
    series.map((s) => `${s.label} ${sums[s.key]}`).join(", ");
  const svg = frame({ width, height, title, description });
  const slot = plotWidth / Math.max(1, buckets.length);
  buckets.forEach((bucket, index) => {
    let y = top + plotHeight;
    for (const s of series) {
      const value = bucket.values[s.key] || 0;
      if (!value) continue;
      const barHeight = (value / max) * plotHeight;
      y -= barHeight;
      const rect = node("rect", {
        x: left + index * slot + slot * 0.1,
        y,
        width: Math.max(1, slot * 0.8),
        height: barHeight,
        class: `bar series-${s.key}`,
      });
      rect.append(node("title", {}, `${clock(bucket.start)}: ${value} ${s.label}`));
      svg.append(rect);
    }
  });
  axes(svg, {
    left, top, plotWidth, plotHeight, max,
    firstLabel: buckets.length ? clock(buckets[0].start) : "",
    lastLabel: buckets.length ? clock(buckets[buckets.length - 1].start) : "",
  });
  return svg;
}

/** A line over time: `points` are `{start, value}`. */
export function line({ points, title, unit }) {
  const width = 640;
  const height = 160;
  const left = 40;
  const top = 10;
  const plotWidth = width - left - 10;
  const plotHeight = height - top - 30;
  const max = niceMax(Math.max(0, ...points.map((point) => point.value)));
  const latest = points.length ? points[points.length - 1].value : 0;
  const peak = Math.max(0, ...points.map((point) => point.value));
  const svg = frame({
    width, height, title,
    description: `${points.length} points; latest ${latest.toFixed(2)} ${unit}, peak ${peak.toFixed(2)} ${unit}`,
  });
  const step = plotWidth / Math.max(1, points.length - 1);
  const path = points
    .map((point, index) => {
      const x = left + index * step;
      const y = top + plotHeight - (point.value / max) * plotHeight;
      return `${index ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)}`;
    })
    .join(" ");
  svg.append(node("path", { d: path || "M0,0", class: "line" }));
  axes(svg, {
    left, top, plotWidth, plotHeight, max,
    firstLabel: points.length ? clock(points[0].start) : "",
    lastLabel: points.length ? clock(points[points.length - 1].start) : "",
  });
  return svg;
}

/** A horizontal meter: `value` of `limit` (a labelled <meter>-like bar). */
export function meter({ value, limit, label }) {
  const wrapper = document.createElement("div");
  wrapper.className = "meter";
  const bar = document.createElement("div");
  bar.className = "meter-bar";
  bar.setAttribute("role", "meter");
  bar.setAttribute("aria-label", label);
  bar.setAttribute("aria-valuemin", "0");
  bar.setAttribute("aria-valuemax", String(limit || 0));
  bar.setAttribute("aria-valuenow", String(value));
  const fill = document.createElement("div");
  fill.className = "meter-fill";
  const share = limit ? Math.min(1, value / limit) : 0;
  fill.style.width = `${(share * 100).toFixed(1)}%`;
  if (share >= 0.9) fill.classList.add("high");
  bar.append(fill);
  const text = document.createElement("span");
  text.className = "meter-text";
  text.textContent = limit ? `${value} / ${limit}` : `${value}`;
  wrapper.append(bar, text);
  return wrapper;
}
