"""One name for a framing: :data:`Framing` values and their short spec strings.

``u32be`` (framekit's default), ``i32le`` (the tutorials' ``struct 'i'`` on x86),
``u16be``, ``u24be:offset=2,adjust=-5,strip=5`` (or ``len:width=3,...``), ``lines``,
``crlf``, ``delim:0x00``, ``varint``, ``netstring``; options follow a colon, separated by
commas. :func:`parse_framing` reads them; every format's ``spec`` writes them back.
"""

from __future__ import annotations

import re
from typing import TypeAlias

from .._errors import InvalidFormat
from ._delimited import DelimitedDecoder, DelimitedEncoder, DelimitedFormat
from ._format import DEFAULT_MAX_FRAME_SIZE, FrameFormat
from ._frames import FrameDecoder, FrameEncoder
from ._netstring import NetstringDecoder, NetstringEncoder, NetstringFormat
from ._varint import VarintDecoder, VarintEncoder, VarintFormat

__all__ = ["AnyDecoder", "AnyEncoder", "Framing", "framing_spec", "parse_framing"]

#: Any framing framekit speaks; each has ``decoder()``, ``encoder()``, ``spec`` and
#: ``max_frame_size``, and every framed wrapper accepts it.
Framing: TypeAlias = FrameFormat | DelimitedFormat | VarintFormat | NetstringFormat
#: What a :data:`Framing`'s ``decoder()`` returns: ``receive_data``, ``frames``,
#: ``next_frame``, ``buffered``, ``at_eof``.
AnyDecoder: TypeAlias = FrameDecoder | DelimitedDecoder | VarintDecoder | NetstringDecoder
#: What a :data:`Framing`'s ``encoder()`` returns: ``encode``, ``encode_into``, ``encode_many``.
AnyEncoder: TypeAlias = FrameEncoder | DelimitedEncoder | VarintEncoder | NetstringEncoder

_INT_NAME = re.compile(r"(?P<sign>[ui])(?P<bits>8|16|24|32|40|48|56|64)(?P<order>be|le|ne)?")
_SIZE = re.compile(r"(?P<n>\d+)\s*(?P<unit>k|kib|m|mib|g|gib|b)?", re.IGNORECASE)
_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kib": 1024,
    "m": 1024**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gib": 1024**3,
}
_ORDERS = {
    "be": "big",
    "le": "little",
    "ne": "native",
    "big": "big",
    "little": "little",
    "native": "native",
}

SPEC_HELP = (
    "u32be (default), u8, u16be, u24be, u64le, i32le (the tutorials' struct 'i'), "
    "len:width=3,offset=2,adjust=-5,strip=5, lines, crlf, delim:0x00, varint, netstring; "
    "options after ':' separated by ',': max=64K, discard, keep, eof=return"
)


def _bad(spec: str, why: str) -> InvalidFormat:
    return InvalidFormat(f"framing {spec!r}: {why} (known: {SPEC_HELP})")


def _size(spec: str, key: str, value: str) -> int:
    m = _SIZE.fullmatch(value.strip())
    if not m:
        raise _bad(spec, f"{key}={value!r} is not a size (e.g. 65536, 64K, 16M)")
    return int(m["n"]) * _UNITS[(m["unit"] or "").lower()]


def _int(spec: str, key: str, value: str) -> int:
    try:
        return int(value, 0)
    except ValueError:
        raise _bad(spec, f"{key}={value!r} is not an integer") from None


def _hex(spec: str, value: str) -> bytes:
    text = value[2:] if value.lower().startswith("0x") else value
    try:
        data = bytes.fromhex(text)
    except ValueError:
        raise _bad(spec, f"{value!r} is not hex bytes (e.g. 0x00 or 0x0d0a)") from None
    if not data:
        raise _bad(spec, "a delimiter cannot be empty")
    return data


def _options(spec: str, text: str) -> tuple[list[str], dict[str, str]]:
    flags: list[str] = []
    values: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip().lower()
        if key in values or key in flags:
            raise _bad(spec, f"option {key!r} given twice")
        if eq:
            values[key] = value.strip()
        else:
            flags.append(item if key.startswith("0x") else key)
    return flags, values


def parse_framing(spec: str) -> Framing:
    """The framing a spec string names.

    Raises:
        InvalidFormat: the spec names no framing, or an option is unknown or out of range;
            the message names the spec (and, for unknown names, lists the known ones).
    """
    try:
        return _parse(spec)
    except InvalidFormat as exc:
        if str(exc).startswith("framing "):
            raise
        raise InvalidFormat(f"framing {spec!r}: {exc}") from None


def _parse(spec: str) -> Framing:
    if not isinstance(spec, str):
        raise InvalidFormat(f"a framing spec is a string, not {type(spec).__name__}")
    name, _, rest = spec.strip().partition(":")
    name = name.strip().lower()
    flags, values = _options(spec, rest)

    def take_flag(flag: str) -> bool:
        if flag in flags:
            flags.remove(flag)
            return True
        return False

    def finish() -> None:
        unknown = [*flags, *values]
        if unknown:
            raise _bad(spec, f"unknown option {unknown[0]!r} for {name}")

    oversize = "discard" if take_flag("discard") else "error"
    max_size = _size(spec, "max", values.pop("max")) if "max" in values else None
    fmt: Framing
    m = _INT_NAME.fullmatch(name)
    if m or name == "len":
        if m:
            width, signed = int(m["bits"]) // 8, m["sign"] == "i"
            order = _ORDERS[m["order"] or "be"]
        else:
            width = _int(spec, "width", values.pop("width", "4"))
            signed = values.pop("signed", "0").lower() in ("1", "true", "yes")
            order = _ORDERS.get(values.pop("order", "big").lower(), "")
            if not order:
                raise _bad(spec, "order must be big, little or native (be, le, ne)")
        strip = _int(spec, "strip", values.pop("strip")) if "strip" in values else None
        fill = _hex(spec, values.pop("fill")) if "fill" in values else b""
        fmt = FrameFormat(
            width,
            order,  # type: ignore[arg-type]
            signed,
            max_size,
            offset=_int(spec, "offset", values.pop("offset", "0")),
            adjust=_int(spec, "adjust", values.pop("adjust", "0")),
            strip=strip,
            header_fill=fill,
            oversize=oversize,  # type: ignore[arg-type]
        )
    elif name in ("lines", "crlf", "lf", "delim"):
        keep = take_flag("keep")
        at_eof = values.pop("eof", "error")
        common = {
            "keep_delimiter": keep,
            "at_eof": at_eof,
            "oversize": oversize,
            **({"max_frame_size": max_size} if max_size is not None else {}),
        }
        if name == "lines":
            fmt = DelimitedFormat.lines(**common)  # type: ignore[arg-type]
        elif name == "crlf":
            fmt = DelimitedFormat.crlf(**common)  # type: ignore[arg-type]
        elif name == "lf":
            fmt = DelimitedFormat((b"\n",), **common)  # type: ignore[arg-type]
        else:
            raw = [f for f in flags if f.lower().startswith("0x")]
            if "delim" in values:
                raw.append(values.pop("delim"))
            for f in raw:
                if f in flags:
                    flags.remove(f)
            delims = tuple(_hex(spec, part) for item in raw for part in item.split("|"))
            if not delims:
                raise _bad(spec, "delim needs its delimiter bytes, e.g. delim:0x00")
            fmt = DelimitedFormat(delims, **common)  # type: ignore[arg-type]
    elif name == "varint":
        fmt = VarintFormat(
            DEFAULT_MAX_FRAME_SIZE if max_size is None else max_size,
            "discard" if oversize == "discard" else "error",
        )
    elif name == "netstring":
        if oversize != "error":
            raise _bad(spec, "netstring has no discard mode")
        fmt = NetstringFormat(*(() if max_size is None else (max_size,)))
    else:
        raise _bad(spec, f"unknown framing {name!r}")
    finish()
    return fmt


def _size_text(n: int) -> str:
    for unit, scale in (("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if n >= scale and n % scale == 0:
            return f"{n // scale}{unit}"
    return str(n)


def framing_spec(fmt: Framing) -> str:
    """The canonical spec string of a framing (what :func:`parse_framing` reads back)."""
    opts: list[str] = []
    if isinstance(fmt, FrameFormat):
        order = {"big": "be", "little": "le"}[fmt.byteorder]
        name = f"{'i' if fmt.signed else 'u'}{fmt.width * 8}{'' if fmt.width == 1 else order}"
        default = FrameFormat(fmt.width, fmt.byteorder, fmt.signed, adjust=fmt.adjust)
        if fmt.offset:
            opts.append(f"offset={fmt.offset}")
        if fmt.adjust:
            opts.append(f"adjust={fmt.adjust}")
        if fmt.strip != fmt.header_size:
            opts.append(f"strip={fmt.strip}")
        if fmt.header_fill:
            opts.append(f"fill=0x{fmt.header_fill.hex()}")
        if fmt.max_frame_size != default.max_frame_size:
            opts.append(f"max={_size_text(fmt.limit)}")
        if fmt.oversize == "discard":
            opts.append("discard")
    elif isinstance(fmt, DelimitedFormat):
        if fmt.strip_cr and fmt.delimiters == (b"\n",):
            name = "lines"
        elif fmt.delimiters == (b"\r\n",):
            name = "crlf"
        elif fmt.delimiters == (b"\n",):
            name = "lf"
        else:
            name = "delim"
            opts.append("|".join(f"0x{d.hex()}" for d in fmt.delimiters))
        if fmt.max_frame_size != DelimitedFormat().max_frame_size:
            opts.append(f"max={_size_text(fmt.max_frame_size)}")
        if fmt.keep_delimiter:
            opts.append("keep")
        if fmt.at_eof != "error":
            opts.append(f"eof={fmt.at_eof}")
        if fmt.oversize == "discard":
            opts.append("discard")
    elif isinstance(fmt, VarintFormat):
        name = "varint"
        if fmt.max_frame_size != VarintFormat().max_frame_size:
            opts.append(f"max={_size_text(fmt.max_frame_size)}")
        if fmt.oversize == "discard":
            opts.append("discard")
    else:
        name = "netstring"
        if fmt.max_frame_size != NetstringFormat().max_frame_size:
            opts.append(f"max={_size_text(fmt.max_frame_size)}")
    return f"{name}:{','.join(opts)}" if opts else name
