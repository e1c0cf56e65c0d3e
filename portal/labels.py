"""The registry's and the auctions' choice labels, marked for translation.

The models keep plain labels (changing them would rewrite the ledger tables' migrations); pages
pass them through the ``tr`` filter, which looks them up in the catalog these names put there."""

from __future__ import annotations

from django.utils.translation import gettext_lazy, gettext_noop

LABELS = [
    # ledger.models.Ecosystem
    gettext_noop("Mangrove"),
    gettext_noop("Salt marsh"),
    gettext_noop("Seagrass"),
    gettext_noop("Tidal flat"),
    gettext_noop("Macroalgae (seaweed farming)"),
    gettext_noop("Shellfish farming"),
    # ledger.models.StoragePathway
    gettext_noop("Living biomass"),
    gettext_noop("Sediment (soil organic carbon)"),
    gettext_noop("Biomass and sediment"),
    gettext_noop("Harvested biomass leaving the system"),
    gettext_noop("Shell carbonate"),
    # ledger.models.DocumentKind and DocumentMediaType
    gettext_noop("Monitoring report"),
    gettext_noop("Verification report"),
    gettext_noop("Validation report"),
    gettext_noop("Other"),
    gettext_noop("PDF"),
    gettext_noop("Text"),
    gettext_noop("PNG image"),
    gettext_noop("JPEG image"),
    # ledger.models.Project.Status
    gettext_noop("Registered"),
    gettext_noop("Active"),
    gettext_noop("Suspended"),
    gettext_noop("Closed"),
    # auctions.models.Format
    gettext_noop("Multi-unit, uniform price"),
    gettext_noop("Multi-unit, pay as bid"),
    gettext_noop("Single lot, first price"),
    gettext_noop("Single lot, second price (Vickrey)"),
    gettext_noop("Single lot, English (ascending open bids)"),
    gettext_noop("Multi-unit, ascending clock in rounds"),
    # auctions.models.TieRule, Undersubscribed
    gettext_noop("Random order (EU style)"),
    gettext_noop("Pro rata, leftover lots by draw (California-Quebec style)"),
    gettext_noop("Settle every valid bid (uniform price: at the reserve)"),
    gettext_noop("Cancel the auction"),
    # auctions.models.Sealing
    gettext_noop("Threshold of independent trustees"),
    gettext_noop("Operator-held key"),
    gettext_noop("Not sealed: open prices, pseudonymous bidders"),
    gettext_noop("Round bids hidden until the end; the operator sees them"),
    # auctions.models.Auction.State
    gettext_noop("Draft"),
    gettext_noop("Scheduled"),
    gettext_noop("Open for bids"),
    gettext_noop("Closed, being cleared"),
    gettext_noop("Cleared"),
    gettext_noop("Settled"),
    gettext_noop("Cancelled"),
    gettext_noop("Failed"),
    # auctions.models.Bid.Status, Deposit.State, Award.State
    gettext_noop("Sealed"),
    gettext_noop("Withdrawn"),
    gettext_noop("Valid"),
    gettext_noop("Rejected"),
    gettext_noop("Held"),
    gettext_noop("Released"),
    gettext_noop("Applied to the payment"),
    gettext_noop("Forfeited"),
    gettext_noop("Awaiting payment"),
    gettext_noop("Paid and delivered"),
    gettext_noop("Defaulted (credits returned to the seller)"),
    # auctions.models.Application.State ("Approved" is portal.models')
    gettext_noop("Awaiting the decision"),
    gettext_noop("Refused"),
    gettext_noop("Withdrawn by the applicant"),
    # listings.models.Listing.State ("Withdrawn", "Closed" above), Purchase.State ("Awaiting
    # payment", "Paid and delivered" above)
    gettext_noop("Listed"),
    gettext_noop("Defaulted (lots returned)"),
    # portal.models
    gettext_noop("Awaiting approval"),
    gettext_noop("Approved"),
    gettext_noop("Queued"),
    gettext_noop("Running"),
    gettext_noop("Verified"),
]

# Why a bid, or part of one, did not count (auctions-clearing.md §2, auctions.md §4): the
# codes the published result carries, said in words.
REASONS = {
    "over_cap": gettext_lazy("over the bidder's cap"),
    "over_deposit": gettext_lazy("more than the deposit covers"),
    "malformed_tiers": gettext_lazy("the tiers are not well formed"),
    "no_tiers": gettext_lazy("no tiers"),
    "too_many_tiers": gettext_lazy("more than 20 tiers"),
    "invalid_lots": gettext_lazy("a tier of fewer than one lot"),
    "invalid_price": gettext_lazy("a negative price"),
    "off_tick": gettext_lazy("a price off the tick"),
    "below_reserve": gettext_lazy("a price below the reserve"),
    "duplicate_price": gettext_lazy("two tiers at one price"),
    "not_single_lot": gettext_lazy("not one lot at one price (single-lot auction)"),
    "unreadable": gettext_lazy("it does not open with the auction's key"),
    "unreadable_share": gettext_lazy(
        "a trustee's share of its key does not open, or the shares do not give its key"
    ),
    "malformed_plaintext": gettext_lazy("its plaintext is not a bid"),
    "wrong_auction": gettext_lazy("sealed for another auction"),
    "wrong_bidder": gettext_lazy("sealed for another bidder"),
}
