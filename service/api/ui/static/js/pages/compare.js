// Two or more versions side by side: spec, data, warm-up, VAA, and their VAA* curves overlaid.

import { getJson } from "../api.js";
import { fill, h, hrefCompare, hrefVersion, num } from "../dom.js";
import { chartFigure, historyPoints } from "../plot.js";

const ROWS = [
  ["Cell", (v) => v.spec.cell],
  ["Layers × hidden", (v) => `${v.spec.num_layers} × ${v.spec.hidden_size}${v.spec.double ? " (double)" : ""}`],
  ["Input / output", (v) => `${v.spec.input_size} / ${v.spec.output_size}`],
  ["Data", (v) => (v.data ? (v.data.task ? `${v.data.task}, T = ${v.data.seq_length}, N = ${v.data.num_samples}` : `data set ${v.data.dataset}`) : "—")],
  ["Warm-up steps", (v) => v.warmup?.steps ?? "—"],
  ["Learning rate", (v) => v.warmup?.learning_rate ?? "—"],
  ["Seed", (v) => v.seed ?? "—"],
  ["VAA before", (v) => num(v.metrics.vaa_before)],
  ["VAA after", (v) => num(v.metrics.vaa_after)],
  ["Last VAA*", (v) => num(v.metrics.vaa_star_history.at(-1))],
  ["Wall time", (v) => (v.seconds == null ? "—" : `${v.seconds.toFixed(1)} s`)],
  ["sha256", (v) => h("code", { title: v.sha256 }, v.sha256.slice(0, 12))],
];

/** "name:3" -> [name, "3"]; the version part may be an alias. */
function parse(ref) {
  const at = ref.lastIndexOf(":");
  return at > 0 ? [ref.slice(0, at), ref.slice(at + 1)] : [ref, "latest"];
}

export async function render(main, _params, query) {
  document.title = "Compare versions — warmzoo";
  const refs = (query.get("v") || "").split(",").filter(Boolean);
  const versions = await Promise.all(refs.map(parse).map(([name, v]) =>
    getJson(`/v1/models/${encodeURIComponent(name)}/versions/${encodeURIComponent(v)}`)));
  const label = (v) => `${v.name} v${v.version}`;
  const add = h("form", { class: "inline-form", onsubmit: (e) => {
    e.preventDefault();
    const ref = e.target.elements.ref.value.trim();
    if (ref) location.hash = hrefCompare([...refs, ref]);
  } },
  h("label", { for: "add-ref" }, "Add a version"),
  h("input", { id: "add-ref", name: "ref", placeholder: "model:version", required: true }),
  h("button", { type: "submit" }, "Add"));
  fill(main,
    h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Zoo"), " / compare"),
    h("h1", {}, "Compare versions"),
    versions.length < 2 ? h("p", { class: "lead" }, "Pick two or more versions (tick them in the zoo or on a model page, or add them here).") : null,
    add,
    versions.length ? [
      h("section", { "aria-labelledby": "curves-h" }, h("h2", { id: "curves-h" }, "VAA* during the warm-ups"),
        chartFigure(versions.map((v) => ({ label: label(v), points: historyPoints(v.metrics.vaa_star_history) })),
          { title: `VAA* per warm-up step of ${versions.map(label).join(", ")}` })),
      h("section", { "aria-labelledby": "table-h" }, h("h2", { id: "table-h" }, "Side by side"),
        h("div", { class: "scroll" }, h("table", { class: "compare" },
          h("thead", {}, h("tr", {}, h("td", {}), versions.map((v, i) => h("th", { scope: "col" },
            h("a", { href: hrefVersion(v.name, v.version) }, label(v)), " ",
            h("a", { href: hrefCompare(refs.filter((_, j) => j !== i)), class: "remove" }, "remove", h("span", { class: "sr-only" }, ` ${label(v)}`)))))),
          h("tbody", {}, ROWS.map(([title, cell]) => h("tr", {}, h("th", { scope: "row" }, title), versions.map((v) => h("td", {}, cell(v))))))))),
    ] : null);
}
