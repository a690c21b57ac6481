// Small DOM and formatting helpers. Every text goes in as a text node: nothing from the API is ever
// parsed as HTML.
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") element.addEventListener(name.slice(2), value);
    else if (name === "className") element.className = value;
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

export function svg(tag, attrs = {}, ...children) {
  const element = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined) element.setAttribute(name, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

export function announce(text) {
  const region = document.getElementById("announcer");
  region.textContent = "";
  window.setTimeout(() => { region.textContent = text; }, 50);
}

export function time(iso) {
  if (!iso) return "–";
  const moment = new Date(iso);
  return Number.isNaN(moment.getTime()) ? iso : moment.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

export function age(seconds) {
  if (seconds === null || seconds === undefined) return "none";
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

export function statusBadge(status) {
  return h("span", { className: `status ${status}` }, status || "?");
}

export function notice(text, kind = "") {
  return h("div", { className: `notice ${kind}`, role: kind === "error" ? "alert" : null }, text);
}

// An XML document indented for reading (DOMParser never fetches or expands external entities).
export function prettyXml(text) {
  const doc = new DOMParser().parseFromString(text, "application/xml");
  if (doc.getElementsByTagName("parsererror").length) return text;
  const lines = [];
  const walk = (node, depth) => {
    const pad = "  ".repeat(depth);
    if (node.nodeType === Node.ELEMENT_NODE) {
      const attrs = Array.from(node.attributes).map((a) => ` ${a.name}="${a.value}"`).join("");
      const kids = Array.from(node.childNodes).filter((n) => n.nodeType !== Node.TEXT_NODE || n.nodeValue.trim());
      if (!kids.length) lines.push(`${pad}<${node.nodeName}${attrs}/>`);
      else if (kids.length === 1 && kids[0].nodeType === Node.TEXT_NODE) {
        lines.push(`${pad}<${node.nodeName}${attrs}>${kids[0].nodeValue.trim()}</${node.nodeName}>`);
      } else {
        lines.push(`${pad}<${node.nodeName}${attrs}>`);
        kids.forEach((kid) => walk(kid, depth + 1));
        lines.push(`${pad}</${node.nodeName}>`);
      }
    } else if (node.nodeType === Node.TEXT_NODE) lines.push(pad + node.nodeValue.trim());
    else if (node.nodeType === Node.COMMENT_NODE) lines.push(`${pad}<!--${node.nodeValue}-->`);
  };
  walk(doc.documentElement, 0);
  return `<?xml version="1.0" encoding="UTF-8"?>\n${lines.join("\n")}\n`;
}
