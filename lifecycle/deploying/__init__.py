"""Tag & Deploy: validating a plan, switching every module at once, running it, saved plans.

- `validation`: the findings shown before anything changes, one small function per finding
  (rollback uses the same ones), and the fingerprint of the state they were made against.
- `switching`: the one-transaction switch of every module of every application.
- `running`: starting a deployment under a lock on its target, running it, its log.
- `plans`: saved plans and who may see, use and delete them.
"""
