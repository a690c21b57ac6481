// A state machine drawn from its ASL (statemachines/*.asl.json), the states a payment entered
// highlighted. Layered top-down: each state on the row of its shortest distance from StartAt; Catch
// transitions dashed, edges back up curved. State is shown by border and weight, not colour alone,
// and the same path is given as text beside the drawing.
import { h, svg } from "./util.js";

const BOX_W = 150, BOX_H = 32, GAP_X = 22, GAP_Y = 46, PAD = 16;

export function transitions(definition) {
  const edges = [];
  for (const [name, state] of Object.entries(definition.States || {})) {
    if (state.Next) edges.push({ from: name, to: state.Next, kind: "next" });
    if (state.Default) edges.push({ from: name, to: state.Default, kind: "next" });
    for (const choice of state.Choices || []) if (choice.Next) edges.push({ from: name, to: choice.Next, kind: "next" });
    for (const caught of state.Catch || []) edges.push({ from: name, to: caught.Next, kind: "catch" });
  }
  return edges.filter((edge, index) => edges.findIndex((e) => e.from === edge.from && e.to === edge.to) === index);
}

export function layout(definition) {
  const edges = transitions(definition);
  const depth = new Map([[definition.StartAt, 0]]);
  const queue = [definition.StartAt];
  while (queue.length) {
    const name = queue.shift();
    for (const edge of edges.filter((e) => e.from === name)) {
      if (!depth.has(edge.to)) { depth.set(edge.to, depth.get(name) + 1); queue.push(edge.to); }
    }
  }
  for (const name of Object.keys(definition.States || {})) if (!depth.has(name)) depth.set(name, 0);
  const rows = [];
  for (const [name, d] of depth) (rows[d] ||= []).push(name);
  const widest = Math.max(...rows.map((row) => row.length));
  const width = PAD * 2 + widest * BOX_W + (widest - 1) * GAP_X;
  const place = new Map();
  rows.forEach((row, r) => {
    const rowWidth = row.length * BOX_W + (row.length - 1) * GAP_X;
    const left = (width - rowWidth) / 2;
    row.forEach((name, i) => place.set(name, { x: left + i * (BOX_W + GAP_X), y: PAD + r * (BOX_H + GAP_Y) }));
  });
  return { edges, place, width, height: PAD * 2 + rows.length * BOX_H + (rows.length - 1) * GAP_Y };
}

// runs: [{states: [{name, error?}]}] as GET /payments/{id}/execution gives them for this machine.
export function drawMachine(definition, runs, { title, id }) {
  const { edges, place, width, height } = layout(definition);
  const visited = new Set(), failed = new Set(), taken = new Set();
  for (const run of runs) {
    run.states.forEach((state, i) => {
      visited.add(state.name);
      if (state.error) failed.add(state.name);
      if (i > 0) taken.add(`${run.states[i - 1].name}→${state.name}`);
    });
  }
  const marker = `arrow-${id}`, markerOn = `arrow-on-${id}`;
  const defs = svg("defs", {},
    svg("marker", { id: marker, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
      svg("path", { d: "M0,0 L10,5 L0,10 z", fill: "#8b949e" })),
    svg("marker", { id: markerOn, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 6, markerHeight: 6, orient: "auto-start-reverse" },
      svg("path", { d: "M0,0 L10,5 L0,10 z", fill: "#0b5cad" })));
  const lines = edges.map((edge) => {
    const a = place.get(edge.from), b = place.get(edge.to);
    if (!a || !b) return null;
    const on = taken.has(`${edge.from}→${edge.to}`);
    const x1 = a.x + BOX_W / 2, x2 = b.x + BOX_W / 2;
    let d;
    if (b.y > a.y) d = `M${x1},${a.y + BOX_H} C${x1},${a.y + BOX_H + GAP_Y / 2} ${x2},${b.y - GAP_Y / 2} ${x2},${b.y}`;
    else {
      const side = Math.max(a.x, b.x) + BOX_W + GAP_X / 2;
      d = `M${a.x + BOX_W},${a.y + BOX_H / 2} C${side + 30},${a.y} ${side + 30},${b.y + BOX_H} ${b.x + BOX_W},${b.y + BOX_H / 2}`;
    }
    return svg("path", { d, class: `edge ${edge.kind === "catch" ? "catch" : ""} ${on ? "visited" : ""}`,
      "marker-end": `url(#${on ? markerOn : marker})` });
  });
  const nodes = Array.from(place, ([name, p]) => {
    const state = definition.States[name] || {};
    const mark = failed.has(name) ? "✗ " : visited.has(name) ? "✓ " : "";
    return svg("g", { class: `node ${visited.has(name) ? "visited" : ""} ${failed.has(name) ? "failed" : ""}`,
      "data-state": name },
      svg("title", {}, `${name} (${state.Type})${visited.has(name) ? ", entered" : ""}${failed.has(name) ? ", failed" : ""}`),
      svg("rect", { x: p.x, y: p.y, width: BOX_W, height: BOX_H, rx: state.Type === "Choice" ? 14 : 4 }),
      svg("text", { x: p.x + BOX_W / 2, y: p.y + BOX_H / 2 + 4, "text-anchor": "middle" }, mark + name));
  });
  const titleId = `${id}-title`, descId = `${id}-desc`;
  const drawing = svg("svg", { viewBox: `0 0 ${width + 60} ${height}`, width: width + 60, role: "img",
    "aria-labelledby": `${titleId} ${descId}` },
  svg("title", { id: titleId }, title),
  svg("desc", { id: descId }, visited.size
    ? `States entered: ${Array.from(visited).join(", ")}${failed.size ? `; failed: ${Array.from(failed).join(", ")}` : ""}.`
    : "This payment entered none of its states."),
  defs, ...lines, ...nodes);
  return h("div", { className: "graph" }, drawing);
}
