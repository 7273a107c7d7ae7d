// A small Markdown renderer for model cards. Every character of the source is HTML-escaped
// before any markup is added, and links keep only http(s) and same-site targets, so a card
// can never inject HTML or script.
// Supported: headings, paragraphs, fenced code, pipe tables, lists, `code`, **bold**, *italic*, [links](url).

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
function escapeHtml(text) { return text.replace(/[&<>"']/g, (c) => ESCAPES[c]); }

const SAFE_URL = /^(https?:\/\/|\/(?!\/)|#)/i;

function inline(raw) {
  const codes = [];
  // code spans first, so that nothing inside them is formatted; \u0000 cannot occur (stripped)
  let text = escapeHtml(raw).replace(/`([^`]+)`/g, (_, code) => `\u0000${codes.push(code) - 1}\u0000`);
  text = text
    .replace(/\[([^\]]+)\]\(([^)\s]+)\)/g, (_, label, url) => {
      const target = url.replace(/&amp;/g, "&");
      return SAFE_URL.test(target) ? `<a href="${escapeHtml(target)}" rel="noopener">${label}</a>` : label;
    })
    .replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>")
    .replace(/(^|[^*\w])\*([^*\s][^*]*)\*(?!\w)/g, "$1<em>$2</em>");
  return text.replace(/\u0000(\d+)\u0000/g, (_, i) => `<code>${codes[Number(i)]}</code>`);
}

function cells(line) {
  return line.trim().replace(/^\|/, "").replace(/\|$/, "").split("|").map((c) => c.trim());
}

const TABLE_RULE = /^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$/;
const LIST_ITEM = /^\s*(?:[-*]|\d+\.)\s+/;

/** Markdown -> safe HTML; headings are shifted down by `headingOffset` to fit the page outline. */
export function renderMarkdown(source, { headingOffset = 0 } = {}) {
  const lines = source.replace(/\u0000/g, "").replace(/\r\n?/g, "\n").split("\n");
  const out = [];
  let paragraph = [];
  const flush = () => {
    if (paragraph.length) out.push(`<p>${inline(paragraph.join(" "))}</p>`);
    paragraph = [];
  };
  for (let i = 0; i < lines.length; i += 1) {
    const line = lines[i];
    const fence = line.match(/^```\s*([\w-]*)\s*$/);
    const heading = line.match(/^(#{1,6})\s+(.*)$/);
    if (fence) {
      flush();
      const code = [];
      for (i += 1; i < lines.length && !/^```\s*$/.test(lines[i]); i += 1) code.push(lines[i]);
      const lang = fence[1] ? ` data-lang="${escapeHtml(fence[1])}"` : "";
      out.push(`<pre${lang}><code>${escapeHtml(code.join("\n"))}</code></pre>`);
    } else if (heading) {
      flush();
      const level = Math.min(6, heading[1].length + headingOffset);
      out.push(`<h${level}>${inline(heading[2])}</h${level}>`);
    } else if (line.trim().startsWith("|") && TABLE_RULE.test(lines[i + 1] ?? "")) {
      flush();
      const head = cells(line).map((c) => `<th scope="col">${inline(c)}</th>`).join("");
      const rows = [];
      for (i += 2; i < lines.length && lines[i].trim().startsWith("|"); i += 1) {
        rows.push(`<tr>${cells(lines[i]).map((c) => `<td>${inline(c)}</td>`).join("")}</tr>`);
      }
      i -= 1;
      out.push(`<div class="scroll"><table><thead><tr>${head}</tr></thead><tbody>${rows.join("")}</tbody></table></div>`);
    } else if (LIST_ITEM.test(line)) {
      flush();
      const ordered = /^\s*\d+\./.test(line);
      const items = [];
      for (; i < lines.length && LIST_ITEM.test(lines[i]); i += 1) items.push(`<li>${inline(lines[i].replace(LIST_ITEM, ""))}</li>`);
      i -= 1;
      out.push(ordered ? `<ol>${items.join("")}</ol>` : `<ul>${items.join("")}</ul>`);
    } else if (!line.trim()) {
      flush();
    } else {
      paragraph.push(line.trim());
    }
  }
  flush();
  return out.join("\n");
}
