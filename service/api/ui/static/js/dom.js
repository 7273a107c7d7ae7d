// Building DOM nodes: text always goes in as text nodes, so nothing from the API is parsed as HTML.

/** h("a", {href, class: "x", onclick: fn}, "text", child, [more]) -> Element */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else if (key in node && typeof value !== "string") node[key] = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  node.append(...flatten(children));
  return node;
}

function flatten(children) {
  return children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false)
    .map((c) => (c instanceof Node ? c : document.createTextNode(String(c))));
}

/** Replace everything inside `node` with `children`. */
export function fill(node, ...children) {
  node.replaceChildren(...flatten(children));
  return node;
}

/** A number as the model card writes it (4 significant digits), or a dash when missing. */
export function num(value) {
  return typeof value === "number" && Number.isFinite(value) ? String(Number(value.toPrecision(4))) : "—";
}

export function bytes(size) {
  if (typeof size !== "number") return "—";
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (size >= 1024 && i < units.length - 1) { size /= 1024; i += 1; }
  return `${i ? size.toFixed(1) : size} ${units[i]}`;
}

export function date(iso) {
  return iso ? new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" }) : "—";
}

/** "2 x 64 gru" (with "double" when the layers are double). */
export function shape(spec) {
  return `${spec.num_layers} × ${spec.hidden_size} ${spec.double ? "double " : ""}${spec.cell}`;
}

export function hrefModel(name) { return `#/models/${encodeURIComponent(name)}`; }
export function hrefVersion(name, version) { return `${hrefModel(name)}/versions/${version}`; }
export function hrefCompare(refs) { return `#/compare?v=${refs.map(encodeURIComponent).join(",")}`; }
