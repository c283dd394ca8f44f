"""CSV text built with numpy, a whole chunk of rows at once.

Formatting millions of floats one by one (``str.format``, ``DataFrame.to_csv``) costs seconds per
million rows; here each field becomes a byte matrix (rows × width) plus a mask of the bytes to keep,
the fields are laid side by side, and one boolean index turns the lot into the file's bytes.
Numbers are written with a fixed number of decimals, rounded half to even, no exponent; NaN is
an empty cell.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Bytes2D = npt.NDArray[np.uint8]
Mask2D = npt.NDArray[np.bool_]

_ZERO = ord("0")


@dataclass(frozen=True)
class Field:
    chars: Bytes2D  # (rows, width)
    keep: Mask2D  # (rows, width)


def numbers(values: npt.NDArray[np.float64], decimals: int) -> Field:
    """Fixed-decimal text of ``values``: ``-12.50``, ``0.0``, ``1766`` (decimals=0); NaN -> empty."""
    finite = np.isfinite(values)
    scaled = np.where(finite, np.abs(values), 0.0) * 10.0**decimals
    integers = np.rint(scaled).astype(np.int64)
    negative = finite & (values < 0) & (integers > 0)
    largest = int(integers.max()) if integers.size else 0
    digits = max(len(str(largest)), decimals + 1)
    rows = values.shape[0]
    width = 1 + digits + (1 if decimals else 0)
    chars = np.zeros((rows, width), dtype=np.uint8)
    keep = np.zeros((rows, width), dtype=bool)
    # Digit k counts from the right (k = 0 is the last decimal); column position accounts for the point.
    remaining = integers.copy()
    for k in range(digits):
        digit = remaining % 10
        remaining //= 10
        column = width - 1 - k - (1 if decimals and k >= decimals else 0)
        chars[:, column] = digit + _ZERO
        if k <= decimals:
            keep[:, column] = finite  # decimals and the units digit are always written
        else:
            keep[:, column] = finite & (integers >= 10**k)
    if decimals:
        point = width - 1 - decimals
        chars[:, point] = ord(".")
        keep[:, point] = finite
    # The sign sits just left of the first kept digit.
    first_digit = np.argmax(keep[:, 1:], axis=1)  # index into columns 1.., i.e. column - 1
    sign_rows = np.flatnonzero(negative)
    sign_columns = first_digit[sign_rows]  # column of the first digit minus one
    chars[sign_rows, sign_columns] = ord("-")
    keep[sign_rows, sign_columns] = True
    return Field(chars, keep)


def vocabulary(codes: npt.NDArray[np.integer], words: Sequence[str]) -> Field:
    """Text chosen per row from ``words`` by index (a code of -1 picks the last word)."""
    encoded = [word.encode("ascii") for word in words]
    width = max((len(word) for word in encoded), default=0) or 1
    table = np.zeros((len(encoded), width), dtype=np.uint8)
    table_keep = np.zeros((len(encoded), width), dtype=bool)
    for i, word in enumerate(encoded):
        table[i, : len(word)] = np.frombuffer(word, dtype=np.uint8)
        table_keep[i, : len(word)] = True
    return Field(table[codes], table_keep[codes])


def literal(rows: int, text: str) -> Field:
    raw = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    return Field(np.broadcast_to(raw, (rows, raw.size)), np.ones((rows, raw.size), dtype=bool))


def join_row(fields: Sequence[Field], row_keep: npt.NDArray[np.bool_] | None = None) -> bytes:
    """``field,field,...\\n`` for every row (rows where ``row_keep`` is False are left out)."""
    rows = fields[0].chars.shape[0]
    parts: list[Field] = []
    comma = literal(rows, ",")
    for i, each in enumerate(fields):
        if i:
            parts.append(comma)
        parts.append(each)
    parts.append(literal(rows, "\n"))
    chars = np.concatenate([part.chars for part in parts], axis=1)
    keep = np.concatenate([part.keep for part in parts], axis=1)
    if row_keep is not None:
        keep &= row_keep[:, None]
    return bytes(chars[keep].tobytes())
