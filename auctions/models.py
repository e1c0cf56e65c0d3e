"""Sealed-bid auctions (issue: sealed-bid auctions). Nothing here yet."""
