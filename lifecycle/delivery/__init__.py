"""Delivery: getting what Stageboard switched onto the environment's real machines, and back.

An environment's `delivery` says how a deployment reaches it:

- `record`: the switch in Stageboard is the deployment (nothing leaves the database).
- `agent`: `agent/stageboard_agent.py` on each machine polls the desired state
  (`desired.py`), downloads what changed, writes and switches a release, runs a
  hook and reports (`reports.py`); a changed file on the machine is drift
  (`drift.py`) that a user adopts as a hotfix or redeploys over.
- `webhook`: a signed POST tells a receiver, which reports back (`webhooks.py`).

`confirming.py` turns reports into deployment outcomes; `live.py` says what
each environment really runs, for the grid, the application page and the API.
The wire protocol is in docs/agent.md.
"""
