// The bid form of an auction page: a tiers editor that checks a bid against the auction's
// rules, seals it in this browser as the auction's sealing says (seal.js: to k of n trustees,
// or to an operator-held key) and sends only the ciphertext to the API. The plaintext never
// leaves the page. Amending reuses the form.
//
// Before anything is sealed the bidder confirms what it is about to seal: the tiers, the total
// maximum cost, the deposit and the cap, as the clearing will apply them. After the registry
// accepts a version, this browser keeps its tiers, encrypted for the bidder (sealed-records.js),
// so that the page can show what was sealed (sealed.js).
//
// Amounts are integers as soon as they are read: prices in minor currency units per tonne,
// quantities in kg then whole lots. A decimal with more places than allowed is refused, never
// rounded.

import { sealBidForAuction } from "../../auctions/js/seal.js";
import { bidCost, bidLots, decimal, exponent, money, tierCost, tonnes } from "./amounts.js";
import { confirmPending, forgetPending, rememberPending } from "./sealed-records.js";
import { showSealed, standingElsewhere } from "./sealed.js";

const MAX_TIERS = 20;

const form = document.getElementById("bid-form");
const tiersBody = document.getElementById("tiers");
const rowTemplate = document.getElementById("tier-row");
const errors = document.getElementById("bid-errors");
const receiptBox = document.getElementById("bid-receipt");
const review = document.getElementById("bid-review");
const confirmBox = document.getElementById("bid-confirm");
const confirmActions = document.getElementById("confirm-actions");
const sealButton = document.getElementById("confirm-seal");
const amendInput = document.getElementById("amend-bid");
const cancelAmend = document.getElementById("cancel-amend");
const myBids = document.getElementById("my-bids");
const legend = document.getElementById("bid-legend");
const text = document.getElementById("i18n").dataset;
const rules = form.dataset;
// The API's sealing object for this auction (mode, origin, keys), as JSON in data-sealing.
const sealing = JSON.parse(rules.sealing);
const EXP = exponent(rules.currency);
const CUR = rules.currency;
const LOT_KG = Number(rules.lotKg);

// A translated message (the page carries them, in data-* attributes) with {name} filled in.
function say(key, values = {}) {
  const all = { cur: CUR, ...values };
  return (text[key] || key).replace(/\{(\w+)\}/g, (_, name) => String(all[name] ?? ""));
}

class FieldError extends Error {}

function scaled(raw, places) {
  const value = raw.trim();
  const m = /^(\d+)(?:\.(\d+))?$/.exec(value);
  if (!m) throw new FieldError(say("notDecimal", { raw }));
  const frac = (m[2] || "").replace(/0+$/, "");
  if (frac.length > places) throw new FieldError(say("decimals", { places }));
  const whole = BigInt(m[1]) * 10n ** BigInt(places) + BigInt((frac + "0".repeat(places)).slice(0, places) || "0");
  if (whole > BigInt(Number.MAX_SAFE_INTEGER)) throw new FieldError(say("tooLarge"));
  return Number(whole);
}

// Each input's own error, under it and tied to it (aria-describedby, aria-invalid).
function mark(input, message) {
  const slot = input.parentElement.querySelector(".field-error");
  slot.textContent = message || "";
  if (message) input.setAttribute("aria-invalid", "true");
  else input.removeAttribute("aria-invalid");
}

// The per-bidder cap in lots, rounded down as the clearing does (auctions-clearing.md §2).
function capLots() {
  if (!rules.capBp) return null;
  return Number((BigInt(rules.offeredLots) * BigInt(rules.capBp)) / 10000n);
}

function readTiers() {
  const tick = Number(rules.tick), reserve = Number(rules.reserve), lotKg = Number(rules.lotKg);
  const tiers = [];
  const problems = [];
  let rowProblems = 0;
  for (const row of tiersBody.querySelectorAll("tr")) {
    const priceInput = row.querySelector("[name=price]");
    const qtyInput = row.querySelector("[name=quantity]");
    let price = null, lots = null;
    try {
      price = scaled(priceInput.value, EXP);
      if (price % tick) throw new FieldError(say("tick", { tick: decimal(tick, EXP) }));
      if (price < reserve) throw new FieldError(say("reserve", { reserve: decimal(reserve, EXP) }));
      mark(priceInput, "");
    } catch (e) {
      mark(priceInput, e.message);
      price = null;
    }
    try {
      const kg = scaled(qtyInput.value, 3);
      if (kg === 0 || kg % lotKg) throw new FieldError(say("lots", { lot: decimal(lotKg, 3) }));
      lots = kg / lotKg;
      mark(qtyInput, "");
    } catch (e) {
      mark(qtyInput, e.message);
    }
    if (price === null || lots === null) rowProblems += 1;
    else tiers.push({ price, lots });
  }
  if (rowProblems) problems.push(say("rows", { n: rowProblems }));
  if (!rowProblems) {
    const held = Number(rules.deposit), required = Number(rules.depositRequired);
    if (required && held < required) {
      problems.push(say("deposit", { required: decimal(required, EXP), held: decimal(held, EXP) }));
    }
    if (!tiers.length) problems.push(say("none"));
    if (tiers.length > MAX_TIERS) problems.push(say("tooMany", { n: MAX_TIERS }));
    if (new Set(tiers.map((t) => t.price)).size !== tiers.length) problems.push(say("dupe"));
    const lots = bidLots(tiers);
    if (rules.singleLot === "1" && (tiers.length !== 1 || lots !== 1)) problems.push(say("singleLot"));
    // The clearing would keep this bid's best-priced lots up to the cap and drop the rest
    // (auctions-clearing.md §2.2); a single bid over the cap is surely a slip, so this form
    // refuses it rather than send lots that cannot count, and says so.
    const cap = capLots();
    if (cap !== null && lots > cap) problems.push(say("cap", { n: cap, lots }));
    if (rules.guarantee === "1" && tiers.length) {
      const cost = bidCost(tiers, lotKg);
      if (cost > BigInt(held)) {
        problems.push(say("guarantee", { cost: money(cost, CUR), held: money(held, CUR) }));
      }
    }
  }
  return { tiers, problems };
}

let rowCount = 0;

function addRow(price = "", quantity = "") {
  const row = rowTemplate.content.firstElementChild.cloneNode(true);
  rowCount += 1;
  for (const name of ["price", "quantity"]) {
    const input = row.querySelector(`[name=${name}]`);
    const slot = input.parentElement.querySelector(".field-error");
    slot.id = `tier-${rowCount}-${name}-error`;
    input.setAttribute("aria-describedby", slot.id);
  }
  row.querySelector("[name=price]").value = price;
  row.querySelector("[name=quantity]").value = quantity;
  row.querySelector(".remove-tier").addEventListener("click", () => {
    hideConfirmation();
    row.remove();
  });
  tiersBody.append(row);
  return row;
}

function csrfToken() {
  const m = /(?:^|; )csrftoken=([^;]+)/.exec(document.cookie);
  return m ? decodeURIComponent(m[1]) : "";
}

function showReceipt(bid) {
  const r = bid.receipts[bid.receipts.length - 1];
  receiptBox.replaceChildren();
  const p = document.createElement("p");
  p.textContent = say("sent", { bid: bid.id, version: r.version, seq: r.entry_seq, commitment: r.commitment });
  const pre = document.createElement("pre");
  pre.textContent = r.note;
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([r.note], { type: "text/plain" }));
  a.download = `bid-${bid.id}-v${r.version}-receipt.txt`;
  a.textContent = say("download");
  a.id = "receipt-download";
  receiptBox.append(p, pre, a);
  receiptBox.hidden = false;
  receiptBox.dataset.commitment = r.commitment;
  receiptBox.focus(); // a keyboard or screen-reader user lands on the confirmation
}

function resetForm() {
  hideConfirmation();
  tiersBody.replaceChildren();
  addRow();
  amendInput.value = "";
  cancelAmend.hidden = true;
  legend.textContent = legend.dataset.original || legend.textContent;
}

function showProblems(problems) {
  errors.replaceChildren(...problems.map((m) => Object.assign(document.createElement("p"), { textContent: m })));
}

// --- The confirmation before sealing --------------------------------------------------------

// What the bidder confirmed: exactly this is sealed and sent, and any edit to the form
// withdraws it (the bidder confirms again what the form then says).
let pending = null;

function hideConfirmation() {
  pending = null;
  confirmBox.hidden = true;
  confirmActions.hidden = true;
  confirmBox.replaceChildren();
  review.hidden = false;
}

function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

// The deposit and the cap, as the clearing will apply them to all the bidder's standing bids
// together (auctions.md §4 "Combine", auctions-clearing.md §2.2): the ones this device has a
// record of are added to this one; those it has none of are said to be left out.
function limitsSaid(tiers, others) {
  const said = [];
  const held = BigInt(rules.deposit);
  const required = BigInt(rules.depositRequired);
  const cost = bidCost(tiers, LOT_KG);
  const otherCost = others.records.reduce((v, r) => v + bidCost(r.tiers, r.lot_kg), 0n);
  const v = { held: money(held, CUR), required: money(required, CUR), cost: money(cost, CUR) };
  if (rules.guarantee === "1") {
    if (!others.records.length) said.push(["confirm-deposit", say("depositCovers", v)]);
    else if (cost + otherCost <= held) {
      said.push(["confirm-deposit", say("depositCoversAll", { ...v, total: money(cost + otherCost, CUR) })]);
    } else {
      said.push(["confirm-deposit", say("depositShort", { ...v, total: money(cost + otherCost, CUR) })]);
    }
  } else if (required > 0n) {
    said.push(["confirm-deposit", say("depositNoGuarantee", v)]);
  } else {
    said.push(["confirm-deposit", say("depositNone")]);
  }
  const cap = capLots();
  if (cap !== null && rules.singleLot !== "1") {
    const lots = bidLots(tiers);
    const otherLots = others.records.reduce((n, r) => n + bidLots(r.tiers), 0);
    const total = lots + otherLots;
    const c = { cap, lots, others: otherLots, total, over: total - cap };
    if (!others.records.length) said.push(["confirm-cap", say("capWithin", c)]);
    else if (total <= cap) said.push(["confirm-cap", say("capWithinAll", c)]);
    else said.push(["confirm-cap", say("capOver", c)]);
  }
  if (others.unrecorded) said.push(["confirm-unrecorded", say("unrecorded", { n: others.unrecorded })]);
  return said;
}

async function showConfirmation(tiers) {
  const amend = amendInput.value ? Number(amendInput.value) : null;
  let others = { records: [], unrecorded: 0 };
  try {
    others = await standingElsewhere(amend); // an amended bid's old version stops counting
  } catch {
    // No record here (no IndexedDB): the sums are this bid's alone, which the text says.
    others = { records: [], unrecorded: document.querySelectorAll("#my-bids tr[data-status=sealed]").length };
  }
  const account = document.getElementById("bid-account");
  pending = { tiers, account: Number(account.value), amend };
  const cost = bidCost(tiers, LOT_KG);
  const lots = bidLots(tiers);
  const th = (key, num) => el("th", { scope: "col", className: num ? "num" : "", textContent: say(key, { cur: CUR }) });
  const rows = tiers.map((t) =>
    el(
      "tr",
      {},
      el("td", { className: "num", textContent: money(t.price, CUR) }),
      el("td", { className: "num", textContent: String(t.lots) }),
      el("td", { className: "num", textContent: tonnes(t.lots * LOT_KG) }),
      el("td", { className: "num", textContent: money(tierCost(t, LOT_KG), CUR) }),
    ),
  );
  const foot = el(
    "tr",
    {},
    el("th", { scope: "row", textContent: say("confirmTotal") }),
    el("td", { className: "num", id: "confirm-lots", textContent: String(lots) }),
    el("td", { className: "num", textContent: tonnes(lots * LOT_KG) }),
    el("td", { className: "num", textContent: money(cost, CUR) }),
  );
  const heading = el("h3", {
    id: "confirm-h",
    tabIndex: -1,
    textContent: amend ? say("confirmAmendTitle", { bid: amend }) : say("confirmTitle"),
  });
  const total = el(
    "p",
    { id: "confirm-total" },
    say("confirmCost"),
    " ",
    el("strong", { id: "confirm-cost", textContent: `${money(cost, CUR)} ${CUR}` }),
  );
  total.dataset.minor = cost.toString();
  const table = el(
    "table",
    { id: "confirm-tiers" },
    el("thead", {}, el("tr", {}, th("colPrice", true), th("colLots", true), th("colTonnes", true), th("colCost", true))),
    el("tbody", {}, ...rows),
    el("tfoot", {}, foot),
  );
  const limits = limitsSaid(tiers, others).map(([id, words]) => el("p", { id, textContent: words }));
  const where = el("p", { textContent: say("confirmAccount", { account: account.selectedOptions[0]?.textContent ?? "" }) });
  const kept = el("p", { textContent: say("confirmKept") });
  confirmBox.replaceChildren(heading, el("div", { className: "table-wrap" }, table), total, ...limits, where, kept);
  confirmBox.hidden = false;
  confirmActions.hidden = false;
  review.hidden = true;
  heading.focus(); // a keyboard or screen-reader user reads what it is about to seal
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  // Enter in a field while confirming reviews again; only the button under the summary seals.
  errors.textContent = "";
  const { tiers, problems } = readTiers();
  if (problems.length) {
    showProblems(problems);
    // To the first input that is wrong, whose own message says why.
    tiersBody.querySelector("[aria-invalid=true]")?.focus();
    return;
  }
  showConfirmation(tiers);
});
// Any change to what would be sealed withdraws the confirmation.
form.addEventListener("input", (event) => {
  if (pending) hideConfirmation();
});

async function sealAndSend() {
  const { tiers, account, amend } = pending;
  sealButton.disabled = true;
  const label = sealButton.textContent;
  sealButton.textContent = say("sealing");
  let record = null;
  try {
    const sealed = await sealBidForAuction({
      sealing,
      auction: Number(rules.auction),
      bidder: Number(rules.bidder),
      tiers,
    });
    // Kept before it is sent: if the answer is lost, the record still says what was sealed
    // (and the bids table later names its bid by the commitment).
    const fields = {
      org: Number(rules.bidder),
      auction: Number(rules.auction),
      commitment: sealed.commitment,
      tiers,
      currency: CUR,
      lot_kg: LOT_KG,
      account,
    };
    record = await rememberPending(fields).catch(() => null);
    const response = await fetch(amend ? `${rules.amendApi}${amend}` : rules.api, {
      method: amend ? "PUT" : "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify({ ciphertext: sealed.ciphertext, account }),
    });
    const body = await response.json();
    // The registry's refusal, in this page's language when it is one a bidder can meet here.
    if (!response.ok) {
      if (record) await forgetPending(record).catch(() => {});
      record = null;
      throw new Error(text[`code_${body.code}`] ? say(`code_${body.code}`) : body.message || `HTTP ${response.status}`);
    }
    if (body.commitment !== sealed.commitment) throw new Error(say("mismatch"));
    const version = body.receipts[body.receipts.length - 1].version;
    const kept = record ? await confirmPending(record, { bid: body.id, version }).catch(() => null) : null;
    showReceipt(body);
    if (!kept) receiptBox.append(el("p", { className: "notice bad", id: "not-kept", textContent: say("notKept") }));
    resetForm();
    await refreshBids();
  } catch (e) {
    errors.textContent = e.message;
  } finally {
    sealButton.disabled = false;
    sealButton.textContent = label;
  }
}

sealButton.addEventListener("click", () => pending && sealAndSend());
document.getElementById("confirm-back").addEventListener("click", () => {
  hideConfirmation();
  tiersBody.querySelector("input")?.focus();
});

document.getElementById("add-tier").addEventListener("click", () => {
  hideConfirmation();
  addRow().querySelector("input").focus();
});
cancelAmend.addEventListener("click", resetForm);
legend.dataset.original = legend.textContent;
// One listener for the table's amend buttons, so a refreshed table needs no rebinding.
myBids.addEventListener("click", (event) => {
  const button = event.target.closest("button.amend");
  if (!button) return;
  // The registry holds only the old version's ciphertext; this device's record of it, if it
  // has one, is listed under "What you sealed". The bidder enters the new version.
  resetForm();
  amendInput.value = button.dataset.bid;
  legend.textContent = say("amend", { bid: button.dataset.bid });
  cancelAmend.hidden = false;
  form.scrollIntoView();
  tiersBody.querySelector("input").focus();
});

// The bids table as the registry now has it (the new version and its receipt), read from this
// page, and the record of what was sealed drawn against it; if that fails the receipt shown is
// still the confirmation.
async function refreshBids() {
  try {
    const response = await fetch(window.location.href, { credentials: "same-origin" });
    if (!response.ok) return;
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    const fresh = page.getElementById("my-bids");
    if (fresh) myBids.replaceChildren(...fresh.childNodes);
  } catch {
    // Nothing to do: the table is refreshed on the next visit.
  }
  await showSealed();
}
addRow();
