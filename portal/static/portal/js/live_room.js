// What the two live auction rooms' scripts share (portal/live_room.py): room.js (English
// auctions) and clock_room.js (clock auctions) import it. The room's messages, the countdown's
// words, the server's clock, the poll and its back-off, the server-rendered markup put in
// place, and the bid form's round trip.
//
// The countdown runs on the server's clock: each answer carries the server's time, and the
// offset from this device's clock (taken at the middle of the round trip) corrects a skewed
// clock.

import { decimal, exponent } from "./amounts.js";

export const $ = (id) => document.getElementById(id);

// "248050.60" -> "248,050.60", as the server's grouped filter.
function grouped(s) {
  const [whole, frac] = s.split(".");
  const g = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return frac === undefined ? g : `${g}.${frac}`;
}

// The room's section's data and what is said with it: its messages (translated by the server
// in the hidden #i18n-room, {name} filled in here), money and time left as words.
export function liveRoom(sectionId) {
  const data = $(sectionId).dataset;
  const text = $("i18n-room").dataset;
  const CUR = data.currency;
  const EXP = exponent(CUR);
  // "CNY/t" on English pages, "元/吨" on Chinese ones (portal_format's price_unit).
  const PER_T = data.perTonne || `${CUR}/t`;

  function say(key, values = {}) {
    const all = { cur: CUR, ...values };
    return (text[key] || key).replace(/\{(\w+)\}/g, (_, name) => String(all[name] ?? ""));
  }

  function formatLeft(ms) {
    const s = Math.max(0, Math.ceil(ms / 1000));
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600);
    const m = Math.floor((s % 3600) / 60), sec = s % 60;
    const pad = (n) => String(n).padStart(2, "0");
    const clock = h || d ? `${pad(h)}:${pad(m)}:${pad(sec)}` : `${pad(m)}:${pad(sec)}`;
    return d ? `${say("days", { d })} ${clock}` : clock;
  }

  return {
    data,
    CUR,
    PER_T,
    EXP,
    TICK: Number(data.tick),
    POLL_MS: Number(data.pollMs) || 1500,
    say,
    formatLeft,
    money: (minor) => grouped(decimal(minor, EXP)),
  };
}

// The server's time as this device reckons it.
export function serverClock(serverTime) {
  let offset = Date.parse(serverTime) - Date.now(); // server time minus this device's
  return {
    now: () => Date.now() + offset,
    sync(time, sent, got) {
      offset = Date.parse(time) - (sent + got) / 2;
    },
  };
}

// Polls url() after wait() ms, gives each answer to apply(s), and stops at a final one. Over
// the room's poll limit (429) it waits what Retry-After says, and longer at each refusal in a
// row; a poll asked for meanwhile (a tab shown again, a bid sent) waits as well. Returns the
// function that polls now.
export function startPolling({ url, clock, apply, wait, POLL_MS }) {
  let timer = null;
  let notBefore = 0;
  let refusals = 0;

  async function poll() {
    clearTimeout(timer);
    const early = notBefore - Date.now();
    if (early > 0) {
      timer = setTimeout(poll, early);
      return;
    }
    let final = false;
    try {
      const sent = Date.now();
      const response = await fetch(url(), {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
        cache: "no-store",
      });
      const got = Date.now();
      if (response.ok) {
        refusals = 0;
        const s = await response.json();
        clock.sync(s.server_time, sent, got);
        apply(s);
        final = s.final;
      } else if (response.status === 429) {
        refusals += 1;
        const retry = Number(response.headers.get("Retry-After")) * 1000 || 0;
        notBefore = got + Math.max(retry, Math.min(60_000, POLL_MS * 2 ** refusals));
      }
    } catch {
      // The network dropped a poll: the next one catches up (what changed comes by sequence).
    }
    if (final) return;
    timer = setTimeout(poll, Math.max(wait(), notBefore - Date.now()));
  }

  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) poll();
  });
  timer = setTimeout(poll, POLL_MS);
  return poll;
}

// Server-rendered, escaped markup (no script: the CSP would refuse it anyway), put in place
// only when what it says changed: a live region rewritten with the same words is read again.
export function setHtml(el, html) {
  if (!el || html == null) return;
  const incoming = document.createElement("template");
  incoming.innerHTML = html;
  const words = (node) => node.textContent.replace(/\s+/g, " ").trim();
  if (words(incoming.content) !== words(el)) el.replaceChildren(incoming.content);
}

// The end shown beside the countdown (an ISO time from the server).
export function showEnds(iso) {
  const ends = $("room-ends");
  ends.dateTime = iso;
  ends.textContent = iso.slice(0, 19).replace("T", " ");
}

export function showChart(svg) {
  if (!svg) return;
  const figure = $("room-chart");
  figure.querySelector("svg")?.remove();
  figure.insertAdjacentHTML("afterbegin", svg);
  figure.hidden = false;
}

export function showResult(html) {
  if (!html) return;
  const result = $("room-result");
  setHtml(result, html);
  result.hidden = false;
}

// ---- the bid form --------------------------------------------------------------------------

// What the rules refuse, said on a field (null: the form's only one).
export class Refusal extends Error {
  constructor(message, field = null) {
    super(message);
    this.field = field;
  }
}

// A typed price per tonne in minor units; a Refusal on `field` if it is not one.
export function parsePrice(raw, { say, EXP }, field = null) {
  const m = /^(\d{1,13})(?:\.(\d+))?$/.exec(raw.trim());
  if (!m) throw new Refusal(say("notDecimal"), field);
  const frac = (m[2] || "").replace(/0+$/, "");
  if (frac.length > EXP) throw new Refusal(say("decimals"), field);
  return Number(BigInt(m[1]) * 10n ** BigInt(EXP) + BigInt((frac + "0".repeat(EXP)).slice(0, EXP) || "0"));
}

// The input's help and error are read with it.
export function describe(input, error) {
  const ids = [input.getAttribute("aria-describedby"), `${input.id}-help`, error.id];
  input.setAttribute("aria-describedby", [...new Set(ids.filter(Boolean).join(" ").split(" "))].join(" "));
}

// The form sent asking for JSON, once check() finds nothing the rules refuse (the server checks
// again). refuse({message, field}) says a refusal, this page's or the server's; clear() takes
// the last one away; placed(body), if given, follows a bid that stands; then() runs after every
// send.
export function sendBids(form, { say, status, submit, check, refuse, clear, placed, then }) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      check();
    } catch (refusal) {
      if (!(refusal instanceof Refusal)) throw refusal;
      status.textContent = "";
      refuse(refusal);
      return;
    }
    clear();
    status.textContent = say("sending");
    submit.disabled = true;
    try {
      const response = await fetch(form.action, {
        method: "POST",
        body: new FormData(form),
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      });
      const body = await response.json();
      if (response.ok) {
        status.textContent = body.message;
        placed?.(body);
        // The delivery account is fixed by the first bid: it is not asked again.
        const account = form.querySelector("select[name=account]");
        if (account) account.disabled = true;
      } else {
        status.textContent = "";
        refuse(body);
      }
    } catch {
      status.textContent = say("failed");
    } finally {
      submit.disabled = false;
    }
    then();
  });
}
