"""Kefu core: settings, wire protocol, stores, transport, chat flows, gateway."""
