// Copy buttons beside shortened hashes (templates/portal/_hash.html). The clipboard API needs a
// secure context; elsewhere (plain http on a LAN, an old browser) the value is copied through a
// selected, off-screen text area, and if that fails too the whole value is opened and selected so
// the reader can copy it by hand. No inline script: this module is loaded by site.js.

export async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      // denied (no permission, document not focused): try the fallback
    }
  }
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.className = "copy-buffer";
  document.body.append(area);
  area.select();
  let ok = false;
  try {
    ok = document.execCommand("copy");
  } catch {
    ok = false;
  }
  area.remove();
  return ok;
}

function selectWhole(box) {
  const details = box.querySelector("details");
  if (details) details.open = true;
  const full = box.querySelector(".hash-full");
  if (!full) return;
  const range = document.createRange();
  range.selectNodeContents(full);
  const sel = window.getSelection();
  sel.removeAllRanges();
  sel.addRange(range);
}

document.addEventListener("click", async (event) => {
  const button = event.target instanceof Element ? event.target.closest("button.copy[data-copy]") : null;
  if (!button) return;
  const box = button.closest(".hash");
  const status = box?.querySelector(".copy-status");
  const ok = await copyText(button.dataset.copy);
  if (!ok && box) selectWhole(box);
  const said = ok ? button.dataset.done : button.dataset.failed;
  if (status) status.textContent = said;
  button.dataset.state = ok ? "copied" : "failed";
  const label = button.dataset.label ?? button.textContent;
  button.dataset.label = label;
  button.textContent = said;
  clearTimeout(Number(button.dataset.timer || 0));
  button.dataset.timer = String(setTimeout(() => {
    button.textContent = label;
    delete button.dataset.state;
    if (status) status.textContent = "";
  }, 2000));
});
