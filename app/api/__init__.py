"""API room: /api/v1 JSON routes for the trading system and other tools."""
