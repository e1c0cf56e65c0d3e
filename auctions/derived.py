"""The auctions' tables: which ``ledger_verify`` compares with the replay (auctions/verify.py)
and why the others are not derived (see ledger/derived.py)."""

from __future__ import annotations

COMPARED = {
    "auctions.Bidder": "bidder approval (bidder.status)",
    "auctions.Auction": "every auction's rules, state, keys, result hash and clearing price, "
    "and its stored result document against its clear entry",
    "auctions.Bid": "every bid's commitment, status and award; its ciphertext against the "
    "commitment",
    "auctions.Deposit": "deposits and what became of them",
    "auctions.Application": "applications to bid and the operator's decisions "
    "(application.*), by the applicant's pseudonym until the auction's reveal",
    "auctions.Award": "awards and their settlement",
    "auctions.TrusteeKey": "trustees' keys: registration, assignment to an auction, release "
    "(trustee.keys, auction.schedule, auction.key_release)",
    "auctions.Raise": "an English auction's accepted bids (bid.raise): price, time, paddle "
    "recomputed from the row's bidder, account and salt; bidder and account once revealed",
    "auctions.ClockRound": "a clock auction's rounds (clock.round_open, clock.round_close): "
    "price, times, published aggregate and active bidders, finality",
    "auctions.ClockBid": "a clock auction's round bids (clock.bid): version, commitment, paddle; "
    "lots and exit price once the auction's reveal opened them",
}
CHECKED: dict[str, str] = {
    "auctions.Paddle": "a bidder's pseudonym in an ascending auction: each raise and round bid "
    "compared recomputes its paddle from this row's bidder, account and salt, and the reveal "
    "names every paddle that bid",
}
NOT_DERIVED = {
    "auctions.BidReceipt": "the signed receipt handed to the bidder, who verifies it; it names "
    "the bid's entry, which the ledger holds",
}
