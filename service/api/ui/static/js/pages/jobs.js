// Jobs: the newest jobs (all, or those submitted from this browser), filtered by status, with
// their phase and place in the queue; it refreshes itself while any of them is unfinished.

import { getJson } from "../api.js";
import { date, fill, h } from "../dom.js";
import { myJobs, phaseText, standingText } from "../standing.js";

const STATUSES = ["queued", "running", "succeeded", "failed", "canceled"];
const REFRESH_MS = 3000;

function target(job) {
  const r = job.request;
  return r.name ?? (r.model ? `${r.model} v${r.version}` : "—");
}

export async function render(main, _params, query) {
  document.title = "Jobs — warmzoo";
  const status = query.get("status") ?? "";
  const who = query.get("who") === "mine" ? "mine" : "all";
  const go = (next) => {
    const p = new URLSearchParams({ ...(next.status ?? status ? { status: next.status ?? status } : {}), who: next.who ?? who });
    location.hash = `#/jobs?${p}`;
  };
  const statusSelect = h("select", { id: "job-status", onchange: (e) => go({ status: e.target.value }) },
    h("option", { value: "" }, "any"), STATUSES.map((s) => h("option", { value: s, selected: s === status }, s)));
  const whoSelect = h("select", { id: "job-who", onchange: (e) => go({ who: e.target.value }) },
    h("option", { value: "all", selected: who === "all" }, "all jobs"),
    h("option", { value: "mine", selected: who === "mine" }, "submitted from this browser"));
  const count = h("p", { class: "count", role: "status", "aria-live": "polite" });
  const results = h("div", { class: "results" });
  fill(main,
    h("h1", {}, "Jobs"),
    h("p", { class: "lead" }, "Warm-ups, measurements, exports and comparisons, newest first. Users' jobs start before the starter catalogue's."),
    h("form", { class: "filters", "aria-label": "Filter the jobs", onsubmit: (e) => e.preventDefault() },
      h("div", { class: "field" }, h("label", { for: "job-who" }, "Whose"), whoSelect),
      h("div", { class: "field" }, h("label", { for: "job-status" }, "Status"), statusSelect)),
    count, results);

  let timer = null;
  async function refresh() {
    const page = await getJson(`/v1/jobs?limit=100${status ? `&status=${status}` : ""}`);
    const mine = new Set(myJobs());
    const jobs = who === "mine" ? page.items.filter((j) => mine.has(j.id)) : page.items;
    count.textContent = `${jobs.length} job${jobs.length === 1 ? "" : "s"}${who === "mine" ? " submitted from this browser" : ""}`
      + (page.total > page.items.length ? ` (of the newest ${page.items.length})` : "");
    fill(results, jobs.length ? h("div", { class: "scroll" }, h("table", { class: "jobs cards" },
      h("thead", {}, h("tr", {}, ["Job", "Kind", "Model", "Status", "Phase", "Progress", "Queue", "Created"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, jobs.map((j) => h("tr", { "data-job": j.id, "data-status": j.status },
        h("th", { scope: "row", "data-label": "Job" }, h("a", { href: `#/jobs/${encodeURIComponent(j.id)}` }, h("code", {}, j.id.slice(0, 8)))),
        h("td", { "data-label": "Kind" }, j.kind, j.priority < 0 ? " (starter)" : ""),
        h("td", { "data-label": "Model" }, target(j)),
        h("td", { "data-label": "Status" }, j.status),
        h("td", { "data-label": "Phase" }, j.status === "queued" ? "—" : phaseText(j.progress)),
        h("td", { "data-label": "Progress" }, `${j.progress.step} of ${j.progress.total}`),
        h("td", { "data-label": "Queue", class: "queue" }, standingText(j.queue) || "—"),
        h("td", { "data-label": "Created" }, date(j.created_at)))))))
      : h("p", { class: "muted" }, who === "mine" ? "No job was submitted from this browser yet." : "No jobs."));
    if (jobs.some((j) => !["succeeded", "failed", "canceled"].includes(j.status))) timer = setTimeout(refresh, REFRESH_MS);
  }
  await refresh();
  return () => clearTimeout(timer);
}
