// A job, live: progress bar, status and VAA* curve follow the job's server-sent events; a
// cancel button; once the warm-up succeeded, a link to its version and the whole curve.

import { ApiError, getJson, postJson } from "../api.js";
import { fill, h, hrefVersion, num } from "../dom.js";
import { chartFigure, historyPoints } from "../plot.js";
import { outcomeBox, vaaExplained } from "../outcome.js";
import { phaseText, standingText } from "../standing.js";

const ENDED = ["succeeded", "failed", "canceled"];
const TITLES = { warmup: "Warm-up job", measure: "Measure job", export: "Export job", compare: "Compare job" };

export async function render(main, [id]) {
  document.title = "Job — warmzoo";
  let job = await getJson(`/v1/jobs/${encodeURIComponent(id)}`);
  const points = [];
  const bar = h("progress", { id: "job-progress", max: 1, value: 0 });
  const stepText = h("span", { class: "step-text" });
  const announce = h("p", { class: "sr-only", "aria-live": "polite" }); // every tenth of the way, not every step
  let tenth = -1;
  const status = h("p", { class: "status", role: "status", "aria-live": "polite", "aria-atomic": "true" });
  const standing = h("p", { class: "standing", "data-queue": "" });
  const phase = h("p", { class: "phase" });
  const cancel = h("button", { type: "button", class: "danger", onclick: onCancel }, "Cancel the job");
  const curve = h("div", { class: "curve" });
  const outcome = h("div", { class: "outcome" });
  const request = job.request;
  fill(main,
    h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Zoo"), " / job"),
    h("h1", {}, TITLES[job.kind] ?? `${job.kind} job`),
    h("p", { class: "lead" }, h("code", {}, job.id),
      request.spec ? ` · ${request.spec.num_layers} × ${request.spec.hidden_size} ${request.spec.cell}` : "",
      request.data?.task ? ` on ${request.data.task} (T = ${request.data.seq_length})` : "",
      request.name ? ` → ${request.name}` : ""),
    status, standing, phase,
    h("div", { class: "progress-row" }, h("label", { for: "job-progress" }, "Progress"), bar, stepText), announce,
    h("div", { class: "actions" }, cancel),
    outcome,
    h("section", { "aria-labelledby": "curve-h" }, h("h2", { id: "curve-h" }, "VAA*"), vaaExplained(), curve));

  function onQueue(q) {
    standing.textContent = standingText(q);
  }

  function drawCurve(series, total) {
    fill(curve, series.points.length ? chartFigure([series], { title: "VAA* per warm-up step", xMax: total })
      : h("p", { class: "muted" }, "The curve appears with the first warm-up steps."));
  }

  function onProgress(p) {
    bar.max = Math.max(1, p.total);
    bar.value = p.step;
    stepText.textContent = `${p.step} of ${p.total}`;
    phase.textContent = p.phase ? `Phase: ${phaseText(p)}` : "";
    const done = p.total ? Math.floor((10 * p.step) / p.total) : 0;
    if (done !== tenth) {
      tenth = done;
      announce.textContent = `${done * 10}% done: step ${p.step} of ${p.total}`;
    }
    // The progress carries the curve so far (thinned on long runs): a page opened mid-job draws it all.
    if (p.vaa_star_curve?.length) points.splice(0, points.length, ...p.vaa_star_curve);
    else if (p.vaa_star != null && p.step > (points.at(-1)?.[0] ?? 0)) points.push([p.step, p.vaa_star]);
    if (job.kind === "warmup") drawCurve({ label: "VAA*", points }, p.total);
  }

  async function onStatus(next) {
    job = next;
    const asked = job.cancel_requested && !ENDED.includes(job.status) ? " (cancel requested)" : "";
    status.textContent = `Status: ${job.status}${asked}`;
    status.dataset.status = job.status;
    cancel.disabled = ENDED.includes(job.status) || job.cancel_requested;
    onQueue(ENDED.includes(job.status) ? null : job.queue);
    if (job.status === "failed") fill(outcome, h("p", { class: "error" }, `Failed: ${job.error?.error ?? "unknown error"}`));
    if (job.status !== "succeeded" || !job.result?.version) return;
    const { model, version } = job.result;
    fill(outcome, h("p", { class: "success" }, "Published as ", h("a", { href: hrefVersion(model, version) }, `${model} v${version}`)));
    if (job.kind !== "warmup") return;
    const v = await getJson(`/v1/models/${encodeURIComponent(model)}/versions/${version}`);
    outcome.append(h("p", {}, `VAA ${num(v.metrics.vaa_before)} before, ${num(v.metrics.vaa_after)} after the warm-up.`),
      outcomeBox(v.outcome));
    drawCurve({ label: `${model} v${version}`, points: historyPoints(v.metrics.vaa_star_history) });
  }

  async function onCancel() {
    cancel.disabled = true;
    try {
      await onStatus(await postJson(`/v1/jobs/${encodeURIComponent(id)}/cancel`));
    } catch (error) {
      fill(outcome, h("p", { class: "error", role: "alert" }, error instanceof ApiError ? error.message : String(error)));
    }
  }

  onProgress(job.progress);
  await onStatus(job);
  if (ENDED.includes(job.status)) return null;
  const events = new EventSource(`/v1/jobs/${encodeURIComponent(id)}/events`);
  events.addEventListener("queue", (e) => onQueue(JSON.parse(e.data)));
  events.addEventListener("progress", (e) => onProgress(JSON.parse(e.data)));
  events.addEventListener("status", (e) => {
    const next = JSON.parse(e.data);
    if (ENDED.includes(next.status)) events.close(); // the server ends the stream; do not reconnect
    onStatus(next);
  });
  return () => events.close();
}
