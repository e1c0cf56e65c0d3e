// Seals a sealed-bid auction bid in the bidder's browser, so that nobody (not the server, not
// an operator) can read it before the auction closes and the auction key is revealed.
//
// HPKE, RFC 9180: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM, base mode, one
// single-shot seal with empty aad. The output is the byte layout of Python cryptography's
// Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_128_GCM).encrypt(plaintext, public_key, info=info):
// enc (32 bytes) || AEAD ciphertext and tag. tests/auctions/test_browser_seal.py opens what this
// makes with cryptography's decrypt in a real Chromium.
//
// No inline script and no eval: the site's Content-Security-Policy forbids both.

import {
  Aes128Gcm,
  CipherSuite,
  DhkemX25519HkdfSha256,
  HkdfSha256,
} from "../vendor/hpke/hpke-core.min.js";

const INFO_PREFIX = "bluecarbon/auction-bid/v1\n";
// The plaintext is padded to a multiple of this many bytes, so the ciphertext length does not
// tell how many tiers a bid has.
const PAD_BLOCK = 256;
const NONCE_BYTES = 16;
const X25519_PUBLIC_KEY_BYTES = 32;

const suite = new CipherSuite({
  kem: new DhkemX25519HkdfSha256(),
  kdf: new HkdfSha256(),
  aead: new Aes128Gcm(),
});

/**
 * Seals one bid for one auction.
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
  if (!globalThis.isSecureContext || globalThis.crypto?.subtle === undefined) {
    throw new Error("sealing a bid needs WebCrypto, which needs a secure context (HTTPS)");
  }
  const recipientKey = decodePublicKey(publicKey);
  checkOrigin(origin);
  checkId("auction", auction);
  checkId("bidder", bidder);
  checkTiers(tiers);

  const encoder = new TextEncoder();
  const info = encoder.encode(`${INFO_PREFIX}${origin}\n${String(auction)}\n${String(bidder)}`);
  const nonce = base64url(crypto.getRandomValues(new Uint8Array(NONCE_BYTES)));
  const plaintext = encoder.encode(bidPlaintext({ auction, bidder, nonce, tiers }));

  const { ct, enc } = await suite.seal(
    { recipientPublicKey: await suite.kem.deserializePublicKey(recipientKey), info },
    plaintext,
  );
  const sealed = concatBytes(new Uint8Array(enc), new Uint8Array(ct));
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", sealed));
  return {
    ciphertext: base64(sealed),
    commitment: hex(digest),
    plaintextLength: plaintext.length,
  };
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

function decodePublicKey(publicKey) {
  // 32 bytes in padded standard base64 are exactly 43 characters and one '='.
  if (typeof publicKey !== "string" || !/^[A-Za-z0-9+/]{43}=$/.test(publicKey)) {
    throw new TypeError("publicKey must be the standard base64 of a raw 32-byte X25519 key");
  }
  const bytes = Uint8Array.from(atob(publicKey), (c) => c.charCodeAt(0));
  if (bytes.length !== X25519_PUBLIC_KEY_BYTES) {
    throw new TypeError("publicKey must be the standard base64 of a raw 32-byte X25519 key");
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

function concatBytes(a, b) {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
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
