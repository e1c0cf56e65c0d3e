// Test page for auctions/static/auctions/js/seal.js: the test calls window.sealAndShow (and
// its trustee and by-auction variants) through Playwright, and the page shows what it got, for
// the screenshot.
import { sealBid, sealBidForAuction, sealBidForTrustees } from "/static/auctions/js/seal.js";

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
window.sealBidForTrustees = sealBidForTrustees;
window.sealBidForAuction = sealBidForAuction;
const andShow = (seal, status) => async (bid) => {
  const sealed = await seal(bid);
  show(sealed, { origin: bid.origin ?? bid.sealing?.origin, ...bid });
  document.getElementById("status").textContent = status(bid);
  return sealed;
};
window.sealAndShow = andShow(sealBid, () => "sealed");
window.sealForTrusteesAndShow = andShow(
  sealBidForTrustees,
  (bid) => `sealed to ${bid.threshold} of ${bid.trustees.length} trustees`,
);
window.sealForAuctionAndShow = andShow(sealBidForAuction, (bid) => `sealed (${bid.sealing.mode})`);
document.getElementById("status").textContent = "ready";
document.body.dataset.ready = "true";
