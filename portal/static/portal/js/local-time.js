// Times in the reader's own time zone. The server writes every time in UTC, saying so (the page
// reads the same without scripts); a <time data-local> element is rewritten here in the
// browser's zone and the page's language, with the zone named (Intl.DateTimeFormat), and keeps
// the UTC text as its title. No inline script: this module is loaded by site.js.

const STYLES = {
  // weekday, date and hour:minute with the zone: the auction calendar
  datetime: { weekday: "short", year: "numeric", month: "short", day: "numeric",
              hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZoneName: "short" },
};

export function localize(root = document) {
  const lang = document.documentElement.lang || undefined;
  for (const el of root.querySelectorAll("time[data-local]")) {
    const style = STYLES[el.dataset.local];
    const when = Date.parse(el.getAttribute("datetime"));
    if (!style || Number.isNaN(when)) continue;
    let text;
    try {
      text = new Intl.DateTimeFormat(lang, style).format(when);
    } catch {
      continue; // an engine without Intl for this language: the UTC text stays
    }
    if (!el.title) el.title = el.textContent.trim();
    el.textContent = text;
  }
}

localize();
