// Test page for auctions/static/auctions/js/seal.js: the test calls window.sealAndShow through
// Playwright, and the page shows what it got, for the screenshot.
import { sealBid } from "/static/auctions/js/seal.js";

function show(sealed, bid) {
  const result = document.getElementById("result");
  result.replaceChildren();
  const rows = [
    ["origin", bid.origin],
    ["auction / bidder", `${bid.auction} / ${bid.bidder}`],
    ["tiers", JSON.stringify(bid.tiers)],
    ["plaintext length (bytes)", String(sealed.plaintextLength)],
    ["ciphertext (base64)", sealed.ciphertext],
    ["commitment (SHA-256)", sealed.commitment],
  ];
  for (const [term, value] of rows) {
    const dt = document.createElement("dt");
    dt.textContent = term;
    const dd = document.createElement("dd");
    dd.textContent = value;
    result.append(dt, dd);
  }
}

window.sealBid = sealBid;
window.sealAndShow = async (bid) => {
  const sealed = await sealBid(bid);
  show(sealed, bid);
  document.getElementById("status").textContent = "sealed";
  return sealed;
};
document.getElementById("status").textContent = "ready";
document.body.dataset.ready = "true";
