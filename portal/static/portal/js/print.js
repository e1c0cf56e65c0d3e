// "Print or save as PDF": the browser's own print dialogue, whose "Save as PDF" writes the
// page through its print stylesheet (the portal renders no PDF on the server: docs/portal.md).
for (const button of document.querySelectorAll("[data-print]")) {
  button.addEventListener("click", () => window.print());
}
