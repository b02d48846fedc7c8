// make run's stand-in of Google Identity Services (https://accounts.google.com/gsi/client), served
// by the local ID-token issuer. Same calls as GIS; renders an email form instead of Google's
// button and gets an ID token for that address from the local issuer (never from Google).
(function () {
  const base = document.currentScript.src.replace(/client$/, "");
  const hint = __HINT_EMAIL__;
  let settings = null;

  const style = document.createElement("link");
  style.rel = "stylesheet";
  style.href = base + "style";
  document.head.append(style);

  function deliver(credential) {
    settings.callback({ credential, select_by: "btn" });
  }

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text) node.textContent = text;
    return node;
  }

  function renderButton(parent) {
    const form = el("form", { class: "rg-local-sign-in", novalidate: "" });
    const note = el("p", { class: "rg-local-note" },
      "Local sign-in (make run only): an ID token from the local issuer, for any address. " +
      "The console still checks it against the admin list.");
    const label = el("label", { for: "rg-local-email" }, "Email");
    const input = el("input", { id: "rg-local-email", name: "email", type: "email",
      autocomplete: "off", spellcheck: "false", required: "" });
    input.value = hint;
    const button = el("button", { type: "submit", id: "rg-local-submit" }, "Sign in (local)");
    const error = el("p", { class: "rg-local-error", role: "alert" });
    error.hidden = true;
    form.append(note, label, input, button, error);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.hidden = true;
      try {
        const response = await fetch(base + "token", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ email: input.value, client_id: settings.client_id }),
        });
        const answer = await response.json();
        if (!response.ok) throw new Error(answer.error || "HTTP " + response.status);
        deliver(answer.credential);
      } catch (err) {
        error.textContent = "Local sign-in failed: " + err.message;
        error.hidden = false;
      }
    });
    parent.replaceChildren(form);
  }

  window.google = window.google || {};
  window.google.accounts = window.google.accounts || {};
  window.google.accounts.id = {
    initialize(options) { settings = options; },
    renderButton,
    prompt() {},
    disableAutoSelect() {},
    cancel() {},
    // Not in GIS: tests hand the page a token they minted (e.g. an expired one).
    signInWith: deliver,
  };
})();
