// The bid form of an auction page: a tiers editor that checks a bid against the auction's
// rules, seals it in this browser as the auction's sealing says (seal.js: to k of n trustees,
// or to an operator-held key) and sends only the ciphertext to the API. The plaintext never
// leaves the page. Amending reuses the form.
//
// Amounts are integers as soon as they are read: prices in minor currency units per tonne,
// quantities in kg then whole lots. A decimal with more places than allowed is refused, never
// rounded.

import { sealBidForAuction } from "../../auctions/js/seal.js";

const EXPONENTS = { CNY: 2, USD: 2, EUR: 2, GBP: 2, HKD: 2, SGD: 2, JPY: 0 };
const MAX_TIERS = 20;

const form = document.getElementById("bid-form");
const tiersBody = document.getElementById("tiers");
const rowTemplate = document.getElementById("tier-row");
const errors = document.getElementById("bid-errors");
const receiptBox = document.getElementById("bid-receipt");
const submit = document.getElementById("seal-submit");
const amendInput = document.getElementById("amend-bid");
const cancelAmend = document.getElementById("cancel-amend");
const myBids = document.getElementById("my-bids");
const legend = document.getElementById("bid-legend");
const text = document.getElementById("i18n").dataset;
const rules = form.dataset;
// The API's sealing object for this auction (mode, origin, keys), as JSON in data-sealing.
const sealing = JSON.parse(rules.sealing);
const EXP = EXPONENTS[rules.currency] ?? 2;

// A translated message (the page carries them, in data-* attributes) with {name} filled in.
function say(key, values = {}) {
  return (text[key] || key).replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? ""));
}

// Minor units (or grams) as the decimal people type: 10600 -> "106.00".
function decimal(n, places) {
  if (!places) return String(n);
  const s = String(n).padStart(places + 1, "0");
  return `${s.slice(0, -places)}.${s.slice(-places)}`;
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
    const lots = tiers.reduce((n, t) => n + t.lots, 0);
    if (rules.singleLot === "1" && (tiers.length !== 1 || lots !== 1)) problems.push(say("singleLot"));
    const capBp = rules.capBp ? Number(rules.capBp) : null;
    const capLots = capBp === null ? null : Math.floor((Number(rules.offeredLots) * capBp) / 10000);
    if (capLots !== null && lots > capLots) problems.push(say("cap", { n: capLots }));
    if (rules.guarantee === "1") {
      const value = tiers.reduce((v, t) => v + (t.price * t.lots * lotKg) / 1000, 0);
      if (value > held) problems.push(say("guarantee"));
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
  row.querySelector(".remove-tier").addEventListener("click", () => row.remove());
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
  tiersBody.replaceChildren();
  addRow();
  amendInput.value = "";
  cancelAmend.hidden = true;
  legend.textContent = legend.dataset.original || legend.textContent;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  errors.textContent = "";
  const { tiers, problems } = readTiers();
  if (problems.length) {
    errors.replaceChildren(...problems.map((m) => Object.assign(document.createElement("p"), { textContent: m })));
    // To the first input that is wrong, whose own message says why.
    tiersBody.querySelector("[aria-invalid=true]")?.focus();
    return;
  }
  submit.disabled = true;
  const label = submit.textContent;
  submit.textContent = say("sealing");
  try {
    const sealed = await sealBidForAuction({
      sealing,
      auction: Number(rules.auction),
      bidder: Number(rules.bidder),
      tiers,
    });
    const amend = amendInput.value;
    const response = await fetch(amend ? `${rules.amendApi}${amend}` : rules.api, {
      method: amend ? "PUT" : "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify({
        ciphertext: sealed.ciphertext,
        account: Number(document.getElementById("bid-account").value),
      }),
    });
    const body = await response.json();
    // The registry's refusal, in this page's language when it is one a bidder can meet here.
    if (!response.ok) throw new Error(text[`code_${body.code}`] ? say(`code_${body.code}`) : body.message || `HTTP ${response.status}`);
    if (body.commitment !== sealed.commitment) throw new Error(say("mismatch"));
    showReceipt(body);
    resetForm();
    refreshBids();
  } catch (e) {
    errors.textContent = e.message;
  } finally {
    submit.disabled = false;
    submit.textContent = label;
  }
});

document.getElementById("add-tier").addEventListener("click", () => addRow().querySelector("input").focus());
cancelAmend.addEventListener("click", resetForm);
legend.dataset.original = legend.textContent;
// One listener for the table's amend buttons, so a refreshed table needs no rebinding.
myBids.addEventListener("click", (event) => {
  const button = event.target.closest("button.amend");
  if (!button) return;
  // The old version cannot be shown (only its ciphertext exists): the bidder enters the new one.
  resetForm();
  amendInput.value = button.dataset.bid;
  legend.textContent = say("amend", { bid: button.dataset.bid });
  cancelAmend.hidden = false;
  form.scrollIntoView();
  tiersBody.querySelector("input").focus();
});

// The bids table as the registry now has it (the new version and its receipt), read from this
// page; if that fails the receipt shown is still the confirmation.
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
}
addRow();
