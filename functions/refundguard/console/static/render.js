// The result screens, built from the admin API's JSON with dom.h (text only, never HTML): one
// purchase (status in words, facts, ticket link, actions, timeline), an order with several
// purchases, and the optional panels.

import { h, visible, when } from "./dom.js";
import { fragmentFor } from "./ids.js";
import {
  effectWords,
  sourceWords,
  statusSentence,
  statusWords,
  storeWords,
  typeWords,
  withArticle,
} from "./words.js";

const TIMELINE_LIMIT = 200; // entries shown at once; the rest behind "Show all"
const LATE_MS = 60_000; // an event received this much after its time says when it was received

function time(value) {
  return typeof value === "number" && Number.isFinite(value) ? value : -Infinity;
}

/** History in the order of the time each entry shows: event time, newest first; entries with the
 * same event time newest received first. (The API lists them by receipt.) */
export function byEventTime(history) {
  return [...history].sort(
    (a, b) =>
      time(b.event_time_ms) - time(a.event_time_ms) || time(b.received_ms) - time(a.received_ms),
  );
}

/** One purchase: {status, entitlement, history, history_truncated} from the API. `allowed`:
 * whether the signed-in role may re-grant or revoke it (false: no buttons, the reason in words);
 * `tenant`: {name, note, onSwitch} of the purchase's tenant, or null (no tenants). */
export function renderPurchase(view, { onAction, found, allowed = true, role = null, tenant = null }) {
  const ent = view.entitlement || {};
  const history = byEventTime(Array.isArray(view.history) ? view.history : []);
  const sentence = statusSentence(ent, history);
  const access = ent.access === true;
  const heading = h("h2", { id: "purchase-title", tabindex: "-1" }, sentence.text);
  const status = h(
    "section",
    { class: `card status ${access ? "status--on" : "status--off"}`, "aria-labelledby": "purchase-title" },
    h("p", { class: "badge" }, access ? "Has access" : "No access"),
    heading,
    sentence.reason ? h("p", { class: "quote" }, `Reason: “${visible(sentence.reason)}”`) : null,
    found ? h("p", { class: "help" }, found) : null,
    tenant?.note ? tenantNote(tenant) : null,
    facts(ent, view, tenant),
    ticketLink(ent),
    allowed ? actions(ent, onAction) : noActions(role),
  );
  return h("div", { class: "purchase" }, status, timeline(history, view, ent));
}

function tenantNote(tenant) {
  const attrs = { type: "button", class: "quiet", id: "switch-to-owner", onclick: tenant.onSwitch };
  const button = tenant.onSwitch ? h("button", attrs, `Switch to ${tenant.name}`) : null;
  return h("div", { class: "tenant-note", role: "note" }, h("p", {}, tenant.note), button);
}

function noActions(role) {
  const who = role ? `As ${withArticle(role)}, you` : "You";
  return h(
    "div",
    { class: "change" },
    h("h3", {}, "Change access"),
    h("p", { class: "help", id: "no-actions" }, `${who} can look this up, not re-grant or revoke it.`),
  );
}

function facts(ent, view, tenant) {
  const rows = [
    ...(tenant ? [["Tenant", tenant.name]] : []),
    ["Status", h("code", {}, ent.status || "")],
    ["Store", storeWords(ent)],
    ["Product", ent.product_id || "-"],
    ["Account", ent.user_id || "-"],
    ["Orders", (ent.order_ids || []).length ? ent.order_ids.join(", ") : ent.order_id || "-"],
    ["Purchased", when(ent.purchase_time_ms)],
    ["Last change", when(ent.last_event_time_ms)],
    ["Purchase id", h("code", { class: "wrap" }, ent.purchase_id || "")],
    [
      "History",
      `${ent.history_count ?? (view.history || []).length} event(s)` +
        (view.history_truncated ? ", newest 500 shown" : ""),
    ],
  ];
  return h(
    "dl",
    { class: "facts" },
    rows.map(([name, value]) =>
      h("div", { class: "fact", "data-fact": name.toLowerCase().replace(" ", "-") }, h("dt", {}, name), h("dd", {}, value)),
    ),
  );
}

function ticketLink(ent) {
  const url = `${location.origin}${location.pathname}#${fragmentFor(ent)}`;
  const input = h("input", {
    id: "ticket-link",
    type: "text",
    readonly: true,
    value: url,
    "aria-describedby": "ticket-help",
  });
  const button = h(
    "button",
    {
      type: "button",
      class: "quiet",
      onclick: async () => {
        input.select();
        try {
          await navigator.clipboard.writeText(url);
          button.textContent = "Copied";
        } catch {
          button.textContent = "Selected: press Ctrl+C";
        }
      },
    },
    "Copy link",
  );
  return h(
    "div",
    { class: "ticket" },
    h("label", { for: "ticket-link" }, "Link for the ticket"),
    h("div", { class: "row" }, input, button),
    h(
      "p",
      { id: "ticket-help", class: "help" },
      "Opens this purchase after sign-in. It names the order id (or, for Apple, the transaction id) in the part after #, which browsers never send to a server.",
    ),
  );
}

function actions(ent, onAction) {
  const access = ent.access === true;
  const regrant = h(
    "button",
    { type: "button", class: access ? "quiet" : "primary", "data-action": "regrant" },
    "Re-grant access…",
  );
  const revoke = h(
    "button",
    { type: "button", class: access ? "danger" : "quiet", "data-action": "revoke" },
    "Revoke access…",
  );
  regrant.addEventListener("click", () => onAction("regrant", regrant));
  revoke.addEventListener("click", () => onAction("revoke", revoke));
  return h(
    "div",
    { class: "change" },
    h("h3", {}, "Change access"),
    h("div", { class: "row" }, regrant, revoke),
    h("div", { id: "action-slot" }),
  );
}

function timeline(history, view, ent) {
  const list = h("ol", { class: "timeline", "aria-label": "History, newest event time first" });
  const render = (entries) => list.replaceChildren(...entries.map(event));
  render(history.slice(0, TIMELINE_LIMIT));
  const more =
    history.length > TIMELINE_LIMIT
      ? h(
          "button",
          {
            type: "button",
            class: "quiet",
            onclick: (e) => {
              render(history);
              e.target.remove();
            },
          },
          `Show all ${history.length}`,
        )
      : null;
  const total = ent.history_count ?? history.length;
  return h(
    "section",
    { class: "card", "aria-labelledby": "timeline-title" },
    h("h2", { id: "timeline-title" }, "Timeline"),
    h(
      "p",
      { class: "help" },
      `Newest first, by when each event happened: ${history.length} of ${total} event(s)` +
        (view.history_truncated ? " (older ones are not shown)" : "") +
        ". Who or what changed the purchase, when, and why. An event that reached refundguard" +
        " late says when it was received.",
    ),
    history.length ? list : h("p", {}, "No events yet."),
    more,
  );
}

function event(entry) {
  const source = ["google", "apple", "admin"].includes(entry.source) ? entry.source : "other";
  const who =
    entry.source === "admin"
      ? h("p", { class: "who-line" }, `By ${visible(entry.actor || "an admin")}`)
      : h("p", { class: "who-line" }, `From ${sourceWords(entry.source)}`);
  const details = entry.details && typeof entry.details === "object" ? entry.details : {};
  const keys = Object.keys(details);
  const late = time(entry.received_ms) - time(entry.event_time_ms) >= LATE_MS;
  return h(
    "li",
    { class: `event event--${source} event--${entry.effect || "none"}` },
    h(
      "div",
      { class: "event-head" },
      h("span", { class: "source" }, sourceWords(entry.source)),
      when(entry.event_time_ms),
      late ? h("span", { class: "received" }, "received ", when(entry.received_ms)) : null,
    ),
    h(
      "p",
      { class: "event-what" },
      h("strong", {}, capitalise(typeWords(entry.type))),
      " ",
      h("code", {}, entry.type || ""),
    ),
    h("p", { class: "event-effect" }, effectWords(entry)),
    who,
    entry.reason ? h("p", { class: "quote" }, `“${visible(entry.reason)}”`) : null,
    keys.length
      ? h(
          "details",
          {},
          h("summary", {}, `Details (${keys.length})`),
          h(
            "dl",
            { class: "details" },
            keys.map((k) => h("div", {}, h("dt", {}, k), h("dd", {}, scalar(details[k])))),
          ),
          h("p", { class: "help" }, "Received ", when(entry.received_ms), ` · event id ${visible(entry.event_id)}`),
        )
      : null,
  );
}

function scalar(value) {
  if (value === null || value === undefined) return "-";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function capitalise(text) {
  return text ? text[0].toUpperCase() + text.slice(1) : text;
}

/** An order with several purchases: a list to choose from. */
export function renderChoice(answer, onOpen) {
  const results = Array.isArray(answer.results) ? answer.results : [];
  return h(
    "section",
    { class: "card", "aria-labelledby": "choice-title" },
    h("h2", { id: "choice-title", tabindex: "-1" }, `Order ${visible(answer.order_id)}: ${results.length} purchases`),
    h("p", { class: "help" }, "An Apple order can hold several items. Choose one."),
    h(
      "ul",
      { class: "choices" },
      results.map((view, index) => {
        const ent = view.entitlement || {};
        return h(
          "li",
          {},
          h(
            "button",
            { type: "button", class: "quiet", onclick: () => onOpen(index) },
            `${ent.product_id || "unknown product"} · ${statusWords(ent.status)} · ${ent.purchase_id}`,
          ),
        );
      }),
    ),
  );
}

/** A list as the panels show it: `empty` when it holds nothing, else `item` of its first `limit`. */
export function renderList(body, items, { empty, limit, item }) {
  if (!items.length) {
    body.replaceChildren(h("p", {}, empty));
    return;
  }
  body.replaceChildren(h("ul", { class: "panel-list" }, items.slice(0, limit).map(item)));
}

/** A panel (refund requests, reconciliation runs) from whatever list the route answers. */
export function renderPanel(body, data) {
  const items = firstList(data);
  if (!items) {
    body.replaceChildren(h("pre", { class: "raw" }, JSON.stringify(data, null, 2)));
    return;
  }
  renderList(body, items, {
    empty: "Nothing here.",
    limit: 50,
    item: (item) =>
      h(
        "li",
        {},
        typeof item === "object" && item
          ? h(
              "dl",
              { class: "details" },
              Object.entries(item)
                .slice(0, 8)
                .map(([k, v]) => h("div", {}, h("dt", {}, k), h("dd", {}, scalar(v)))),
            )
          : scalar(item),
      ),
  });
}

function firstList(data) {
  if (Array.isArray(data)) return data;
  if (!data || typeof data !== "object") return null;
  const list = Object.values(data).find(Array.isArray);
  return list || null;
}
