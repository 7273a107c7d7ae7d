// The zoo: search and filter models (by text, cell, size, task, tag, VAA after), sort, compare.

import { apiSchemas, enumOf, getJson } from "../api.js";
import { date, fill, h, hrefCompare, hrefModel, num, shape } from "../dom.js";

const PAGE = 50;
const FILTERS = ["q", "cell", "hidden_size", "task", "tag", "vaa_after_min", "vaa_after_max"];
const SORTABLE = { name: "Name", vaa_after: "VAA after", updated_at: "Updated" };
const ORDERS = Object.entries(SORTABLE).flatMap(([key, label]) => [[key, `${label}, ascending`], [`-${key}`, `${label}, descending`]]);

function field(label, control, hint) {
  return h("div", { class: "field" }, h("label", { for: control.id }, label), control, hint);
}

function select(id, values, current) {
  return h("select", { id, name: id },
    h("option", { value: "" }, "any"),
    values.map((v) => h("option", { value: v, selected: v === current }, v)));
}

export async function render(main, _params, query) {
  document.title = "The zoo — warmzoo";
  const schemas = await apiSchemas();
  const input = (id, attrs = {}) => h("input", { id, name: id, value: query.get(id) ?? "", ...attrs });
  const form = h("form", { class: "filters", role: "search", "aria-label": "Filter the zoo" },
    field("Search", input("q", { type: "search", placeholder: "name or description" })),
    field("Cell", select("cell", enumOf(schemas.RNNSpec.properties.cell), query.get("cell"))),
    field("Hidden size", input("hidden_size", { type: "number", min: "1", inputmode: "numeric" })),
    field("Task", select("task", enumOf(schemas.DataIn.properties.task), query.get("task"))),
    field("Tag", input("tag", { type: "text" })),
    field("VAA after ≥", input("vaa_after_min", { type: "number", step: "any", min: "0", max: "1" })),
    field("VAA after ≤", input("vaa_after_max", { type: "number", step: "any", min: "0", max: "1" })),
    field("Sort by", h("select", { id: "sort", name: "sort" }, ORDERS.map(([value, label]) =>
      h("option", { value, selected: value === (query.get("sort") || "name") }, label)))),
    h("div", { class: "field actions" }, h("button", { type: "button", onclick: () => clear() }, "Clear filters")));
  const count = h("p", { class: "count", role: "status", "aria-live": "polite" });
  const results = h("div", { class: "results" });
  const compareButton = h("button", { type: "button", disabled: true }, "Compare selected");
  const picked = new Map(); // model name -> "name:latest version"
  fill(main,
    h("h1", {}, "The zoo"),
    h("p", { class: "lead" }, "Warmed-up (multistable) recurrent-network initialisations. Every filter applies to a model's latest version."),
    form, h("div", { class: "toolbar" }, count, compareButton), results);

  let offset = Number(query.get("offset")) || 0;
  let shown = 0;

  const params = () => {
    const p = new URLSearchParams();
    for (const name of FILTERS) {
      const value = form.elements[name].value.trim();
      if (value) p.set(name, value);
    }
    const sort = form.elements.sort.value;
    if (sort !== "name") p.set("sort", sort);
    if (offset) p.set("offset", String(offset));
    return p;
  };

  const sortHeader = (key) => {
    const sort = form.elements.sort.value;
    const active = sort.replace("-", "") === key;
    const descending = sort.startsWith("-");
    const next = active && !descending ? `-${key}` : key;
    return h("th", { scope: "col", "aria-sort": active ? (descending ? "descending" : "ascending") : "none" },
      h("button", { type: "button", class: "sort", onclick: () => { form.elements.sort.value = next; offset = 0; load(); } },
        SORTABLE[key], h("span", { "aria-hidden": "true" }, active ? (descending ? " ▼" : " ▲") : " ↕")));
  };

  const row = (m) => {
    const ref = `${m.name}:${m.latest.version}`;
    const box = h("input", { type: "checkbox", id: `pick-${m.name}`, checked: picked.has(m.name),
      onchange: (e) => { if (e.target.checked) picked.set(m.name, ref); else picked.delete(m.name); updateCompare(); } });
    const metrics = m.latest.metrics;
    return h("tr", { "data-model": m.name },
      h("td", { "data-label": "Compare" }, box, h("label", { for: box.id, class: "sr-only" }, `Compare ${m.name}`)),
      h("th", { scope: "row", "data-label": "Name" }, h("a", { href: hrefModel(m.name) }, m.name),
        m.description ? h("span", { class: "muted small" }, m.description) : null),
      h("td", { "data-label": "Network", "data-cell": m.latest.spec.cell }, shape(m.latest.spec)),
      h("td", { "data-label": "VAA before" }, num(metrics.vaa_before)),
      h("td", { "data-label": "VAA after", class: "vaa-after" }, num(metrics.vaa_after)),
      h("td", { "data-label": "Tags" }, m.tags.map((t) => h("span", { class: "tag" }, t))),
      h("td", { "data-label": "Versions" }, String(m.versions)),
      h("td", { "data-label": "Updated" }, date(m.updated_at)));
  };

  const updateCompare = () => {
    compareButton.disabled = picked.size < 2;
    compareButton.textContent = `Compare selected (${picked.size})`;
  };
  compareButton.addEventListener("click", () => { location.hash = hrefCompare([...picked.values()]); });

  let generation = 0; // answers to superseded searches are dropped
  async function load() {
    const p = params();
    history.replaceState(null, "", `#/${p.size ? `?${p}` : ""}`);
    const mine = ++generation;
    p.set("limit", String(PAGE));
    p.set("offset", String(offset));
    let page;
    try {
      page = await getJson(`/v1/models?${p}`);
    } catch (error) {
      if (mine === generation) fill(count, h("span", { class: "error" }, error.message));
      return;
    }
    if (mine !== generation) return;
    shown = page.items.length;
    fill(count, page.total === 0 ? "No model matches these filters."
      : `${page.total} model${page.total === 1 ? "" : "s"}${page.total > shown ? `, showing ${offset + 1}–${offset + shown}` : ""}`);
    fill(results, page.items.length ? h("div", { class: "scroll" }, h("table", { class: "zoo cards" },
      h("caption", { class: "sr-only" }, "Models of the zoo"),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, h("span", { class: "sr-only" }, "Compare")),
        sortHeader("name"), h("th", { scope: "col" }, "Network"), h("th", { scope: "col" }, "VAA before"),
        sortHeader("vaa_after"), h("th", { scope: "col" }, "Tags"), h("th", { scope: "col" }, "Versions"), sortHeader("updated_at"))),
      h("tbody", {}, page.items.map(row)))) : null,
    page.total > PAGE ? h("nav", { class: "pager", "aria-label": "Pages" },
      h("button", { type: "button", disabled: offset === 0, onclick: () => { offset = Math.max(0, offset - PAGE); load(); } }, "Previous"),
      h("button", { type: "button", disabled: offset + shown >= page.total, onclick: () => { offset += PAGE; load(); } }, "Next")) : null);
    updateCompare();
  }

  let timer = null;
  const reload = () => { clearTimeout(timer); offset = 0; timer = setTimeout(load, 250); };
  form.addEventListener("input", reload);
  form.addEventListener("change", reload);
  const clear = () => {
    for (const name of FILTERS) form.elements[name].value = ""; // the order stays
    reload();
  };
  form.addEventListener("submit", (e) => { e.preventDefault(); clearTimeout(timer); offset = 0; load(); });
  await load();
  return () => clearTimeout(timer);
}
