// The admin API, called on this page's own origin (no CORS) with the signed-in person's ID token
// in the Authorization header. The token lives in memory only: never in storage, cookies or URLs.

export class ApiError extends Error {
  constructor(status, code, message, details = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details || {};
  }
}

export function createApi(getToken) {
  async function call(method, path, { body, headers = {}, as = "json" } = {}) {
    const token = getToken();
    if (!token) throw new ApiError(401, "signed_out", "You are signed out.");
    const init = {
      method,
      headers: { Authorization: `Bearer ${token}`, ...headers },
      cache: "no-store",
      credentials: "omit",
      redirect: "error",
      referrerPolicy: "no-referrer",
    };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch {
      throw new ApiError(0, "unreachable", "refundguard could not be reached.");
    }
    let raw = "";
    try {
      raw = await response.text();
    } catch {
      raw = "";
    }
    let data = null;
    if (as === "json" || !response.ok) {
      try {
        data = JSON.parse(raw);
      } catch {
        data = null;
      }
    }
    if (!response.ok) {
      // {"error": code, "message": ...}, or {"error": {code, message}}
      const error = data && typeof data.error === "object" && data.error ? data.error : data;
      const code =
        (error && typeof error.code === "string" && error.code) ||
        (data && typeof data.error === "string" && data.error) ||
        "http_error";
      const message = (error && typeof error.message === "string" && error.message) || "";
      const details = error?.details || data?.details;
      throw new ApiError(response.status, code, message || `HTTP ${response.status}`, details);
    }
    if (as === "text") return { text: raw, filename: attachmentName(response) };
    return { data: data || {}, replayed: response.headers.get("Idempotent-Replayed") === "true" };
  }

  return {
    lookup: (store, purchaseId) =>
      call("POST", "./entitlements:lookup", { body: { store, purchase_id: purchaseId } }),
    order: (orderId) => call("GET", `./orders/${encodeURIComponent(orderId)}`),
    list: (path) => call("GET", path),
    get: (path) => call("GET", path),
    /** A GET whose answer is a file (CSV): its text and the name the API gave it. */
    text: (path) => call("GET", path, { as: "text" }),
    send: (method, path, body) => call(method, path, { body }),
    /** Re-grant or revoke; retried once with the same Idempotency-Key, so it never acts twice. */
    async act(action, store, purchaseId, reason, key) {
      const request = () =>
        call("POST", `./entitlements:${action}`, {
          body: { store, purchase_id: purchaseId, reason },
          headers: { "Idempotency-Key": key },
        });
      try {
        return await request();
      } catch (err) {
        if (!(err instanceof ApiError) || (err.status !== 0 && err.status !== 503)) throw err;
        await new Promise((resolve) => setTimeout(resolve, 1500));
        return request();
      }
    },
  };
}

/** The file name of a Content-Disposition attachment, kept to safe characters; "" when none. */
function attachmentName(response) {
  const found = /filename="([^"]*)"/.exec(response.headers.get("Content-Disposition") || "");
  return found ? found[1].replace(/[^A-Za-z0-9._-]/g, "_") : "";
}

const STORES = { google: "Google Play", apple: "the App Store" };

/** What went wrong, in words for a support person. */
export function explain(err) {
  if (!(err instanceof ApiError)) return `Something went wrong in this page: ${err}`;
  const said = err.message ? ` (${err.message})` : "";
  switch (err.status) {
    case 0:
      return "refundguard could not be reached. Check your connection and try again.";
    case 401:
      return "You are signed out, or your sign-in has expired. Sign in again.";
    case 403:
      if (err.code === "tenant_suspended") {
        return (
          `Not allowed: this tenant is suspended${said}. Its staff cannot act until a platform ` +
          "admin makes it active again."
        );
      }
      if (err.code === "not_an_admin") return notOnTheList(err);
      return `Not allowed: your role does not allow this${said}.`;
    case 404:
      if (err.code === "not_found") {
        return "Not found: refundguard has no purchase with this id (no notification named it).";
      }
      if (err.code === "order_not_found") return `Order not found: ${err.message}`;
      return `Not found${said}.`;
    case 409:
      if (err.code === "tenant_changed") {
        return (
          "Someone changed this tenant since the page read it: the page shows it as it is now; " +
          "redo your change."
        );
      }
      return `Refused: ${err.message || err.code}.`;
    case 422:
      return `Refused${said}.`;
    case 503: {
      const store = STORES[err.details?.store];
      if (store) return `${store} could not be reached right now; try again in a minute${said}.`;
      return `refundguard is busy or could not reach its database; try again in a minute${said}.`;
    }
    default:
      if (err.status >= 400 && err.status < 500) return `The request was refused${said}.`;
      return `refundguard answered HTTP ${err.status}${said}. Try again in a minute.`;
  }
}

function notOnTheList(err) {
  return (
    `Not allowed: ${err.message || "your account is not on the admin list"}. ` +
    "Ask whoever runs refundguard to add your address to its admin list (ADMIN_EMAILS), or " +
    "your tenant's admin to add you to its staff."
  );
}

/** The refusal of a sign-in (the first call after it), in words. */
export function explainSignIn(err) {
  if (err instanceof ApiError && err.status === 403 && err.code !== "tenant_suspended") {
    return notOnTheList(err);
  }
  return explain(err);
}
