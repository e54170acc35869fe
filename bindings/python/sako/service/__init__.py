"""The sako HTTP service (FastAPI); needs the ``service`` extra."""
from .app import create_app, open_default_engine
from .keys import KeyRing
from .settings import Settings

__all__ = ["create_app", "open_default_engine", "KeyRing", "Settings"]
