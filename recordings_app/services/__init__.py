"""Every write, by domain: small keyword-only functions, one transaction each.

calls (answer, events, the socket's call), recordings (store, recover,
pauses), live_sockets (live rows), access (one-time tokens, the access
log), holds (legal hold, deletes), retention (purges). Reads are in
recordings_app.selectors.
"""
