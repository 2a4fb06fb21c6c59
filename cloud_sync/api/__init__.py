"""The cloud's REST API: tenants' access windows and tasks over ``CloudService``."""

from .app import build_cloud_app
from .http import MAX_BODY

__all__ = ["MAX_BODY", "build_cloud_app"]
