// The two lists beside the search, in words: the stores' refund requests (pending first) and the
// last reconciliation runs. Built with dom.h, text only; any other shape falls back to renderPanel.

import { h, when } from "./dom.js";
import { renderList, renderPanel } from "./render.js";

const KIND_WORDS = {
  apple_consumption: "Apple asks for consumption information",
  google_refund_review: "Google asks for a refund review (chargeback)",
};
const REQUEST_STATE_WORDS = {
  pending: "waiting for an answer",
  answered: "answered",
  unanswerable: "cannot be answered",
  expired: "deadline passed",
};
const RUN_STATE_WORDS = {
  running: "running",
  succeeded: "finished",
  partial: "finished in part (the next run resumes)",
  failed: "failed",
  abandoned: "never finished",
};

function ms(iso) {
  const value = typeof iso === "string" ? Date.parse(iso) : Number.NaN;
  return Number.isFinite(value) ? value : undefined;
}

function words(table, value) {
  return table[value] || String(value || "unknown");
}

/** GET /refund-requests: {"requests": [...]}. */
export function renderRefundRequests(body, data) {
  const items = data && Array.isArray(data.requests) ? data.requests : null;
  if (!items) return renderPanel(body, data);
  renderList(body, items, {
    empty: "No refund requests.",
    limit: 50,
    item: (item) =>
      h(
        "li",
        { class: `request request--${item.state || "unknown"}` },
        h("p", {}, h("strong", {}, words(KIND_WORDS, item.kind)), ": ",
          words(REQUEST_STATE_WORDS, item.state)),
        h("p", { class: "help" }, "For ", h("code", {}, item.order_id || item.entitlement_id || "?"),
          " · received ", when(ms(item.received_at)), " · answer by ", when(ms(item.deadline_at))),
        item.reason ? h("p", { class: "help" }, `Why: ${item.reason}`) : null,
      ),
  });
}

/** GET /reconciliation/runs: {"runs": [...]}. */
export function renderRuns(body, data) {
  const runs = data && Array.isArray(data.runs) ? data.runs : null;
  if (!runs) return renderPanel(body, data);
  renderList(body, runs, {
    empty: "No reconciliation run yet.",
    limit: 20,
    item: (run) => {
      const sources = Array.isArray(run.sources) ? run.sources : [];
      const total = (name) => sources.reduce((n, s) => n + (Number(s[name]) || 0), 0);
      const errors = sources.reduce((n, s) => n + (Array.isArray(s.errors) ? s.errors.length : 0), 0);
      return h(
        "li",
        { class: `run run--${run.state || "unknown"}` },
        h("p", {}, h("strong", {}, "Run "), when(ms(run.started_at)), ": ",
          words(RUN_STATE_WORDS, run.state),
          run.trigger === "admin" && run.actor ? ` (started by ${run.actor})` : ""),
        h("p", { class: "help" },
          `${total("seen")} seen · ${total("applied")} applied · ` +
          `${total("already_known")} already known · ${errors} error${errors === 1 ? "" : "s"}`),
        run.error ? h("p", { class: "error" }, run.error) : null,
      );
    },
  });
}
