"""Pure renderers: (App, ImageFacts, Settings) -> the objects an App owns. No network, no globals."""

from wharf.render.errors import RenderError
from wharf.render.workload import Rendered, owned_kinds, render

__all__ = ["RenderError", "Rendered", "owned_kinds", "render"]
