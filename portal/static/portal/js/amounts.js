// Money and quantities as the portal shows them: integers in base units (minor currency units,
// kilograms) turned into decimal strings, never through a float. Money is a BigInt as soon as
// it is a product (price × lots × lot size can pass 2^53 long before it is unreasonable).

// As audit/bluecarbon_audit/quantity.py's CURRENCY_EXPONENTS.
export const EXPONENTS = { CNY: 2, USD: 2, EUR: 2, GBP: 2, HKD: 2, SGD: 2, JPY: 0 };
export const KG_PER_TONNE = 1000n;

export function exponent(currency) {
  return EXPONENTS[currency] ?? 2;
}

// An integer (Number or BigInt) of units of 10^-places as a decimal: 10600, 2 -> "106.00".
export function decimal(n, places) {
  const v = BigInt(n);
  const sign = v < 0n ? "-" : "";
  const digits = (v < 0n ? -v : v).toString();
  if (!places) return sign + digits;
  const s = digits.padStart(places + 1, "0");
  return `${sign}${s.slice(0, -places)}.${s.slice(-places)}`;
}

// A decimal string's whole part in groups of three: "248050.60" -> "248,050.60", as the
// server's pages write figures (portal/numbers.py) in both languages.
export function group(text) {
  const m = /^(-?)(\d+)(\.\d+)?$/.exec(text);
  if (!m) return text;
  return m[1] + m[2].replace(/\B(?=(\d{3})+(?!\d))/g, ",") + (m[3] ?? "");
}

// For people to read: grouped, every decimal of the currency.
export function money(minor, currency) {
  return group(decimal(minor, exponent(currency)));
}

// For people to read: exact tonnes, grouped, the kilograms' trailing zeros dropped
// (2340100 -> "2,340.1"); nothing is rounded.
export function tonnes(kg) {
  return group(decimal(kg, 3).replace(/\.?0+$/, ""));
}

// The most a tier can cost: price (minor units per tonne) × lots × lot size (kg) / 1000. The
// auction's rules make tick × lot_kg a multiple of 1,000 (auctions.md §2), so this is exact;
// a remainder would mean rules the registry refuses, and is not rounded away.
export function tierCost({ price, lots }, lotKg) {
  const milli = BigInt(price) * BigInt(lots) * BigInt(lotKg);
  if (milli % KG_PER_TONNE) throw new RangeError("price × lot size is not a whole number of minor units");
  return milli / KG_PER_TONNE;
}

export function bidCost(tiers, lotKg) {
  return tiers.reduce((sum, t) => sum + tierCost(t, lotKg), 0n);
}

export function bidLots(tiers) {
  return tiers.reduce((n, t) => n + t.lots, 0);
}
