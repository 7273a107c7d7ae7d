// One version: how it was made, its VAA before and after, the VAA* curve of its warm-up, its files.

import { getJson } from "../api.js";
import { date, fill, h, hrefModel, hrefVersion, num, shape } from "../dom.js";
import { filesTable, snippets } from "../downloads.js";
import { outcomeBox, vaaExplained } from "../outcome.js";
import { chartFigure, historyPoints } from "../plot.js";

/** "exact, n = 32, S = 10000, mean of 3 estimates": how the VAA figures were measured. */
function measuredHow(m) {
  if (m.vaa_steps == null) return "not recorded";
  const estimates = m.vaa_repeats ?? m.vaa_after_estimates?.length ?? 1;
  return `exact, n = ${m.vaa_samples ?? 32}, S = ${m.vaa_steps}, mean of ${estimates} estimate${estimates === 1 ? "" : "s"}`;
}

function settings(title, values) {
  if (!values) return null;
  return h("div", {}, h("h3", {}, title), h("dl", { class: "facts" },
    Object.entries(values).map(([k, v]) => [h("dt", {}, k), h("dd", {}, typeof v === "object" ? JSON.stringify(v) : String(v))])));
}

export async function render(main, [name, number]) {
  const v = await getJson(`/v1/models/${encodeURIComponent(name)}/versions/${encodeURIComponent(number)}`);
  document.title = `${v.name} v${v.version} — warmzoo`;
  const history = v.metrics.vaa_star_history;
  fill(main,
    h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Zoo"), " / ", h("a", { href: hrefModel(v.name) }, v.name), " / ", `v${v.version}`),
    h("h1", {}, `${v.name} v${v.version}`),
    h("p", { class: "lead" }, shape(v.spec), v.aliases.length ? ` · aliases: ${v.aliases.join(", ")}` : ""),
    h("div", { class: "metrics" },
      h("div", { class: "metric" }, h("span", { class: "label" }, "VAA before"), h("span", { class: "value", "data-metric": "vaa_before" }, num(v.metrics.vaa_before))),
      h("div", { class: "metric" }, h("span", { class: "label" }, "VAA after"), h("span", { class: "value", "data-metric": "vaa_after" }, num(v.metrics.vaa_after))),
      h("div", { class: "metric" }, h("span", { class: "label" }, "Warm-up steps"), h("span", { class: "value" }, String(history.length)))),
    h("p", { class: "muted measured" }, `VAA measured: ${measuredHow(v.metrics)}.`),
    outcomeBox(v.outcome),
    vaaExplained(),
    h("section", { "aria-labelledby": "curve-h" }, h("h2", { id: "curve-h" }, "VAA* during the warm-up"),
      history.length ? chartFigure([{ label: `v${v.version}`, points: historyPoints(history) }], { title: `VAA* of ${v.name} v${v.version} per warm-up step` })
        : h("p", { class: "muted" }, "No warm-up recorded: these weights were uploaded.")),
    h("section", { "aria-labelledby": "files-h" }, h("h2", { id: "files-h" }, "Download"), filesTable(v)),
    h("section", { "aria-labelledby": "use-h" }, h("h2", { id: "use-h" }, "Use it"), snippets(v)),
    h("section", { "aria-labelledby": "made-h", class: "made" }, h("h2", { id: "made-h" }, "How it was made"),
      h("dl", { class: "facts" },
        h("dt", {}, "Created"), h("dd", {}, date(v.created_at)),
        h("dt", {}, "Base"), h("dd", {}, v.base ? h("a", { href: hrefVersion(v.base.model, v.base.version) }, `${v.base.model} v${v.base.version}`) : "fresh initialisation"),
        h("dt", {}, "Seed"), h("dd", {}, v.seed ?? "—"),
        h("dt", {}, "Device"), h("dd", {}, v.device ?? "—"),
        h("dt", {}, "Wall time"), h("dd", {}, v.seconds == null ? "—" : `${v.seconds.toFixed(1)} s`),
        h("dt", {}, "Weights sha256"), h("dd", {}, h("code", { class: "sha" }, v.sha256))),
      h("div", { class: "columns" }, settings("Spec", v.spec), settings("Data", v.data), settings("Warm-up", v.warmup))));
}
