// The payments list: filters, newest first, cursor pages, refreshing itself; the counters per status
// and the age of the oldest payment waiting for a decision (from the API's last sample).
import { ApiError, call } from "./api.js";
import { age, announce, h, notice, statusBadge, time } from "./util.js";

const STATUSES = ["RCVD", "ACTC", "PDNG", "ACSP", "ACSC", "RJCT", "CANC"];
const AGES = [["", "Any age"], ["900", "Last 15 minutes"], ["3600", "Last hour"], ["86400", "Last 24 hours"],
  ["604800", "Last 7 days"], ["older:3600", "Older than 1 hour"], ["older:86400", "Older than 24 hours"]];
const REFRESH_MS = 10000;

let state = { filters: {}, cursors: [null], timer: null, paused: false };

function query(filters, cursor) {
  const params = new URLSearchParams();
  for (const status of filters.status || []) params.append("status", status);
  for (const name of ["currency", "minAmount", "maxAmount", "region", "q"]) if (filters[name]) params.set(name, filters[name]);
  if (filters.age) {
    const [kind, seconds] = filters.age.startsWith("older:") ? ["before", filters.age.slice(6)] : ["after", filters.age];
    const bound = new Date(Date.now() - Number(seconds) * 1000).toISOString();
    params.set(kind === "after" ? "receivedAfter" : "receivedBefore", bound);
  }
  params.set("limit", "25");
  if (cursor) params.set("cursor", cursor);
  return params;
}

function field(id, label, control) {
  return h("div", {}, h("label", { for: id }, label), control);
}

function filterForm(onApply) {
  const f = state.filters;
  const statuses = h("fieldset", { className: "statuses" }, h("legend", { className: "visually-hidden" }, "Status"),
    STATUSES.map((s) => h("label", {}, h("input", { type: "checkbox", name: "status", value: s,
      checked: (f.status || []).includes(s) }), s)));
  const form = h("form", { className: "filters", role: "search", "aria-label": "Filter payments",
    onsubmit: (event) => {
      event.preventDefault();
      const data = new FormData(form);
      state.filters = {
        status: data.getAll("status"), age: data.get("age"), currency: data.get("currency").trim().toUpperCase(),
        minAmount: data.get("minAmount").trim(), maxAmount: data.get("maxAmount").trim(),
        region: data.get("region").trim(), q: data.get("q").trim(),
      };
      state.cursors = [null];
      onApply();
    } },
  field("q", "UETR or end-to-end id", h("input", { id: "q", name: "q", size: 38, value: f.q || "", autocomplete: "off" })),
  h("div", {}, h("span", { className: "muted", id: "status-label" }, "Status"), statuses),
  field("age", "Received", h("select", { id: "age", name: "age" },
    AGES.map(([value, text]) => h("option", { value, selected: (f.age || "") === value }, text)))),
  field("currency", "Currency", h("input", { id: "currency", name: "currency", size: 4, maxlength: 3, value: f.currency || "" })),
  field("minAmount", "Amount from", h("input", { id: "minAmount", name: "minAmount", size: 9, inputmode: "decimal", value: f.minAmount || "" })),
  field("maxAmount", "Amount to", h("input", { id: "maxAmount", name: "maxAmount", size: 9, inputmode: "decimal", value: f.maxAmount || "" })),
  field("region", "Region", h("input", { id: "region", name: "region", size: 11, value: f.region || "" })),
  h("div", {}, h("button", { type: "submit" }, "Apply filters")));
  return form;
}

function counters(answer) {
  const counts = answer.counts || {};
  const items = ["RCVD", "ACTC", "PDNG", "ACSP"].map((s) => h("li", {}, h("span", { className: "n" }, counts[s] ?? "–"), `In ${s}`));
  items.push(h("li", {}, h("span", { className: "n" }, counts.suspended ?? "–"), "Suspended"));
  items.push(h("li", {}, h("span", { className: "n" }, age(answer.oldestPendingAgeSeconds)), "Oldest waiting for a decision"));
  const asOf = answer.countsAsOf ? `Counted ${time(answer.countsAsOf)} by the sampler (in-flight payments of this Region)`
    : "Not counted yet: the sampler counts every minute";
  return [h("h2", { id: "counters-title" }, "In flight"), h("ul", { className: "counters", "aria-labelledby": "counters-title" }, items),
    h("p", { className: "muted" }, asOf, answer.countsComplete === false ? " (a sample of the oldest)" : "")];
}

function table(answer) {
  if (!answer.payments.length) {
    return notice(answer.nextCursor ? `No match among the ${answer.examined} payments looked at; search further back with "Next page".`
      : "No payments match.");
  }
  return h("table", {},
    h("caption", {}, `Payments, newest first (${answer.payments.length} on this page)`),
    h("thead", {}, h("tr", {}, ["Received", "Status", "Amount", "UETR", "End-to-end id", "Type", "Region"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, answer.payments.map((p) => h("tr", { "data-payment": p.paymentId },
      h("td", {}, h("a", { href: `#/payments/${encodeURIComponent(p.paymentId)}` }, time(p.receivedAt))),
      h("td", {}, statusBadge(p.status), p.suspended ? " suspended" : ""),
      h("td", { className: "num" }, p.amount ? `${p.amount} ${p.currency || ""}` : "–"),
      h("td", { className: "mono" }, p.uetr || "–"),
      h("td", { className: "mono" }, p.endToEndId || "–"),
      h("td", {}, p.messageType || "–"),
      h("td", {}, p.ownerRegion || "–")))));
}

export async function paymentsView(main) {
  stopRefresh();
  const results = h("div", { id: "results", "aria-live": "off" });
  const updated = h("span", { className: "muted", id: "updated" });
  const pause = h("button", { type: "button", className: "secondary", "aria-pressed": String(state.paused),
    onclick: () => { state.paused = !state.paused; pause.setAttribute("aria-pressed", String(state.paused));
      pause.textContent = state.paused ? "Resume auto-refresh" : "Pause auto-refresh"; } },
  state.paused ? "Resume auto-refresh" : "Pause auto-refresh");
  const pager = h("div", { className: "toolbar" });
  const load = async (quiet = false) => {
    const cursor = state.cursors[state.cursors.length - 1];
    try {
      const answer = await call("GET", `/payments?${query(state.filters, cursor)}`);
      results.replaceChildren(...counters(answer), h("h2", {}, "Payments"), table(answer));
      pager.replaceChildren(
        h("button", { type: "button", className: "secondary", disabled: state.cursors.length < 2,
          onclick: () => { state.cursors.pop(); load(); } }, "Previous page"),
        h("button", { type: "button", className: "secondary", disabled: !answer.nextCursor,
          onclick: () => { state.cursors.push(answer.nextCursor); load(); } }, "Next page"));
      updated.textContent = `Updated ${new Date().toLocaleTimeString()}`;
      if (!quiet) announce(`${answer.payments.length} payments shown`);
    } catch (error) {
      results.replaceChildren(notice(error instanceof ApiError ? `The list failed: ${error.message}` : String(error), "error"));
    }
  };
  main.replaceChildren(h("h1", {}, "Payments"), filterForm(() => load()), h("div", { className: "toolbar" }, pause, updated),
    results, pager);
  await load(true);
  state.timer = window.setInterval(() => { if (!state.paused && !document.hidden) load(true); }, REFRESH_MS);
}

export function stopRefresh() {
  if (state.timer) window.clearInterval(state.timer);
  state.timer = null;
}
