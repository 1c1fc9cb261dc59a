"""Auth room: users, server-side sessions, login, account page, roles, API tokens."""
