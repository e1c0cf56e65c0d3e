// Test page for the vendored shamir-secret-sharing (auctions/static/auctions/vendor/shamir/):
// tests/auctions/test_browser_shamir.py calls window.shamir through Playwright, with byte
// strings as hex, and the page shows the last split, for the screenshot.
import { combine, split } from "/static/auctions/vendor/shamir/shamir.min.js";

const toHex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

function fromHex(text) {
  if (!/^(?:[0-9a-f]{2})*$/.test(text)) throw new TypeError(`not lowercase hex: ${text}`);
  return new Uint8Array(text.match(/../g)?.map((pair) => parseInt(pair, 16)) ?? []);
}

function show(k, n, secret, shares) {
  const result = document.getElementById("result");
  result.replaceChildren();
  const rows = [
    ["split", `${k} of ${n}`],
    ["secret", secret],
    ...shares.map((share, i) => [`share ${i + 1}`, share]),
  ];
  for (const [term, value] of rows) {
    const dt = document.createElement("dt");
    dt.textContent = term;
    const dd = document.createElement("dd");
    dd.textContent = value;
    result.append(dt, dd);
  }
}

window.shamir = {
  // Splits a fresh random secret of `length` bytes, as a bidder's browser will its key.
  async splitRandom(length, n, k) {
    const secret = crypto.getRandomValues(new Uint8Array(length));
    const shares = (await split(secret, n, k)).map(toHex);
    show(k, n, toHex(secret), shares);
    document.getElementById("status").textContent = "split";
    return { secret: toHex(secret), shares };
  },
  async combine(shares) {
    return toHex(await combine(shares.map(fromHex)));
  },
  // The error split throws, as "Name: message", or null if it split.
  async splitError(length, n, k) {
    return split(new Uint8Array(length), n, k).then(
      () => null,
      (e) => `${e.name}: ${e.message}`,
    );
  },
};
document.getElementById("status").textContent = "ready";
document.body.dataset.ready = "true";
