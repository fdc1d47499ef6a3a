"""The supervisor's floor (templates/_floor.html): agents with presence and load, the queue by skill with SLA risk,
and the live tiles. Rendered once per change and pushed to every floor page over `/ws/ui`.

Nothing in it depends on who looks: the reassign forms post with htmx, which sends the page's CSRF token in a
header, so no per-session token is printed into the shared markup.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from desk.actions.floor import FloorData, StaffLoad, read_floor
from desk.auth.principals import StaffPrincipal
from desk.runtime import Runtime
from desk.web.templating import render


@dataclass(frozen=True)
class Present:
    """A staff member on the floor: their load, and how many desk pages they have open (0: offline)."""

    who: StaffLoad
    pages: int

    @property
    def online(self) -> bool:
        return self.pages > 0


@dataclass(frozen=True)
class Floor:
    data: FloorData
    staff: list[Present]

    @property
    def online_count(self) -> int:
        return sum(1 for person in self.staff if person.online)


async def online_users(rt: Runtime) -> dict[str, int]:
    """User id → open desk pages, from the runtime's presence; nobody is online without it."""
    presence: Any = getattr(rt, "presence", None)
    if presence is None:
        return {}
    found = presence.online_users()
    if inspect.isawaitable(found):
        found = await found
    return dict(found)


async def load_floor(rt: Runtime, viewer: StaffPrincipal) -> Floor:
    """Everything the floor shows. The same for every supervisor, so one rendering serves them all.
    Forbidden for agents."""
    data = await rt.call(read_floor, viewer)
    online = await online_users(rt)
    staff = [Present(person, online.get(person.id, 0)) for person in data.staff]
    # Online first, then the busiest: who can take more is easy to see.
    staff.sort(key=lambda p: (not p.online, -p.who.load, p.who.name.casefold()))
    return Floor(data, staff)


def floor_html(floor: Floor, *, oob: bool = False) -> str:
    return render("_floor.html", floor=floor, oob=oob)
