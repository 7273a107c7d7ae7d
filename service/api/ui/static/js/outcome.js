// What a warm-up achieved (the API's `outcome`), and what VAA and VAA* mean, where they are shown.

import { h } from "./dom.js";

/** The outcome of a warm-up in a box: what happened and, when it did not help, what to try. */
export function outcomeBox(outcome) {
  if (!outcome) return null;
  return h("div", { class: `outcome-box ${outcome.kind}`, "data-outcome": outcome.kind, role: "note" },
    h("p", {}, h("strong", {}, outcome.kind === "multistable" ? "Warmed up. " : "The warm-up did not help. "), outcome.summary),
    outcome.advice ? h("p", {}, h("strong", {}, "What to try: "), outcome.advice) : null);
}

/** Two sentences on VAA and VAA*, shown wherever either figure is. */
export function vaaExplained() {
  return h("p", { class: "muted explain" },
    "VAA, measured exactly, is about the number of distinct attractors that n input sequences end in after S steps on one constant input, over n: 1/n is monostable (one attractor), 1 is every sequence its own. ",
    "VAA* is the smooth surrogate the warm-up optimises over a few to 200 steps; it reads high at small S, where states have not converged yet and still look distinct, so only the exact VAA tells whether the network is multistable.");
}
