"""What a slide id or dataset name may hold. Names come from keys labs choose; each becomes part of many keys,
files and reports, so it must be one a person reads as the machine does. Pure.

- NFC (Unicode normalisation form C): "café" typed on a Mac (decomposed) and on Windows (composed) is one id.
- Refused: control and format characters, which include the bidirectional controls (UAX #9) a name could use
  to show "gpj.exe" as "exe.jpg", and the default-ignorable characters (UTS #39: zero-width space, joiners,
  variation selectors, Hangul fillers) that make two names look the same; also unassigned, private-use and
  line- or paragraph-separator code points.
"""

from __future__ import annotations

import unicodedata

from pcam_pipeline.core.errors import InvalidInput

MAX_NAME_BYTES = 255  # slide ids and dataset names: like a file name on most file systems

# General categories no name may hold: control, format (bidi controls, zero-width characters…), surrogate,
# private use, unassigned, line and paragraph separators.
_REFUSED_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
# Default_Ignorable_Code_Point (Unicode DerivedCoreProperties.txt) outside the Cf category.
_IGNORABLE_RANGES = (
    (0x034F, 0x034F),  # combining grapheme joiner
    (0x115F, 0x1160),  # Hangul fillers
    (0x17B4, 0x17B5),  # Khmer inherent vowels
    (0x180B, 0x180F),  # Mongolian variation selectors
    (0x3164, 0x3164),  # Hangul filler
    (0xFE00, 0xFE0F),  # variation selectors
    (0xFFA0, 0xFFA0),  # halfwidth Hangul filler
    (0xFFF0, 0xFFF8),
    (0xE0000, 0xE0FFF),  # tags and variation selectors supplement
)


def _invisible(character: str) -> bool:
    point = ord(character)
    return unicodedata.category(character) in _REFUSED_CATEGORIES or any(
        low <= point <= high for low, high in _IGNORABLE_RANGES
    )


def _described(character: str) -> str:
    return f"U+{ord(character):04X} {unicodedata.name(character, 'unnamed')}"


def usable_name(name: str, what: str) -> str:
    """The name in NFC, or InvalidInput saying what in it a person could not see or a key could not hold."""
    name = unicodedata.normalize("NFC", name)
    if name in (".", ".."):
        raise InvalidInput(f"the {what} is a path step, not a name", f"a {what} other than . and ..", repr(name))
    if any(unicodedata.category(character) == "Cc" for character in name):
        raise InvalidInput(
            f"the {what} holds control characters (a line break, a tab…)", f"a {what} of printable characters",
            repr(name[:80]),
        )  # fmt: skip
    hidden = [character for character in name if _invisible(character)]
    if hidden:
        raise InvalidInput(
            f"the {what} holds characters a person cannot see (direction controls, zero-width or unassigned "
            "characters), so two different names could look the same",
            f"a {what} of visible letters, digits, marks, symbols and spaces",
            ", ".join(dict.fromkeys(_described(character) for character in hidden)),
        )
    if len(name.encode()) > MAX_NAME_BYTES:
        raise InvalidInput(
            f"the {what} is too long", f"at most {MAX_NAME_BYTES} bytes (UTF-8)", f"{len(name.encode())} bytes"
        )
    return name
