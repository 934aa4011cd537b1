"""Notifications: an adapter that tells the world outside the cluster what needs a person
(issue 19: HMMM escalations), over webhooks (N8N, Slack, any JSON receiver).

`webhook.py` makes one signed POST per call and says how it went; retries, their timing
(`webhook.next_attempt_s`) and the record of what was delivered belong to the caller.
"""
