"""The service's routes, one module per area."""
from . import catalog, events, operations, recommendations

__all__ = ["catalog", "events", "operations", "recommendations"]
