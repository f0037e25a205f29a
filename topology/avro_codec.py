"""Avro bodies read and written by closures built once per schema: fastavro's results, faster.

fastavro interprets the schema for every datum: per field a dispatch on the type's name, per
union a validation of the datum against each branch. With ~60 mostly-null fields per
``Attributes``, that was ~25 µs per IdentifyEvent read and ~35 µs per Profile written, a tenth of
a worker's CPU. Here the dispatch happens once, when the schema is compiled into one closure
per node.

These closures are strict on purpose: they handle the data our schemas and rules produce, and
raise on anything else (an unexpected Python type, a union datum without tuple notation beyond
``[null, X]``, a negative block count, a boolean byte other than 0 or 1, a varint beyond 64
bits, ...). ``topology.avro.AvroSchema`` then runs fastavro itself on that datum, so results,
bytes and error messages are always exactly fastavro's; this is only a fast path.
"""

from __future__ import annotations

from collections.abc import Callable
from struct import Struct
from typing import Any

from fastavro._schema_py import extract_record_type, is_single_record_union
from fastavro.const import AVRO_TYPES, NAMED_TYPES
from fastavro.read import LOGICAL_READERS

Reader = Callable[[bytes, int], tuple[Any, int]]  # (data, position) -> (value, next position)
Writer = Callable[[bytearray, Any], None]

_DOUBLE = Struct("<d")
_FLOAT = Struct("<f")
_LONG_MIN, _LONG_MAX = -(1 << 63), (1 << 63) - 1
_INT_MIN, _INT_MAX = -(1 << 31), (1 << 31) - 1


class Unsupported(ValueError):
    """A datum or body the fast path leaves to fastavro."""


def read_long(data: bytes, pos: int) -> tuple[int, int]:
    """A zig-zag varint of at most 64 bits (fastavro's range; longer ones are left to it)."""
    b = data[pos]
    if b < 0x80:  # one byte: most lengths, counts and union indexes
        return (b >> 1) ^ -(b & 1), pos + 1
    pos += 1
    n = b & 0x7F
    shift = 7
    while b & 0x80:
        if shift > 63:
            raise Unsupported("varint longer than 10 bytes")
        b = data[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        shift += 7
    if n >> 64:
        raise Unsupported("varint beyond 64 bits")
    return (n >> 1) ^ -(n & 1), pos


def write_long(buf: bytearray, value: int) -> None:
    if -64 <= value < 64:  # one byte, as most lengths, counts and union indexes are
        buf.append((value << 1) ^ (value >> 63))
        return
    if value < _LONG_MIN or value > _LONG_MAX:
        raise Unsupported("long out of range")
    n = (value << 1) ^ (value >> 63)
    while n > 0x7F:
        buf.append((n & 0x7F) | 0x80)
        n >>= 7
    buf.append(n)


def _read_bytes(data: bytes, pos: int) -> tuple[bytes, int]:
    size, pos = read_long(data, pos)
    end = pos + size
    if size < 0 or end > len(data):
        raise Unsupported("truncated bytes")
    return data[pos:end], end


def _read_string(data: bytes, pos: int) -> tuple[str, int]:
    b = data[pos]
    if b < 0x80 and not b & 1:  # shorter than 64 bytes: most keys and values
        end = pos + 1 + (b >> 1)
        if end > len(data):
            raise Unsupported("truncated bytes")
        return data[pos + 1 : end].decode(), end
    raw, pos = _read_bytes(data, pos)
    return raw.decode(), pos


def _read_null(data: bytes, pos: int) -> tuple[None, int]:
    return None, pos


def _read_boolean(data: bytes, pos: int) -> tuple[bool, int]:
    b = data[pos]
    if b > 1:
        raise Unsupported("boolean byte other than 0 or 1")
    return b == 1, pos + 1


def _read_double(data: bytes, pos: int) -> tuple[float, int]:
    return _DOUBLE.unpack_from(data, pos)[0], pos + 8


def _read_float(data: bytes, pos: int) -> tuple[float, int]:
    return _FLOAT.unpack_from(data, pos)[0], pos + 4


_PRIMITIVE_READERS: dict[str, Reader] = {
    "null": _read_null,
    "boolean": _read_boolean,
    "int": read_long,
    "long": read_long,
    "float": _read_float,
    "double": _read_double,
    "bytes": _read_bytes,
    "string": _read_string,
}


def _write_null(buf: bytearray, datum: Any) -> None:
    if datum is not None:
        raise Unsupported("not null")


def _write_boolean(buf: bytearray, datum: Any) -> None:
    if type(datum) is not bool:
        raise Unsupported("not a bool")
    buf.append(1 if datum else 0)


def _write_int(buf: bytearray, datum: Any) -> None:
    if type(datum) is not int or datum < _INT_MIN or datum > _INT_MAX:
        raise Unsupported("not an int")
    write_long(buf, datum)


def _write_long(buf: bytearray, datum: Any) -> None:
    if type(datum) is not int:
        raise Unsupported("not a long")
    write_long(buf, datum)


def _write_double(buf: bytearray, datum: Any) -> None:
    if type(datum) is not float:
        raise Unsupported("not a float")
    buf += _DOUBLE.pack(datum)


def _write_bytes(buf: bytearray, datum: Any) -> None:
    if type(datum) is not bytes:
        raise Unsupported("not bytes")
    write_long(buf, len(datum))
    buf += datum


def _write_string(buf: bytearray, datum: Any) -> None:
    if type(datum) is not str:
        raise Unsupported("not a str")
    raw = datum.encode()
    size = len(raw)
    if size < 64:
        buf.append(size << 1)
    else:
        write_long(buf, size)
    buf += raw


_PRIMITIVE_WRITERS: dict[str, Writer] = {
    "null": _write_null,
    "boolean": _write_boolean,
    "int": _write_int,
    "long": _write_long,
    "double": _write_double,
    "bytes": _write_bytes,
    "string": _write_string,
}


def unsupported(*_: Any) -> Any:
    """The codec of a schema the fast path cannot compile: everything goes to fastavro."""
    raise Unsupported("no fast path for this schema")


def compile_reader(schema: Any, named: dict[str, Any]) -> Reader:
    """The reader of a fastavro-parsed schema, as ``schemaless_reader(..., None,
    return_record_name=True, return_record_name_override=True)`` reads it."""
    if isinstance(schema, str) and schema in named:
        return _Deferred(lambda: compile_reader(named[schema], named)).read
    if isinstance(schema, list):
        return _union_reader(schema, named)
    kind = extract_record_type(schema)
    if isinstance(schema, dict) and "logicalType" in schema:
        convert = LOGICAL_READERS.get(f"{kind}-{schema['logicalType']}")
        if convert is not None:
            plain = compile_reader(kind, named)

            def read_logical(data: bytes, pos: int) -> tuple[Any, int]:
                value, pos = plain(data, pos)
                return convert(value, schema, None), pos

            return read_logical
    if kind in _PRIMITIVE_READERS:
        return _PRIMITIVE_READERS[kind]
    if kind == "record":
        return _record_reader(schema, named)
    if kind == "enum":
        symbols = list(schema["symbols"])

        def read_enum(data: bytes, pos: int) -> tuple[str, int]:
            index, pos = read_long(data, pos)
            if not 0 <= index < len(symbols):
                raise Unsupported("enum index out of range")
            return symbols[index], pos

        return read_enum
    if kind == "array":
        return _blocks_reader(compile_reader(schema["items"], named), keyed=False)
    if kind == "map":
        return _blocks_reader(compile_reader(schema["values"], named), keyed=True)
    raise Unsupported(f"no fast reader for {kind}")


class _Deferred:
    """A named type's codec, compiled at first use (a record may refer to itself)."""

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build = build
        self._built: Any = None

    def read(self, data: bytes, pos: int) -> tuple[Any, int]:
        if self._built is None:
            self._built = self._build()
        return self._built(data, pos)

    def write(self, buf: bytearray, datum: Any) -> None:
        if self._built is None:
            self._built = self._build()
        self._built(buf, datum)


def _nullable(schema: Any) -> bool:
    """A ``[null, X]`` union: a null is the one byte 0 (most fields of ``Attributes`` are)."""
    return isinstance(schema, list) and len(schema) == 2 and schema[0] == "null"


def _nullable_string(schema: Any) -> bool:
    return _nullable(schema) and schema[1] == "string"


def _nullable_enum(schema: Any, named: dict[str, Any]) -> dict[str, int] | None:
    """The symbols' indexes of a ``[null, enum]`` union whose indexes fit in one byte (the
    channel opt-ins, the gender): written inline rather than through three writers."""
    if not _nullable(schema):
        return None
    branch = named.get(schema[1], schema[1]) if isinstance(schema[1], str) else schema[1]
    if not isinstance(branch, dict) or branch.get("type") != "enum" or len(branch["symbols"]) > 64:
        return None
    return {symbol: n for n, symbol in enumerate(branch["symbols"])}


def _compiled(name: str, lines: list[str], scope: dict[str, Any]) -> Any:
    """One function from generated source: a record's fields unrolled, one statement each, as
    the loop over them (a tuple unpacked and a branch per field) cost as much as the reading."""
    namespace = dict(scope, Unsupported=Unsupported)
    exec(compile("\n".join(lines), f"<avro {name}>", "exec"), namespace)
    return namespace[name]


def _record_reader(schema: dict[str, Any], named: dict[str, Any]) -> Reader:
    scope: dict[str, Any] = {}
    lines = ["def read_record(data, pos):"]
    for n, field in enumerate(schema["fields"]):
        scope[f"r{n}"] = compile_reader(field["type"], named)
        if _nullable_string(field["type"]):  # most fields: null, or a short string
            lines += [
                "    b = data[pos]",
                f"    if b == 0:\n        v{n} = None\n        pos += 1",
                "    elif b == 2 and data[pos + 1] < 0x80 and not data[pos + 1] & 1:",
                "        end = pos + 2 + (data[pos + 1] >> 1)",
                "        if end > len(data):\n            raise Unsupported('truncated bytes')",
                f"        v{n} = data[pos + 2 : end].decode()\n        pos = end",
                f"    else:\n        v{n}, pos = r{n}(data, pos)",
            ]
        elif _nullable(field["type"]):
            lines += [
                f"    if data[pos] == 0:\n        v{n} = None\n        pos += 1",
                f"    else:\n        v{n}, pos = r{n}(data, pos)",
            ]
        elif extract_record_type(field["type"]) in ("array", "map"):  # most of ours are empty
            empty = "[]" if extract_record_type(field["type"]) == "array" else "{}"
            lines += [
                f"    if data[pos] == 0:\n        v{n} = {empty}\n        pos += 1",
                f"    else:\n        v{n}, pos = r{n}(data, pos)",
            ]
        else:
            lines.append(f"    v{n}, pos = r{n}(data, pos)")
    items = ", ".join(f"{field['name']!r}: v{n}" for n, field in enumerate(schema["fields"]))
    lines.append(f"    return {{{items}}}, pos")
    return _compiled("read_record", lines, scope)  # type: ignore[no-any-return]


def _blocks_reader(read_item: Reader, keyed: bool) -> Reader:
    def read_map(data: bytes, pos: int) -> tuple[dict[str, Any], int]:
        out: dict[str, Any] = {}
        count, pos = read_long(data, pos)
        while count:
            if count < 0:
                raise Unsupported("sized block")
            for _ in range(count):
                key, pos = _read_string(data, pos)
                out[key], pos = read_item(data, pos)
            count, pos = read_long(data, pos)
        return out, pos

    def read_array(data: bytes, pos: int) -> tuple[list[Any], int]:
        out: list[Any] = []
        count, pos = read_long(data, pos)
        while count:
            if count < 0:
                raise Unsupported("sized block")
            for _ in range(count):
                item, pos = read_item(data, pos)
                out.append(item)
            count, pos = read_long(data, pos)
        return out, pos

    return read_map if keyed else read_array


def _union_reader(union: list[Any], named: dict[str, Any]) -> Reader:
    branches: list[tuple[Reader, str | None]] = []
    single_record = is_single_record_union(union)
    for branch in union:
        kind = extract_record_type(branch)
        name = None  # what fastavro puts beside the value (return_record_name and override)
        if not single_record and kind == "record":
            name = branch["name"]
        elif not single_record and kind not in AVRO_TYPES:
            name = named[branch]["name"]
        branches.append((compile_reader(branch, named), name))

    def read_union(data: bytes, pos: int) -> tuple[Any, int]:
        b = data[pos]
        if b < 0x80 and not b & 1 and (b >> 1) < len(branches):  # a small index, as all are
            read, name = branches[b >> 1]
            pos += 1
        else:
            index, pos = read_long(data, pos)
            if not 0 <= index < len(branches):
                raise Unsupported("union index out of range")
            read, name = branches[index]
        value, pos = read(data, pos)
        return (value if name is None else (name, value)), pos

    return read_union


def compile_writer(schema: Any, named: dict[str, Any]) -> Writer:
    """The writer of a fastavro-parsed schema: the bytes ``schemaless_writer`` writes."""
    if isinstance(schema, str) and schema in named:
        return _Deferred(lambda: compile_writer(named[schema], named)).write
    if isinstance(schema, list):
        return _union_writer(schema, named)
    kind = extract_record_type(schema)
    if kind == "float" or (isinstance(schema, dict) and "logicalType" in schema):
        if not (kind == "long" and schema.get("logicalType") == "timestamp-millis"):
            raise Unsupported(f"no fast writer for {kind}")
        return _write_long  # an int is written as it is (a datetime is left to fastavro)
    if kind in _PRIMITIVE_WRITERS:
        return _PRIMITIVE_WRITERS[kind]
    if kind == "record":
        return _record_writer(schema, named)
    if kind == "enum":
        indexes = {symbol: n for n, symbol in enumerate(schema["symbols"])}

        def write_enum(buf: bytearray, datum: Any) -> None:
            write_long(buf, indexes[datum])

        return write_enum
    if kind == "array":
        write_item = compile_writer(schema["items"], named)

        def write_array(buf: bytearray, datum: Any) -> None:
            if type(datum) is not list:
                raise Unsupported("not a list")
            if datum:
                write_long(buf, len(datum))
                for item in datum:
                    write_item(buf, item)
            buf.append(0)

        return write_array
    if kind == "map":
        write_value = compile_writer(schema["values"], named)

        def write_map(buf: bytearray, datum: Any) -> None:
            if type(datum) is not dict:
                raise Unsupported("not a dict")
            if datum:
                write_long(buf, len(datum))
                for key, value in datum.items():
                    _write_string(buf, key)
                    write_value(buf, value)
            buf.append(0)

        return write_map
    raise Unsupported(f"no fast writer for {kind}")


def _record_writer(schema: dict[str, Any], named: dict[str, Any]) -> Writer:
    scope: dict[str, Any] = {}
    lines = [
        "def write_record(buf, datum):",
        "    if type(datum) is not dict or '-type' in datum:",
        "        raise Unsupported('not a plain dict')",
    ]
    for n, field in enumerate(schema["fields"]):
        scope[f"w{n}"] = compile_writer(field["type"], named)
        lines.append(f"    v = datum[{field['name']!r}]")
        if _nullable_string(field["type"]):  # most fields: null, or a short string
            lines += [
                "    if v is None:\n        buf.append(0)",
                "    elif type(v) is str and len(v) < 64 and v.isascii():",
                "        buf.append(2)\n        buf.append(len(v) << 1)\n        buf += v.encode()",
                f"    else:\n        w{n}(buf, v)",
            ]
        elif (indexes := _nullable_enum(field["type"], named)) is not None:
            scope[f"e{n}"] = indexes  # a symbol not in it: KeyError, left to fastavro
            lines += [
                "    if v is None:\n        buf.append(0)",
                f"    else:\n        buf.append(2)\n        buf.append(e{n}[v] << 1)",
            ]
        elif _nullable(field["type"]):
            lines += [
                "    if v is None:\n        buf.append(0)",
                f"    else:\n        w{n}(buf, v)",
            ]
        else:
            lines.append(f"    w{n}(buf, v)")
    return _compiled("write_record", lines, scope)  # type: ignore[no-any-return]


def _union_writer(union: list[Any], named: dict[str, Any]) -> Writer:
    if len(union) > 63:
        raise Unsupported("union of more than 63 branches")
    writers = [compile_writer(branch, named) for branch in union]
    by_name: dict[str, int] = {}  # fastavro's tuple notation: the first branch of that name
    for index, branch in enumerate(union):
        kind = extract_record_type(branch)
        by_name.setdefault(branch["name"] if kind in NAMED_TYPES else kind, index)
    null = union.index("null") if "null" in union else None
    # [null, X]: any other datum can only be an X (fastavro validates it against X)
    other = 1 - null if null is not None and len(union) == 2 else None
    # Of primitives only: the branch fastavro's validation picks first for each Python type
    # (a bool is no long nor double; an int is a long, or a double when that comes first).
    by_type: dict[type, int] = {}
    if all(branch in ("null", "string", "long", "double", "boolean") for branch in union):
        accepts = {"null": (type(None),), "string": (str,), "long": (int,), "double": (float, int)}
        for index, branch in reversed(list(enumerate(union))):
            for python_type in accepts.get(branch, (bool,)):
                by_type[python_type] = index

    def write_union(buf: bytearray, datum: Any) -> None:
        if type(datum) is tuple:
            name, datum = datum
            index = by_name[name]
        elif datum is None and null is not None:
            index = null
        elif other is not None:
            index = other
        else:
            index = by_type[type(datum)]  # KeyError: left to fastavro
        buf.append(index << 1)  # a union has fewer than 64 branches (checked above)
        writers[index](buf, datum)

    return write_union
