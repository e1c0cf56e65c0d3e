"""``RegistryState.transfers`` is ``transfer`` applied in order, stopping where it would."""

from __future__ import annotations

import copy
from array import array

from hypothesis import given, settings
from hypothesis import strategies as st

from bluecarbon_audit.replay import RegistryState

moves = st.lists(
    st.tuples(st.integers(1, 2), st.integers(1, 4), st.integers(1, 4), st.integers(-1, 60)),
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(moves=moves, start=st.integers(0, 5), balances=st.lists(st.integers(0, 100), min_size=8))
def test_transfers_applies_what_transfer_would_and_stops_at_the_first_refusal(
    moves, start, balances
):
    state = RegistryState()
    # Holdings of accounts 1-4 in batches 1-2, except account 4 in batch 2 (a new holding).
    for i, (account, batch) in enumerate((a, b) for a in range(1, 5) for b in (1, 2)):
        if (account, batch) != (4, 2):
            state.holdings[(account, batch)] = [balances[i], 0]
    flat = array("q", [v for batch, src, dst, qty in moves for v in (batch, src, dst, qty)])
    start = min(start, len(moves))
    expected = copy.deepcopy(state)
    applied = 0
    for batch, src, dst, qty in moves[start:]:
        if not expected.transfer(batch, src, dst, qty):
            break
        applied += 1
    assert state.transfers(flat, start, len(moves)) == applied
    assert state.holdings == expected.holdings
