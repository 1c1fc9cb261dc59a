"""Alerts room: rules, alerts and their history, the evaluation engine, `flask alerts`."""
