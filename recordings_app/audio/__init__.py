"""Audio on disk: the spool format (spool), its figures, waveform peaks and levels.

Plain Python, no Django: `spool` is the only module that reads or writes
spool files; `figures` is the one definition of a recording's numbers.
"""
