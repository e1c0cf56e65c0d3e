import "./copy.js"; // copy buttons beside shortened hashes, on every page
import "./local-time.js"; // times in the reader's zone (<time data-local>)
// Progressive enhancement for every page: mark that scripts run (so script-only parts show),
// and keep closing countdowns live. No inline script anywhere (the CSP forbids it).
document.documentElement.classList.add("js");

function formatLeft(ms) {
  if (ms <= 0) return null;
  const s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60), sec = s % 60;
  const pad = (n) => String(n).padStart(2, "0");
  return (d ? `${d}d ` : "") + `${pad(h)}:${pad(m)}:${pad(sec)}`;
}

function tick() {
  for (const el of document.querySelectorAll("[data-closes-at]")) {
    const left = formatLeft(Date.parse(el.dataset.closesAt) - Date.now());
    el.textContent = left ?? el.dataset.closedText ?? "closed";
  }
}
tick();
setInterval(tick, 1000);
