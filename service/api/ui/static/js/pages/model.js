// A model: its versions and aliases, and for its latest version the downloads, snippets and card.

import { getJson, getText } from "../api.js";
import { date, fill, h, hrefCompare, hrefVersion, num, shape } from "../dom.js";
import { filesTable, snippets } from "../downloads.js";
import { renderMarkdown } from "../markdown.js";

export async function render(main, [name]) {
  document.title = `${name} — warmzoo`;
  const base = `/v1/models/${encodeURIComponent(name)}`;
  const [model, versions] = await Promise.all([getJson(base), getJson(`${base}/versions?limit=100`)]);
  const latest = versions.items.find((v) => v.version === model.latest.version) ?? await getJson(`${base}/versions/latest`);
  const card = h("div", { class: "card-body" }, h("p", { class: "muted" }, "Loading the model card…"));

  const picked = new Set();
  const compareButton = h("button", { type: "button", disabled: true,
    onclick: () => { location.hash = hrefCompare([...picked].map((v) => `${name}:${v}`)); } }, "Compare selected");
  const pick = (v) => h("input", { type: "checkbox", id: `pick-v${v}`, onchange: (e) => {
    if (e.target.checked) picked.add(v); else picked.delete(v);
    compareButton.disabled = picked.size < 2;
    compareButton.textContent = `Compare selected (${picked.size})`;
  } });

  fill(main,
    h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Zoo"), " / ", name),
    h("h1", {}, name),
    model.description ? h("p", { class: "lead" }, model.description) : null,
    h("dl", { class: "facts" },
      h("dt", {}, "Latest"), h("dd", {}, h("a", { href: hrefVersion(name, latest.version) }, `v${latest.version}`), ` · ${shape(latest.spec)}`),
      h("dt", {}, "Aliases"), h("dd", { class: "aliases" }, Object.entries(model.aliases).map(([alias, v]) =>
        h("a", { class: "tag", href: hrefVersion(name, v) }, `${alias} → v${v}`))),
      h("dt", {}, "Tags"), h("dd", {}, model.tags.length ? model.tags.map((t) => h("a", { class: "tag", href: `#/?tag=${encodeURIComponent(t)}` }, t)) : "none"),
      h("dt", {}, "Updated"), h("dd", {}, date(model.updated_at))),
    h("section", { "aria-labelledby": "versions-h" },
      h("div", { class: "toolbar" }, h("h2", { id: "versions-h" }, `Versions (${versions.total})`), compareButton),
      h("div", { class: "scroll" }, h("table", { class: "versions cards" },
        h("thead", {}, h("tr", {}, ["Compare", "Version", "Network", "VAA before", "VAA after", "Aliases", "sha256", "Created"].map((t, i) =>
          h("th", { scope: "col" }, i ? t : h("span", { class: "sr-only" }, t))))),
        h("tbody", {}, versions.items.map((v) => h("tr", { "data-version": v.version },
          h("td", { "data-label": "Compare" }, pick(v.version), h("label", { for: `pick-v${v.version}`, class: "sr-only" }, `Compare v${v.version}`)),
          h("th", { scope: "row", "data-label": "Version" }, h("a", { href: hrefVersion(name, v.version) }, `v${v.version}`)),
          h("td", { "data-label": "Network" }, shape(v.spec)),
          h("td", { "data-label": "VAA before" }, num(v.metrics.vaa_before)),
          h("td", { "data-label": "VAA after" }, num(v.metrics.vaa_after)),
          h("td", { "data-label": "Aliases" }, v.aliases.map((a) => h("span", { class: "tag" }, a))),
          h("td", { "data-label": "sha256" }, h("code", { title: v.sha256 }, v.sha256.slice(0, 12))),
          h("td", { "data-label": "Created" }, date(v.created_at)))))))),
    h("section", { "aria-labelledby": "files-h" }, h("h2", { id: "files-h" }, `Download v${latest.version}`), filesTable(latest)),
    h("section", { "aria-labelledby": "use-h" }, h("h2", { id: "use-h" }, "Use it"), snippets(latest)),
    h("section", { "aria-labelledby": "card-h", class: "card" }, h("h2", { id: "card-h" }, "Model card"), card));

  try {
    card.innerHTML = renderMarkdown(await getText(`${base}/versions/${latest.version}/files/README.md`), { headingOffset: 2 });
  } catch (error) {
    fill(card, h("p", { class: "error" }, `The model card could not be loaded: ${error.message}`));
  }
}
