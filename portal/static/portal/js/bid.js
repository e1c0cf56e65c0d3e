// The bid form of an auction page: a tiers editor that checks a bid against the auction's
// rules, seals it in this browser (seal.js, HPKE to the auction's key) and sends only the
// ciphertext to the API. The plaintext never leaves the page. Amending reuses the form.
//
// Amounts are integers as soon as they are read: prices in minor currency units per tonne,
// quantities in kg then whole lots. A decimal with more places than allowed is refused, never
// rounded.

import { sealBid } from "../../auctions/js/seal.js";

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
const legend = document.getElementById("bid-legend");
const text = document.getElementById("i18n").dataset;
const rules = form.dataset;

function scaled(raw, places, what) {
  const value = raw.trim();
  const m = /^(\d+)(?:\.(\d+))?$/.exec(value);
  if (!m) throw new Error(`${what}: "${raw}" is not a decimal number`);
  const frac = (m[2] || "").replace(/0+$/, "");
  if (frac.length > places) throw new Error(`${what}: at most ${places} decimals ("${raw}")`);
  const whole = BigInt(m[1]) * 10n ** BigInt(places) + BigInt((frac + "0".repeat(places)).slice(0, places) || "0");
  if (whole > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`${what}: too large`);
  return Number(whole);
}

function readTiers() {
  const exp = EXPONENTS[rules.currency];
  const tick = Number(rules.tick), reserve = Number(rules.reserve), lotKg = Number(rules.lotKg);
  const tiers = [];
  const problems = [];
  for (const [i, row] of [...tiersBody.querySelectorAll("tr")].entries()) {
    const priceInput = row.querySelector("[name=price]");
    const qtyInput = row.querySelector("[name=quantity]");
    priceInput.removeAttribute("aria-invalid");
    qtyInput.removeAttribute("aria-invalid");
    try {
      const price = scaled(priceInput.value, exp, `row ${i + 1} price`);
      if (price % tick) throw new Error(`row ${i + 1}: the price must be a multiple of the tick`);
      if (price < reserve) throw new Error(`row ${i + 1}: the price is below the reserve`);
      const kg = scaled(qtyInput.value, 3, `row ${i + 1} quantity`);
      if (kg === 0 || kg % lotKg) throw new Error(`row ${i + 1}: the quantity must be whole lots`);
      tiers.push({ price, lots: kg / lotKg });
    } catch (e) {
      problems.push(e.message);
      priceInput.setAttribute("aria-invalid", "true");
      qtyInput.setAttribute("aria-invalid", "true");
    }
  }
  if (!problems.length) {
    if (!tiers.length) problems.push("add at least one price and quantity");
    if (tiers.length > MAX_TIERS) problems.push(`at most ${MAX_TIERS} prices in one bid`);
    if (new Set(tiers.map((t) => t.price)).size !== tiers.length) problems.push("each price once");
    const lots = tiers.reduce((n, t) => n + t.lots, 0);
    if (rules.singleLot === "1" && (tiers.length !== 1 || lots !== 1)) {
      problems.push("this auction sells one lot: one price for the whole lot");
    }
    const capBp = rules.capBp ? Number(rules.capBp) : null;
    const capLots = capBp === null ? null : Math.floor((Number(rules.offeredLots) * capBp) / 10000);
    if (capLots !== null && lots > capLots) {
      problems.push(`the cap is ${capLots} lots for one bidder (lots beyond it would be trimmed)`);
    }
    if (rules.guarantee === "1") {
      const value = tiers.reduce((v, t) => v + (t.price * t.lots * lotKg) / 1000, 0);
      if (value > Number(rules.deposit)) problems.push("the bid is worth more than your deposit covers");
    }
  }
  return { tiers, problems };
}

function addRow(price = "", quantity = "") {
  const row = rowTemplate.content.firstElementChild.cloneNode(true);
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
  p.textContent = `${text.sent} bid ${bid.id}, version ${r.version}, ledger entry ${r.entry_seq}, commitment ${r.commitment}`;
  const pre = document.createElement("pre");
  pre.textContent = r.note;
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([r.note], { type: "text/plain" }));
  a.download = `bid-${bid.id}-v${r.version}-receipt.txt`;
  a.textContent = text.download;
  a.id = "receipt-download";
  receiptBox.append(p, pre, a);
  receiptBox.hidden = false;
  receiptBox.dataset.commitment = r.commitment;
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
    errors.textContent = problems.join(" · ");
    return;
  }
  submit.disabled = true;
  const label = submit.textContent;
  submit.textContent = text.sealing;
  try {
    const sealed = await sealBid({
      publicKey: rules.publicKey,
      origin: rules.origin,
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
    if (!response.ok) throw new Error(body.message || `HTTP ${response.status}`);
    if (body.commitment !== sealed.commitment) throw new Error("the server's commitment is not our ciphertext's");
    showReceipt(body);
    resetForm();
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
for (const button of document.querySelectorAll("button.amend")) {
  button.addEventListener("click", () => {
    // The old version cannot be shown (only its ciphertext exists): the bidder enters the new one.
    resetForm();
    amendInput.value = button.dataset.bid;
    legend.textContent = `${text.amend} ${button.dataset.bid}`;
    cancelAmend.hidden = false;
    form.scrollIntoView();
    tiersBody.querySelector("input").focus();
  });
}
addRow();
