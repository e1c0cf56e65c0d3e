// Seals a sealed-bid auction bid in the bidder's browser (docs/auctions.md §3), so that nobody
// can read it before the auction closes: with `trustees` sealing (§3.6) only k of the auction's
// n trustees together, after the close; with an `operator_key` (§3.1-3.4) the operator holds
// the key and can read bids before the close, which the portal says wherever it seals to one.
//
// HPKE, RFC 9180: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM, base mode, one
// single-shot seal with empty aad. Each seal is the byte layout of Python cryptography's
// Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_128_GCM).encrypt(plaintext, public_key, info=info):
// enc (32 bytes) || AEAD ciphertext and tag. A trustee-sealed bid is n share boxes and a body,
// the layout of bluecarbon_audit.auctions.sealing.seal_threshold. tests/auctions/
// test_browser_seal.py opens what this makes with cryptography's decrypt in a real Chromium.
//
// No inline script and no eval: the site's Content-Security-Policy forbids both.

import {
  Aes128Gcm,
  CipherSuite,
  DhkemX25519HkdfSha256,
  HkdfSha256,
} from "../vendor/hpke/hpke-core.min.js";
import { split } from "../vendor/shamir/shamir.min.js";

const INFO_PREFIX = "bluecarbon/auction-bid/v1\n";
const SHARE_INFO_PREFIX = "bluecarbon/auction-share/v1\n";
// The plaintext is padded to a multiple of this many bytes, so the ciphertext length does not
// tell how many tiers a bid has.
const PAD_BLOCK = 256;
const NONCE_BYTES = 16;
const X25519_PUBLIC_KEY_BYTES = 32;
const X25519_PRIVATE_KEY_BYTES = 32;
// A share of a bid key: its 32 y-bytes, then its x byte (§3.6 step 3).
const SHARE_BYTES = X25519_PRIVATE_KEY_BYTES + 1;
// enc (32) || share (33) || GCM tag (16): every share box has this length, so the server can
// cut the envelope into boxes and body without a key.
const SHARE_BOX_BYTES = 32 + SHARE_BYTES + 16;
const MAX_TRUSTEES = 16; // auctions.models.MAX_TRUSTEES

const suite = new CipherSuite({
  kem: new DhkemX25519HkdfSha256(),
  kdf: new HkdfSha256(),
  aead: new Aes128Gcm(),
});

/**
 * Seals one bid to an auction's operator-held key (`sealing.mode` "operator_key"): the operator
 * can open it before the close.
 *
 * @param {object} bid
 * @param {string} bid.publicKey the auction's X25519 public key: standard base64, padded, of
 *   the raw 32 bytes
 * @param {string} bid.origin the registry's origin, e.g. "bluecarbon.localhost/ledger"
 * @param {number} bid.auction the auction's id
 * @param {number} bid.bidder the bidder's id
 * @param {Array<{price: number, lots: number}>} bid.tiers price (minor units, >= 0) and lots
 *   (>= 1), safe integers
 * @returns {Promise<{ciphertext: string, commitment: string, plaintextLength: number}>}
 *   ciphertext in standard base64, commitment the lowercase hex SHA-256 of its raw bytes
 */
export async function sealBid({ publicKey, origin, auction, bidder, tiers }) {
  requireWebCrypto();
  const recipientKey = decodePublicKey(publicKey, "publicKey");
  checkBid({ origin, auction, bidder, tiers });

  const plaintext = bidPlaintextBytes({ auction, bidder, tiers });
  const sealed = await hpkeSeal(
    await suite.kem.deserializePublicKey(recipientKey),
    bidInfo(origin, auction, bidder),
    plaintext,
  );
  return envelope([sealed], plaintext);
}

/**
 * Seals one bid to an auction's trustees (`sealing.mode` "trustees", docs/auctions.md §3.6):
 * any `threshold` of them open it after the close, fewer cannot, and nor can the operator.
 *
 * A fresh X25519 key pair (the bid key) seals the bid as `sealBid` would; the bid key's 32 raw
 * private bytes are split `threshold`-of-n with Shamir over GF(2^8) (the vendored
 * shamir-secret-sharing), and share i is sealed to trustee i. The result is
 * `share box 1 || ... || share box n || body`.
 *
 * @param {object} bid
 * @param {Array<{publicKey: string}>} bid.trustees the trustees' assigned public keys in the
 *   order of the rules (position 1 first): standard base64 of the raw 32 bytes
 * @param {number} bid.threshold k, 1 <= k <= n
 * @param {string} bid.origin as for sealBid
 * @param {number} bid.auction as for sealBid
 * @param {number} bid.bidder as for sealBid
 * @param {Array<{price: number, lots: number}>} bid.tiers as for sealBid
 * @returns {Promise<{ciphertext: string, commitment: string, plaintextLength: number}>}
 */
export async function sealBidForTrustees({ trustees, threshold, origin, auction, bidder, tiers }) {
  requireWebCrypto();
  if (!Array.isArray(trustees) || trustees.length < 1 || trustees.length > MAX_TRUSTEES) {
    throw new TypeError(`trustees must be an array of 1 to ${MAX_TRUSTEES} {publicKey}`);
  }
  const trusteeKeys = trustees.map((t, i) =>
    decodePublicKey(t?.publicKey, `trustees[${i}].publicKey`),
  );
  // One holder of two positions would hold two shares of every bid key.
  if (new Set(trusteeKeys.map(base64)).size !== trusteeKeys.length) {
    throw new TypeError("trustees must have distinct public keys");
  }
  if (!Number.isSafeInteger(threshold) || threshold < 1 || threshold > trustees.length) {
    throw new RangeError(`threshold must be an integer from 1 to ${trustees.length}`);
  }
  checkBid({ origin, auction, bidder, tiers });
  const recipients = await Promise.all(trusteeKeys.map((k) => suite.kem.deserializePublicKey(k)));

  const plaintext = bidPlaintextBytes({ auction, bidder, tiers });
  const bidKey = await suite.kem.generateKeyPair();
  const body = await hpkeSeal(bidKey.publicKey, bidInfo(origin, auction, bidder), plaintext);
  const secret = new Uint8Array(await suite.kem.serializePrivateKey(bidKey.privateKey));
  let shares = [];
  try {
    if (secret.length !== X25519_PRIVATE_KEY_BYTES) {
      throw new Error("the bid key did not serialize to 32 raw bytes");
    }
    shares = await splitKey(secret, trustees.length, threshold);
    const boxes = [];
    for (const [i, share] of shares.entries()) {
      const position = i + 1;
      const box = await hpkeSeal(
        recipients[i],
        shareInfo(origin, auction, bidder, position),
        share,
      );
      if (box.length !== SHARE_BOX_BYTES) {
        throw new Error(`share box ${position} is ${box.length} bytes, not ${SHARE_BOX_BYTES}`);
      }
      boxes.push(box);
    }
    return envelope([...boxes, body], plaintext);
  } finally {
    // Best effort: the key's CryptoKey object is beyond reach, but no copy of the raw bytes
    // need outlive the seal.
    secret.fill(0);
    for (const share of shares) share.fill(0);
  }
}

/**
 * Seals one bid as the auction says: `sealing` is the `sealing` object of
 * `GET /api/v1/auctions/{id}` (the portal's bid page embeds the same object), and its `mode`
 * chooses sealBidForTrustees or sealBid. The API's info prefixes are checked against the ones
 * this module builds, so a client and a registry that disagree on the bytes fail here, before
 * a bid is sent that would never open.
 *
 * @param {object} bid
 * @param {object} bid.sealing {mode, origin, info_prefix, share_info_prefix, public_key,
 *   threshold, trustees: [{position, public_key}]}
 * @param {number} bid.auction the auction's id
 * @param {number} bid.bidder the bidder's id
 * @param {Array<{price: number, lots: number}>} bid.tiers as for sealBid
 * @returns {Promise<{ciphertext: string, commitment: string, plaintextLength: number}>}
 */
export async function sealBidForAuction({ sealing, auction, bidder, tiers }) {
  if (sealing === null || typeof sealing !== "object") {
    throw new TypeError("sealing must be the auction's sealing object (GET /api/v1/auctions/{id})");
  }
  const { mode, origin } = sealing;
  checkOrigin(origin);
  checkId("auction", auction);
  checkPrefix("info_prefix", sealing.info_prefix, `${INFO_PREFIX}${origin}\n${auction}\n`);
  if (mode === "operator_key") {
    return sealBid({ publicKey: sealing.public_key, origin, auction, bidder, tiers });
  }
  if (mode !== "trustees") {
    throw new TypeError(`unknown sealing mode ${JSON.stringify(mode)}`);
  }
  checkPrefix(
    "share_info_prefix",
    sealing.share_info_prefix,
    `${SHARE_INFO_PREFIX}${origin}\n${auction}\n`,
  );
  const trustees = Array.isArray(sealing.trustees) ? [...sealing.trustees] : [];
  trustees.sort((a, b) => a?.position - b?.position);
  // The share boxes are in the order of the positions, which are 1..n: a gap or a repeat
  // would put a share in the wrong trustee's place.
  trustees.forEach((t, i) => {
    if (t?.position !== i + 1) {
      throw new TypeError("sealing.trustees must have the positions 1 to n, each once");
    }
  });
  return sealBidForTrustees({
    trustees: trustees.map((t) => ({ publicKey: t.public_key })),
    threshold: sealing.threshold,
    origin,
    auction,
    bidder,
    tiers,
  });
}

function requireWebCrypto() {
  if (!globalThis.isSecureContext || globalThis.crypto?.subtle === undefined) {
    throw new Error("sealing a bid needs WebCrypto, which needs a secure context (HTTPS)");
  }
}

function checkBid({ origin, auction, bidder, tiers }) {
  checkOrigin(origin);
  checkId("auction", auction);
  checkId("bidder", bidder);
  checkTiers(tiers);
}

function checkPrefix(name, given, expected) {
  if (given !== undefined && given !== expected) {
    throw new TypeError(
      `sealing.${name} is not the one this client builds: ${JSON.stringify(given)}`,
    );
  }
}

// §3.2
function bidInfo(origin, auction, bidder) {
  return new TextEncoder().encode(
    `${INFO_PREFIX}${origin}\n${String(auction)}\n${String(bidder)}`,
  );
}

// §3.6 step 4
function shareInfo(origin, auction, bidder, position) {
  return new TextEncoder().encode(
    `${SHARE_INFO_PREFIX}${origin}\n${String(auction)}\n${String(bidder)}\n${String(position)}`,
  );
}

function bidPlaintextBytes({ auction, bidder, tiers }) {
  const nonce = base64url(crypto.getRandomValues(new Uint8Array(NONCE_BYTES)));
  return new TextEncoder().encode(bidPlaintext({ auction, bidder, nonce, tiers }));
}

// enc || ct, as one byte array.
async function hpkeSeal(recipientPublicKey, info, plaintext) {
  const { ct, enc } = await suite.seal({ recipientPublicKey, info }, plaintext);
  return concatBytes(new Uint8Array(enc), new Uint8Array(ct));
}

async function envelope(parts, plaintext) {
  const sealed = concatBytes(...parts);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", sealed));
  return {
    ciphertext: base64(sealed),
    commitment: hex(digest),
    plaintextLength: plaintext.length,
  };
}

// n shares of the bid key, any k of which give it back (§3.6 step 3). The vendored library
// takes 2 <= k <= n; k = 1 is the polynomial of degree 0, every share's y the secret itself,
// with distinct nonzero x as the library would draw them.
async function splitKey(secret, n, k) {
  const shares =
    k === 1
      ? distinctXs(n).map((x) => concatBytes(secret, Uint8Array.of(x)))
      : await split(secret, n, k);
  if (shares.length !== n || shares.some((s) => s.length !== SHARE_BYTES)) {
    throw new Error(`the split did not give ${n} shares of ${SHARE_BYTES} bytes`);
  }
  return shares;
}

// n distinct x coordinates from 1..255, uniformly, by rejection of repeats.
function distinctXs(n) {
  const xs = new Set();
  while (xs.size < n) {
    const [x] = crypto.getRandomValues(new Uint8Array(1));
    if (x !== 0) xs.add(x);
  }
  return [...xs];
}

// RFC 8785 canonical JSON, written out by hand: members in sorted order (auction, bidder, nonce,
// pad, tiers, v; lots, price), no whitespace. Every value is a safe integer (whose JavaScript
// String() is its RFC 8785 form, §3.2.2.3) or an ASCII string needing no escape (base64url, and
// '0's), so nothing here depends on object key order or JSON.stringify.
function bidPlaintext({ auction, bidder, nonce, tiers }) {
  const tierList = tiers.map(({ price, lots }) => `{"lots":${lots},"price":${price}}`).join(",");
  const render = (pad) =>
    `{"auction":${auction},"bidder":${bidder},"nonce":"${nonce}","pad":"${pad}",` +
    `"tiers":[${tierList}],"v":1}`;
  // Every character is ASCII, so the UTF-8 length is the string length, and each '0' of pad
  // adds exactly one byte.
  const unpadded = render("").length;
  return render("0".repeat((PAD_BLOCK - (unpadded % PAD_BLOCK)) % PAD_BLOCK));
}

function decodePublicKey(publicKey, name) {
  // 32 bytes in padded standard base64 are exactly 43 characters and one '='.
  if (typeof publicKey !== "string" || !/^[A-Za-z0-9+/]{43}=$/.test(publicKey)) {
    throw new TypeError(`${name} must be the standard base64 of a raw 32-byte X25519 key`);
  }
  const bytes = Uint8Array.from(atob(publicKey), (c) => c.charCodeAt(0));
  if (bytes.length !== X25519_PUBLIC_KEY_BYTES) {
    throw new TypeError(`${name} must be the standard base64 of a raw 32-byte X25519 key`);
  }
  return bytes;
}

function checkOrigin(origin) {
  // info is newline-separated, so a newline in origin would let two different (origin,
  // auction, bidder) triples give the same info. Printable ASCII only.
  if (typeof origin !== "string" || !/^[\x21-\x7e]+$/.test(origin)) {
    throw new TypeError("origin must be a non-empty string of printable ASCII without spaces");
  }
}

function checkId(name, value) {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(`${name} must be a safe integer >= 1`);
  }
}

function checkTiers(tiers) {
  if (!Array.isArray(tiers) || tiers.length === 0) {
    throw new TypeError("tiers must be a non-empty array of {price, lots}");
  }
  for (const [i, tier] of tiers.entries()) {
    if (tier === null || typeof tier !== "object") {
      throw new TypeError(`tiers[${i}] must be an object {price, lots}`);
    }
    const extra = Object.keys(tier).filter((key) => key !== "price" && key !== "lots");
    if (extra.length > 0) {
      throw new TypeError(`tiers[${i}] has unknown members: ${extra.join(", ")}`);
    }
    if (!Number.isSafeInteger(tier.price) || tier.price < 0) {
      throw new RangeError(`tiers[${i}].price must be a safe integer >= 0`);
    }
    if (!Number.isSafeInteger(tier.lots) || tier.lots < 1) {
      throw new RangeError(`tiers[${i}].lots must be a safe integer >= 1`);
    }
  }
}

function concatBytes(...parts) {
  const out = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

function binaryString(bytes) {
  let s = "";
  for (const byte of bytes) {
    s += String.fromCharCode(byte);
  }
  return s;
}

function base64(bytes) {
  return btoa(binaryString(bytes));
}

// RFC 4648 §5, without padding.
function base64url(bytes) {
  return base64(bytes).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function hex(bytes) {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}
