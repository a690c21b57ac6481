// Regions: each Region's health, who owns traffic, and the recover action (GET /regions and POST
// /regions/{region}/recover, scope payments/operate). Without that route (a single-Region stack, or a
// token without payments/operate) the view shows this Region's GET /health instead.
import { ApiError, can, call } from "./api.js";
import { announce, h, notice, time } from "./util.js";

function healthView(health, why) {
  return [h("p", {}, why),
    h("dl", { className: "facts" }, h("dt", {}, "Region"), h("dd", {}, health.region || "?"),
      h("dt", {}, "Status"), h("dd", {}, health.status || "?"),
      h("dt", {}, "Message types with a schema"), h("dd", {}, Object.keys(health.schemas || {}).length))];
}

export async function regionsView(main) {
  const content = h("div", {});
  main.replaceChildren(h("h1", {}, "Regions"), content);
  const load = async () => {
    let regions = null;
    let why = "Single Region: this stack serves one Region (no GET /regions).";
    if (can("operate")) {
      try {
        regions = await call("GET", "/regions");
      } catch (error) {
        if (!(error instanceof ApiError) || ![403, 404].includes(error.status)) {
          content.replaceChildren(notice(`The Regions could not be read: ${error.message}`, "error"));
          return;
        }
      }
    } else {
      why = "Your token has no payments/operate scope: this Region's health only.";
    }
    if (!regions) {
      try {
        content.replaceChildren(...healthView(await call("GET", "/health"), why));
      } catch (error) {
        const health = error instanceof ApiError ? error.problem : {};
        content.replaceChildren(...healthView(health, `${why} This Region answers ${error.status || "nothing"}.`));
      }
      return;
    }
    const rows = regions.regions.map((r) => h("tr", { "data-region": r.region },
      h("th", { scope: "row" }, r.region),
      h("td", {}, r.status, r.lastError ? ` (${r.lastError})` : ""),
      h("td", {}, r.ownsTraffic ? "Yes: owns traffic" : "No"),
      h("td", {}, time(r.lastProbeAt)),
      h("td", { className: "num" }, r.lastProbeLatencyMs ?? "–"),
      h("td", { className: "num" }, `${r.consecutiveFailures ?? 0} / ${r.consecutiveSuccesses ?? 0}`),
      h("td", {}, !r.ownsTraffic && can("operate") ? h("button", { type: "button", onclick: async (event) => {
        const button = event.currentTarget;
        button.disabled = true;
        try {
          const answer = await call("POST", `/regions/${encodeURIComponent(r.region)}/recover`);
          announce(`Traffic moves to ${answer.trafficOwner} (epoch ${answer.epoch})`);
          await load();
        } catch (error) {
          // 409 while the target Region is unhealthy (WAVE3): say why and let the operator try again.
          button.disabled = false;
          content.append(notice(`Recover to ${r.region} refused: ${error.message}`, "error"));
        }
      } }, `Recover to ${r.region}`) : "")));
    content.replaceChildren(
      h("dl", { className: "facts" }, h("dt", {}, "Mode"), h("dd", {}, regions.mode), h("dt", {}, "Consistency"),
        h("dd", {}, regions.consistency), h("dt", {}, "Traffic owner"), h("dd", {}, regions.trafficOwner),
        h("dt", {}, "Epoch"), h("dd", {}, regions.epoch)),
      h("table", {}, h("caption", {}, "Regions and their health probes"),
        h("thead", {}, h("tr", {}, ["Region", "Health", "Owns traffic", "Last probe", "Latency (ms)", "Failures / successes in a row", "Action"]
          .map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, rows)));
  };
  await load();
}
