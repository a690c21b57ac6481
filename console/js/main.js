// The console's entry point: configuration, sign-in, and the views by the address's fragment
// (#/payments, #/payments/<id>, #/regions, #/signin/<one-time code>).
import { claims, clearToken, expired, getConfig, loadConfig, token } from "./api.js";
import { finishHostedSignIn, redeemLocalCode, signInView, signOut } from "./auth.js";
import { paymentView, stopPolling } from "./payment.js";
import { paymentsView, stopRefresh } from "./payments.js";
import { regionsView } from "./regions.js";
import { h, notice } from "./util.js";

const main = document.getElementById("main");

function header() {
  const c = claims() || {};
  const nav = document.getElementById("nav");
  nav.hidden = false;
  const who = document.getElementById("who");
  const scopes = String(c.scope || "").split(/\s+/).filter((s) => s.startsWith("payments/")).map((s) => s.slice(9));
  who.replaceChildren(h("span", {}, c.username || c.client_id || "signed in"),
    h("span", { className: "muted" }, scopes.length ? `may ${scopes.join(", ")}` : "no scopes"),
    h("button", { type: "button", className: "secondary", onclick: () => signOut() }, "Sign out"));
}

function current(view) {
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.view === view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

async function route() {
  stopRefresh();
  stopPolling();
  const hash = window.location.hash || "#/payments";
  const signin = hash.match(/^#\/signin\/([A-Za-z0-9_-]+)$/);
  if (signin) {
    try {
      await redeemLocalCode(signin[1]);
      window.history.replaceState(null, "", "#/payments");
    } catch (error) {
      window.history.replaceState(null, "", "#/signin");
      signInView(main, { message: error.message });
      return;
    }
  }
  if (!token() || expired()) {
    clearToken();
    signInView(main, { message: hash.startsWith("#/signin") ? null : null });
    return;
  }
  header();
  const payment = (window.location.hash || "").match(/^#\/payments\/([^/]+)$/);
  if (payment) {
    current("payments");
    document.title = "Payment – mxflow operations console";
    await paymentView(main, decodeURIComponent(payment[1]));
  } else if ((window.location.hash || "").startsWith("#/regions")) {
    current("regions");
    document.title = "Regions – mxflow operations console";
    await regionsView(main);
  } else {
    current("payments");
    document.title = "Payments – mxflow operations console";
    await paymentsView(main);
  }
  main.focus();
}

async function start() {
  try {
    await loadConfig();
    if (getConfig().mode === "cognito") await finishHostedSignIn();
  } catch (error) {
    main.replaceChildren(notice(`The console cannot start: ${error.message}`, "error"));
    return;
  }
  window.addEventListener("hashchange", route);
  window.addEventListener("mxflow:unauthorized", () => { clearToken(); signInView(main, { message: "Your session ended: sign in again." }); });
  await route();
}

start();
