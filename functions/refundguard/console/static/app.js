// The console: sign-in (Google Identity Services, or make run's local stand-in of it), search,
// one purchase and its timeline, re-grant/revoke with a reason and a confirmation. Everything it
// shows comes from the admin API as the signed-in person; the ID token stays in this module's
// memory (never in storage, cookies or URLs) and is dropped on sign-out, expiry or a 401.
//
// The newest request wins: every request whose answer replaces what the page shows (a search, a
// link, the reload after an action, the panels, a tenant's pages) takes a ticket, and an answer
// (or error) whose ticket is no longer the newest is dropped. Sign-out makes every ticket old.
//
// Tenants: after sign-in the page asks GET /me. A platform admin picks a tenant (or all of them,
// for look-ups); tenant staff see their own tenant(s) only. Without GET /me (an admin API from
// before tenants) the page is a platform admin's of the one deployment, as it was. The API
// enforces every role; the page hides only what the API would refuse (tenants.js).

import { ApiError, createApi, explain, explainSignIn } from "./api.js";
import { h, show, visible } from "./dom.js";
import { defaultRange, query as figuresQuery, refused as figuresRefused, renderFigures } from "./figures.js";
import { classify, fragmentFor, KINDS, namespacesFor, namespaceOf, parseFragment } from "./ids.js";
import { renderRefundRequests, renderRuns } from "./panels.js";
import { renderChoice, renderPurchase } from "./render.js";
import { renderNewTenant, renderSetup } from "./setup.js";
import {
  ALL,
  canAct,
  canSetUp,
  choices,
  firstChoice,
  label,
  legacyMe,
  nameOf,
  parseMe,
  ROLE_WORDS,
  roleIn,
  tenantOf,
} from "./tenants.js";
import { statusWords, storeWords, withArticle } from "./words.js";

const $ = (id) => document.getElementById(id);
const meta = (name) => document.querySelector(`meta[name="${name}"]`)?.content || "";

const session = {
  token: null,
  email: "",
  timer: null,
  me: null,
  tenant: ALL,
  view: "purchases",
  range: defaultRange(), // the figures' period and dates, kept across tenants and redraws
};
const details = new Map(); // tenant id -> the tenant as GET /tenants/{id} answered (this session)
let current = null; // {namespace, purchaseId, view}: the purchase shown, which the actions act on
const api = createApi(() => session.token);

// ------------------------------------------------------------------------- newest answer wins

const tickets = { view: 0, panels: 0, setup: 0, me: 0, figures: 0, probe: 0 };

/** A ticket for a new request of this kind: answers to older ones are dropped from now on. */
function ticket(kind) {
  tickets[kind] += 1;
  return tickets[kind];
}

function newest(kind, number) {
  return tickets[kind] === number;
}

// ------------------------------------------------------------------------------------- notices

function notice(text, kind = "error") {
  $("notice").className = `notice notice--${kind}`;
  $("notice-text").textContent = visible(text);
  show($("notice"));
}

function clearNotice() {
  show($("notice"), false);
}

function announce(text) {
  $("announce").textContent = "";
  setTimeout(() => ($("announce").textContent = visible(text)), 50);
}

// ------------------------------------------------------------------------------------- sign-in

function loadScript(url) {
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = url;
    script.async = true;
    script.onload = resolve;
    script.onerror = () => reject(new Error(`could not load ${url}`));
    document.head.append(script);
  });
}

function claims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), "=")));
  } catch {
    return {};
  }
}

async function startSignIn() {
  const clientId = meta("refundguard-client-id");
  try {
    await loadScript(meta("refundguard-sign-in"));
    const id = window.google?.accounts?.id;
    if (!id) throw new Error("the sign-in library did not start");
    id.initialize({ client_id: clientId, callback: onCredential, auto_select: false });
    id.renderButton($("sign-in-button"), { type: "standard", theme: "outline", size: "large", text: "signin_with" });
    $("sign-in-state").textContent = "";
  } catch (err) {
    $("sign-in-state").textContent =
      `Sign-in could not be loaded (${err.message}). Check your connection, then reload the page.`;
  }
}

async function onCredential(response) {
  clearNotice();
  clearTimeout(session.timer);
  const token = response?.credential;
  const payload = token ? claims(token) : {};
  const msLeft = (payload.exp || 0) * 1000 - Date.now();
  if (!token || msLeft <= 0) {
    notice("Your sign-in has expired. Sign in again.");
    return;
  }
  session.token = token;
  session.email = typeof payload.email === "string" ? payload.email : "";
  session.timer = setTimeout(() => signOut("Your sign-in has expired. Sign in again."), msLeft);
  $("sign-in-state").textContent = "Checking your access…";
  if (!(await loadMe()) || session.token !== token) return;
  if ((await loadPanels()) && session.token === token) enterWorkspace();
}

/** GET /me: who this is and which tenants they see; the access check of a sign-in (401/403 sign
 * out). A 404 no_such_route: an admin API from before tenants, the page as it was. */
async function loadMe() {
  const mine = ticket("me");
  try {
    const { data } = await api.get("./me");
    if (!newest("me", mine)) return false;
    session.me = parseMe(data, session.email);
  } catch (err) {
    if (!newest("me", mine)) return false;
    if (err instanceof ApiError && err.status === 404 && err.code === "no_such_route") {
      session.me = legacyMe(session.email);
    } else {
      signOut(explainSignIn(err));
      return false;
    }
  }
  session.tenant = firstChoice(session.me);
  return true;
}

function enterWorkspace() {
  $("who-email").textContent = visible(session.email);
  show($("who"));
  drawTenantBar();
  showView("purchases");
  if (session.tenant !== ALL && roleIn(session.me, session.tenant) === "support") {
    loadDetails(session.tenant);
  }
  show($("sign-in"), false);
  show($("workspace"));
  $("sign-in-state").textContent = "";
  announce(`Signed in as ${session.email}.`);
  if (parseFragment(location.hash)) openFragment();
  else $("query").focus();
}

function signOut(message) {
  session.token = null;
  session.email = "";
  session.me = null;
  session.tenant = ALL;
  details.clear();
  clearTimeout(session.timer);
  current = null;
  ticket("view"); // answers still on their way belong to the old session: dropped
  ticket("panels");
  ticket("setup");
  ticket("me");
  ticket("figures");
  ticket("probe");
  session.range = defaultRange();
  $("view-setup").replaceChildren();
  show($("view-setup"), false);
  $("view-figures").replaceChildren();
  show($("view-figures"), false);
  show($("view-figures-button"), false);
  show($("view-purchases"));
  show($("tenant-bar"), false);
  window.google?.accounts?.id?.disableAutoSelect?.();
  $("results-body").replaceChildren();
  show($("results"), false);
  for (const id of ["workspace", "who", "refund-requests", "reconciliation"]) show($(id), false);
  show($("sign-in"));
  $("sign-in-state").textContent = "";
  if (message) notice(message);
  else announce("Signed out.");
  $("sign-in-title").focus?.();
}

/** Whether an error ends the session: a 401, or a 403 saying this person is nobody here. */
function signsOut(err) {
  if (!(err instanceof ApiError)) return false;
  return err.status === 401 || (err.status === 403 && err.code === "not_an_admin");
}

/** Any 401 signs out, and a 403 `not_an_admin` (nothing here would work); another 403 (a role,
 * a suspended tenant) is shown as it is. */
function handle(err) {
  if (signsOut(err)) {
    signOut(explain(err));
  } else {
    notice(explain(err));
  }
}

// ---------------------------------------------------------------------------- optional panels

const PANELS = [
  ["refund-requests", "./refund-requests", renderRefundRequests],
  ["reconciliation", "./reconciliation/runs", renderRuns],
];

/** Load the panels whose routes exist (404 no_such_route: not deployed here, hidden). The first
 * call is also the access check: 401/403 refuse the sign-in. False when refused, or when a newer
 * load (a newer sign-in) has started: its answers are the ones shown. */
async function loadPanels() {
  const mine = ticket("panels");
  for (const [id, path, render] of PANELS) {
    const panel = $(id);
    const body = panel.querySelector(".panel-body");
    try {
      const { data } = await api.list(path);
      if (!newest("panels", mine)) return false;
      render(body, data);
      show(panel);
    } catch (err) {
      if (!newest("panels", mine)) return false;
      if (signsOut(err)) {
        signOut(explain(err));
        return false;
      }
      // Not deployed here, or not this role's (a 403): hidden.
      const absent =
        err instanceof ApiError &&
        ((err.status === 404 && err.code === "no_such_route") || err.status === 403);
      if (!absent) body.replaceChildren(h("p", { class: "error" }, explain(err)));
      show(panel, !absent);
    }
  }
  return true;
}

// ------------------------------------------------------------------------------------- search

/** Run `work(mine)` for a new view: "Looking…" until it shows something; its error is shown
 * unless a newer view has started since (then the error belongs to a view nobody waits for). */
async function busy(work) {
  const mine = ticket("view");
  current = null; // the purchase shown until now is gone: nothing acts on it any more
  $("results").setAttribute("aria-busy", "true");
  show($("results"));
  $("results-body").replaceChildren(h("p", { class: "help" }, "Looking…"));
  try {
    await work(mine);
  } catch (err) {
    if (!newest("view", mine)) return;
    $("results-body").replaceChildren();
    show($("results"), false);
    handle(err);
  } finally {
    if (newest("view", mine)) $("results").setAttribute("aria-busy", "false");
  }
}

function onSearch(event) {
  event.preventDefault();
  clearNotice();
  const found = classify($("query").value, $("kind").value);
  if (found.error) {
    $("query").setAttribute("aria-invalid", "true");
    notice(found.error);
    $("query").focus();
    return;
  }
  $("query").removeAttribute("aria-invalid");
  busy((mine) => search(found.kind, found.id, mine));
}

async function search(kind, id, mine) {
  if (kind.endsWith("-order")) return openOrder(id, mine);
  for (const namespace of namespacesFor(kind)) {
    try {
      const { data } = await api.lookup(namespace, id);
      return showPurchase(namespace, id, data, `Found as ${withArticle(KINDS[kind])}.`, mine);
    } catch (err) {
      if (!(err instanceof ApiError && err.code === "not_found")) throw err;
      if (!newest("view", mine)) return; // a newer search has started: stop asking
    }
  }
  const where = kind === "apple-transaction" ? " (App Store Production, then Sandbox)" : "";
  throw new ApiError(404, "not_found_as", `No purchase with this ${KINDS[kind]}${where}.`);
}

async function openOrder(orderId, mine) {
  const { data } = await api.order(orderId);
  if (!newest("view", mine)) return;
  const results = Array.isArray(data.results) ? data.results : [];
  const via = data.found_by === "store_api" ? "asked the store's API" : "in refundguard's ledger";
  const found = `Order ${orderId} (${via}).`;
  const open = (index, given) => {
    const view = results[index];
    const ent = view.entitlement || {};
    // Choosing from the list is a new view: whatever was asked before it is dropped.
    showPurchase(namespaceOf(ent), ent.purchase_id, view, found, given ?? ticket("view"));
  };
  if (results.length === 1) return open(0, mine);
  $("results-body").replaceChildren(renderChoice(data, open));
  $("choice-title").focus();
}

/** Show a purchase, if `mine` is still the newest view; true when shown. Its buttons act on this
 * purchase only. */
function showPurchase(namespace, purchaseId, view, found, mine) {
  if (!newest("view", mine)) return false;
  const target = { namespace, purchaseId, view };
  current = target;
  const ent = view.entitlement || {};
  const owner = ent.tenant || (session.tenant !== ALL ? session.tenant : null);
  $("results-body").replaceChildren(
    renderPurchase(view, {
      onAction: (action, opener) => onAction(target, action, opener),
      found,
      allowed: canAct(session.me || legacyMe(""), owner, details.get(owner)),
      role: session.me?.legacy ? null : ROLE_WORDS[roleIn(session.me, owner)] || null,
      tenant: session.me?.legacy ? null : tenantFacts(ent.tenant),
    }),
  );
  show($("results"));
  const fragment = `#${fragmentFor(view.entitlement || {})}`;
  if (location.hash !== fragment) history.replaceState(null, "", fragment);
  $("purchase-title").focus();
  announce($("purchase-title").textContent);
  return true;
}

function openFragment() {
  const target = parseFragment(location.hash);
  if (!target || !session.token) return;
  clearNotice();
  if (target.order) {
    $("query").value = target.order;
    busy((mine) => openOrder(target.order, mine));
  } else {
    $("query").value = target.purchaseId;
    busy(async (mine) => {
      const { data } = await api.lookup(target.namespace, target.purchaseId);
      showPurchase(target.namespace, target.purchaseId, data, "Opened from a link.", mine);
    });
  }
}

// ------------------------------------------------------------------------------------ tenants

/** The purchase's tenant as the page shows it, and, when it is not the tenant picked above, a
 * way to switch to it. */
function tenantFacts(id) {
  if (!id) return null;
  const other = session.tenant !== ALL && id !== session.tenant;
  const switchable = other && choices(session.me).some(([value]) => value === id);
  return {
    name: nameOf(session.me, id),
    note: other
      ? `This purchase belongs to ${nameOf(session.me, id)}, not to the tenant picked above.`
      : null,
    onSwitch: switchable ? () => switchTenant(id, { keep: true }) : null,
  };
}

function drawTenantBar() {
  const me = session.me;
  if (!me || me.legacy) {
    show($("tenant-bar"), false);
    return;
  }
  const options = choices(me);
  const select = $("tenant");
  select.replaceChildren(...options.map(([value, text]) => h("option", { value }, text)));
  select.value = session.tenant;
  show($("tenant-pick"), options.length > 1);
  show($("tenant-one"), options.length <= 1);
  const only = tenantOf(me, session.tenant);
  $("tenant-name").textContent = only ? visible(label(only)) : "none";
  drawTenantState();
  show($("tenant-bar"));
}

/** Role, suspension and the set-up button of the tenant picked. */
function drawTenantState() {
  const me = session.me;
  const id = session.tenant;
  const platform = me.platform_role === "admin" ? "platform_admin" : me.platform_role;
  const role = id === ALL ? platform : roleIn(me, id);
  $("tenant-role").textContent = ROLE_WORDS[role] || "none";
  show($("tenant-suspended"), id !== ALL && tenantOf(me, id)?.status === "suspended");
  const setUp = canSetUp(me, id) || (id === ALL && me.platform_role === "admin");
  show($("view-setup-button"), setUp);
  if (!setUp && session.view === "setup") showView("purchases");
  probeFigures();
}

/** Whether the API gives this person the figures of the tenant picked: the "Refund figures"
 * button shows only then. A 403 or insight off here hides it (and its page); any other error
 * leaves it, so that its page says what went wrong. The API's cache makes the page's own read of
 * the same figures right after free. */
async function probeFigures() {
  const mine = ticket("probe");
  const token = session.token;
  const id = session.tenant;
  const button = $("view-figures-button");
  show(button, false);
  button.dataset.state = "asking"; // "shown" or "refused" once the API answered
  try {
    await api.get(figuresQuery(id, defaultRange()));
  } catch (err) {
    if (!newest("probe", mine) || session.token !== token) return;
    if (figuresRefused(err) || signsOut(err)) {
      button.dataset.state = "refused";
      if (session.view === "figures") showView("purchases");
      return;
    }
  }
  if (!newest("probe", mine) || session.token !== token) return;
  button.dataset.state = "shown";
  show(button);
}

/** Show tenant `id`: what was shown of another tenant goes (unless `keep`: a switch to the
 * purchase's own tenant keeps it, re-drawn with that tenant's role). */
function switchTenant(id, { keep = false } = {}) {
  if (!session.me || !choices(session.me).some(([value]) => value === id)) return;
  session.tenant = id;
  $("tenant").value = id;
  const only = tenantOf(session.me, id);
  $("tenant-name").textContent = only ? visible(label(only)) : "none";
  clearNotice();
  drawTenantState();
  if (keep && current) {
    const { namespace, purchaseId, view } = current;
    showPurchase(namespace, purchaseId, view, null, ticket("view"));
  } else {
    ticket("view");
    current = null;
    $("results-body").replaceChildren();
    show($("results"), false);
  }
  if (id !== ALL && roleIn(session.me, id) === "support") loadDetails(id);
  if (session.view === "setup") drawSetup();
  if (session.view === "figures") drawFigures();
  announce(`Showing ${id === ALL ? "all tenants" : nameOf(session.me, id)}.`);
}

/** The tenant as GET /tenants/{id} gives it (support staff: whether they may act); quiet. */
async function loadDetails(id) {
  try {
    const { data } = await api.get(`./tenants/${encodeURIComponent(id)}`);
    if (data && data.tenant) details.set(id, data.tenant);
  } catch {
    // not this role's to read: the actions stay, and the API decides
  }
}

const VIEWS = ["purchases", "figures", "setup"];

function showView(which) {
  session.view = which;
  for (const name of VIEWS) {
    show($(`view-${name}`), which === name);
    $(`view-${name}-button`).setAttribute("aria-pressed", String(which === name));
  }
  if (which === "setup") drawSetup();
  else {
    ticket("setup");
    $("view-setup").replaceChildren();
  }
  if (which === "figures") drawFigures();
  else {
    ticket("figures");
    $("view-figures").replaceChildren();
  }
}

/** The figures of the tenant picked (a platform admin's "all tenants": every tenant's). */
function drawFigures() {
  const mine = ticket("figures");
  const token = session.token;
  const id = session.tenant;
  renderFigures($("view-figures"), id, {
    api,
    range: session.range,
    tenantName: nameOf(session.me, id),
    current: () => newest("figures", mine) && session.token === token,
    fail: (err, slot) => {
      if (signsOut(err)) return handle(err);
      slot.className = "error";
      slot.textContent = visible(explain(err));
    },
    refuse: () => {
      $("view-figures-button").dataset.state = "refused";
      show($("view-figures-button"), false);
      showView("purchases");
    },
  });
}

function drawSetup() {
  const mine = ticket("setup");
  const token = session.token;
  const id = session.tenant;
  const ctx = {
    api,
    me: session.me,
    ask,
    notice,
    current: () => newest("setup", mine) && session.token === token,
    fail: (err, slot) => {
      if (signsOut(err)) return handle(err);
      if (err instanceof ApiError && err.code === "tenant_changed") {
        notice(explain(err)); // read again: the pages as the tenant is now
        return drawSetup();
      }
      slot.className = "error outcome";
      slot.textContent = visible(explain(err));
    },
    changed: (tenant) => {
      if (!tenant || !tenant.id) return;
      details.set(tenant.id, tenant);
      const known = tenantOf(session.me, tenant.id);
      if (known) {
        known.display_name = tenant.display_name || known.display_name;
        known.status = tenant.status === "suspended" ? "suspended" : "active";
        drawTenantBar();
      }
    },
    created: async (tenant) => {
      if (!(await loadMe())) return;
      drawTenantBar();
      switchTenant(tenant?.id || ALL);
      notice(`Tenant ${tenant?.id} was created: add its apps below.`, "success");
    },
  };
  if (id === ALL) renderNewTenant($("view-setup"), ctx);
  else renderSetup($("view-setup"), id, ctx);
}

/** Ask for a confirmation in the page's dialog: true when confirmed. */
function ask(title, rows, ok, danger = false) {
  const dialog = $("confirm");
  $("confirm-title").textContent = visible(title);
  $("confirm-ok").textContent = ok;
  $("confirm-ok").className = danger ? "danger" : "primary";
  const fact = ([k, v]) => h("div", { class: "fact" }, h("dt", {}, k), h("dd", {}, v));
  $("confirm-summary").replaceChildren(h("dl", { class: "facts" }, rows.map(fact)));
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
    $("confirm-cancel").focus();
  });
}

// ------------------------------------------------------------------------- re-grant / revoke

const ACTIONS = {
  regrant: {
    title: "Re-grant access?",
    ok: "Re-grant access",
    done: "Access re-granted.",
    noun: "re-grant",
  },
  revoke: { title: "Revoke access?", ok: "Revoke access", done: "Access revoked.", noun: "revoke" },
};

/** The action form of the purchase `target` (the one whose button was pressed). */
function onAction(target, action, opener) {
  const slot = $("action-slot");
  const words = ACTIONS[action];
  const reason = h("textarea", {
    id: "reason",
    name: "reason",
    rows: 3,
    maxlength: 500,
    required: true,
    "aria-describedby": "reason-help",
  });
  const error = h("p", { id: "reason-error", class: "error", hidden: true }, "A reason is required.");
  const form = h(
    "form",
    { class: "action-form", novalidate: true },
    h("label", { for: "reason" }, `Reason for the ${words.noun} (required)`),
    reason,
    h("p", { id: "reason-help", class: "help" }, "Shown in the timeline and the audit log with your address, e.g. “refund was a mistake, ticket #4711”. At most 500 characters."),
    error,
    h(
      "div",
      { class: "row" },
      h("button", { type: "submit", class: action === "revoke" ? "danger" : "primary" }, `Review ${words.ok.toLowerCase()}…`),
      h("button", { type: "button", class: "quiet", onclick: () => { slot.replaceChildren(); opener.focus(); } }, "Cancel"),
    ),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = reason.value.trim();
    show(error, !text);
    reason.setAttribute("aria-invalid", String(!text));
    if (!text) {
      reason.setAttribute("aria-describedby", "reason-error reason-help");
      reason.focus();
      return;
    }
    confirmAction(target, action, text, opener);
  });
  slot.replaceChildren(form);
  reason.focus();
}

function confirmAction(target, action, reason, opener) {
  const words = ACTIONS[action];
  const ent = target.view.entitlement || {};
  const dialog = $("confirm");
  $("confirm-title").textContent = words.title;
  $("confirm-ok").textContent = words.ok;
  $("confirm-ok").className = action === "revoke" ? "danger" : "primary";
  const rows = [
    ["Purchase", `${storeWords(ent)} · ${ent.product_id || "unknown product"}`],
    ["Purchase id", ent.purchase_id],
    ["Now", statusWords(ent.status)],
    ["After", action === "regrant" ? "Access granted" : "Access revoked"],
    ["Reason", reason],
    ["Recorded as", session.email],
  ];
  $("confirm-summary").replaceChildren(
    h("dl", { class: "facts" }, rows.map(([k, v]) => h("div", { class: "fact" }, h("dt", {}, k), h("dd", {}, v)))),
  );
  dialog.returnValue = "";
  dialog.addEventListener(
    "close",
    () => {
      if (dialog.returnValue !== "ok") opener.focus();
      else if (current !== target) {
        // Another purchase is shown now (or none): never act on one that is not on the screen.
        notice(
          `Nothing was done: the page no longer shows ${ent.purchase_id}.` +
            ` Open it again to ${words.noun} it.`,
        );
      } else perform(target, action, reason);
    },
    { once: true },
  );
  dialog.showModal();
  $("confirm-cancel").focus();
}

/** Re-grant or revoke `target`, then reload it. What the action did is always said, even when
 * a newer search has replaced the page meanwhile (only the reload is then dropped). */
async function perform(target, action, reason) {
  const { namespace, purchaseId } = target;
  const words = ACTIONS[action];
  const key = crypto.randomUUID();
  clearNotice();
  await busy(async (mine) => {
    let answer;
    try {
      answer = await api.act(action, namespace, purchaseId, reason, key);
    } catch (err) {
      if (newest("view", mine)) throw err;
      if (signsOut(err)) handle(err);
      else notice(`The ${words.noun} of ${purchaseId} failed: ${explain(err)}`);
      return;
    }
    // Idempotent-Replayed can only follow the page's own retry (a new key per click): the first
    // try was written but its answer lost (or an error); the retry found that entry. This click
    // wrote it, once.
    const retried = answer.replayed
      ? " The first try got no clear answer; the retry found your change already written" +
        " (once, not twice)."
      : "";
    let data;
    try {
      ({ data } = await api.lookup(namespace, purchaseId));
    } catch (err) {
      if (signsOut(err)) throw err;
      if (newest("view", mine)) {
        $("results-body").replaceChildren();
        show($("results"), false);
      }
      notice(`${words.done}${retried} Reloading ${purchaseId} failed: ${explain(err)}`);
      return;
    }
    if (showPurchase(namespace, purchaseId, data, null, mine)) {
      notice(`${words.done}${retried} The timeline shows your entry.`, "success");
    } else {
      notice(`${words.done} (${purchaseId})${retried}`, "success");
    }
  });
}

// ------------------------------------------------------------------------------------- start

$("search").addEventListener("submit", onSearch);
$("tenant-pick").addEventListener("submit", (event) => {
  event.preventDefault();
  switchTenant($("tenant").value);
});
$("view-purchases-button").addEventListener("click", () => showView("purchases"));
$("view-setup-button").addEventListener("click", () => showView("setup"));
$("view-figures-button").addEventListener("click", () => showView("figures"));
$("sign-out").addEventListener("click", () => signOut(null));
$("notice-close").addEventListener("click", clearNotice);
window.addEventListener("hashchange", openFragment);
startSignIn();
