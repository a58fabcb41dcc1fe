"""Message templates: a text with {variables}, used by name."""

from __future__ import annotations

from core.adapters.store import Store
from core.domain.errors import AlreadyExists, InvalidState, NotFound
from core.domain.models import Template
from core.domain.render import check_braces, check_message
from core.services._shared import clean_name


class Templates:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def add_template(self, name: str, text: str) -> Template:
        name = clean_name(name, what="template")
        check_message(text, has_media=False)
        check_braces(text)
        try:
            return await self._store.add_template(name, text)
        except AlreadyExists:
            raise AlreadyExists(
                f"A template named {name!r} exists already: pick another name, "
                f"or remove it first with /deltemplate {name}."
            ) from None

    async def list_templates(self) -> list[Template]:
        return await self._store.list_templates()

    async def delete_template(self, name: str) -> Template:
        """Delete a template no schedule uses."""
        template = await self._store.find_template(name.strip())
        if template is None:
            raise NotFound(f"There is no template named {name.strip()!r}: see /templates.")
        users = [s.id for s in await self._store.list_schedules() if s.template_id == template.id]
        if users:
            ids = ", ".join(f"#{i}" for i in users)
            raise InvalidState(
                f"Template {template.name!r} is used by schedule {ids}: "
                "/edit or /delete those first."
            )
        await self._store.delete_template(template.id)
        return template
