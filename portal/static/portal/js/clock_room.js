// The room of a clock auction (portal/clock_room.py): keeps the round, its price and
// countdown, the rounds' table and chart, the bidder's demands and the result current by
// polling clock.json, and checks a round bid against the rules (auctions/core/clock.py,
// Rules.refusal) before sending it. The page is whole without this script; the server formats
// and translates everything it sends (rows, chart, phase, position, result), this only puts it
// in place. What it shares with the English room's script (the poll, the server's clock, the
// messages, the bid form's round trip) is live_room.js.
//
// Screen readers hear each round change and the end, never the countdown's ticks.

import {
  $, Refusal, describe, liveRoom, parsePrice, sendBids, serverClock, setHtml, showChart, showEnds,
  showResult, startPolling,
} from "./live_room.js";

const room = liveRoom("clock-room");
const { data, CUR, PER_T, TICK, POLL_MS, say, formatLeft, money } = room;
const ELIGIBLE = Number(data.eligible);

const num = (s) => (s === "" || s == null ? null : Number(s));
const countdownEl = $("room-countdown");
const clock = serverClock(data.serverTime);

let version = Number(data.version);
// Not data-closes-at: site.js would make the whole section a countdown.
let closesAt = data.roundEnds ? Date.parse(data.roundEnds) : null;
let phase = data.phase;
let round = num(data.round);
let price = num(data.price);
let previousPrice = num(data.previousPrice);
let most = num(data.most);
let previous = num(data.previous);

function tick() {
  if (phase !== "running" || closesAt === null) return;
  const left = closesAt - clock.now();
  countdownEl.textContent = left <= 0 ? say("ended") : formatLeft(left);
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
    $("room-price").textContent = `${s.price_text} ${PER_T}`;
    showEnds(s.closes_at);
    closesAt = Date.parse(s.closes_at);
  }
  const over = s.phase === "over";
  $("room-next").textContent = over || !s.next_price_text ? "—" : `${s.next_price_text} ${PER_T}`;
  $("room-step").textContent = over || !s.step_text ? "" : say("step", { step: s.step_text });
  if (s.rows !== null) {
    document.querySelector("#room-rounds tbody").innerHTML = s.rows;
  }
  showChart(s.chart);
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
  showResult(s.result);
  tick();
}

const poll = startPolling({
  url: () => `${data.stateUrl}?after=${version}`,
  clock,
  apply,
  POLL_MS,
  wait: () => {
    const live = phase === "running" || phase === "ending";
    return document.hidden ? 10_000 : live ? POLL_MS : 3_000;
  },
});

// ---- the bid form --------------------------------------------------------------------------

// Rules.refusal, in the same order: what the rules refuse is refused here and not sent (the
// server checks again).
function check(rawLots, rawExit) {
  const l = rawLots.trim();
  if (!/^\d{1,13}$/.test(l)) throw new Refusal(say("lots"), "lots");
  const lots = Number(l);
  const exit = rawExit.trim() === "" ? null : parsePrice(rawExit, room, "exit_price");
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
  for (const n of ["lots", "exit_price"]) {
    const { input, error } = field(n);
    describe(input, error);
  }

  sendBids(form, {
    say,
    status: $("round-status"),
    submit: $("round-submit"),
    check: () => check(field("lots").input.value, field("exit_price").input.value),
    refuse: ({ message, field: where }) => {
      const name = where === "exit_price" ? "exit_price" : "lots";
      markAll(name, message);
      field(name).input.focus();
    },
    clear: () => markAll(),
    then: () => poll(),
  });
}

tick();
setInterval(tick, 500);
