// Signing in. In AWS (config.mode "cognito"): the Cognito hosted UI, authorization code with PKCE
// (S256), a public app client for people; the access token carries the scopes of the person's groups.
// Locally (config.mode "local"): a one-time link that `mxflow local up` prints, or a token pasted from
// `mxflow token`. The token lives in this tab's sessionStorage only.
import { clearToken, getConfig, setToken } from "./api.js";
import { h, notice } from "./util.js";

const PKCE_KEY = "mxflow.console.pkce";

function base64url(bytes) {
  return btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function randomText(size = 32) {
  return base64url(window.crypto.getRandomValues(new Uint8Array(size)));
}

export async function pkceChallenge(verifier) {
  return base64url(await window.crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
}

export async function startHostedSignIn() {
  const config = getConfig();
  const verifier = randomText(48);
  const state = randomText(16);
  window.sessionStorage.setItem(PKCE_KEY, JSON.stringify({ verifier, state }));
  const query = new URLSearchParams({
    response_type: "code", client_id: config.clientId, redirect_uri: config.redirectUri,
    scope: config.scope || "openid", state, code_challenge: await pkceChallenge(verifier),
    code_challenge_method: "S256",
  });
  window.location.assign(`${config.authority}/oauth2/authorize?${query}`);
}

// Back from the hosted UI with ?code=&state=: exchange the code with the verifier kept for it.
export async function finishHostedSignIn() {
  const config = getConfig();
  const params = new URLSearchParams(window.location.search);
  if (!params.has("code") && !params.has("error")) return false;
  const kept = JSON.parse(window.sessionStorage.getItem(PKCE_KEY) || "null");
  window.sessionStorage.removeItem(PKCE_KEY);
  window.history.replaceState(null, "", config.redirectUri || window.location.pathname);
  if (params.has("error")) throw new Error(`sign-in refused: ${params.get("error_description") || params.get("error")}`);
  if (!kept || kept.state !== params.get("state")) throw new Error("sign-in answer does not match this tab's request (state)");
  const response = await fetch(`${config.authority}/oauth2/token`, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "authorization_code", client_id: config.clientId, code: params.get("code"),
      redirect_uri: config.redirectUri, code_verifier: kept.verifier,
    }),
  });
  if (!response.ok) throw new Error(`the token endpoint answered ${response.status}`);
  const answer = await response.json();
  setToken(answer.access_token);
  return true;
}

// Locally: the one-time code of the link `mxflow local up` printed (#/signin/<code>), spent once.
export async function redeemLocalCode(code) {
  const config = getConfig();
  const response = await fetch(config.sessionUrl, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ code }),
    cache: "no-store",
  });
  if (!response.ok) {
    let detail = `HTTP ${response.status}`;
    try { detail = (await response.json()).message || detail; } catch { /* keep the status */ }
    throw new Error(`the sign-in link did not work: ${detail}`);
  }
  setToken((await response.json()).access_token);
}

export function signOut() {
  const config = getConfig();
  clearToken();
  if (config.mode === "cognito") {
    const query = new URLSearchParams({ client_id: config.clientId, logout_uri: config.logoutUri || config.redirectUri });
    window.location.assign(`${config.authority}/logout?${query}`);
  } else {
    window.location.hash = "#/signin";
    window.location.reload();
  }
}

export function signInView(main, { message } = {}) {
  const config = getConfig();
  const parts = [h("h1", {}, "Sign in")];
  if (message) parts.push(notice(message, "error"));
  if (config.mode === "cognito") {
    parts.push(h("p", {}, "Sign in with your operations account. Your groups decide what you may do."),
      h("button", { type: "button", onclick: () => startHostedSignIn() }, "Sign in"));
  } else {
    const area = h("textarea", { id: "token", name: "token", autocomplete: "off", spellcheck: "false",
      "aria-describedby": "token-help" });
    const form = h("form", {
      onsubmit: (event) => {
        event.preventDefault();
        const value = area.value.trim();
        if (!value) return;
        setToken(value);
        window.location.hash = "#/payments";
        window.location.reload();
      },
    },
    h("label", { for: "token" }, "Access token"),
    area,
    h("p", { id: "token-help", className: "muted" },
      "Open the one-time sign-in link that ", h("code", {}, "mxflow local up"), " printed, or paste a token from ",
      h("code", {}, "mxflow token --scope payments/read payments/decide payments/operate"), "."),
    h("button", { type: "submit" }, "Sign in"));
    parts.push(form);
  }
  main.replaceChildren(h("section", { className: "signin", "aria-labelledby": "signin-title" }, ...parts));
  main.querySelector("h1").id = "signin-title";
}
