"""Mechanisms of access control, with no tenant data of their own.

Visitor and staff tokens (:mod:`.tokens`) and the secrets that sign them (:mod:`.keyring`);
sign-in throttling (:mod:`.login_throttle`); request counters (:mod:`.rate_limits`);
encryption of stored secrets (:mod:`.datakeys`); request body size limits
(:mod:`.http_limits`). The rules that read tenants' data (is this staff token still valid, may
this page use this widget key) are in :mod:`kefu_core.product`.
"""
