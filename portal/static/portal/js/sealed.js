// "What you sealed, on this device": the auction page lists the prices and lots of the
// bidder's own bids from the record this browser keeps (sealed-records.js), decrypted here and
// never sent anywhere, next to what the registry lists (the bids table's rows name each bid's
// versions and commitments). It marks which version counts, which were amended or withdrawn,
// and a record of a commitment the registry does not list. It exports the records under a
// passphrase and imports such a file from another device.

import { bidCost, bidLots, money, tonnes } from "./amounts.js";
import {
  RecordFileError,
  confirmPending,
  exportFile,
  importFile,
  readRecords,
} from "./sealed-records.js";

const section = document.getElementById("sealed");
const text = document.getElementById("i18n-sealed")?.dataset ?? {};
const here = section?.dataset ?? {};
const org = Number(here.org);
const auction = Number(here.auction);
const MIN_PASSPHRASE = 12;

function say(key, values = {}) {
  return (text[key] || key).replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? ""));
}

function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

/** The registry's view of the bidder's bids in this auction, read from the bids table: per
 * bid its current version, status and, per version, the receipt's action and commitment. */
export function serverBids() {
  const bids = new Map();
  for (const row of document.querySelectorAll("#my-bids tr[data-bid]")) {
    const receipts = new Map();
    for (const item of (row.dataset.receipts || "").split(/\s+/).filter(Boolean)) {
      const [version, action, commitment] = item.split(":");
      receipts.set(Number(version), { action, commitment });
    }
    const sealedVersions = [...receipts].filter(([, r]) => r.action !== "withdraw").map(([v]) => v);
    bids.set(Number(row.dataset.bid), {
      version: Number(row.dataset.version),
      status: row.dataset.status,
      receipts,
      latest: Math.max(0, ...sealedVersions), // the last version with prices: the one that counts
    });
  }
  return bids;
}

function stateOf(record, bids) {
  if (record.broken) return { state: "broken" };
  if (record.bid === 0) return { state: "pending" };
  const b = bids.get(record.bid);
  const r = b?.receipts.get(record.version);
  if (!r || r.action === "withdraw" || r.commitment !== record.commitment) return { state: "unlisted" };
  if (record.version < b.latest) return { state: "amended", by: b.latest };
  if (b.status === "withdrawn") return { state: "withdrawn" };
  return { state: "counts" };
}

// A record sent but never confirmed (the answer was lost) takes its bid and version from the
// receipt that carries its commitment, if the registry lists one.
async function settlePending(records, bids) {
  const out = [];
  for (const r of records) {
    if (r.bid !== 0 || r.broken) {
      out.push(r);
      continue;
    }
    let found = null;
    for (const [bid, b] of bids) {
      for (const [version, receipt] of b.receipts) {
        if (receipt.action !== "withdraw" && receipt.commitment === r.commitment) found = { bid, version };
      }
    }
    out.push(found ? { ...(await confirmPending(r, found)), broken: false } : r);
  }
  return out;
}

/** This auction's records with their state against the bids table. */
export async function current() {
  const bids = serverBids();
  const records = (await settlePending(await readRecords(org, auction), bids)).map((r) => ({
    ...r,
    ...stateOf(r, bids),
  }));
  return { records, bids };
}

/** For the confirmation before sealing: the bidder's other bids that stand, as recorded here,
 * and how many standing bids the registry lists that this device has no record of. */
export async function standingElsewhere(excludeBid) {
  const { records, bids } = await current();
  const counting = records.filter((r) => r.state === "counts" && r.bid !== excludeBid);
  const recorded = new Set(counting.map((r) => r.bid));
  let unrecorded = 0;
  for (const [bid, b] of bids) {
    if (bid !== excludeBid && b.status === "sealed" && !recorded.has(bid)) unrecorded += 1;
  }
  return { records: counting, unrecorded };
}

function stateText(r) {
  switch (r.state) {
    case "counts":
      return say("stateCounts");
    case "amended":
      return say("stateAmended", { version: r.by });
    case "withdrawn":
      return say("stateWithdrawn");
    case "pending":
      return say("statePending");
    case "broken":
      return say("stateBroken");
    default:
      return say("stateUnlisted");
  }
}

function tiersText(tiers, currency) {
  return tiers.map((t) => `${money(t.price, currency)}: ${t.lots}`).join("; ");
}

/** Draw the table of what this device has recorded for this auction. */
export async function showSealed() {
  if (!section) return;
  const box = document.getElementById("sealed-records");
  let found;
  try {
    found = await current();
  } catch (e) {
    box.replaceChildren(el("p", { className: "notice bad", textContent: say("unavailable", { why: e.message }) }));
    return;
  }
  const { records, bids } = found;
  const rows = records.map((r) => {
    const tr = el("tr");
    tr.dataset.bid = String(r.bid);
    tr.dataset.version = String(r.version);
    tr.dataset.state = r.state;
    tr.dataset.commitment = r.commitment;
    const tiers = r.broken ? "—" : tiersText(r.tiers, r.currency);
    tr.append(
      el("td", { textContent: r.bid ? String(r.bid) : "—" }),
      el("td", { textContent: r.version ? String(r.version) : "—" }),
      el("td", { className: "sealed-tiers", textContent: tiers }),
      el("td", { className: "num", textContent: r.broken ? "—" : `${bidLots(r.tiers)} (${tonnes(bidLots(r.tiers) * r.lot_kg)} t)` }),
      el("td", { className: "num", textContent: r.broken ? "—" : `${money(bidCost(r.tiers, r.lot_kg), r.currency)} ${r.currency}` }),
      el("td", { className: `sealed-state ${r.state}` }, r.state === "counts" ? el("strong", { textContent: stateText(r) }) : stateText(r)),
    );
    return tr;
  });
  const recorded = new Set(records.filter((r) => !r.broken).map((r) => r.bid));
  for (const [bid, b] of bids) {
    if (recorded.has(bid)) continue;
    const tr = el("tr");
    tr.dataset.bid = String(bid);
    tr.dataset.state = "missing";
    tr.append(
      el("td", { textContent: String(bid) }),
      el("td", { textContent: String(b.version) }),
      el("td", { colSpan: 3, textContent: say("missing") }),
      el("td", { className: "sealed-state missing", textContent: b.status === "withdrawn" ? say("stateWithdrawn") : "" }),
    );
    rows.push(tr);
  }
  if (!rows.length) {
    box.replaceChildren(el("p", { textContent: say("empty") }));
    return;
  }
  rows.sort((x, y) => Number(x.dataset.bid) - Number(y.dataset.bid) || Number(x.dataset.version || 0) - Number(y.dataset.version || 0));
  const head = el(
    "tr",
    {},
    ...["colBid", "colVersion", "colTiers", "colLots", "colCost", "colState"].map((k, i) =>
      el("th", { scope: "col", className: i === 3 || i === 4 ? "num" : "", textContent: say(k) }),
    ),
  );
  box.replaceChildren(
    el("div", { className: "table-wrap" }, el("table", { id: "sealed-table" }, el("thead", {}, head), el("tbody", {}, ...rows))),
  );
}

function fail(region, input, message) {
  region.textContent = message;
  if (input) {
    input.setAttribute("aria-invalid", "true");
    input.focus();
  }
}

function clearErrors(form, region) {
  region.textContent = "";
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
}

function fileError(e) {
  if (!(e instanceof RecordFileError)) return say("importFailed", { why: e.message });
  return say(`file_${e.code}`, { detail: e.detail });
}

function wireExport() {
  const form = document.getElementById("sealed-export");
  const pass = document.getElementById("export-pass");
  const again = document.getElementById("export-pass-again");
  const errors = document.getElementById("export-errors");
  const result = document.getElementById("export-result");
  const button = form.querySelector("button[type=submit]");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form, errors);
    result.replaceChildren();
    if ([...pass.value].length < MIN_PASSPHRASE) return fail(errors, pass, say("passShort", { n: MIN_PASSPHRASE }));
    if (pass.value !== again.value) return fail(errors, again, say("passDiffer"));
    button.disabled = true;
    try {
      const { bytes, count } = await exportFile({ org, origin: here.origin, passphrase: pass.value });
      pass.value = again.value = "";
      const name = `sealed-bids-${org}-${new Date().toISOString().slice(0, 10)}.bcbids`;
      const link = el("a", {
        id: "export-download",
        href: URL.createObjectURL(new Blob([bytes], { type: "application/octet-stream" })),
        download: name,
        textContent: say("download", { file: name }),
      });
      result.append(el("span", { textContent: say("exported", { n: count }) }), " ", link);
      link.focus();
    } catch (e) {
      fail(errors, null, say("exportFailed", { why: e.message }));
    } finally {
      button.disabled = false;
    }
  });
}

function wireImport() {
  const form = document.getElementById("sealed-import");
  const file = document.getElementById("import-file");
  const pass = document.getElementById("import-pass");
  const errors = document.getElementById("import-errors");
  const result = document.getElementById("import-result");
  const button = form.querySelector("button[type=submit]");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form, errors);
    result.textContent = "";
    const chosen = file.files?.[0];
    if (!chosen) return fail(errors, file, say("chooseFile"));
    if (!pass.value) return fail(errors, pass, say("passMissing"));
    button.disabled = true;
    try {
      const bytes = new Uint8Array(await chosen.arrayBuffer());
      const { added, known } = await importFile({ org, origin: here.origin, bytes, passphrase: pass.value });
      pass.value = "";
      result.textContent = say("imported", { added, known });
      await showSealed();
    } catch (e) {
      const wrongPass = e instanceof RecordFileError && e.code === "passphrase";
      fail(errors, wrongPass ? pass : file, fileError(e));
    } finally {
      button.disabled = false;
    }
  });
}

if (section) {
  wireExport();
  wireImport();
  showSealed();
}
