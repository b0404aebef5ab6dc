"""Tickets: customer questions, their state and service levels."""
