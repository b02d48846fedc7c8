// Who is signed in (GET /me) and what the page offers them: the tenants they may pick, their role
// in each, in words, and what each role may do. The API enforces every role (docs/console.md);
// the page only hides what the API would refuse, so a hidden button is never the only wall.

/** The "all tenants" choice of a platform admin (look-ups across every tenant). */
export const ALL = "*";

export const ROLE_WORDS = {
  platform_admin: "platform admin",
  admin: "tenant admin",
  support: "tenant support",
  service: "platform service",
};

const ROLES = new Set(["admin", "support"]);

/** Without GET /me (an admin API from before tenants): a platform admin of the one deployment,
 * the page as it was. */
export function legacyMe(email) {
  return { email, platform_role: "admin", tenants: [], legacy: true };
}

/** GET /me's answer, kept to the fields the page uses (anything else is ignored). */
export function parseMe(data, email) {
  const platform = ["admin", "service"].includes(data?.platform_role) ? data.platform_role : null;
  const tenants = (Array.isArray(data?.tenants) ? data.tenants : [])
    .filter((t) => t && typeof t.id === "string" && t.id)
    .map((t) => ({
      id: t.id,
      display_name: typeof t.display_name === "string" && t.display_name ? t.display_name : t.id,
      status: t.status === "suspended" ? "suspended" : "active",
      role: typeof t.role === "string" ? t.role : null,
    }));
  const shown = typeof data?.email === "string" && data.email ? data.email : email;
  return { email: shown, platform_role: platform, tenants, legacy: false };
}

export function tenantOf(me, id) {
  return me.tenants.find((t) => t.id === id) || null;
}

/** "platform_admin", "admin", "support", "service" or null: the role `me` has in tenant `id`. */
export function roleIn(me, id) {
  if (me.platform_role === "admin") return "platform_admin";
  const tenant = tenantOf(me, id);
  if (tenant && ROLES.has(tenant.role)) return tenant.role;
  if (me.platform_role === "service") return "service";
  return null;
}

function staffOfSuspended(me, id) {
  const role = roleIn(me, id);
  return (role === "admin" || role === "support") && tenantOf(me, id)?.status === "suspended";
}

/** Whether `me` may re-grant or revoke a purchase of tenant `id`; `details` is the tenant as
 * GET /tenants/{id} gave it, when known (support staff act only where support_can_act). */
export function canAct(me, id, details = null) {
  const role = roleIn(me, id);
  if (staffOfSuspended(me, id)) return false;
  if (role === "platform_admin" || role === "admin") return true;
  if (role === "support") return details?.support_can_act !== false;
  return false;
}

/** Whether the tenant's set-up pages (keys, check access, policy, staff) are `me`'s. */
export function canSetUp(me, id) {
  if (!id || id === ALL || staffOfSuspended(me, id)) return false;
  const role = roleIn(me, id);
  return role === "platform_admin" || role === "admin";
}

/** Apps, display name and status: a platform admin's to change (a tenant admin sees them). */
export function canEditApps(me) {
  return me.platform_role === "admin";
}

/** The choices of the tenant picker: [id, label] pairs; a platform admin's start with "all". */
export function choices(me) {
  const own = me.tenants.map((t) => [t.id, label(t)]);
  return me.platform_role === "admin" ? [[ALL, "All tenants (look-ups only)"], ...own] : own;
}

/** The tenant shown first: "all" for a platform admin, else the first of one's own. */
export function firstChoice(me) {
  if (me.platform_role === "admin") return ALL;
  return me.tenants[0]?.id || ALL;
}

export function label(tenant) {
  const name = tenant.display_name && tenant.display_name !== tenant.id ? tenant.display_name : "";
  const suspended = tenant.status === "suspended" ? ", suspended" : "";
  return name ? `${name} (${tenant.id}${suspended})` : `${tenant.id}${suspended ? " (suspended)" : ""}`;
}

/** The tenant named by `id` in words (its display name when known). */
export function nameOf(me, id) {
  const tenant = tenantOf(me, id);
  return tenant ? label(tenant) : String(id);
}
