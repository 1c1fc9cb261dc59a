"""Administration: user management and the audit log."""
