// One payment: its facts, its history as a timeline, both state machines with the path it took, its
// messages (pretty-printed, downloadable) and the actions its status and the person's token allow.
import { ApiError, can, call } from "./api.js";
import { drawMachine } from "./graph.js";
import { announce, h, notice, prettyXml, statusBadge, time } from "./util.js";

const MACHINES = [
  { name: "PaymentFlow", file: "asl/payment_flow.asl.json", title: "PaymentFlow (EXPRESS): the automated steps" },
  { name: "PaymentStateMachine", file: "asl/payment.asl.json", title: "Anchor (STANDARD): the wait for a decision, timeout, Resume" },
];
const IN_FLIGHT = new Set(["RCVD", "ACTC", "PDNG", "ACSP"]);
const definitions = new Map();
let codes = null;
let poll = null;
const MAX_POLLS = 40;   // follow a moving payment for about a minute, then wait for the person

async function definition(file) {
  if (!definitions.has(file)) {
    const response = await fetch(file, { cache: "force-cache" });
    if (!response.ok) throw new Error(`${file}: ${response.status}`);
    definitions.set(file, await response.json());
  }
  return definitions.get(file);
}

async function reasonCodes() {
  codes ||= await call("GET", "/reason-codes");
  return codes;
}

function facts(payment) {
  const rows = [
    ["Payment id", payment.paymentId], ["Status", statusBadge(payment.status)], ["Message type", payment.messageType],
    ["Amount", payment.amount ? `${payment.amount} ${payment.currency || ""}` : null], ["UETR", payment.uetr],
    ["End-to-end id", payment.endToEndId], ["Received", time(payment.receivedAt)], ["Last change", time(payment.updatedAt)],
    ["Owner Region", payment.ownerRegion], ["SHA-256 of the message", payment.contentSha256],
  ];
  const more = payment.facts || {};
  for (const [key, label] of [["debtorAgentBic", "Debtor agent"], ["creditorAgentBic", "Creditor agent"],
    ["instructingAgentBic", "Instructing agent"], ["instructedAgentBic", "Instructed agent"],
    ["msgId", "Message id"], ["instrId", "Instruction id"], ["txId", "Transaction id"], ["settlementDate", "Settlement date"]]) {
    if (more[key]) rows.push([label, more[key]]);
  }
  if (payment.reason) rows.push(["Reason", `${payment.reason.code || ""} ${payment.reason.additionalInfo || ""}`.trim()]);
  if (payment.decision) rows.push(["Decision", `${payment.decision.action} by ${payment.decision.decidedBy || "?"}`]);
  if (payment.suspense) rows.push(["Suspended", `${payment.suspense.reason} since ${time(payment.suspense.since)}`]);
  return h("dl", { className: "facts" }, rows.filter(([, v]) => v !== null && v !== undefined && v !== "")
    .map(([k, v]) => [h("dt", {}, k), h("dd", { className: /id|UETR|SHA/.test(k) ? "mono" : "" }, v)]));
}

function timeline(payment) {
  return h("ol", { className: "timeline", "aria-label": "History" }, payment.history.map((event) => h("li", {},
    statusBadge(event.status), " ", h("time", { datetime: event.time }, time(event.time)),
    event.state ? ` · ${event.state}` : "", event.actor ? ` · by ${event.actor}` : "",
    event.reason ? ` · ${event.reason.code || ""} ${event.reason.additionalInfo || ""}` : "")));
}

function pathText(run) {
  return h("ol", { className: "path" }, run.states.map((s) => h("li", {}, h("strong", {}, s.name), " ",
    h("span", { className: "muted" }, time(s.enteredAt)), s.exitedAt ? ` → ${time(s.exitedAt)}` : "",
    s.redriven ? " (after a redrive)" : "",
    s.error ? h("span", { className: "error" }, ` ✗ ${s.error}${s.cause ? `: ${s.cause}` : ""}`) : "")));
}

async function machines(execution) {
  const parts = [];
  for (const [index, machine] of MACHINES.entries()) {
    const runs = execution.stateMachines.filter((m) => m.name === machine.name);
    const asl = await definition(machine.file);
    parts.push(h("h3", {}, machine.title));
    if (machine.name === "PaymentStateMachine") {
      parts.push(runs.length ? h("p", {}, `Execution ${runs[0].status}`, runs[0].redrivable ? " (redrivable)" : "",
        runs[0].error ? ` · ${runs[0].error}` : "", runs[0].cause ? `: ${runs[0].cause}` : "")
        : h("p", { className: "muted" }, "No anchor execution: this payment never waited for a decision or an operator."));
    }
    parts.push(drawMachine(asl, runs, { title: machine.title, id: `m${index}` }));
    runs.forEach((run, i) => parts.push(h("p", { className: "muted" },
      machine.name === "PaymentFlow" ? `Run ${i + 1} (${run.status}):` : "Path:"), pathText(run)));
  }
  return parts;
}

function messages(payment) {
  const view = h("div", {});
  return [h("ul", {}, payment.messages.map((name) => h("li", {}, h("span", { className: "mono" }, name), " ",
    h("button", { type: "button", className: "secondary", onclick: async () => {
      try {
        const response = await call("GET", `/payments/${payment.paymentId}/messages/${encodeURIComponent(name)}`,
          { accept: "application/xml", raw: true });
        const text = await response.text();
        const url = URL.createObjectURL(new Blob([text], { type: "application/xml" }));
        view.replaceChildren(h("h3", {}, `Message ${name}`),
          h("p", {}, h("a", { className: "button secondary", href: url, download: `${payment.paymentId}-${name}.xml` }, `Download ${name}`)),
          h("pre", { className: "xml", tabindex: "0", "aria-label": `Message ${name}` }, prettyXml(text)));
        announce(`Message ${name} shown`);
      } catch (error) {
        view.replaceChildren(notice(`Message ${name}: ${error.message}`, "error"));
      }
    } }, `Show ${name}`)))), view];
}

function codeSelect(id, set) {
  return h("select", { id, name: "reasonCode", required: true },
    h("option", { value: "" }, "Choose a reason…"),
    set.codes.map((c) => h("option", { value: c.code }, `${c.code} – ${c.name}`)));
}

async function actions(payment, execution, refresh) {
  const anchor = execution.stateMachines.find((m) => m.name === "PaymentStateMachine");
  const forms = [];
  const act = (label, method, path, bodyOf) => async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await call(method, path, { body: bodyOf ? bodyOf(new FormData(form)) : undefined });
      announce(`${label}: done`);
      await refresh(true);
    } catch (error) {
      form.append(notice(`${label} failed: ${error.message}`, "error"));
      button.disabled = false;
    }
  };
  const base = `/payments/${payment.paymentId}`;
  const pending = payment.status === "PDNG" && !payment.decision;
  if (can("decide") && pending) {
    const set = await reasonCodes();
    forms.push(h("form", { "aria-label": "Approve", onsubmit: act("Approve", "POST", `${base}/approve`, () => ({})) },
      h("p", {}, "Release the payment to the payment engine."), h("button", { type: "submit" }, "Approve")));
    forms.push(h("form", { "aria-label": "Reject", onsubmit: act("Reject", "POST", `${base}/reject`, (d) => ({
      reasonCode: d.get("reasonCode"), ...(d.get("additionalInfo") ? { additionalInfo: d.get("additionalInfo") } : {}) })) },
    h("label", { for: "reject-reason" }, `Reason (${set.reject.codeSet})`), codeSelect("reject-reason", set.reject),
    h("label", { for: "reject-info" }, "Additional information (optional)"),
    h("input", { id: "reject-info", name: "additionalInfo", maxlength: 105 }),
    h("button", { type: "submit", className: "danger" }, "Reject")));
    forms.push(h("form", { "aria-label": "Cancel", onsubmit: act("Cancel", "POST", `${base}/cancel`, (d) => ({
      reasonCode: d.get("reasonCode") })) },
    h("label", { for: "cancel-reason" }, `Reason (${set.cancel.codeSet})`), codeSelect("cancel-reason", set.cancel),
    h("button", { type: "submit", className: "danger" }, "Cancel payment")));
  }
  if (can("operate") && anchor && anchor.redrivable) {
    forms.push(h("form", { "aria-label": "Redrive", onsubmit: act("Redrive", "POST", `${base}/redrive`) },
      h("p", {}, "The anchor execution failed", anchor.error ? ` (${anchor.error})` : "", ": run its failed state again."),
      h("button", { type: "submit" }, "Redrive")));
  }
  if (can("operate") && payment.suspense) {
    forms.push(h("form", { "aria-label": "Confirm the release", onsubmit: act("Confirm", "POST", `${base}/release/confirm`, (d) => ({
      sent: d.get("sent") === "yes", ...(d.get("messageId") ? { messageId: d.get("messageId") } : {}) })) },
    h("fieldset", {}, h("legend", {}, "Did the payment engine receive it?"),
      h("label", {}, h("input", { type: "radio", name: "sent", value: "yes", required: true }), " Yes, it was sent"),
      h("label", {}, h("input", { type: "radio", name: "sent", value: "no" }), " No, it never arrived")),
    h("label", { for: "confirm-message" }, "Its message id (optional)"), h("input", { id: "confirm-message", name: "messageId" }),
    h("button", { type: "submit" }, "Confirm")));
  }
  return forms.length ? [h("h2", {}, "Actions"), h("div", { className: "actions" }, forms)] : [];
}

export async function paymentView(main, paymentId) {
  stopPolling();
  let polls = 0;
  const content = h("div", {});
  main.replaceChildren(h("p", {}, h("a", { href: "#/payments" }, "← Payments")), content);
  const refresh = async (afterAction = false) => {
    try {
      const [payment, execution] = await Promise.all([call("GET", `/payments/${paymentId}`),
        call("GET", `/payments/${paymentId}/execution`)]);
      const title = h("h1", { tabindex: "-1" }, "Payment ", statusBadge(payment.status));
      content.replaceChildren(title, ...(await actions(payment, execution, refresh)),
        h("div", { className: "columns" },
          h("section", { "aria-labelledby": "facts-title" }, h("h2", { id: "facts-title" }, "Facts"), facts(payment)),
          h("section", { "aria-labelledby": "history-title" }, h("h2", { id: "history-title" }, "History"), timeline(payment))),
        h("section", { "aria-labelledby": "machines-title" }, h("h2", { id: "machines-title" }, "Path through the state machines"),
          ...(await machines(execution))),
        h("section", { "aria-labelledby": "messages-title" }, h("h2", { id: "messages-title" }, "Messages"), ...messages(payment)));
      if (afterAction) announce(`Payment is ${payment.status}`);
      stopPolling();
      const anchor = execution.stateMachines.find((m) => m.name === "PaymentStateMachine");
      if (IN_FLIGHT.has(payment.status) && payment.status !== "PDNG" && !(anchor && anchor.status === "FAILED")
          && polls++ < MAX_POLLS) {
        poll = window.setTimeout(() => refresh(afterAction), 1500);   // moving: follow it
      }
    } catch (error) {
      content.replaceChildren(notice(error instanceof ApiError && error.status === 404 ? "No such payment."
        : `The payment could not be read: ${error.message}`, "error"));
    }
  };
  await refresh();
}

export function stopPolling() {
  if (poll) window.clearTimeout(poll);
  poll = null;
}
