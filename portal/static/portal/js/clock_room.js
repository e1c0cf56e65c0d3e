// The room of a clock auction (portal/clock_room.py): keeps the round, its price and
// countdown, the rounds' table and chart, the bidder's demands and the result current by
// polling clock.json, and checks a round bid against the rules (auctions/core/clock.py,
// Rules.refusal) before sending it. The page is whole without this script; the server formats
// and translates everything it sends (rows, chart, phase, position, result), this only puts it
// in place.
//
// The countdown runs on the server's clock: each answer carries the server's time, and the
// offset from this device's clock (taken at the middle of the round trip) corrects a skewed
// clock. Screen readers hear each round change and the end, never the countdown's ticks.

import { decimal, exponent } from "./amounts.js";

const room = document.getElementById("clock-room");
const data = room.dataset;
const text = document.getElementById("i18n-room").dataset;
const CUR = data.currency;
const EXP = exponent(CUR);
const TICK = Number(data.tick);
const ELIGIBLE = Number(data.eligible);
const POLL_MS = Number(data.pollMs) || 1500;

const $ = (id) => document.getElementById(id);
const num = (s) => (s === "" || s == null ? null : Number(s));
const countdownEl = $("room-countdown");

let version = Number(data.version);
let offset = Date.parse(data.serverTime) - Date.now(); // server time minus this device's
// Not data-closes-at: site.js would make the whole section a countdown.
let closesAt = data.roundEnds ? Date.parse(data.roundEnds) : null;
let phase = data.phase;
let round = num(data.round);
let price = num(data.price);
let previousPrice = num(data.previousPrice);
let most = num(data.most);
let previous = num(data.previous);

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

function formatLeft(ms) {
  const s = Math.max(0, Math.ceil(ms / 1000));
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60), sec = s % 60;
  const pad = (n) => String(n).padStart(2, "0");
  const clock = h || d ? `${pad(h)}:${pad(m)}:${pad(sec)}` : `${pad(m)}:${pad(sec)}`;
  return d ? `${say("days", { d })} ${clock}` : clock;
}

function tick() {
  if (phase !== "running" || closesAt === null) return;
  const left = closesAt - (Date.now() + offset);
  countdownEl.textContent = left <= 0 ? say("ended") : formatLeft(left);
}

// Server-rendered, escaped markup (no script: the CSP would refuse it anyway), put in place
// only when what it says changed.
function setHtml(el, html) {
  if (!el || html == null) return;
  const incoming = document.createElement("template");
  incoming.innerHTML = html;
  const words = (node) => node.textContent.replace(/\s+/g, " ").trim();
  if (words(incoming.content) !== words(el)) el.replaceChildren(incoming.content);
}

const form = $("round-form");

// The form follows the round: its number, legend, limits and help. What was typed for the
// round before is cleared (it was meant for another price), and the bidder is told.
function newRound(s) {
  if (!form) return;
  $("round-number").value = String(s.round);
  $("round-legend").textContent = say("legend", { n: s.round, price: s.price_text });
  const lots = form.querySelector("input[name=lots]");
  const exit = form.querySelector("input[name=exit_price]");
  lots.value = "";
  exit.value = "";
  markAll();
  $(`${lots.id}-help`).textContent =
    s.round === 1 ? say("mostFirst", { n: ELIGIBLE }) : say("mostLater", { n: most ?? 0 });
  $("exit-field").hidden = s.round === 1;
  if (s.previous_price !== null) {
    $(`${exit.id}-help`).textContent = say("exitHelp", {
      low: money(s.previous_price), high: money(s.price), tick: money(TICK),
    });
  }
  $("round-status").textContent = say("newRound", { n: s.round });
}

function apply(s) {
  $("room-state").textContent = s.state_label;
  const changedRound = s.round !== round;
  round = s.round;
  price = s.price;
  previousPrice = s.previous_price;
  if (s.position) {
    most = s.position.most;
    previous = s.position.previous;
    setHtml($("room-position"), s.position.html);
  }
  if (round !== null) {
    $("room-round").textContent = String(round);
    $("room-price").textContent = `${s.price_text} ${CUR}/t`;
    const ends = $("room-ends");
    ends.dateTime = s.closes_at;
    ends.textContent = s.closes_at.slice(0, 19).replace("T", " ");
    closesAt = Date.parse(s.closes_at);
  }
  const over = s.phase === "over";
  $("room-next").textContent = over || !s.next_price_text ? "—" : `${s.next_price_text} ${CUR}/t`;
  $("room-step").textContent = over || !s.step_text ? "" : say("step", { step: s.step_text });
  if (s.rows !== null) {
    document.querySelector("#room-rounds tbody").innerHTML = s.rows;
  }
  if (s.chart) {
    const figure = $("room-chart");
    figure.querySelector("svg")?.remove();
    figure.insertAdjacentHTML("afterbegin", s.chart);
    figure.hidden = false;
  }
  version = Math.max(version, s.version);
  setHtml($("room-phase"), s.phase_text);
  // One announcement per round (and one at the end), never per poll.
  if ((changedRound && round !== null) || (over && phase !== "over")) {
    $("room-news").textContent = s.announce;
    if (changedRound && !over && s.phase === "running") newRound(s);
  }
  phase = s.phase;
  if (phase === "ending" || phase === "over") countdownEl.textContent = say("ended");
  if (over && form) form.hidden = true;
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
    const response = await fetch(`${data.stateUrl}?after=${version}`, {
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
    // The network dropped a poll: the next one catches up (the rounds come by sequence).
  }
  if (final) return;
  const live = phase === "running" || phase === "ending";
  const wait = document.hidden ? 10_000 : live ? POLL_MS : 3_000;
  timer = setTimeout(poll, wait);
}

document.addEventListener("visibilitychange", () => {
  if (!document.hidden) poll();
});

// ---- the bid form --------------------------------------------------------------------------

class Refusal extends Error {
  constructor(message, field) {
    super(message);
    this.field = field;
  }
}

function parsePrice(raw) {
  const m = /^(\d{1,13})(?:\.(\d+))?$/.exec(raw.trim());
  if (!m) throw new Refusal(say("notDecimal"), "exit_price");
  const frac = (m[2] || "").replace(/0+$/, "");
  if (frac.length > EXP) throw new Refusal(say("decimals"), "exit_price");
  return Number(BigInt(m[1]) * 10n ** BigInt(EXP) + BigInt((frac + "0".repeat(EXP)).slice(0, EXP) || "0"));
}

// Rules.refusal, in the same order: what the rules refuse is refused here and not sent (the
// server checks again).
function check(rawLots, rawExit) {
  const l = rawLots.trim();
  if (!/^\d{1,13}$/.test(l)) throw new Refusal(say("lots"), "lots");
  const lots = Number(l);
  const exit = rawExit.trim() === "" ? null : parsePrice(rawExit);
  if (round === 1 || previousPrice === null) {
    if (lots > ELIGIBLE) throw new Refusal(say("eligibility", { n: ELIGIBLE }), "lots");
    if (exit !== null) throw new Refusal(say("noExit"), "exit_price");
    return;
  }
  if (lots > (previous ?? 0)) throw new Refusal(say("activity", { n: previous ?? 0 }), "lots");
  if (exit === null) return;
  if (!(previousPrice < exit && exit < price) || exit % TICK) {
    throw new Refusal(
      say("exit", { low: money(previousPrice), high: money(price), tick: money(TICK) }),
      "exit_price",
    );
  }
  if (lots === previous) throw new Refusal(say("noReduction", { n: previous }), "lots");
}

function field(name) {
  const input = form.querySelector(`input[name=${name}]`);
  return { input, error: $(`${input.id}-error`) };
}

function mark(name, message) {
  const { input, error } = field(name);
  error.textContent = message || "";
  if (message) input.setAttribute("aria-invalid", "true");
  else input.removeAttribute("aria-invalid");
}

function markAll(name = null, message = "") {
  for (const n of ["lots", "exit_price"]) mark(n, n === name ? message : "");
}

if (form) {
  const status = $("round-status");
  const submit = $("round-submit");
  for (const n of ["lots", "exit_price"]) {
    const { input, error } = field(n);
    const ids = [input.getAttribute("aria-describedby"), `${input.id}-help`, error.id];
    input.setAttribute("aria-describedby", [...new Set(ids.filter(Boolean).join(" ").split(" "))].join(" "));
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      check(field("lots").input.value, field("exit_price").input.value);
    } catch (refusal) {
      if (!(refusal instanceof Refusal)) throw refusal;
      markAll(refusal.field, refusal.message);
      status.textContent = "";
      field(refusal.field).input.focus();
      return;
    }
    markAll();
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
        // The delivery account is fixed by the first bid: it is not asked again.
        const account = form.querySelector("select[name=account]");
        if (account) account.disabled = true;
      } else {
        status.textContent = "";
        const name = body.field === "exit_price" ? "exit_price" : "lots";
        markAll(name, body.message);
        field(name).input.focus();
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
