// The single-page router: the URL fragment names the page (#/models/NAME/versions/3), each page
// module renders itself into <main> and may return a cleanup (e.g. closing an event stream).

import { ApiError } from "./api.js";
import { fill, h } from "./dom.js";
import * as compare from "./pages/compare.js";
import * as job from "./pages/job.js";
import * as jobs from "./pages/jobs.js";
import * as model from "./pages/model.js";
import * as submit from "./pages/submit.js";
import * as version from "./pages/version.js";
import * as zoo from "./pages/zoo.js";

const ROUTES = [
  [/^\/?$/, zoo],
  [/^\/models\/([^/]+)$/, model],
  [/^\/models\/([^/]+)\/versions\/([^/]+)$/, version],
  [/^\/compare$/, compare],
  [/^\/submit$/, submit],
  [/^\/jobs$/, jobs],
  [/^\/jobs\/([^/]+)$/, job],
];

const main = document.getElementById("main");
let cleanup = null;
let first = true;

async function route() {
  const hash = location.hash.slice(1) || "/";
  if (!hash.startsWith("/")) return; // an in-page anchor, not a page
  const [path, search = ""] = hash.split("?");
  cleanup?.();
  cleanup = null;
  const match = ROUTES.map(([re, page]) => [path.match(re), page]).find(([m]) => m);
  main.setAttribute("aria-busy", "true");
  try {
    if (!match) throw new ApiError(404, { error: `No page at ${hash}` });
    const [m, page] = match;
    fill(main);
    cleanup = (await page.render(main, m.slice(1).map(decodeURIComponent), new URLSearchParams(search))) || null;
  } catch (error) {
    fill(main, h("h1", {}, error.status === 404 ? "Not found" : "Something went wrong"),
      h("p", { role: "alert" }, error.message), h("p", {}, h("a", { href: "#/" }, "Back to the zoo")));
  } finally {
    main.removeAttribute("aria-busy");
  }
  for (const link of document.querySelectorAll("nav a")) {
    if (link.getAttribute("href") === `#${path}`) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (!first) main.focus(); // tell keyboard and screen-reader users the page changed
  first = false;
}

document.querySelector(".skip").addEventListener("click", (event) => {
  event.preventDefault(); // the fragment is the router's: focus instead of navigating
  main.focus();
});
window.addEventListener("hashchange", route);
route();
