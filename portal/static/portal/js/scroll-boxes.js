// A wide table scrolls inside its own box (.table-wrap, overflow-x: auto) rather than pushing
// the page sideways on a phone. A box that does scroll must be reachable with the keyboard
// (WCAG 2.1.1; axe's scrollable-region-focusable) and say what it holds, so while its content
// is wider than the box it becomes a named, focusable group (the name is its table's caption
// or aria-label, else the heading before it); when everything fits it is a plain box again and
// no extra tab stop. Tables that scripts add later (bid.js, sealed.js) are handled as they come.
const BOX = ".table-wrap";

function nameOf(box) {
  const table = box.querySelector("table");
  const own = table?.getAttribute("aria-label") || table?.querySelector("caption")?.textContent;
  if (own?.trim()) return own.trim();
  let el = box;
  while (el) {
    let prev = el.previousElementSibling;
    while (prev) {
      const h = prev.matches("h1,h2,h3,h4") ? prev : prev.querySelector("h1,h2,h3,h4");
      if (h?.textContent.trim()) return h.textContent.trim();
      prev = prev.previousElementSibling;
    }
    el = el.parentElement;
  }
  return document.title;
}

function fit(box) {
  if (box.scrollWidth > box.clientWidth + 1) {
    if (!box.hasAttribute("tabindex")) {
      box.tabIndex = 0;
      box.setAttribute("role", "group"); // not "region": a landmark named like its section is a duplicate
      box.setAttribute("aria-label", nameOf(box));
      box.dataset.scrolls = "";
    }
  } else if ("scrolls" in box.dataset) {
    box.removeAttribute("tabindex");
    box.removeAttribute("role");
    box.removeAttribute("aria-label");
    delete box.dataset.scrolls;
  }
}

const resized = new ResizeObserver((entries) => entries.forEach((e) => fit(e.target)));
function watch(root) {
  const boxes = root.matches?.(BOX) ? [root] : [...root.querySelectorAll(BOX)];
  for (const box of boxes) {
    fit(box);
    resized.observe(box);
  }
}
watch(document);
new MutationObserver((changes) => {
  for (const c of changes) for (const n of c.addedNodes) if (n.nodeType === 1) watch(n);
}).observe(document.body, { childList: true, subtree: true });
