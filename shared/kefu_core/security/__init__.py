"""Who may do what, and how much of it.

Visitor and staff tokens (:mod:`.tokens`) and the secrets that sign them (:mod:`.keyring`);
whether a staff token still grants access (:mod:`.agent_auth`); sign-in throttling
(:mod:`.login_throttle`); which pages may use a widget key (:mod:`.widget_origins`); request
counters (:mod:`.rate_limits`); encryption of stored secrets (:mod:`.datakeys`); request body
size limits (:mod:`.http_limits`).
"""
