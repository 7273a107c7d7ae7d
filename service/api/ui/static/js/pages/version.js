// One version: how it was made, its VAA before and after, the VAA* curve of its warm-up, its files.

import { ApiError, getJson, postJson } from "../api.js";
import { rememberJob } from "../standing.js";
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

const ARMS = ["warmed", "cold"];

/** Mean over seeds of test loss / chance at each evaluation step of one arm: [[step, ratio], ...]. */
function curve(comparison, arm) {
  const runs = comparison.result.runs[arm];
  const chance = comparison.result.chance_loss;
  return runs[0].history.map((point, i) => [point.step, runs.reduce((sum, r) => sum + r.history[i].test_loss, 0) / runs.length / chance]);
}

/** Warmed versus cold: the newest compare job's learning curves and figures, and a button to run one. */
function comparisonSection(v, comparisons) {
  const path = `/v1/models/${encodeURIComponent(v.name)}/versions/${v.version}`;
  const message = h("p", { role: "status" });
  const run = h("button", { type: "button", onclick: async () => {
    run.disabled = true;
    try {
      const job = await postJson(`${path}/compare`, {});
      rememberJob(job.id);
      location.hash = `#/jobs/${encodeURIComponent(job.id)}`;
    } catch (error) {
      run.disabled = false;
      message.textContent = error instanceof ApiError ? error.message : String(error);
    }
  } }, "Train it against a cold start (300 steps, seed 0)");
  const latest = comparisons.at(-1);
  let body;
  if (!latest) {
    body = h("p", { class: "muted" }, "Not compared yet: a compare job trains these weights and a cold initialisation of the same spec alike on the version's task (same seeds, batches and budget) and plots both learning curves here.");
  } else {
    const s = latest.result.summary, c = latest.config, n = c.seeds.length;
    body = [
      h("p", { "data-comparison": latest.id },
        `Trained on ${c.task.task} (T = ${c.task.seq_length}), ${c.steps} steps per run, seeds ${c.seeds.join(", ")}; cold: ${c.cold_init}. `,
        `Test loss ${num(s.warmed.test_loss)} warmed, ${num(s.cold.test_loss)} cold (chance ${num(latest.result.chance_loss)}); `,
        `learned (test loss below ${latest.result.learned_fraction} × chance): ${s.warmed.learned}/${n} warmed, ${s.cold.learned}/${n} cold.`),
      chartFigure(ARMS.map((arm) => ({ label: arm, points: curve(latest, arm) })),
        { title: `Test loss of ${v.name} v${v.version}, warmed and cold, over training`, xLabel: "training step", yLabel: "test loss / chance" }),
    ];
  }
  return h("section", { "aria-labelledby": "compare-h" }, h("h2", { id: "compare-h" }, "Warmed versus cold"), body,
    h("div", { class: "actions" }, run), message);
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
    comparisonSection(v, await getJson(`/v1/models/${encodeURIComponent(v.name)}/versions/${v.version}/comparisons`)),
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
