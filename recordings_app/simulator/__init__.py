"""A Vonage-like client that plays phone calls into a running callrecorder.

`caller` does what Vonage does (answer webhook, NCCO, socket, frames, DTMF,
events); `sounds` makes what the caller says. Plain Python, no Django: the
`simulate_call` command, the end-to-end tests and the benchmarks use it.
"""

from __future__ import annotations


class SimulationError(Exception):
    """The server did not behave as Vonage expects; the message says how."""
