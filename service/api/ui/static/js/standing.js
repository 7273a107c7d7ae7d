// A job's place in the queue, its phase and its outcome in words, shared by the job and jobs pages.

/** 40 s, 3 min, or "?" without an estimate. */
export function seconds(value) {
  if (value === null || value === undefined) return "?";
  return value < 120 ? `${Math.round(value)} s` : `${Math.round(value / 60)} min`;
}

/** "Position 2 in the queue: starts in about 40 s, ends in about 3 min." (or why there is no estimate) */
export function standingText(queue) {
  if (!queue) return "";
  if (queue.position === 0) {
    return queue.ends_in_s === null ? "Running; no estimate of its end yet." : `Running; ends in about ${seconds(queue.ends_in_s)}.`;
  }
  const where = `Position ${queue.position} in the queue`;
  if (queue.starts_in_s === null) return `${where}; no estimate yet (${queue.basis}).`;
  return `${where}: starts in about ${seconds(queue.starts_in_s)}, ends in about ${seconds(queue.ends_in_s)}.`;
}

/** "warming up (phase 2 of 4)", or "queued". */
export function phaseText(progress) {
  if (!progress.phase) return "queued";
  const i = progress.phases.indexOf(progress.phase);
  const name = progress.phase.replaceAll("_", " ");
  return progress.phases.length > 1 && i >= 0 ? `${name} (phase ${i + 1} of ${progress.phases.length})` : name;
}

const MINE = "warmzoo.myJobs";
/** Ids of the jobs submitted from this browser, newest first (the jobs page's "mine"). */
export function myJobs() {
  try { return JSON.parse(localStorage.getItem(MINE) ?? "[]"); } catch { return []; }
}
export function rememberJob(id) {
  localStorage.setItem(MINE, JSON.stringify([id, ...myJobs().filter((j) => j !== id)].slice(0, 200)));
}
