"""Pure cores of the auctions app: clearing and its tie-break randomness. No Django import.

Auditors re-run these to check a published outcome; docs/auctions-clearing.md specifies them.
"""
