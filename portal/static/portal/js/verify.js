// Live progress of a verification run: poll its status and move the bar until it ends.
const box = document.getElementById("run");
const bar = document.getElementById("run-progress");
const count = document.getElementById("run-count");
const status = document.getElementById("run-status");
const report = document.getElementById("run-report");
const text = document.getElementById("i18n-verify").dataset;

async function poll() {
  const response = await fetch(box.dataset.statusUrl, { credentials: "same-origin" });
  const s = await response.json();
  bar.value = s.total ? Math.min(100, Math.floor((s.done * 100) / s.total)) : 0;
  bar.textContent = `${bar.value} %`;
  count.textContent = text.count.replace("{done}", s.done).replace("{total}", s.total);
  status.className = `badge status-${s.status}`;
  if (s.status === "ok") {
    status.textContent = text.verified;
    bar.value = 100;
    const p = document.createElement("p");
    p.className = "notice ok";
    p.id = "report-ok";
    p.textContent = text.ok.replace("{n}", s.entries);
    report.replaceChildren(p);
    return;
  }
  if (s.status === "failed") {
    status.textContent = text.failed;
    const p = document.createElement("p");
    p.className = "notice bad";
    p.id = "report-failed";
    p.textContent = s.message;
    report.replaceChildren(p);
    return;
  }
  status.textContent = s.status === "queued" ? text.queued : text.running;
  setTimeout(poll, 300);
}

if (box.dataset.status === "queued" || box.dataset.status === "running") poll();
