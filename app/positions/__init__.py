"""Positions room: snapshots, latest positions, overview and history pages."""
