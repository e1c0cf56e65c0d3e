// Regenerates the JavaScript-made members of shamir.json beside this file, from the vendored
// bundle the browser loads (auctions/static/auctions/vendor/shamir/shamir.min.js), and checks the
// Python-made "fixed" vectors with that bundle's combine. From the repository root, Node 20:
//
//     node audit/tests/vectors/make_shamir_vectors.mjs
//
// "fixed" is kept as it is (Python's split_with made it; audit/tests/test_shamir.py checks it
// does so still). "js_split" gets fresh random secrets and shares on every run; "js_refuses" is
// what the library says to the splits it refuses. Exits 1, writing nothing, if a check fails.
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const VENDOR = new URL("../../../auctions/static/auctions/vendor/shamir/", import.meta.url);
const BUNDLE = new URL("shamir.min.js", VENDOR);
const VECTORS = new URL("shamir.json", import.meta.url);
const { split, combine } = await import(BUNDLE.href);

const KN = [[2, 2], [2, 3], [3, 5], [5, 5]];
const SECRET_LENGTHS = [1, 16, 32];
// Splits the library refuses: threshold 1 (1 of 1, 1 of 3), an empty secret, more than 255
// shares, fewer shares than the threshold.
const REFUSED = [
  { secret_length: 1, n: 1, k: 1 },
  { secret_length: 32, n: 3, k: 1 },
  { secret_length: 0, n: 3, k: 2 },
  { secret_length: 32, n: 256, k: 2 },
  { secret_length: 32, n: 2, k: 3 },
  { secret_length: 32, n: 256, k: 256 },
];

const DESCRIPTION = [
  "Shamir secret-sharing vectors for audit/bluecarbon_audit/auctions/shamir.py and the",
  "browser's vendored shamir-secret-sharing (library.bundle). Field: GF(2^8) modulo",
  "x^8+x^4+x^3+x+1 (0x11b), one polynomial per secret byte. Byte strings are lowercase hex. A",
  "share is y (one byte per secret byte, in order) followed by its x (1 byte, 1..255), so its",
  "last two hex digits are its x. Any k of a vector's shares give its secret.",
  "'fixed': {comment, k, n, secret, coefficients, xs, shares}, made by Python's",
  "shamir.split_with: byte i's polynomial is secret[i] + coefficients[0][i]*x +",
  "coefficients[1][i]*x^2 + ... (k-1 rows), and shares[m] is its value at xs[m]; the first two",
  "can be checked by hand. 'js_split': {k, n, secret, shares}, made by the JavaScript split",
  "from a random secret. 'js_refuses': {secret_length, n, k, error}, splits the JavaScript",
  "library refuses with that error; Python's split refuses them too. The JavaScript combine",
  "gave the secret from every k-subset of every vector when this file was written. To",
  "regenerate js_split and js_refuses (fixed is kept): node",
  "audit/tests/vectors/make_shamir_vectors.mjs",
].join(" ");

const hex = (bytes) => Buffer.from(bytes).toString("hex");
const unhex = (text) => new Uint8Array(Buffer.from(text, "hex"));

function* subsets(items, size, start = 0) {
  if (size === 0) {
    yield [];
    return;
  }
  for (let i = start; i <= items.length - size; i++) {
    for (const rest of subsets(items, size - 1, i + 1)) yield [items[i], ...rest];
  }
}

async function check(vector, name) {
  const shares = vector.shares.map(unhex);
  if (shares.length !== vector.n) {
    throw new Error(`${name}: ${shares.length} shares, n is ${vector.n}`);
  }
  for (const subset of subsets(shares, vector.k)) {
    const secret = hex(await combine(subset));
    if (secret !== vector.secret) throw new Error(`${name}: a k-subset gives ${secret}`);
  }
}

async function main() {
  const old = JSON.parse(readFileSync(VECTORS, "utf8"));
  for (const [i, vector] of old.fixed.entries()) await check(vector, `fixed[${i}]`);

  const jsSplit = [];
  for (const [k, n] of KN) {
    for (const length of SECRET_LENGTHS) {
      const secret = crypto.getRandomValues(new Uint8Array(length));
      const vector = { k, n, secret: hex(secret), shares: (await split(secret, n, k)).map(hex) };
      await check(vector, `js_split ${k} of ${n}, ${length} bytes`);
      jsSplit.push(vector);
    }
  }

  const jsRefuses = [];
  for (const { secret_length, n, k } of REFUSED) {
    const error = await split(new Uint8Array(secret_length), n, k).then(
      () => null,
      (e) => `${e.name}: ${e.message}`,
    );
    if (error === null) {
      throw new Error(`split(${secret_length} bytes, ${n}, ${k}) was not refused`);
    }
    jsRefuses.push({ secret_length, n, k, error });
  }

  const bundle = readFileSync(BUNDLE);
  const build = JSON.parse(readFileSync(new URL("build/package.json", VENDOR)));
  const vectors = {
    description: DESCRIPTION,
    library: {
      name: "shamir-secret-sharing",
      version: build.dependencies["shamir-secret-sharing"],
      bundle: "auctions/static/auctions/vendor/shamir/shamir.min.js",
      bundle_sha256: createHash("sha256").update(bundle).digest("hex"),
    },
    fixed: old.fixed,
    js_split: jsSplit,
    js_refuses: jsRefuses,
  };
  writeFileSync(VECTORS, `${JSON.stringify(vectors, null, 2)}\n`);
  console.log(`wrote ${fileURLToPath(VECTORS)}`);
}

main().catch((error) => {
  console.error(error.message);
  process.exit(1);
});
