"""Recon room: two sources of the same positions compared, breaks and their history."""
