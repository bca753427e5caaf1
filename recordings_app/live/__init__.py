"""Calls in progress across processes, through the channel layer.

`events` (group and message names, what a dashboard is told; a leaf every
layer may use), `monitor` (one per process: levels and heartbeats) and
`pause` (asking a recording socket, wherever it runs, to pause).
"""
