"""Path parameters that are ids: anything but 32 hex characters is a 404 before a handler runs."""

from __future__ import annotations

from starlette.convertors import Convertor, register_url_convertor


class HexIdConvertor(Convertor[str]):
    regex = "[0-9a-f]{32}"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("hexid", HexIdConvertor())
