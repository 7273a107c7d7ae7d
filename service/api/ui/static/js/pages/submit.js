// The warm-up form. Choices and defaults come from the API's own schema; checking is left to the
// API, whose messages (naming the field at fault) are shown next to that field.

import { ApiError, apiKey, apiSchemas, enumOf, postJson, setApiKey } from "../api.js";
import { rememberJob } from "../standing.js";
import { fill, h } from "../dom.js";

/** One labelled control; `path` is the request field (e.g. "spec.hidden_size"), as the API names it. */
function control(path, label, property, { value, hint } = {}) {
  const id = `f-${path.replace(/\./g, "-")}`;
  const initial = value ?? property?.default;
  const options = property ? enumOf(property) : [];
  const described = `${id}-hint`;
  let input;
  if (options.length) {
    input = h("select", { id, name: path }, options.map((o) => h("option", { value: o, selected: o === initial }, o)));
  } else if (property?.type === "boolean") {
    input = h("input", { id, name: path, type: "checkbox", checked: Boolean(initial) });
  } else {
    const numeric = property && ["integer", "number"].includes(property.type ?? property.anyOf?.[0]?.type);
    input = h("input", { id, name: path, type: numeric ? "number" : "text", step: numeric ? "any" : null,
      value: initial ?? "", "data-type": numeric ? "number" : "text" });
  }
  input.setAttribute("aria-describedby", described);
  const note = (hint ?? property?.description ?? "").replace(/`/g, ""); // descriptions are Markdown
  return h("div", { class: `field${input.type === "checkbox" ? " check" : ""}`, "data-field": path },
    h("label", { for: id }, label), input,
    h("p", { class: "hint", id: described }, note),
    h("p", { class: "field-error", id: `${id}-error`, hidden: true }));
}

/** The request body: empty fields are left out so that the API's defaults apply. */
function body(form) {
  const out = {};
  for (const el of form.querySelectorAll("[name]")) {
    let value;
    if (el.type === "checkbox") value = el.checked;
    else if (el.value.trim() === "") continue;
    else value = el.dataset.type === "number" ? Number(el.value) : el.value.trim();
    const path = el.name.split(".");
    let node = out;
    for (const key of path.slice(0, -1)) node = node[key] ??= {};
    node[path.at(-1)] = value;
  }
  if (out.data?.dataset) out.data = { dataset: out.data.dataset }; // a data set replaces the task
  return out;
}

function clearErrors(form) {
  for (const el of form.querySelectorAll("[aria-invalid]")) {
    el.removeAttribute("aria-invalid");
    el.setAttribute("aria-describedby", `${el.id}-hint`);
  }
  for (const p of form.querySelectorAll(".field-error")) p.hidden = true;
}

/** Mark the field the API named (or its nearest named parent) and move focus there. */
function showError(form, summary, error) {
  fill(summary, h("h2", {}, "The warm-up was not queued"), h("p", {}, error.message));
  summary.hidden = false;
  let path = error.field;
  let field = null;
  while (path && !(field = form.querySelector(`[data-field="${CSS.escape(path)}"]`))) path = path.includes(".") ? path.slice(0, path.lastIndexOf(".")) : null;
  if (!field) { summary.focus(); return; }
  const input = field.querySelector("[name]");
  const message = field.querySelector(".field-error");
  fill(message, error.message);
  message.hidden = false;
  input.setAttribute("aria-invalid", "true");
  input.setAttribute("aria-describedby", `${message.id} ${input.id}-hint`);
  input.focus();
}

export async function render(main) {
  document.title = "Warm up a network — warmzoo";
  const s = await apiSchemas();
  const spec = s.RNNSpec.properties, data = s.DataIn.properties, warm = s.WarmupConfig.properties, req = s.WarmupIn.properties;
  const summary = h("div", { class: "alert", role: "alert", tabindex: "-1", hidden: true });
  const submit = h("button", { type: "submit", class: "primary" }, "Queue the warm-up");
  const form = h("form", { class: "submit", novalidate: true },
    h("fieldset", {}, h("legend", {}, "Network"),
      control("name", "Model name", null, { hint: "Lowercase letters, digits, '.', '_' and '-'; default: derived from the spec." }),
      control("spec.cell", "Cell", spec.cell),
      control("spec.input_size", "Input size", spec.input_size, { value: 1 }),
      control("spec.hidden_size", "Hidden size", spec.hidden_size, { value: 64 }),
      control("spec.num_layers", "Layers", spec.num_layers),
      control("spec.output_size", "Output size", spec.output_size),
      control("spec.double", "Double layers", spec.double),
      control("spec.t_max", "Chrono t_max", spec.t_max)),
    h("fieldset", {}, h("legend", {}, "Data"),
      control("data.task", "Task", data.task),
      control("data.seq_length", "Sequence length (T)", data.seq_length, { value: 100 }),
      control("data.num_samples", "Sequences (N)", data.num_samples, { value: 512 }),
      control("data.dataset", "Or an uploaded data set id", data.dataset)),
    h("fieldset", {}, h("legend", {}, "Warm-up"),
      ["steps", "learning_rate", "batch_size", "stabilization_increment", "stabilization_max", "epsilon", "target", "partial"]
        .map((k) => control(`warmup.${k}`, warm[k].title, warm[k])),
      control("seed", "Seed", req.seed),
      control("device", "Device", req.device)),
    h("fieldset", {}, h("legend", {}, "Access"),
      h("div", { class: "field" }, h("label", { for: "f-key" }, "API key"),
        h("input", { id: "f-key", type: "password", autocomplete: "off", value: apiKey(), "aria-describedby": "f-key-hint",
          onchange: (e) => setApiKey(e.target.value.trim()) }),
        h("p", { class: "hint", id: "f-key-hint" }, "Needed when the server requires keys (`warmzoo keys create`); kept in this tab only."))),
    summary,
    h("div", { class: "actions" }, submit));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    summary.hidden = true;
    submit.disabled = true;
    try {
      const job = await postJson("/v1/warmups", body(form));
      rememberJob(job.id);
      location.hash = `#/jobs/${encodeURIComponent(job.id)}`;
    } catch (error) {
      showError(form, summary, error instanceof ApiError ? error : new ApiError(0, { error: error.message }));
    } finally {
      submit.disabled = false;
    }
  });
  fill(main, h("h1", {}, "Warm up a network"),
    h("p", { class: "lead" }, "Queue a warm-up job: the published version appears in the zoo when it succeeds. Defaults are the paper's."),
    form);
}
