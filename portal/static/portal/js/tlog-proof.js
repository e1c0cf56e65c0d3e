// The retirement certificate's proof file (C2SP tlog-proof), verified in this browser with
// WebCrypto alone (SHA-256, Ed25519): the same steps as `bluecarbon-audit proof`
// (docs/ledger-format.md §8). Keys come from the registry's published lists: the page says
// which key and which witnesses vouched, for the reader to compare with keys pinned elsewhere.
const box = document.getElementById("proof-check");
const status = document.getElementById("proof-status");
const details = document.getElementById("proof-details");
const text = box.dataset;

const enc = new TextEncoder();
const b64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
const concat = (...parts) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};
const sha256 = async (data) => new Uint8Array(await crypto.subtle.digest("SHA-256", data));
const equal = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
const hex = (a) => Array.from(a, (x) => x.toString(16).padStart(2, "0")).join("");

class Failure extends Error {}
const fail = (message) => {
  throw new Failure(message);
};

// c2sp.org/tlog-proof §Format.
function parseProof(proofText) {
  const split = proofText.indexOf("\n\n");
  if (split < 0) fail("no empty line before the checkpoint");
  const lines = proofText.slice(0, split).split("\n");
  if (lines.shift() !== "c2sp.org/tlog-proof@v1") fail("not a c2sp.org/tlog-proof@v1 file");
  let extra = null;
  if (lines[0]?.startsWith("extra ")) extra = b64(lines.shift().slice(6));
  const index = /^index (0|[1-9][0-9]*)$/.exec(lines.shift() ?? "");
  if (!index) fail("no index line");
  const proof = lines.map(b64);
  if (proof.some((h) => h.length !== 32)) fail("a proof line is not a 32-byte hash");
  return { extra, index: Number(index[1]), proof, checkpoint: proofText.slice(split + 2) };
}

// c2sp.org/signed-note: the text up to the last empty line, then signature lines.
function parseNote(note) {
  const split = note.lastIndexOf("\n\n");
  if (split < 0 || !note.endsWith("\n")) fail("the checkpoint is not a signed note");
  const body = note.slice(0, split + 1);
  const signatures = note
    .slice(split + 2, -1)
    .split("\n")
    .map((line) => {
      const m = /^\u2014 (\S+) ([A-Za-z0-9+/=]+)$/.exec(line);
      if (!m) fail("a malformed signature line");
      const raw = b64(m[2]);
      return { name: m[1], id: raw.slice(0, 4), rest: raw.slice(4) };
    });
  const [origin, size, root] = body.split("\n");
  return { body, signatures, origin, size: Number(size), root: b64(root) };
}

// A verifier key, name+hex id+base64(type || public key), with its key ID checked.
async function parseKey(vkey, type) {
  const [name, id, key] = vkey.split("+", 2).concat(vkey.split("+").slice(2).join("+"));
  const raw = b64(key);
  if (raw.length !== 33 || (raw[0] !== type && !(type === 4 && raw[0] === 1))) return null;
  const want = (await sha256(concat(enc.encode(`${name}\n`), Uint8Array.of(type), raw.slice(1))))
    .slice(0, 4);
  const claimed = Uint8Array.from(id.match(/../g) ?? [], (h) => parseInt(h, 16));
  if (raw[0] === type && !equal(want, claimed)) return null;
  const publicKey = await crypto.subtle.importKey("raw", raw.slice(1), { name: "Ed25519" }, false, [
    "verify",
  ]);
  return { name, id: want, publicKey, text: `${name}+${hex(want)}` };
}

const ed25519 = (key, signature, message) =>
  crypto.subtle.verify({ name: "Ed25519" }, key.publicKey, signature, message);

// RFC 9162 §2.1.3.2.
async function rootFromInclusion(leaf, index, size, proof) {
  if (index >= size) fail(`leaf ${index} is not in a tree of ${size}`);
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0) fail("the inclusion proof is too long");
    if (fn % 2 === 1 || fn === sn) {
      r = await sha256(concat(Uint8Array.of(1), p, r));
      while (fn % 2 === 0 && fn !== 0) {
        fn = Math.floor(fn / 2);
        sn = Math.floor(sn / 2);
      }
    } else {
      r = await sha256(concat(Uint8Array.of(1), r, p));
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  if (sn !== 0) fail("the inclusion proof is too short");
  return r;
}

// c2sp.org/tlog-policy: witnesses, groups (k of n, nesting) and the quorum.
function parsePolicy(policyText) {
  const witnesses = {};
  const groups = {};
  let quorum = "none";
  for (const raw of policyText.split("\n")) {
    const w = raw.trim().split(/[ \t]+/);
    if (w[0] === "witness") witnesses[w[1]] = w[2];
    else if (w[0] === "group") {
      const members = w.slice(3);
      const k = w[2] === "all" ? members.length : w[2] === "any" ? 1 : Number(w[2]);
      groups[w[1]] = { k, members };
    } else if (w[0] === "quorum") quorum = w[1];
  }
  return { witnesses, groups, quorum };
}

function quorumMet(policy, name, cosigned) {
  if (name === "none") return true;
  const group = policy.groups[name];
  if (!group) return cosigned.has(name);
  return group.members.filter((m) => quorumMet(policy, m, cosigned)).length >= group.k;
}

async function check() {
  // Revalidated every time: witnesses may have cosigned the checkpoint since.
  const get = (url) => fetch(url, { cache: "no-cache" });
  const [proofText, keysText, policyResponse] = await Promise.all([
    get(box.dataset.proofUrl).then((r) => (r.ok ? r.text() : fail(`HTTP ${r.status}`))),
    get(box.dataset.keysUrl).then((r) => r.text()),
    get(box.dataset.policyUrl),
  ]);
  const proof = parseProof(proofText);
  // Step 1: the leaf, from the entry the file carries.
  if (!proof.extra) fail(text.noEntry);
  const entry = JSON.parse(new TextDecoder().decode(proof.extra));
  if (entry.seq !== proof.index) fail(`the entry is seq ${entry.seq}, the proof is for ${proof.index}`);
  const leaf = await sha256(concat(Uint8Array.of(0), proof.extra));
  // Step 2: the log's signature, by one of its published keys, for its origin.
  const note = parseNote(proof.checkpoint);
  const message = enc.encode(note.body);
  const keys = (await Promise.all(keysText.split(/\s+/).filter(Boolean).map((k) => parseKey(k, 1))))
    .filter(Boolean);
  const signedBy = [];
  for (const sig of note.signatures) {
    const key = keys.find((k) => k.name === sig.name && equal(k.id, sig.id));
    if (!key) continue;
    if (!(await ed25519(key, sig.rest, message))) fail(text.badSignature);
    if (key.name === note.origin) signedBy.push(key.text);
  }
  if (!signedBy.length) fail(text.noSignature);
  // Step 3: the witnesses of the published policy, and its quorum.
  const cosigned = new Set();
  let policy = null;
  const policyText = policyResponse.ok ? await policyResponse.text() : "";
  if (policyText.trim()) {
    policy = parsePolicy(policyText);
    for (const [name, vkey] of Object.entries(policy.witnesses)) {
      const key = await parseKey(vkey, 4);
      const sig = key && note.signatures.find((s) => s.name === key.name && equal(s.id, key.id));
      if (!sig || sig.rest.length !== 72) continue;
      const time = new DataView(sig.rest.buffer, sig.rest.byteOffset, 8).getBigUint64(0);
      const signed = enc.encode(`cosignature/v1\ntime ${time}\n${note.body}`);
      if (!(await ed25519(key, sig.rest.slice(8), signed))) fail(text.badCosignature.replace("{w}", name));
      cosigned.add(name);
    }
  }
  // Step 4: the inclusion proof leads from the leaf to the signed root.
  const root = await rootFromInclusion(leaf, proof.index, note.size, proof.proof);
  if (!equal(root, note.root)) fail(text.badProof);
  return { note, signedBy, cosigned, policy, leaf };
}

function show(ok, message, items = []) {
  status.className = `notice ${ok ? "ok" : "bad"}`;
  status.id = "proof-status";
  status.dataset.result = ok ? "verified" : "failed";
  status.textContent = message;
  details.replaceChildren(
    ...items.map((item) => {
      const li = document.createElement("li");
      li.textContent = item;
      return li;
    }),
  );
}

status.textContent = text.checking;
check()
  .then(({ note, signedBy, cosigned, policy, leaf }) => {
    const items = [
      text.tree.replace("{size}", note.size).replace("{origin}", note.origin),
      text.signed.replace("{keys}", signedBy.join(", ")),
      text.leaf.replace("{leaf}", btoa(String.fromCharCode(...leaf))),
    ];
    if (policy) {
      const names = [...cosigned].join(", ") || text.none;
      const met = quorumMet(policy, policy.quorum, cosigned);
      items.push((met ? text.quorumMet : text.quorumMissed).replace("{w}", names));
    }
    show(true, text.ok, items);
  })
  .catch((error) => show(false, `${text.failed} ${error instanceof Failure ? error.message : error}`));
