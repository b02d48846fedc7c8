// The "Refund figures" page: GET /insight of the tenant picked (a platform admin: also every
// tenant at once), per day, week or month over a range, drawn by insight_charts.js, and the same
// figures as a CSV file. The API decides who sees what (docs/insight.md): a 403 or an insight
// that is off hides the page's button (app.js), a refusal of a range is said in words.

import { ApiError } from "./api.js";
import { h, visible } from "./dom.js";
import { insightPath, renderInsight, saveCsv } from "./insight_charts.js";
import { ALL } from "./tenants.js";

const PERIODS = [
  ["day", "Day"],
  ["week", "Week"],
  ["month", "Month"],
];
export const DEFAULT_DAYS = 90;

/** YYYY-MM-DD of a Date, in UTC (the figures' dates are UTC). */
export function isoDay(date) {
  return date.toISOString().slice(0, 10);
}

/** The range shown first: the last DEFAULT_DAYS days, today included, per week. */
export function defaultRange(now = new Date()) {
  const from = new Date(now.getTime() - (DEFAULT_DAYS - 1) * 86_400_000);
  return { period: "week", from: isoDay(from), to: isoDay(now) };
}

/** The API's query of tenant `id` (ALL: every tenant, no `tenant` parameter). */
export function query(id, range, format) {
  return `.${insightPath({ ...range, tenant: id === ALL ? null : id, format })}`;
}

/** Whether an error means "not this person's figures, or no figures here": the page hides the
 * figures' button rather than showing an error. */
export function refused(err) {
  if (!(err instanceof ApiError)) return false;
  if (err.status === 403 && err.code !== "not_an_admin") return true;
  return err.status === 404 && (err.code === "no_such_route" || err.code === "insight_off");
}

/**
 * Fill `root` with tenant `id`'s figures page. ctx: {api, tenantName, range (kept across
 * redraws), current() (false once another tenant or a sign-out replaced it), fail(err, slot),
 * refuse() (the API refused: hide the page)}.
 */
export function renderFigures(root, id, ctx) {
  const range = ctx.range;
  const title = h(
    "h1",
    { id: "figures-title", class: "setup-title", tabindex: "-1" },
    `Refund figures: ${id === ALL ? "all tenants" : ctx.tenantName}`,
  );
  const period = h(
    "select",
    { id: "figures-period", name: "period" },
    PERIODS.map(([value, text]) => h("option", { value, selected: value === range.period }, text)),
  );
  const from = h("input", { id: "figures-from", name: "from", type: "date", value: range.from, required: true });
  const to = h("input", { id: "figures-to", name: "to", type: "date", value: range.to, required: true });
  const field = (label, input) => h("div", { class: "field" }, h("label", { for: input.id }, label), input);
  const show = h("button", { type: "submit", class: "primary" }, "Show");
  const csv = h("button", { id: "figures-csv", type: "button", class: "quiet" }, "Download CSV");
  const form = h(
    "form",
    { id: "figures-form", class: "search", novalidate: true, "aria-describedby": "figures-help" },
    field("Per", period),
    field("From", from),
    field("To", to),
    show,
    csv,
  );
  const help = h(
    "p",
    { id: "figures-help", class: "help" },
    "Dates are UTC, both included; the first period starts on the day, week (Monday) or month " +
      "of From. What each figure counts: docs/insight.md.",
  );
  const state = h("p", { id: "figures-state", class: "help", role: "status" });
  // Not a live region (a screen reader would read the whole table): the status line says it.
  const body = h("div", { id: "figures-body", class: "figures-body" });
  root.replaceChildren(h("section", { class: "card", "aria-labelledby": "figures-title" }, title, form, help, state, body));

  const read = () => {
    range.period = period.value;
    range.from = from.value;
    range.to = to.value;
    return { ...range };
  };
  let asked = 0;
  const load = async () => {
    const mine = ++asked;
    const wanted = read();
    state.className = "help";
    state.textContent = "Reading the figures…";
    body.setAttribute("aria-busy", "true");
    try {
      const { data } = await ctx.api.get(query(id, wanted));
      if (!ctx.current() || mine !== asked) return;
      renderInsight(body, data);
      const rows = Array.isArray(data.rows) ? data.rows.length : 0;
      state.textContent = `${rows} row${rows === 1 ? "" : "s"}.`;
    } catch (err) {
      if (!ctx.current() || mine !== asked) return;
      body.replaceChildren();
      if (refused(err)) {
        ctx.refuse();
        return;
      }
      state.textContent = "";
      ctx.fail(err, state);
    } finally {
      if (mine === asked) body.setAttribute("aria-busy", "false");
    }
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    load();
  });
  csv.addEventListener("click", async () => {
    const wanted = read();
    state.className = "help";
    state.textContent = "Preparing the CSV file…";
    try {
      const { text, filename } = await ctx.api.text(query(id, wanted, "csv"));
      if (!ctx.current()) return;
      saveCsv(text, filename || "refundguard-insight.csv");
      const lines = text.split("\n").filter((line) => line.length).length;
      state.textContent = visible(`Saved ${filename || "the CSV file"} (${Math.max(0, lines - 1)} rows).`);
    } catch (err) {
      if (!ctx.current()) return;
      state.textContent = "";
      ctx.fail(err, state);
    }
  });
  load();
  return title;
}
