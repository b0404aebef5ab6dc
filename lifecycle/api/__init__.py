"""/api/v1 on django-ninja: one router per resource, assembled in config/api.py.

- auth.py: `token_auth`, personal tokens (read-only scope, expiry) acting as their owner.
- problems.py: `Problem(status, code, detail, **extra)` and RFC 9457 answers for every error.
- paging.py: `page(queryset, cursor, limit, key)`, `PageQuery`, `Page[ItemOut]`.
- modules.py, applications.py: the resources.
- raw.py: the hand-written views' machinery the agent protocol keeps (lifecycle/agent_api.py).
"""
