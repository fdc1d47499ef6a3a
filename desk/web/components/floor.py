"""The supervisor's floor (templates/_floor.html): agents with presence and load, the queue by skill with SLA risk,
and the live tiles. Rendered once per change and pushed to every floor page over `/ws/ui`."""

from __future__ import annotations

from typing import Any

from desk.auth.principals import StaffPrincipal
from desk.runtime import Runtime
from desk.web.templating import render


async def load_floor(rt: Runtime, viewer: StaffPrincipal) -> dict[str, Any]:
    """Everything the floor shows. The same for every supervisor, so one rendering serves them all."""
    return {}


def floor_html(floor: dict[str, Any], *, oob: bool = False) -> str:
    return render("_floor.html", floor=floor, oob=oob)
