"""Pure cores of the auction house: bid sealing, clearing, tie-break draws, the published
result and the replay of auction entries. Auditors re-run these to check a published outcome;
the server's docs/auctions-clearing.md and docs/auctions.md specify them."""
