"""The service's routes, one module per area."""
from . import catalog, events, operations, recommendations, users

__all__ = ["catalog", "events", "operations", "recommendations", "users"]
