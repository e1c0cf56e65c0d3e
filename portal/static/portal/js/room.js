// The live room of an English auction (portal/room.py): keeps the page's numbers, countdown,
// bids, chart, position and result current by polling room.json, and checks a bid against
// the rules before sending it. The page is whole without this script; the server formats and
// translates everything it sends (rows, chart, phase, result), this only puts it in place.
// What it shares with the clock room's script (the poll, the server's clock, the messages,
// the bid form's round trip) is live_room.js.
//
// Screen readers hear price changes and a few milestones, never each second's tick.

import { decimal } from "./amounts.js";
import {
  $, Refusal, describe, liveRoom, parsePrice, sendBids, serverClock, setHtml, showChart, showEnds,
  showResult, startPolling,
} from "./live_room.js";

const room = liveRoom("room");
const { data, CUR, PER_T, EXP, TICK, POLL_MS, say, formatLeft, money } = room;
const MAX_ROWS = 100;
// [[from, step], ...] in minor units, as the rules' increments (bands rise from 0).
const BANDS = data.increments.split(",").map((pair) => pair.split(":").map(Number));

const standingEl = $("room-standing");
const countdownEl = $("room-countdown");
const countdownSay = $("room-countdown-say");
const clock = serverClock(data.serverTime);

let lastSeq = Number(data.lastSeq);
let endsAt = Date.parse(data.endsAt);
let phase = data.phase;
let minimum = data.minimum === "" ? null : Number(data.minimum);
let leading = data.leading === "1";
let spoken = new Set(); // the milestones announced for the current end

function stepAt(price) {
  let step = BANDS[0][1];
  for (const [low, s] of BANDS) if (price >= low) step = s;
  return step;
}

const MILESTONES = [60, 30, 10];

function tick() {
  // Before the opening the page says when bidding opens; the countdown is to the end.
  if (phase !== "free" && phase !== "timed") return;
  const left = endsAt - clock.now();
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

function apply(s) {
  $("room-state").textContent = s.state_label;
  if (s.standing !== null && String(s.standing) !== data.standing) {
    data.standing = String(s.standing);
    $("standing-label").textContent = say("standing");
    standingEl.textContent = `${s.standing_text} ${PER_T}`;
    countdownSay.textContent = "";
  }
  minimum = s.minimum;
  $("room-minimum").textContent = s.minimum === null ? "—" : `${s.minimum_text} ${PER_T}`;
  const newEnd = Date.parse(s.ends_at);
  if (newEnd !== endsAt) {
    endsAt = newEnd;
    spoken = new Set();
    showEnds(s.ends_at);
    if (s.phase === "timed") {
      countdownSay.textContent = say("restarted", { left: formatLeft(endsAt - clock.now()) });
    }
  }
  $("room-count").textContent = String(s.bids);
  $("room-no-bids").hidden = s.bids > 0;
  if (s.rows.trim()) {
    const body = document.querySelector("#room-bids tbody");
    body.insertAdjacentHTML("afterbegin", s.rows);
    while (body.rows.length > MAX_ROWS) body.deleteRow(-1);
  }
  showChart(s.chart);
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
  showResult(s.result);
  tick();
}

const poll = startPolling({
  url: () => `${data.stateUrl}?after=${lastSeq}`,
  clock,
  apply,
  POLL_MS,
  wait: () => {
    const open = phase === "free" || phase === "timed";
    return document.hidden ? 10_000 : open ? POLL_MS : 3_000;
  },
});

// ---- the bid box ---------------------------------------------------------------------------

// What the rules refuse, refused here: nothing is sent for it (the server checks again).
function check(raw) {
  const price = parsePrice(raw, room);
  if (leading) throw new Refusal(say("leading"));
  if (price % TICK) throw new Refusal(say("tick", { tick: money(TICK) }));
  if (minimum !== null && price < minimum) throw new Refusal(say("tooLow", { minimum: money(minimum) }));
  return price;
}

const form = $("raise-form");
if (form) {
  const input = form.querySelector("input[name=price]");
  const error = $(`${input.id}-error`);

  const mark = (message) => {
    error.textContent = message || "";
    if (message) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  };
  if (!input.getAttribute("aria-describedby")?.includes(error.id)) describe(input, error);

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
      const typed = parsePrice(input.value, room);
      if (typed >= minimum) base = typed;
    } catch {
      // nothing valid typed: one step above the lowest valid bid
    }
    input.value = decimal(base + stepAt(base), EXP);
    mark("");
    input.focus();
  });

  sendBids(form, {
    say,
    status: $("raise-status"),
    submit: $("raise-submit"),
    check: () => check(input.value),
    refuse: ({ message }) => {
      mark(message);
      input.focus();
    },
    clear: () => mark(""),
    placed: () => {
      input.value = "";
      leading = true;
    },
    then: () => poll(),
  });
}

tick();
setInterval(tick, 500);
