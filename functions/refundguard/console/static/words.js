// Ledger codes in words: statuses, event types, sources and effects, and the status sentence
// ("Access revoked by a Google refund on 3 Nov 2026, 14:02 UTC"). Unknown codes fall back to the
// code itself, shown as text.

import { whenText } from "./dom.js";

export const STATUS = {
  active: "Access granted",
  revoked: "Access revoked",
  expired: "Access expired",
  on_hold: "Access suspended (account on hold)",
  paused: "Access paused",
  canceled: "No access: the pending purchase was cancelled",
  pending: "No access yet: the payment is pending",
  unknown: "No access decision yet",
};

const TYPES = {
  // Google Play
  ONE_TIME_PRODUCT_PURCHASED: "purchase",
  ONE_TIME_PRODUCT_CANCELED: "cancelled pending purchase",
  VOIDED_PURCHASE: "refund",
  VOIDED_PURCHASE_PARTIAL_REFUND: "partial refund",
  SUBSCRIPTION_PURCHASED: "subscription purchase",
  SUBSCRIPTION_RENEWED: "renewal",
  SUBSCRIPTION_RECOVERED: "recovered subscription",
  SUBSCRIPTION_RESTARTED: "restarted subscription",
  SUBSCRIPTION_IN_GRACE_PERIOD: "grace period",
  SUBSCRIPTION_DEFERRED: "deferred renewal",
  SUBSCRIPTION_CANCELED: "cancellation (access until expiry)",
  SUBSCRIPTION_ON_HOLD: "account hold",
  SUBSCRIPTION_PAUSED: "pause",
  SUBSCRIPTION_REVOKED: "revocation",
  SUBSCRIPTION_EXPIRED: "expiry",
  SUBSCRIPTION_PENDING_PURCHASE_CANCELED: "cancelled pending purchase",
  // App Store
  ONE_TIME_CHARGE: "purchase",
  SUBSCRIBED: "subscription",
  DID_RENEW: "renewal",
  REFUND: "refund",
  REFUND_REVERSED: "reversed refund",
  REFUND_DECLINED: "declined refund request",
  REVOKE: "revocation (Family Sharing)",
  EXPIRED: "expiry",
  GRACE_PERIOD_EXPIRED: "end of grace period",
  CONSUMPTION_REQUEST: "refund request (consumption information asked)",
  // refundguard's admins
  ADMIN_REGRANT: "re-grant",
  ADMIN_REVOKE: "revoke",
  ORDER_LOOKUP: "order look-up",
};

const SOURCES = { google: "Google Play", apple: "App Store", admin: "Admin" };
const SOURCE_ADJECTIVES = { google: "Google", apple: "Apple" };

/** "a Google purchase token", "an Apple order id", "an unknown source" (by the first letter). */
export function withArticle(noun) {
  const text = String(noun ?? "");
  return `${/^[aeiou]/i.test(text) ? "an" : "a"} ${text}`;
}

export function typeWords(type) {
  const known = TYPES[type];
  if (known) return known;
  return String(type || "event").toLowerCase().replaceAll("_", " ");
}

export function sourceWords(source) {
  return SOURCES[source] || String(source || "unknown source");
}

export function statusWords(status) {
  return STATUS[status] || `Status ${status}`;
}

export function storeWords(entitlement) {
  if (entitlement.store === "google") return "Google Play";
  if (entitlement.store === "apple") return `App Store (${entitlement.environment || "Production"})`;
  return String(entitlement.store || "");
}

/** What an entry did to access, in words. */
export function effectWords(entry) {
  const after = entry.status_after;
  if (entry.effect === "applied") {
    if (entry.status_before === after) return `Confirmed: ${after}`;
    const before = entry.status_before ? ` (was ${entry.status_before})` : "";
    return `Set status to ${after}${before}`;
  }
  if (entry.effect === "stale") {
    return `Ignored for access: older than a later decision (status stays ${after})`;
  }
  if (entry.effect === "recorded") return `Recorded; status unchanged (${after})`;
  return String(entry.effect || "");
}

/** The newest history entry that set the current status (history is newest first). */
export function decidingEntry(entitlement, history) {
  return (history || []).find(
    (entry) => entry.effect === "applied" && entry.status_after === entitlement.status,
  );
}

/**
 * "Access revoked by a Google refund on 3 Nov 2026, 14:02 UTC", "Access granted by
 * admin@example.com (re-grant) on …: “reason”". Returns {text, reason}.
 */
export function statusSentence(entitlement, history) {
  const verb = statusWords(entitlement.status);
  const entry = decidingEntry(entitlement, history);
  if (!entry) {
    const last = whenText(entitlement.last_event_time_ms ?? entitlement.updated_ms);
    return { text: last ? `${verb} (last change ${last})` : verb, reason: null };
  }
  let cause;
  if (entry.source === "admin") {
    const action = entry.type === "ADMIN_REGRANT" ? "re-granted" : typeWords(entry.type);
    const admin = entry.actor || "an admin";
    cause = entry.type === "ADMIN_REGRANT" ? `${action} by ${admin}` : `by ${admin} (${action})`;
    const text = entry.type === "ADMIN_REGRANT" ? `Access ${cause}` : `${verb} ${cause}`;
    return { text: `${text} on ${whenText(entry.event_time_ms)}`, reason: entry.reason || null };
  }
  const adjective = SOURCE_ADJECTIVES[entry.source] || sourceWords(entry.source);
  cause = `by ${withArticle(`${adjective} ${typeWords(entry.type)}`)}`;
  return { text: `${verb} ${cause} on ${whenText(entry.event_time_ms)}`, reason: null };
}
