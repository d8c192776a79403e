"""Dashboard pages, one blueprint per area."""
