"""Text that people see: characters that can disguise it."""

from __future__ import annotations

# Characters that reorder or hide text: bidi embeddings, overrides and isolates, and invisible marks. In a name
# they can make "Mallory" read as someone else ("\u202eyrollaM"). The zero-width joiner (U+200D) is not among
# them: emoji sequences need it, and it cannot reorder anything.
DISGUISES = dict.fromkeys(
    [*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200B, 0x200C, 0x200E, 0x200F, 0x2060, 0x061C, 0xFEFF]
)


def undisguised(text: str) -> str:
    return text.translate(DISGUISES)
