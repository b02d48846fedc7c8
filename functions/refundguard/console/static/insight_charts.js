// Refund insight's charts and table (docs/insight.md), self-contained: it builds DOM and inline
// SVG from the JSON answer of GET /insight, with classes only (the page's CSP allows no inline
// style), and never fetches anything itself: figures.js calls it with what its own API call
// returned (renderInsight), and saves the CSV it fetched (saveCsv).

const SVG = "http://www.w3.org/2000/svg";

// The charts drawn, in order: [figure, label, how its value reads].
export const CHARTS = [
  ["purchases", "Purchases", (v) => String(v)],
  ["refunds", "Refunds (by refund date)", (v) => String(v)],
  ["refund_rate", "Refund rate (of the period's purchases)", (v) => `${(100 * v).toFixed(1)}%`],
  ["partial_refunds", "Partial refunds", (v) => String(v)],
  ["requests_received", "Refund requests received", (v) => String(v)],
  ["requests_expired", "Refund requests expired unanswered", (v) => String(v)],
  ["revoke_p95_ms", "Time to revoke access, p95", (v) => seconds(v)],
];

// The table's columns: [figure, heading].
export const COLUMNS = [
  ["period_start", "Period"],
  ["product_id", "Product"],
  ["purchases", "Purchases"],
  ["refunds", "Refunds"],
  ["refunds_of_purchases", "Refunds of these purchases"],
  ["refund_rate", "Refund rate"],
  ["partial_refunds", "Partial"],
  ["reversals", "Reversed"],
  ["admin_regrants", "Re-granted"],
  ["requests_received", "Requests"],
  ["requests_answered", "Answered"],
  ["requests_expired", "Expired"],
  ["requests_unanswerable", "Unanswerable"],
  ["requests_refunded", "Then refunded"],
  ["revoke_p50_ms", "Revoke p50"],
  ["revoke_p95_ms", "Revoke p95"],
];

function seconds(ms) {
  if (ms === null || ms === undefined) return "–";
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

// The admin API path of the figures (the page adds its origin and token).
export function insightPath({ tenant, period = "day", from, to, format } = {}) {
  const query = new URLSearchParams({ period });
  if (tenant) query.set("tenant", tenant);
  if (from) query.set("from", from);
  if (to) query.set("to", to);
  if (format) query.set("format", format);
  return `/insight?${query}`;
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  return node;
}

// One bar chart: a bar per period (its value as the bar's title), the largest value labelled.
export function barChart(rows, figure, label, format) {
  const box = el("figure", "rg-insight-chart");
  box.append(el("figcaption", "rg-insight-caption", label));
  const values = rows.map((r) => (typeof r[figure] === "number" ? r[figure] : 0));
  const top = Math.max(0, ...values);
  const width = 300;
  const height = 80;
  const step = values.length ? width / values.length : width;
  const chart = svg("svg", {
    viewBox: `0 0 ${width} ${height}`,
    class: "rg-insight-bars",
    role: "img",
    "aria-label": `${label}: ${values.length} periods, highest ${top ? format(top) : "0"}`,
  });
  rows.forEach((row, i) => {
    const value = values[i];
    const h = top > 0 ? Math.max(value > 0 ? 1 : 0, (value / top) * (height - 14)) : 0;
    const bar = svg("rect", {
      x: (i * step + step * 0.1).toFixed(2),
      y: (height - h).toFixed(2),
      width: Math.max(0.5, step * 0.8).toFixed(2),
      height: h.toFixed(2),
      class: "rg-insight-bar",
    });
    const title = svg("title", {});
    title.textContent = `${row.period_start}: ${row[figure] === null ? "–" : format(value)}`;
    bar.append(title);
    chart.append(bar);
  });
  const peak = svg("text", { x: 2, y: 10, class: "rg-insight-peak" });
  peak.textContent = top ? `max ${format(top)}` : "none";
  chart.append(peak);
  box.append(chart);
  return box;
}

function cell(figure, value) {
  if (value === null || value === undefined) return "–";
  if (figure === "refund_rate") return `${(100 * value).toFixed(1)}%`;
  if (figure.startsWith("revoke_")) return seconds(value);
  return String(value);
}

const TEXT_COLUMNS = new Set(["tenant", "period_start", "product_id"]);

// The figures table: one row per period and product ("*" = all products), as answered; with a
// tenant column when the answer holds every tenant's rows. Wrapped in a region that scrolls
// sideways (by keyboard too) on a narrow screen.
export function figuresTable(rows, { tenants = false, caption = "Figures" } = {}) {
  const columns = tenants ? [["tenant", "Tenant"], ...COLUMNS] : COLUMNS;
  const table = el("table", "rg-insight-table");
  table.append(el("caption", "visually-hidden", caption));
  const head = el("tr");
  for (const [, heading] of columns) {
    const th = el("th", "", heading);
    th.setAttribute("scope", "col");
    head.append(th);
  }
  const thead = el("thead");
  thead.append(head);
  table.append(thead);
  const body = el("tbody");
  for (const row of rows) {
    const line = el("tr", row.product_id === "*" ? "rg-insight-all" : "");
    for (const [figure] of columns) {
      const value = figure === "product_id" && row[figure] === "*" ? "All products" : row[figure];
      line.append(el("td", "", TEXT_COLUMNS.has(figure) ? String(value ?? "–") : cell(figure, value)));
    }
    body.append(line);
  }
  table.append(body);
  const scroller = el("div", "rg-insight-scroll");
  scroller.setAttribute("role", "region");
  scroller.setAttribute("aria-label", caption);
  scroller.setAttribute("tabindex", "0");
  scroller.append(table);
  return scroller;
}

// Every tenant's "*" rows as one per period: the counts added up, the refund rate of the sums,
// the revoke times left out (percentiles do not add up).
export function combined(rows) {
  const periods = new Map();
  for (const row of rows) {
    if (row.product_id !== "*") continue;
    const sum = periods.get(row.period_start) || { period_start: row.period_start };
    for (const [figure, value] of Object.entries(row)) {
      if (typeof value !== "number" || figure === "refund_rate" || figure.startsWith("revoke_")) continue;
      sum[figure] = (sum[figure] || 0) + value;
    }
    periods.set(row.period_start, sum);
  }
  return [...periods.values()]
    .sort((a, b) => (a.period_start < b.period_start ? -1 : 1))
    .map((sum) => ({
      ...sum,
      refund_rate: sum.purchases ? (sum.refunds_of_purchases || 0) / sum.purchases : null,
      revoke_p50_ms: null,
      revoke_p95_ms: null,
    }));
}

// Charts of the "*" rows (every product; every tenant: their sums) and the table, replacing
// what `container` held.
export function renderInsight(container, answer) {
  const rows = Array.isArray(answer?.rows) ? answer.rows : [];
  const tenant = answer?.tenant || null;
  const all = tenant ? rows.filter((r) => r.product_id === "*" && r.tenant === tenant) : combined(rows);
  const section = el("section", "rg-insight");
  const title = `Refunds of ${tenant || "every tenant"}, per ${answer?.period || "period"}, ${answer?.from || ""} to ${answer?.to || ""} (UTC)`;
  section.append(el("h2", "rg-insight-title", title));
  if (!rows.length) {
    section.append(el("p", "rg-insight-empty", "No purchases, refunds or refund requests in this range."));
  } else {
    const charts = el("div", "rg-insight-charts");
    for (const [figure, label, format] of CHARTS) charts.append(barChart(all, figure, label, format));
    section.append(charts, figuresTable(rows, { tenants: !tenant, caption: `${title}: the figures` }));
  }
  container.replaceChildren(section);
  return section;
}

// Saves CSV text (GET /insight?...&format=csv, fetched by the page with its token) as a file.
export function saveCsv(text, filename = "refundguard-insight.csv") {
  const url = URL.createObjectURL(new Blob([text], { type: "text/csv" }));
  const link = el("a");
  link.href = url;
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
