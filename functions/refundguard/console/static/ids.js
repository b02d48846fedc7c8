// What a pasted id is, and the link to a purchase that goes into a support ticket.
//
// The rules (docs/console.md):
//   GPA.…                               a Google order id        -> GET /orders/{id}
//   digits only                         an Apple original transaction id
//                                        -> POST /entitlements:lookup, App Store Production, then Sandbox
//   contains . - _ : ~ + = (and no GPA.) a Google purchase token -> POST /entitlements:lookup (google)
//   anything else (letters and digits)  an Apple order id (e-mail receipt) -> GET /orders/{id}
// Apple order ids are letters and digits (MQ3ZRTV4X1); Google purchase tokens are long runs of
// letters, digits, '.', '-' and '_'. "Look up as" overrides the guess.

import { withArticle } from "./words.js";

export const KINDS = {
  "google-order": "Google order",
  "google-token": "Google purchase token",
  "apple-transaction": "Apple original transaction id",
  "apple-order": "Apple order id",
};

const PURCHASE_ID = /^[A-Za-z0-9._:~+=-]{1,1024}$/;
const ORDER_ID = /^[A-Za-z0-9._:-]{1,200}$/;

/** {kind, id} for what was pasted (trimmed; spaces inside removed), or {error}. */
export function classify(raw, kind = "auto") {
  let id = String(raw ?? "").replace(/\s+/g, "");
  if (!id) return { error: "Paste an order id, a purchase token or a transaction id." };
  if (kind === "auto") {
    if (/^gpa\./i.test(id)) kind = "google-order";
    else if (/^[0-9]+$/.test(id)) kind = "apple-transaction";
    else if (/[._:~+=-]/.test(id)) kind = "google-token";
    else kind = "apple-order";
  }
  if (kind === "google-order" && /^gpa\./i.test(id)) id = "GPA." + id.slice(4);
  const order = kind.endsWith("-order");
  const valid = order ? ORDER_ID.test(id) : PURCHASE_ID.test(id);
  if (!valid) {
    const allowed = order
      ? "an order id is 1-200 letters, digits and . _ : -"
      : "a purchase id is 1-1024 letters, digits and . _ - : ~ + =";
    return { error: `That does not look like ${withArticle(KINDS[kind])}: ${allowed}.` };
  }
  return { kind, id };
}

/** Store namespaces to try for a purchase id, in order. */
export function namespacesFor(kind) {
  return kind === "apple-transaction" ? ["apple", "apple-sandbox"] : ["google"];
}

/**
 * The fragment that finds this purchase again. A Google purchase token is a credential-like
 * secret of the purchase, so a Google purchase with a known order links by its order id; without
 * one (and for Apple, whose transaction ids are plain numbers) the fragment names the purchase.
 * Fragments never leave the browser: not in request lines, server logs or Referer headers.
 */
export function fragmentFor(entitlement) {
  const store = entitlement.store;
  const orderId = entitlement.order_id || (entitlement.order_ids || []).slice(-1)[0];
  if (store === "google" && orderId) return `order/${encodeURIComponent(orderId)}`;
  return `purchase/${encodeURIComponent(namespaceOf(entitlement))}/${encodeURIComponent(
    entitlement.purchase_id,
  )}`;
}

export function namespaceOf(entitlement) {
  if (entitlement.store === "apple" && entitlement.environment === "Sandbox") {
    return "apple-sandbox";
  }
  return entitlement.store;
}

/** What a fragment asks for: {order}, {namespace, purchaseId}, or null. */
export function parseFragment(hash) {
  const text = String(hash || "").replace(/^#/, "");
  const parts = text.split("/");
  try {
    if (parts.length === 2 && parts[0] === "order" && parts[1]) {
      return { order: decodeURIComponent(parts[1]) };
    }
    if (parts.length === 3 && parts[0] === "purchase" && parts[1] && parts[2]) {
      return { namespace: decodeURIComponent(parts[1]), purchaseId: decodeURIComponent(parts[2]) };
    }
  } catch {
    return null; // a malformed escape
  }
  return null;
}
