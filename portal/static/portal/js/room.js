// The live room of an English auction (portal/room.py): keeps the page's numbers, countdown,
// bids, chart, position and result current by polling room.json, and checks a bid against
// the rules before sending it. The page is whole without this script; the server formats and
// translates everything it sends (rows, chart, phase, result), this only puts it in place.
//
// The countdown runs on the server's clock: each answer carries the server's time, and the
// offset from this device's clock (taken at the middle of the round trip) corrects a skewed
// clock. Screen readers hear price changes and a few milestones, never each second's tick.

import { decimal, exponent } from "./amounts.js";

const room = document.getElementById("room");
const data = room.dataset;
const text = document.getElementById("i18n-room").dataset;
const CUR = data.currency;
const EXP = exponent(CUR);
const TICK = Number(data.tick);
const POLL_MS = Number(data.pollMs) || 1500;
const MAX_ROWS = 100;
// [[from, step], ...] in minor units, as the rules' increments (bands rise from 0).
const BANDS = data.increments.split(",").map((pair) => pair.split(":").map(Number));

const $ = (id) => document.getElementById(id);
const standingEl = $("room-standing");
const countdownEl = $("room-countdown");
const countdownSay = $("room-countdown-say");

let lastSeq = Number(data.lastSeq);
let endsAt = Date.parse(data.endsAt);
let offset = Date.parse(data.serverTime) - Date.now(); // server time minus this device's
let phase = data.phase;
let minimum = data.minimum === "" ? null : Number(data.minimum);
let leading = data.leading === "1";
let spoken = new Set(); // the milestones announced for the current end

function say(key, values = {}) {
  const all = { cur: CUR, ...values };
  return (text[key] || key).replace(/\{(\w+)\}/g, (_, name) => String(all[name] ?? ""));
}

// "248050.60" -> "248,050.60", as the server's grouped filter.
function grouped(s) {
  const [whole, frac] = s.split(".");
  const g = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return frac === undefined ? g : `${g}.${frac}`;
}

const money = (minor) => grouped(decimal(minor, EXP));

function stepAt(price) {
  let step = BANDS[0][1];
  for (const [low, s] of BANDS) if (price >= low) step = s;
  return step;
}

function formatLeft(ms) {
  const s = Math.max(0, Math.ceil(ms / 1000));
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60), sec = s % 60;
  const pad = (n) => String(n).padStart(2, "0");
  const clock = h || d ? `${pad(h)}:${pad(m)}:${pad(sec)}` : `${pad(m)}:${pad(sec)}`;
  return d ? `${say("days", { d })} ${clock}` : clock;
}

const MILESTONES = [60, 30, 10];

function tick() {
  // Before the opening the page says when bidding opens; the countdown is to the end.
  if (phase !== "free" && phase !== "timed") return;
  const left = endsAt - (Date.now() + offset);
  if (left <= 0) {
    countdownEl.textContent = say("ended");
    if (!spoken.has(0)) countdownSay.textContent = say("endedSay");
    spoken.add(0);
    return;
  }
  countdownEl.textContent = formatLeft(left);
  for (const mark of MILESTONES) {
    if (left <= mark * 1000 && left > (mark - 2) * 1000 && !spoken.has(mark)) {
      spoken.add(mark);
      countdownSay.textContent = say("left", { left: formatLeft(left) });
    }
  }
}

// Server-rendered, escaped markup (no script: the CSP would refuse it anyway), put in place
// only when what it says changed: a live region rewritten with the same words is read again.
function setHtml(el, html) {
  if (!el || html == null) return;
  const incoming = document.createElement("template");
  incoming.innerHTML = html;
  const words = (node) => node.textContent.replace(/\s+/g, " ").trim();
  if (words(incoming.content) !== words(el)) el.replaceChildren(incoming.content);
}

function apply(s) {
  $("room-state").textContent = s.state_label;
  if (s.standing !== null && String(s.standing) !== data.standing) {
    data.standing = String(s.standing);
    $("standing-label").textContent = say("standing");
    standingEl.textContent = `${s.standing_text} ${CUR}/t`;
    countdownSay.textContent = "";
  }
  minimum = s.minimum;
  $("room-minimum").textContent = s.minimum === null ? "—" : `${s.minimum_text} ${CUR}/t`;
  const newEnd = Date.parse(s.ends_at);
  if (newEnd !== endsAt) {
    endsAt = newEnd;
    spoken = new Set();
    const ends = $("room-ends");
    ends.dateTime = s.ends_at;
    ends.textContent = s.ends_at.slice(0, 19).replace("T", " ");
    if (s.phase === "timed") {
      countdownSay.textContent = say("restarted", { left: formatLeft(endsAt - (Date.now() + offset)) });
    }
  }
  $("room-count").textContent = String(s.bids);
  $("room-no-bids").hidden = s.bids > 0;
  if (s.rows.trim()) {
    const body = document.querySelector("#room-bids tbody");
    body.insertAdjacentHTML("afterbegin", s.rows);
    while (body.rows.length > MAX_ROWS) body.deleteRow(-1);
  }
  if (s.chart) {
    const figure = $("room-chart");
    figure.querySelector("svg")?.remove();
    figure.insertAdjacentHTML("afterbegin", s.chart);
    figure.hidden = false;
  }
  lastSeq = Math.max(lastSeq, s.last_seq);
  setHtml($("room-phase"), s.phase_text);
  if (s.position) {
    leading = s.position.code === "leading";
    setHtml($("room-position"), s.position.html);
  }
  phase = s.phase;
  if (phase === "ending" || phase === "over") {
    countdownEl.textContent = say("ended");
    const form = $("raise-form");
    if (form) form.hidden = true;
  }
  if (s.result) {
    const result = $("room-result");
    setHtml(result, s.result);
    result.hidden = false;
  }
  tick();
}

let timer = null;

async function poll() {
  clearTimeout(timer);
  let final = false;
  try {
    const sent = Date.now();
    const response = await fetch(`${data.stateUrl}?after=${lastSeq}`, {
      headers: { Accept: "application/json" },
      credentials: "same-origin",
      cache: "no-store",
    });
    const got = Date.now();
    if (response.ok) {
      const s = await response.json();
      offset = Date.parse(s.server_time) - (sent + got) / 2;
      apply(s);
      final = s.final;
    }
  } catch {
    // The network dropped a poll: the next one catches up (bids come by sequence).
  }
  if (final) return;
  const open = phase === "free" || phase === "timed";
  const wait = document.hidden ? 10_000 : open ? POLL_MS : 3_000;
  timer = setTimeout(poll, wait);
}

document.addEventListener("visibilitychange", () => {
  if (!document.hidden) poll();
});

// ---- the bid box ---------------------------------------------------------------------------

class Refusal extends Error {}

function parsePrice(raw) {
  const m = /^(\d{1,13})(?:\.(\d+))?$/.exec(raw.trim());
  if (!m) throw new Refusal(say("notDecimal"));
  const frac = (m[2] || "").replace(/0+$/, "");
  if (frac.length > EXP) throw new Refusal(say("decimals"));
  return Number(BigInt(m[1]) * 10n ** BigInt(EXP) + BigInt((frac + "0".repeat(EXP)).slice(0, EXP) || "0"));
}

// What the rules refuse, refused here: nothing is sent for it (the server checks again).
function check(raw) {
  const price = parsePrice(raw);
  if (leading) throw new Refusal(say("leading"));
  if (price % TICK) throw new Refusal(say("tick", { tick: money(TICK) }));
  if (minimum !== null && price < minimum) throw new Refusal(say("tooLow", { minimum: money(minimum) }));
  return price;
}

const form = $("raise-form");
if (form) {
  const input = form.querySelector("input[name=price]");
  const error = $(`${input.id}-error`);
  const status = $("raise-status");
  const submit = $("raise-submit");

  const mark = (message) => {
    error.textContent = message || "";
    if (message) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  };
  if (!input.getAttribute("aria-describedby")?.includes(error.id)) {
    const ids = [input.getAttribute("aria-describedby"), `${input.id}-help`, error.id];
    input.setAttribute("aria-describedby", [...new Set(ids.filter(Boolean).join(" ").split(" "))].join(" "));
  }

  $("raise-min").addEventListener("click", () => {
    if (minimum === null) return;
    input.value = decimal(minimum, EXP);
    mark("");
    input.focus();
  });
  $("raise-step").addEventListener("click", () => {
    if (minimum === null) return;
    let base = minimum;
    try {
      const typed = parsePrice(input.value);
      if (typed >= minimum) base = typed;
    } catch {
      // nothing valid typed: one step above the lowest valid bid
    }
    input.value = decimal(base + stepAt(base), EXP);
    mark("");
    input.focus();
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      check(input.value);
    } catch (refusal) {
      if (!(refusal instanceof Refusal)) throw refusal;
      mark(refusal.message);
      status.textContent = "";
      input.focus();
      return;
    }
    mark("");
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
        input.value = "";
        leading = true;
        // The delivery account is fixed by the first bid: it is not asked again.
        const account = form.querySelector("select[name=account]");
        if (account) account.disabled = true;
      } else {
        status.textContent = "";
        mark(body.message);
        input.focus();
      }
    } catch {
      status.textContent = say("failed");
    } finally {
      submit.disabled = false;
    }
    poll();
  });
}

tick();
setInterval(tick, 500);
timer = setTimeout(poll, POLL_MS);
