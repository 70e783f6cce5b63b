"""Names from a model are data wherever they are shown: a file, node, layer or tensor name reaches the terminal,
report.md, report.html, junit.xml and plot labels, and none of them may read it as anything but text.

One escape per medium, pure functions of a string:

- ``terminal_safe``: control characters (ESC, CR, BEL, backspace, C1 controls, bidi overrides …) in a visible form
  (``\\x1b``, ``\\r``, ``\\u202e``), so a name can neither colour, move nor reorder what a terminal shows;
- ``markdown_cell``: that, and HTML and Markdown syntax escaped, for a table cell, list item or heading of report.md;
- ``html_text``: that, and HTML-escaped, for report.html and the other pages;
- ``xml_text``: what XML 1.0 cannot hold (most C0 controls even as ``&#…;``, lone surrogates, U+FFFE/U+FFFF) made
  visible, so junit.xml stays well-formed;
- ``plot_label``: visible, shortened, and ``$`` escaped, so matplotlib never parses a name as mathtext.

The visible forms follow Python's: ``\\t``, ``\\n``, ``\\r``, ``\\xNN`` below U+0100, ``\\uNNNN`` above.
"""

from __future__ import annotations

import html
import re

# C0 controls, DEL, C1 controls; the bidi marks, embeddings, overrides and isolates (Trojan Source: U+061C,
# U+200E/F, U+202A–U+202E, U+2066–U+2069); the line and paragraph separators; lone surrogates (a file name
# decoded with surrogateescape, which UTF-8 cannot encode) and the noncharacters U+FFFE/U+FFFF.
_UNSAFE = "\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff\ufffe\uffff"
_SHORT = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}
# ``_`` only where it could open or close emphasis: not inside a word (``digits_cnn`` stays as it is)
_MARKDOWN_SPECIAL = re.compile(r"([\\`*\[\]|~#]|(?<![^\W_])_|_(?![^\W_]))")
# ``& < >`` as entities, but a comparison (``cosine 0.98 < 0.99``, ``a >= b``): no tag, autolink or entity starts
# at a ``<`` or ``&`` that a space, ``=`` or the end follows, nor ends at a ``>`` between spaces; a ``>`` that
# starts the text is always escaped (a block quote in a list item)
_MARKUP_START = re.compile(r"^\s*>|[&<](?![\s=]|$)|(?<!\s)>|>(?![\s=]|$)")
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
# what would make a list item of its own at the start of one: "- x", "+ x", "1. x", "1) x"
_LIST_MARKER = re.compile(r"^(\s*)([-+]|\d{1,9}(?=[.)]))(?=[.)]?\s)")
_PATTERNS: dict[str, re.Pattern[str]] = {}


def _visible(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _SHORT.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def _pattern(keep: str) -> re.Pattern[str]:
    pattern = _PATTERNS.get(keep)
    if pattern is None:
        kept = "".join(re.escape(c) for c in keep)
        pattern = _PATTERNS[keep] = re.compile(f"(?![{kept}])[{_UNSAFE}]" if kept else f"[{_UNSAFE}]")
    return pattern


def escape_controls(text: object, *, keep: str = "") -> str:
    """``text`` with every control, bidi and unencodable character in its visible form (``\\x1b``), except
    those in ``keep`` (e.g. ``"\\n"`` for text that is meant to have lines)."""
    return _pattern(keep).sub(_visible, str(text))


def terminal_safe(text: object, *, keep: str = "") -> str:
    """What a terminal may print of ``text``: no escape sequence, carriage return, bell, backspace or bidi
    override reaches it, each is shown as ``\\x1b``, ``\\r``, ``\\x07``, ``\\x08``, ``\\u202e``."""
    return escape_controls(text, keep=keep)


def markdown_cell(text: object) -> str:
    """``text`` as literal Markdown (a table cell, a list item, a heading): controls and newlines visible, HTML's
    ``& < >`` as entities (but in a comparison such as ``0.98 < 0.99``, where no tag can start or end),
    and Markdown's ``\\ ` * _ [ ] | ~ #`` backslash-escaped (``_`` where it could start or end emphasis:
    ``digits_cnn`` is left as it is)."""
    escaped = _MARKDOWN_SPECIAL.sub(r"\\\1", escape_controls(text))
    escaped = _MARKUP_START.sub(lambda match: match.group()[:-1] + _ENTITIES[match.group()[-1]], escaped)
    return _LIST_MARKER.sub(lambda match: match.group(1) + _list_escape(match.group(2)), escaped, count=1)


def _list_escape(marker: str) -> str:
    return "\\" + marker if marker in "-+" else marker + "\\"


def html_text(text: object) -> str:
    """``text`` for an HTML page: controls visible (newlines and tabs kept), then HTML-escaped."""
    return html.escape(escape_controls(text, keep="\n\t"))


def xml_text(text: object) -> str:
    """``text`` as XML 1.0 can hold it: what XML forbids even escaped (C0 controls but tab, newline and carriage
    return; lone surrogates; U+FFFE/U+FFFF), and the other controls a CI page would show raw, in their visible
    form. Tabs and newlines are kept; ``< & "`` are left to the XML writer."""
    return escape_controls(text, keep="\n\t")


def plot_label(text: object, *, max_chars: int = 80) -> str:
    """``text`` for a matplotlib label: controls visible, shortened to ``max_chars`` (its start and end kept),
    and every ``$`` escaped so that mathtext never parses it (a name like ``$$`` or ``$\\bad$`` would fail the
    whole figure). Meant for text drawn with ``text.usetex`` off (:func:`edgekit.pipeline.html.drawn`)."""
    label = escape_controls(text)
    if len(label) > max_chars:
        head = (max_chars - 1) // 2
        label = label[:head] + "…" + label[len(label) - (max_chars - 1 - head):]
    return label.replace("$", r"\$")
