// The bidder's own record of what it sealed: the prices and lots of each bid version, kept in
// this browser only and never sent anywhere (docs/portal.md, "What you sealed").
//
// Storage: IndexedDB "bluecarbon-sealed-bids" of this origin. Store "keys" holds one AES-GCM
// 256-bit key per bidder organization, made here with extractable = false: no script, this
// page's included, can read its bytes, so a script that got into the page could decrypt only
// while it runs there, never carry the key off. Store "records" holds one record per bid
// version, its tiers encrypted under that key with the record's identity (organization,
// auction, bid, version, commitment) as associated data, so a record moved to another identity
// does not decrypt.
//
// Export: the records of one organization in a file encrypted under a passphrase (PBKDF2-
// HMAC-SHA256, AES-256-GCM), which importFile merges on another device. Every byte of the file
// is specified in docs/portal.md. WebCrypto only: no library, nothing from another origin.

import { EXPONENTS } from "./amounts.js";

const DB_NAME = "bluecarbon-sealed-bids";
const DB_VERSION = 1;
const RECORD_AAD = "bluecarbon/sealed-bid-record/v1";

export const FILE_MAGIC = "BCBIDREC";
export const FILE_VERSION = 1;
export const FILE_FORMAT = "bluecarbon/sealed-bids/v1";
// OWASP's 2023 figure for PBKDF2-HMAC-SHA256; an import accepts a range, so that a later
// export may raise it, but not a count that would hang the page (a crafted file).
export const PBKDF2_ITERATIONS = 600_000;
const MIN_ITERATIONS = 100_000;
const MAX_ITERATIONS = 10_000_000;
const SALT_BYTES = 16;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const HEADER_BYTES = FILE_MAGIC.length + 1 + 4 + SALT_BYTES + IV_BYTES; // 41
const MAX_FILE_BYTES = 16 * 1024 * 1024;
const MAX_TIERS = 20;
const COMMITMENT = /^[0-9a-f]{64}$/;

/** What went wrong with a file, by a stable code the page words in its own language. */
export class RecordFileError extends Error {
  constructor(code, detail = "") {
    super(`${code}${detail ? `: ${detail}` : ""}`);
    this.code = code;
    this.detail = detail;
  }
}

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder("utf-8", { fatal: true });

function requireWebCrypto() {
  if (!globalThis.isSecureContext || globalThis.crypto?.subtle === undefined || !globalThis.indexedDB) {
    throw new Error("keeping sealed bids needs WebCrypto and IndexedDB, in a secure context (HTTPS)");
  }
}

function done(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

function committed(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error || new Error("transaction aborted"));
  });
}

let dbPromise = null;

function db() {
  requireWebCrypto();
  dbPromise ??= new Promise((resolve, reject) => {
    const request = indexedDB.open(DB_NAME, DB_VERSION);
    request.onupgradeneeded = () => {
      const d = request.result;
      d.createObjectStore("keys", { keyPath: "org" });
      d.createObjectStore("records", { keyPath: "id" }).createIndex("org", "org");
    };
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
    request.onblocked = () => reject(new Error("the sealed-bid store is held open by an older page"));
  }).catch((e) => {
    dbPromise = null;
    throw e;
  });
  return dbPromise;
}

// The organization's key, made on first use. Two tabs may make one at once: the add inside the
// transaction that found none is a compare-and-set, and the loser takes the winner's key.
async function orgKey(org) {
  const d = await db();
  const found = await done(d.transaction("keys").objectStore("keys").get(org));
  if (found) return found.key;
  const fresh = await crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, false, [
    "encrypt",
    "decrypt",
  ]);
  const tx = d.transaction("keys", "readwrite");
  const store = tx.objectStore("keys");
  const key = await new Promise((resolve, reject) => {
    const get = store.get(org);
    get.onerror = () => reject(get.error);
    get.onsuccess = () => {
      if (get.result) return resolve(get.result.key);
      const add = store.add({ org, key: fresh });
      add.onerror = () => reject(add.error);
      add.onsuccess = () => resolve(fresh);
    };
  });
  await committed(tx);
  return key;
}

// A bid version's identity. A record sent but not yet confirmed by the registry has bid 0 and
// version 0 until the answer (or, after a lost answer, the bids table) names them.
export function recordId({ org, auction, bid, version, commitment }) {
  return `${org}/${auction}/${bid}/${version}/${commitment}`;
}

function recordAad({ org, auction, bid, version, commitment }) {
  return utf8.encode(`${RECORD_AAD}\n${org}\n${auction}\n${bid}\n${version}\n${commitment}`);
}

function secretPart(r) {
  return {
    tiers: r.tiers.map(({ price, lots }) => ({ price, lots })),
    currency: r.currency,
    lot_kg: r.lot_kg,
    account: r.account ?? null,
    sealed_at: r.sealed_at,
  };
}

async function encryptRecord(key, r) {
  const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES));
  const ct = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv, additionalData: recordAad(r) },
    key,
    utf8.encode(JSON.stringify(secretPart(r))),
  );
  const { org, auction, bid, version, commitment } = r;
  return { id: recordId(r), org, auction, bid, version, commitment, iv, ct };
}

async function decryptRecord(key, stored) {
  const identity = {
    org: stored.org,
    auction: stored.auction,
    bid: stored.bid,
    version: stored.version,
    commitment: stored.commitment,
  };
  try {
    const body = await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: stored.iv, additionalData: recordAad(identity) },
      key,
      stored.ct,
    );
    return { ...identity, ...checkSecretPart(JSON.parse(fromUtf8.decode(body))), broken: false };
  } catch {
    return { ...identity, broken: true }; // altered in storage, or made under another key
  }
}

/** Keep a bid version that is about to be sent (bid and version 0: not yet confirmed). */
export async function rememberPending({ org, auction, commitment, tiers, currency, lot_kg, account }) {
  const r = { org, auction, bid: 0, version: 0, commitment, tiers, currency, lot_kg, account };
  r.sealed_at = new Date().toISOString();
  const stored = await encryptRecord(await orgKey(org), r);
  const tx = (await db()).transaction("records", "readwrite");
  tx.objectStore("records").put(stored);
  await committed(tx);
  return r;
}

/** The registry accepted it as bid `bid`, version `version`: the record takes that identity. */
export async function confirmPending(pending, { bid, version }) {
  const r = { ...pending, bid, version };
  const stored = await encryptRecord(await orgKey(pending.org), r);
  const tx = (await db()).transaction("records", "readwrite");
  const store = tx.objectStore("records");
  store.put(stored);
  store.delete(recordId(pending));
  await committed(tx);
  return r;
}

/** The registry refused it: nothing was sealed into the auction, so there is nothing to keep. */
export async function forgetPending(pending) {
  const tx = (await db()).transaction("records", "readwrite");
  tx.objectStore("records").delete(recordId(pending));
  await committed(tx);
}

/** Every record of the organization (of one auction, if given), decrypted, by auction, bid,
 * version. A record that does not decrypt comes back with broken: true and no tiers. */
export async function readRecords(org, auction = null) {
  const d = await db();
  const all = await done(d.transaction("records").objectStore("records").index("org").getAll(org));
  const mine = all.filter((s) => auction === null || s.auction === auction);
  if (!mine.length) return [];
  const key = await orgKey(org);
  const out = await Promise.all(mine.map((s) => decryptRecord(key, s)));
  return out.sort((x, y) => x.auction - y.auction || x.bid - y.bid || x.version - y.version);
}

// --- The export file (docs/portal.md, "The export file") ------------------------------------

function passphraseBytes(passphrase) {
  // NFC, so the same passphrase typed on another system (which may compose accents or
  // full-width forms differently) gives the same bytes.
  return utf8.encode(passphrase.normalize("NFC"));
}

async function fileKey(passphrase, salt, iterations) {
  const base = await crypto.subtle.importKey("raw", passphraseBytes(passphrase), "PBKDF2", false, [
    "deriveKey",
  ]);
  return crypto.subtle.deriveKey(
    { name: "PBKDF2", hash: "SHA-256", salt, iterations },
    base,
    { name: "AES-GCM", length: 256 },
    false,
    ["encrypt", "decrypt"],
  );
}

function header(iterations, salt, iv) {
  const h = new Uint8Array(HEADER_BYTES);
  h.set(utf8.encode(FILE_MAGIC), 0);
  h[8] = FILE_VERSION;
  new DataView(h.buffer).setUint32(9, iterations, false);
  h.set(salt, 13);
  h.set(iv, 13 + SALT_BYTES);
  return h;
}

function exported(r) {
  return {
    auction: r.auction,
    bid: r.bid,
    version: r.version,
    commitment: r.commitment,
    ...secretPart(r),
  };
}

/** The organization's records as the bytes of an export file. */
export async function exportFile({ org, origin, passphrase }) {
  const records = (await readRecords(org)).filter((r) => !r.broken);
  const payload = {
    format: FILE_FORMAT,
    origin,
    bidder: org,
    exported_at: new Date().toISOString(),
    records: records.map(exported),
  };
  const salt = crypto.getRandomValues(new Uint8Array(SALT_BYTES));
  const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES));
  const head = header(PBKDF2_ITERATIONS, salt, iv);
  const key = await fileKey(passphrase, salt, PBKDF2_ITERATIONS);
  const body = new Uint8Array(
    await crypto.subtle.encrypt(
      { name: "AES-GCM", iv, additionalData: head },
      key,
      utf8.encode(JSON.stringify(payload)),
    ),
  );
  const file = new Uint8Array(head.length + body.length);
  file.set(head, 0);
  file.set(body, head.length);
  return { bytes: file, count: records.length };
}

function isId(n, min = 1) {
  return Number.isSafeInteger(n) && n >= min;
}

function checkTiers(tiers) {
  if (!Array.isArray(tiers) || tiers.length < 1 || tiers.length > MAX_TIERS) return false;
  return tiers.every(
    (t) =>
      t !== null &&
      typeof t === "object" &&
      Object.keys(t).sort().join() === "lots,price" &&
      isId(t.price, 0) &&
      isId(t.lots, 1),
  );
}

function checkSecretPart(p) {
  const ok =
    p !== null &&
    typeof p === "object" &&
    checkTiers(p.tiers) &&
    Object.hasOwn(EXPONENTS, p.currency) &&
    isId(p.lot_kg) &&
    (p.account === null || isId(p.account)) &&
    typeof p.sealed_at === "string";
  if (!ok) throw new RecordFileError("content");
  return secretPart(p);
}

function checkExported(r) {
  const confirmed = isId(r?.bid) && isId(r?.version);
  const pending = r?.bid === 0 && r?.version === 0;
  if (!isId(r?.auction) || !(confirmed || pending) || !COMMITMENT.test(r?.commitment ?? "")) {
    throw new RecordFileError("content");
  }
  return {
    auction: r.auction,
    bid: r.bid,
    version: r.version,
    commitment: r.commitment,
    ...checkSecretPart(r),
  };
}

/** Decrypt an export file and check all of it; nothing is stored. Throws RecordFileError:
 * format (not such a file, or a version or iteration count this page does not take),
 * passphrase (the tag does not verify: a wrong passphrase or an altered byte), content,
 * origin (another registry's), bidder (another organization's). */
export async function openFile({ org, origin, bytes, passphrase }) {
  const b = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  if (b.length < HEADER_BYTES + TAG_BYTES || b.length > MAX_FILE_BYTES) throw new RecordFileError("format");
  if (new TextDecoder().decode(b.subarray(0, 8)) !== FILE_MAGIC) throw new RecordFileError("format");
  if (b[8] !== FILE_VERSION) throw new RecordFileError("format", `version ${b[8]}`);
  const iterations = new DataView(b.buffer, b.byteOffset).getUint32(9, false);
  if (iterations < MIN_ITERATIONS || iterations > MAX_ITERATIONS) {
    throw new RecordFileError("format", `${iterations} iterations`);
  }
  const salt = b.slice(13, 13 + SALT_BYTES);
  const iv = b.slice(13 + SALT_BYTES, HEADER_BYTES);
  const key = await fileKey(passphrase, salt, iterations);
  let plain;
  try {
    plain = await crypto.subtle.decrypt(
      { name: "AES-GCM", iv, additionalData: b.slice(0, HEADER_BYTES) },
      key,
      b.slice(HEADER_BYTES),
    );
  } catch {
    throw new RecordFileError("passphrase");
  }
  let payload;
  try {
    payload = JSON.parse(fromUtf8.decode(plain));
  } catch {
    throw new RecordFileError("content");
  }
  if (payload?.format !== FILE_FORMAT || !Array.isArray(payload.records)) throw new RecordFileError("content");
  if (payload.origin !== origin) throw new RecordFileError("origin", String(payload.origin));
  if (payload.bidder !== org) throw new RecordFileError("bidder", String(payload.bidder));
  return payload.records.map(checkExported);
}

/** Merge an export file's records into this browser's: a record already here (same
 * organization, auction, bid, version and commitment) is kept as it is. */
export async function importFile({ org, origin, bytes, passphrase }) {
  const records = await openFile({ org, origin, bytes, passphrase });
  const key = await orgKey(org);
  const stored = await Promise.all(records.map((r) => encryptRecord(key, { ...r, org })));
  const tx = (await db()).transaction("records", "readwrite");
  const store = tx.objectStore("records");
  let added = 0;
  for (const s of stored) {
    const add = store.add(s);
    add.onsuccess = () => {
      added += 1;
    };
    add.onerror = (event) => {
      event.preventDefault(); // already here (ConstraintError): keep the one this device has
      event.stopPropagation();
    };
  }
  await committed(tx);
  return { added, known: stored.length - added };
}
