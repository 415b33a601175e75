"""Integrations of mlrsnet schedules with other training frameworks (optional extras)."""
