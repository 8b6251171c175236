"""The attack suite (issue 15): hostile bundles, USB sticks, audit logs, channel clients and web requests.

Each test is one attack; it passes when the box refuses or detects it. ``conftest.py`` prints the tally
(attacks tried / refused / failures) at the end of the run; docs/threat-model.md records it.
"""
