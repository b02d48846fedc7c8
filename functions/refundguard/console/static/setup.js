// A tenant's set-up pages, for onboarding a creator: its apps (a platform admin changes them, a
// tenant admin sees them), the Google Play service account to invite, the App Store Server API
// key (uploaded once, never shown back), check access (each state with its fix), the
// refund-request policy and the staff. And, for a platform admin looking at every tenant, a new
// tenant. Built with dom.h (text only); every call is the admin API's, which enforces the roles.

import { h, visible } from "./dom.js";
import { canEditApps, roleIn } from "./tenants.js";

const ACCESS_WORDS = {
  ok: "Works",
  not_invited: "Not invited",
  key_refused: "Key refused",
  wrong_bundle: "Wrong bundle id",
  api_off: "API turned off",
  no_key: "No key yet",
  unreachable: "Could not be reached",
};
const POLICY = [
  ["REFUND_REQUESTS", "Answer the stores' refund requests"],
  ["REFUND_GRANT_BELOW_PERCENT", "Prefer a refund below this share consumed (%)"],
  ["REFUND_DECLINE_FROM_PERCENT", "Prefer a decline from this share consumed on (%)"],
];
const ENVIRONMENTS = ["Production", "Sandbox"];
/** The tenant of the apps set in the environment: its set-up is the deployment's. */
const DEFAULT_TENANT = "default";

const path = (id, rest = "") => `./tenants/${encodeURIComponent(id)}${rest}`;

/**
 * Fill `root` with tenant `id`'s pages. ctx: {api, me, ask(title, rows, ok, danger) -> Promise<bool>,
 * fail(err, slot) (a 401 signs out; else the error in `slot`), current() (false once another
 * tenant or a sign-out has replaced this one), changed(tenant) (the tenant as now saved),
 * focus (an id to focus once drawn)}.
 */
export async function renderSetup(root, id, ctx) {
  const state = h("p", { class: "help", role: "status" }, "Reading the tenant…");
  root.replaceChildren(state);
  let tenant;
  try {
    ({ tenant } = (await ctx.api.get(path(id))).data);
  } catch (err) {
    if (!ctx.current()) return;
    ctx.fail(err, state);
    return;
  }
  if (!ctx.current()) return;
  draw(root, tenant || {}, ctx);
}

function draw(root, tenant, ctx) {
  const redraw = (next, focus) => {
    if (!ctx.current()) return;
    ctx.changed(next);
    draw(root, next, { ...ctx, focus });
  };
  const title = `Set-up of ${tenant.display_name || tenant.id} (${tenant.id})`;
  const heading = h("h1", { id: "setup-title", class: "setup-title", tabindex: "-1" }, title);
  if (tenant.id === DEFAULT_TENANT) {
    const set = note(
      "The apps of the deployment's own settings (PLAY_PACKAGE_NAMES, APPLE_BUNDLE_IDS, " +
        "APPLE_API_*, REFUND_*): changed through Terraform, not here.",
    );
    root.replaceChildren(heading, card("setup-apps", "Apps", set), staff(tenant, ctx));
    return;
  }
  root.replaceChildren(
    heading,
    apps(tenant, ctx, redraw),
    playAccount(tenant, ctx),
    appleKey(tenant, ctx, redraw),
    checkAccess(tenant, ctx),
    policy(tenant, ctx, redraw),
    staff(tenant, ctx),
  );
  if (ctx.focus) document.getElementById(ctx.focus)?.focus();
}

function card(id, title, ...children) {
  return h(
    "section",
    { class: "card setup", id, "aria-labelledby": `${id}-title` },
    h("h2", { id: `${id}-title`, tabindex: "-1" }, title),
    ...children,
  );
}

function note(text) {
  return h("p", { class: "help" }, text);
}

/** A text input that is an id (no spelling, no autofill). */
function idInput(id, maxlength, type = "text") {
  return h("input", { id, type, maxlength, autocomplete: "off", spellcheck: "false" });
}

function checkbox(control, text) {
  return h("div", { class: "check" }, control, h("label", { for: control.id }, text));
}

function facts(rows) {
  return h(
    "dl",
    { class: "facts" },
    rows.map(([name, value]) => h("div", { class: "fact" }, h("dt", {}, name), h("dd", {}, value))),
  );
}

function field(id, text, control, help) {
  if (help) control.setAttribute("aria-describedby", `${id}-help`);
  return h(
    "div",
    { class: "field" },
    h("label", { for: id }, text),
    control,
    help ? h("p", { id: `${id}-help`, class: "help" }, help) : null,
  );
}

function outcome(id) {
  return h("p", { id, class: "help outcome", role: "status", "aria-live": "polite" });
}

/** Send a form's change; `busy` disables the button meanwhile; the answer or error in `slot`. */
async function submit(button, slot, ctx, work) {
  button.disabled = true;
  slot.className = "help outcome";
  slot.textContent = "Saving…";
  try {
    await work();
  } catch (err) {
    if (ctx.current()) ctx.fail(err, slot);
  } finally {
    button.disabled = false;
  }
}

function said(slot, text) {
  slot.className = "help outcome outcome--done";
  slot.textContent = visible(text);
}

// ------------------------------------------------------------------------------------- apps

function appsText(apps) {
  return (Array.isArray(apps) ? apps : [])
    .map((a) => [a.bundle_id, a.app_apple_id ?? "", (a.environments || []).join(",")])
    .map((parts) => parts.filter((part) => part !== "").join(" "))
    .join("\n");
}

/** "bundle.id 1234567890 Production,Sandbox" per line -> apple_apps, or {error}. */
export function parseAppleApps(text) {
  const apps = [];
  for (const [index, raw] of String(text).split("\n").entries()) {
    const line = raw.trim();
    if (!line) continue;
    const [bundle, ...rest] = line.split(/\s+/);
    const app = { bundle_id: bundle, environments: ["Production"] };
    for (const word of rest) {
      if (/^[0-9]+$/.test(word)) app.app_apple_id = Number(word);
      else if (word.split(",").every((e) => ENVIRONMENTS.includes(e))) {
        app.environments = [...new Set(word.split(","))];
      } else {
        return { error: `Line ${index + 1}: "${word}" is neither an app Apple ID nor Production/Sandbox.` };
      }
    }
    apps.push(app);
  }
  return { apps };
}

function appleAppWords(app) {
  const environments = (app.environments || []).join(", ");
  return `${app.bundle_id} (Apple ID ${app.app_apple_id ?? "-"}; ${environments})`;
}

function apps(tenant, ctx, redraw) {
  const keys = Array.isArray(tenant.apple_apps) ? tenant.apple_apps : [];
  const packages = Array.isArray(tenant.play_packages) ? tenant.play_packages : [];
  const shown = facts([
    ["Tenant", `${tenant.display_name || ""} (${tenant.id})`],
    [
      "Status",
      tenant.status === "suspended"
        ? "Suspended: refunds still apply; its staff cannot act"
        : "Active",
    ],
    ["Google Play packages", packages.length ? packages.join(", ") : "none"],
    ["Play Developer API", tenant.play_api ? "on (purchases verified, voids listed)" : "off"],
    [
      "Apple apps",
      keys.length ? keys.map(appleAppWords).join("; ") : "none",
    ],
  ]);
  if (!canEditApps(ctx.me)) {
    return card(
      "setup-apps",
      "Apps",
      note("A platform admin registers and changes the tenant's apps; ask them for a change."),
      shown,
    );
  }
  const name = h("input", { id: "apps-name", type: "text", maxlength: 120 });
  name.value = tenant.display_name || "";
  const status = h(
    "select",
    { id: "apps-status" },
    h("option", { value: "active" }, "Active"),
    h("option", { value: "suspended" }, "Suspended (refunds still apply; staff cannot act)"),
  );
  status.value = tenant.status === "suspended" ? "suspended" : "active";
  const play = h("textarea", { id: "apps-play", rows: 2, spellcheck: "false", autocomplete: "off" });
  play.value = packages.join("\n");
  const api = h("input", { id: "apps-play-api", type: "checkbox" });
  api.checked = tenant.play_api === true;
  const apple = h("textarea", { id: "apps-apple", rows: 2, spellcheck: "false", autocomplete: "off" });
  apple.value = appsText(keys);
  const done = outcome("apps-outcome");
  const button = h("button", { type: "submit", class: "primary" }, "Save the apps");
  const form = h(
    "form",
    { class: "setup-form", novalidate: true, "aria-label": "Change the apps" },
    field("apps-name", "Display name", name),
    field("apps-status", "Status", status),
    field("apps-play", "Google Play package names (one per line)", play),
    checkbox(api, "Ask the Play Developer API (the creator has invited the service account below)"),
    field(
      "apps-apple",
      "Apple apps (one per line: bundle id, app Apple ID, environments)",
      apple,
      "For example: com.creator.app 1234567890 Production,Sandbox. Production needs the app " +
        "Apple ID (App Store Connect > App Information > Apple ID).",
    ),
    h("div", { class: "row" }, button),
    done,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const parsed = parseAppleApps(apple.value);
    if (parsed.error) {
      apple.setAttribute("aria-invalid", "true");
      done.className = "error outcome";
      done.textContent = parsed.error;
      apple.focus();
      return;
    }
    apple.removeAttribute("aria-invalid");
    const body = {
      version: tenant.version,
      display_name: name.value.trim(),
      status: status.value,
      play_packages: play.value.split(/\s+/).filter(Boolean),
      play_api: api.checked,
      apple_apps: parsed.apps,
    };
    submit(button, done, ctx, async () => {
      const { data } = await ctx.api.send("PATCH", path(tenant.id), body);
      redraw(data.tenant, "setup-apps-title");
      say(ctx, "The apps were saved.");
    });
  });
  return card("setup-apps", "Apps", shown, form);
}

function say(ctx, text) {
  ctx.notice?.(text, "success");
}

// --------------------------------------------------------------------------- Google Play

function playAccount(tenant, ctx) {
  const body = h("div", {}, h("p", { class: "help" }, "Reading the service account…"));
  const section = card("setup-play", "Google Play: the service account to invite", body);
  ctx.api.get("./play/service-account").then(
    ({ data }) => {
      if (!ctx.current()) return;
      const email = typeof data.email === "string" ? data.email : "";
      const permissions = Array.isArray(data.permissions) ? data.permissions : [];
      const packages = (tenant.play_packages || []).join(", ") || "the tenant's apps";
      const input = h("input", { id: "play-account", type: "text", readonly: true, value: email });
      body.replaceChildren(
        h(
          "p",
          {},
          "In the creator's own Play Console: Users and permissions > Invite new users, paste this " +
            `address, and give it, for ${packages}:`,
        ),
        h("ul", {}, permissions.map((p) => h("li", {}, p))),
        h("div", { class: "field" }, h("label", { for: "play-account" }, "Service account"), input),
        h(
          "p",
          { class: "help" },
          "The same address for every tenant; the one Pub/Sub topic for notifications serves every app too.",
        ),
      );
    },
    (err) => {
      if (!ctx.current()) return;
      const slot = h("p");
      body.replaceChildren(slot);
      ctx.fail(err, slot);
    },
  );
  return section;
}

// --------------------------------------------------------------------------------- Apple key

function appleKey(tenant, ctx, redraw) {
  const keys = Array.isArray(tenant.apple_keys) ? tenant.apple_keys : [];
  const done = outcome("key-outcome");
  const list = keys.length
    ? h(
        "ul",
        { class: "setup-list" },
        keys.map((key, index) => {
          const remove = h("button", { type: "button", class: "quiet" }, `Remove key ${key.key_id}…`);
          let after = "the newest key stays in use";
          if (index === 0) {
            after = keys.length > 1 ? `key ${keys[1].key_id} is used` : "no key: nothing asks Apple";
          }
          remove.addEventListener("click", async () => {
            const rows = [
              ["Tenant", tenant.id],
              ["Key id", key.key_id],
              ["After", after],
            ];
            if (!(await ctx.ask(`Remove key ${key.key_id}?`, rows, "Remove the key", true))) {
              return remove.focus();
            }
            const where = path(tenant.id, `/apple-key/${encodeURIComponent(key.key_id)}`);
            submit(remove, done, ctx, async () => {
              const { data } = await ctx.api.send("DELETE", where);
              redraw(data.tenant, "setup-key-title");
              say(ctx, `Key ${key.key_id} was removed.`);
            });
          });
          return h(
            "li",
            {},
            h("p", {}, h("strong", {}, key.key_id), index === 0 ? " (in use)" : " (older: kept)"),
            h("p", { class: "help" }, `Issuer ${key.issuer_id || "-"} · added ${key.added_at || "-"}`),
            remove,
          );
        }),
      )
    : h(
        "p",
        {},
        "No key yet: Apple's notifications are verified and applied, but nothing asks Apple's " +
          "API for this tenant.",
      );
  const keyId = idInput("key-id", 40);
  const issuer = idInput("key-issuer", 80);
  const file = h("input", { id: "key-file", type: "file", accept: ".p8" });
  const text = h("textarea", { id: "key-text", rows: 4, autocomplete: "off", spellcheck: "false" });
  const button = h("button", { type: "submit", class: "primary" }, "Upload the key");
  const form = h(
    "form",
    { class: "setup-form", novalidate: true, "aria-label": "Upload an App Store Server API key" },
    field("key-id", "Key ID", keyId),
    field("key-issuer", "Issuer ID", issuer),
    field("key-file", "The .p8 file", file),
    field(
      "key-text",
      "…or its text",
      text,
      "Sent once, sealed by refundguard, never shown again (not here, not in any answer or " +
        "log). Upload the new key before removing the old one: the newest is used.",
    ),
    h("div", { class: "row" }, button),
    done,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    let privateKey = text.value.trim();
    if (!privateKey && file.files?.length) privateKey = (await file.files[0].text()).trim();
    // The key leaves the page with this request and is never kept in it.
    text.value = "";
    file.value = "";
    const missing = [
      [keyId, !keyId.value.trim()],
      [issuer, !issuer.value.trim()],
    ];
    for (const [input, bad] of missing) input.setAttribute("aria-invalid", String(bad));
    if (!keyId.value.trim() || !issuer.value.trim() || !privateKey) {
      done.className = "error outcome";
      done.textContent = "The key ID, the issuer ID and the key (.p8) are all needed.";
      return;
    }
    const body = { key_id: keyId.value.trim(), issuer_id: issuer.value.trim(), private_key: privateKey };
    privateKey = "";
    submit(button, done, ctx, async () => {
      const { data } = await ctx.api.send("PUT", path(tenant.id, "/apple-key"), body);
      body.private_key = "";
      redraw(data.tenant, "setup-key-title");
      say(ctx, `Key ${keyId.value.trim()} was uploaded and sealed. Check access to try it.`);
    }).finally(() => {
      body.private_key = "";
    });
  });
  return card(
    "setup-key",
    "Apple: App Store Server API key",
    note(
      "From the creator's App Store Connect: Users and Access > Integrations > In-App " +
        "Purchase. One key per Apple team.",
    ),
    list,
    form,
  );
}

// ----------------------------------------------------------------------------- check access

function checkAccess(tenant, ctx) {
  const results = h("div", { id: "access-results" });
  const button = h("button", { type: "button", id: "check-access", class: "primary" }, "Check access");
  button.addEventListener("click", () => {
    const slot = h("p", { class: "help", role: "status" }, "Asking the stores…");
    results.replaceChildren(slot);
    submit(button, slot, ctx, async () => {
      const { data } = await ctx.api.send("POST", path(tenant.id, ":check-access"));
      if (!ctx.current()) return;
      results.replaceChildren(
        h(
          "ul",
          { class: "setup-list access" },
          [
            ["google", "Google Play"],
            ["apple", "App Store"],
          ].map(([store, name]) => accessItem(name, data?.[store])),
        ),
      );
    });
  });
  return card(
    "setup-access",
    "Check access",
    note("One cheap read-only call to each store API the tenant uses, and what to do if it fails."),
    h("div", { class: "row" }, button),
    results,
  );
}

function accessItem(name, check) {
  const state = typeof check?.state === "string" ? check.state : "unknown";
  const details = check?.details && typeof check.details === "object" ? Object.entries(check.details) : [];
  return h(
    "li",
    { class: `access-item access--${state === "ok" ? "ok" : "bad"}`, "data-store": name },
    h("p", {}, h("strong", {}, `${name}: `), ACCESS_WORDS[state] || state, " ", h("code", {}, state)),
    check?.fix ? h("p", {}, `What to do: ${check.fix}`) : null,
    details.length ? h("dl", { class: "details" }, details.map(([k, v]) => detail(k, v))) : null,
  );
}

function detail(name, value) {
  const text = value !== null && typeof value === "object" ? JSON.stringify(value) : String(value);
  return h("div", {}, h("dt", {}, name), h("dd", {}, text));
}

// ----------------------------------------------------------------------------------- policy

function policy(tenant, ctx, redraw) {
  const current = tenant.policy && typeof tenant.policy === "object" ? tenant.policy : {};
  const inputs = {};
  const fields = POLICY.map(([name, text]) => {
    const id = `policy-${name.toLowerCase()}`;
    let control;
    if (name === "REFUND_REQUESTS") {
      control = h(
        "select",
        { id },
        h("option", { value: "" }, "As the deployment says"),
        h("option", { value: "answer" }, "Answer by the rules below"),
        h("option", { value: "off" }, "Off: record and show, answer nothing"),
      );
    } else {
      control = h("input", { id, type: "number", min: 0, max: 100, step: 1, inputmode: "numeric" });
    }
    control.value = current[name] ?? "";
    inputs[name] = control;
    return field(id, text, control, name === "REFUND_REQUESTS" ? null : "Empty: the deployment's setting.");
  });
  const act = h("input", { id: "policy-support-can-act", type: "checkbox" });
  act.checked = tenant.support_can_act === true;
  const done = outcome("policy-outcome");
  const button = h("button", { type: "submit", class: "primary" }, "Save the policy");
  const form = h(
    "form",
    { class: "setup-form", novalidate: true, "aria-label": "Refund-request policy" },
    ...fields,
    checkbox(act, "Tenant support staff may re-grant and revoke (look-up is always theirs)"),
    h("div", { class: "row" }, button),
    done,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const chosen = {};
    for (const [name, control] of Object.entries(inputs)) {
      if (String(control.value).trim()) chosen[name] = String(control.value).trim();
    }
    const body = { version: tenant.version, policy: chosen, support_can_act: act.checked };
    submit(button, done, ctx, async () => {
      const { data } = await ctx.api.send("PATCH", path(tenant.id), body);
      redraw(data.tenant, "setup-policy-title");
      say(ctx, "The policy was saved.");
    });
  });
  return card(
    "setup-policy",
    "Refund-request policy",
    note("How refundguard answers Apple's and Google's refund requests for this tenant."),
    form,
  );
}

// ------------------------------------------------------------------------------------ staff

function staff(tenant, ctx) {
  const list = h("div", {}, h("p", { class: "help" }, "Reading the staff…"));
  const done = outcome("staff-outcome");
  const load = async () => {
    try {
      const { data } = await ctx.api.get(path(tenant.id, "/staff"));
      if (!ctx.current()) return;
      const people = Array.isArray(data.staff) ? data.staff : [];
      list.replaceChildren(
        people.length
          ? h("ul", { class: "setup-list", id: "staff-list" }, people.map((p) => person(p)))
          : h("p", {}, "No staff yet."),
      );
    } catch (err) {
      if (!ctx.current()) return;
      const slot = h("p");
      list.replaceChildren(slot);
      ctx.fail(err, slot);
    }
  };
  const person = (p) => {
    const remove = h("button", { type: "button", class: "quiet" }, `Remove ${visible(p.email)}…`);
    remove.addEventListener("click", async () => {
      const sure = await ctx.ask(
        `Remove ${visible(p.email)}?`,
        [
          ["Tenant", tenant.id],
          ["Person", p.email],
          ["Role now", p.role],
          ["After", "no access to this tenant"],
        ],
        "Remove",
        true,
      );
      if (!sure) return remove.focus();
      submit(remove, done, ctx, async () => {
        await ctx.api.send("DELETE", path(tenant.id, `/staff/${encodeURIComponent(p.email)}`));
        said(done, `${p.email} was removed.`);
        await load();
      });
    });
    const who = h("p", {}, h("strong", {}, p.email), ` · ${roleWords(p.role)}`);
    return h("li", { "data-email": p.email }, who, remove);
  };
  const email = idInput("staff-email", 320, "email");
  const role = h(
    "select",
    { id: "staff-role" },
    h("option", { value: "support" }, "Support: look up (and act, if the policy allows)"),
    h("option", { value: "admin" }, "Admin: act, manage staff, key, policy"),
  );
  const button = h("button", { type: "submit", class: "primary" }, "Add or change");
  const form = h(
    "form",
    { class: "setup-form", novalidate: true, "aria-label": "Add a person or change their role" },
    field("staff-email", "Google account (e-mail)", email),
    field("staff-role", "Role", role),
    h("div", { class: "row" }, button),
    done,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const address = email.value.trim();
    if (!/^[^@\s]+@[^@\s]+$/.test(address)) {
      email.setAttribute("aria-invalid", "true");
      done.className = "error outcome";
      done.textContent = "An e-mail address is needed.";
      email.focus();
      return;
    }
    email.removeAttribute("aria-invalid");
    submit(button, done, ctx, async () => {
      const where = path(tenant.id, `/staff/${encodeURIComponent(address)}`);
      await ctx.api.send("PUT", where, { role: role.value });
      said(done, `${address} is now ${roleWords(role.value)}.`);
      email.value = "";
      await load();
    });
  });
  load();
  return card(
    "setup-staff",
    "Staff",
    note("Who may use this tenant's purchases in the console and the API."),
    list,
    form,
  );
}

function roleWords(role) {
  return { admin: "tenant admin", support: "tenant support" }[role] || String(role || "");
}

// ----------------------------------------------------------------------------- a new tenant

/** For a platform admin looking at every tenant: create one (its apps come after). */
export function renderNewTenant(root, ctx) {
  const id = idInput("new-tenant-id", 40);
  const name = h("input", { id: "new-tenant-name", type: "text", maxlength: 120 });
  const done = outcome("new-tenant-outcome");
  const button = h("button", { type: "submit", class: "primary" }, "Create the tenant");
  const form = h(
    "form",
    { class: "setup-form", novalidate: true, "aria-label": "A new tenant" },
    field("new-tenant-id", "Tenant id", id, "3-40 lowercase letters, digits and -; it never changes."),
    field("new-tenant-name", "Display name", name),
    h("div", { class: "row" }, button),
    done,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submit(button, done, ctx, async () => {
      const body = { id: id.value.trim(), display_name: name.value.trim() };
      const { data } = await ctx.api.send("POST", "./tenants", body);
      await ctx.created(data.tenant);
    });
  });
  const who = roleIn(ctx.me, null) === "platform_admin";
  root.replaceChildren(
    h("h1", { id: "setup-title", class: "setup-title", tabindex: "-1" }, "Tenants"),
    card(
      "setup-new",
      "A new tenant",
      note(
        "Pick a tenant above to see and change its apps, key, policy and staff. A new one " +
          "starts here; add its apps on its own page.",
      ),
      who ? form : null,
    ),
  );
}
