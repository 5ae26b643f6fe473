"""The hot path of a small body: parse and judge its events in one native pass, when that can say yes.

An ordinary body (a tracker's batch, all of it valid, events made only of the schema's named fields)
costs an orjson parse and a jsonschema-rs pass over the Python objects that parse built: about
2.7 and 4 µs per event here (docs/capacity.md). `HotShape` decodes the body's bytes with msgspec into
Structs translated from schemas/event.schema.json, so that the parse checks the types, lengths and
bounds as it reads; that costs about as much as the orjson parse alone, and the Structs become the
same dicts only if something reads them (HotEvents). It only ever says yes or "don't know":

- `HotShape.events(body)` is the body's events exactly when the old path (workers/collect/body.py
  `parse_events_text`, then validation.AppValidator) would parse the body as it is and accept every
  event, with events equal to what orjson builds; otherwise None, and the collector takes the old
  path, which gives every answer, error and error text (tests/unit/collect/test_hot.py runs both on
  random and hostile bodies). `HotShape.accepted(body)` is the same judgement with the events left
  as decoded (`HotEvents`), made dicts only if they are read.
- What the translation cannot express exactly is left to the old path, never approximated: a property
  whose subschema uses a keyword it does not know is left out of the Struct, so an event that has it
  goes the old way (so do unknown top-level fields, which the schema allows as scalars); an integer
  written as 1.0, which JSON Schema counts as an integer, fails `int`; a float bound that a double
  cannot hold exactly is moved inwards to the nearest double that it can; a lone surrogate escape,
  which orjson refuses and body.py replaces, fails msgspec's decode too.
- A key written twice: orjson keeps the last value, and so does msgspec. msgspec checks the types,
  lengths and bounds of both, the pattern checks below see the last: a body passes only if the value
  both keep is valid.
- `pattern` and `propertyNames` are not checked by msgspec (it calls Python's `re` per string, which
  would double the decode, and its dialect differs from the schema's ECMA one): a string under a
  pattern and the keys under propertyNames are checked afterwards, each by jsonschema-rs against its
  own subschema on first sight, then from a set of names already found valid (at most
  MAX_KNOWN_NAMES per subschema; past that a new name is checked each time it appears). Once names
  are known, a learned shape tried first holds them as Literals, which msgspec looks up as it reads
  (HotShape._learn): a name it does not know fails it, and the checked shapes judge the body.

A body of more than CHUNK_EVENTS events (validation.py) goes the old way, which judges it in steps.
A body this path accepts nests no deeper than its Structs (the dropped duplicate of a key too), so an
envelope may carry its text as is without counting its brackets (body.carriable).
"""

from __future__ import annotations

import keyword
import math
from collections.abc import Callable, Iterable
from itertools import chain
from operator import attrgetter
from typing import Annotated, Any, Literal, Union

import jsonschema_rs
import msgspec

from workers.collect import limits

# Names remembered per pattern-checked subschema: a site's event types and attribute names are a few
# hundred; a sender inventing names cannot grow the set past this.
MAX_KNOWN_NAMES = 4096
# Names of a subschema the learned shape holds as a Literal (HotShape._learn); past this, it is
# dropped. A site's event types and attribute names are a few hundred; building the shape again costs
# about 2 ms at this many (3 ms at 1,000), so a sender inventing names costs a few hundred such
# builds in all, once.
LITERAL_NAMES = 512
# Bodies the learned shape missed between two of its builds (HotShape._learn): a build costs 1-7 ms
# (more with more names), about what this many 20-event bodies cost to judge, so a sender bringing a
# new name in every body makes a build per this many of its bodies, not one per body.
REBUILD_EVERY = 64

_ANNOTATIONS = {"$schema", "$id", "$defs", "$comment", "title", "description"}
_SCALAR_KEYWORDS = {"type", "minLength", "maxLength", "minimum", "maximum", "pattern", "const"}
_OBJECT_KEYWORDS = {
    "type",
    "properties",
    "required",
    "additionalProperties",
    "propertyNames",
    "maxProperties",
}
_ARRAY_KEYWORDS = {"type", "items", "maxItems", "minItems"}

# The order the tracker writes an event's keys in (tracker/src/hubcap.js `track`; a test reads it from
# there). msgspec looks each key up among a Struct's fields starting after the field the previous key
# matched, so fields in the order the keys come cost one comparison each where another order costs a
# scan: 84k of msgspec's instructions for bench/collect.py's 20-event body against 35k (callgrind,
# docs/capacity.md).
WRITTEN_ORDER = (
    "event_type",
    "event_id",
    "timestamp",
    "app_id",
    "platform",
    "page_url",
    "page_title",
    "page_referrer",
    "screen_width",
    "screen_height",
    "viewport_width",
    "viewport_height",
    "locale",
    "system_language",
    "zone_offset",
    "sdk_name",
    "sdk_version",
    "session_id",
    "device_id",
    "user",
    "instance_id",
    "attributes",
)
_WRITTEN_AT = {name: at for at, name in enumerate(WRITTEN_ORDER)}

# A check of what msgspec left unchecked (patterns, property names), on a column: every decoded value
# at one place of the schema (say every event's event_type), so that the walk runs in C, not per value
# in Python. UNSET (an absent optional property) may be among them and passes; so does an empty column.
Check = Callable[[Iterable[Any]], bool]


class Untranslatable(Exception):
    """A subschema with a keyword or combination the translation does not express exactly."""


class _KnownNames:
    """Strings found valid against one subschema by jsonschema-rs, remembered up to MAX_KNOWN_NAMES."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self._validator = jsonschema_rs.validator_for(schema)
        self._known: set[Any] = {msgspec.UNSET}

    def known(self) -> set[Any]:
        """The names found valid so far (and UNSET)."""
        return self._known

    def valid(self, name: Any) -> bool:
        if name in self._known:
            return True
        if not self._validator.is_valid(name):
            return False
        if len(self._known) <= MAX_KNOWN_NAMES:
            self._known.add(name)
        return True

    def all_valid(self, names: Iterable[Any]) -> bool:
        # Each name once (a body repeats its few event types and attribute names in every event); the
        # usual case, every name known, is then one C call. A set (check_map's keys) is not copied.
        distinct = names if type(names) is set else set(names)
        return self._known.issuperset(distinct) or all(map(self.valid, distinct))


def _inward(bound: int | float, upper: bool) -> float:
    """The double nearest `bound` on its inner side, so that a float within it is within `bound`."""
    near = float(bound)
    if upper and near > bound:
        return math.nextafter(near, -math.inf)
    if not upper and near < bound:
        return math.nextafter(near, math.inf)
    return near


def _column(name: str) -> Callable[[list[Any]], list[Any]]:
    """The values of one field of a list of Structs, in order.

    Written as a comprehension reading `s.<name>`, whose attribute read the interpreter specialises
    to a slot read, where operator.attrgetter takes the generic lookup each time: bench/collect.py's
    three checked columns of 20 events cost 12k instructions against 26k (callgrind). A name that is
    not an ASCII identifier takes attrgetter: the schema may name a property anything, and the parser
    would read a non-ASCII identifier in its NFKC form, another name.
    """
    if not (name.isascii() and name.isidentifier()) or keyword.iskeyword(name):
        getter = attrgetter(name)
        return lambda structs: list(map(getter, structs))
    namespace: dict[str, Any] = {}
    exec(f"def column(structs):\n    return [s.{name} for s in structs]", namespace)  # noqa: S102
    column: Callable[[list[Any]], list[Any]] = namespace["column"]
    return column


class _Translator:
    """Translates a schema into msgspec types (`translate`).

    `names` holds the _KnownNames of each pattern-checked subschema, by the id of its node (the node
    is kept beside them, so the id is not reused): translators of the same schema given the same dict
    share them, so names that one shape's checks found valid are known to the others. With `literal`,
    a string under a pattern becomes a Literal of the names known valid for it, a map under
    propertyNames a dict keyed by such a Literal: msgspec then judges them as it reads, in C, and
    leaves nothing to check afterwards; a name not (yet) known fails the decode, and the body takes
    the next shape (HotShape).
    """

    def __init__(
        self,
        schema: dict[str, Any],
        names: dict[int, tuple[Any, _KnownNames]] | None = None,
        *,
        literal: bool = False,
    ) -> None:
        self._defs = schema.get("$defs", {})
        self._dialect = schema.get("$schema")
        self._structs = 0
        self._known = {} if names is None else names
        self._literal = literal

    def _resolve(self, node: Any) -> dict[str, Any]:
        while isinstance(node, dict) and "$ref" in node:
            if node.keys() - _ANNOTATIONS - {"$ref"} or not str(node["$ref"]).startswith("#/$defs/"):
                raise Untranslatable("a $ref beside other keywords, or not to $defs")
            node = self._defs[node["$ref"].removeprefix("#/$defs/")]
        if not isinstance(node, dict):
            raise Untranslatable("a boolean schema")
        return node

    def _names(self, node: dict[str, Any]) -> _KnownNames:
        held = self._known.get(id(node))
        if held is not None:
            return held[1]
        schema = {"$defs": self._defs, **node}
        if self._dialect:
            schema["$schema"] = self._dialect
        names = _KnownNames(schema)
        self._known[id(node)] = (node, names)
        return names

    def _literal_of(self, names: _KnownNames) -> Any:
        """A Literal of the names known valid (sorted: the same names, the same type)."""
        known = sorted(name for name in names.known() if isinstance(name, str))
        if not known:
            raise Untranslatable("no name known valid yet")
        return Literal[tuple(known)]

    def translate(self, node: Any) -> tuple[Any, Check | None]:
        """A msgspec type accepting a subset of what `node` accepts, and the check it leaves to do."""
        node = self._resolve(node)
        kinds = node.get("type")
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not isinstance(kinds, list) or not kinds:
            raise Untranslatable("no type")
        if "object" in kinds or "array" in kinds:
            if len(kinds) > 1:
                raise Untranslatable("a container type beside others")
            return self._object(node) if kinds == ["object"] else self._array(node)
        return self._scalar(node, kinds)

    def _scalar(self, node: dict[str, Any], kinds: list[str]) -> tuple[Any, Check | None]:
        if node.keys() - _ANNOTATIONS - _SCALAR_KEYWORDS:
            raise Untranslatable(f"keywords {sorted(node.keys() - _ANNOTATIONS - _SCALAR_KEYWORDS)}")
        if "const" in node:
            const = node["const"]
            if kinds != ["string"] or not isinstance(const, str) or not self._names(node).all_valid([const]):
                raise Untranslatable("a const other than a valid string")
            return Literal[const], None
        low, high = node.get("minimum"), node.get("maximum")
        if not all(bound is None or type(bound) is int for bound in (low, high)):
            raise Untranslatable("a bound that is not an integer")
        lengths = {"min_length": node.get("minLength"), "max_length": node.get("maxLength")}
        members: list[Any] = []
        for kind in kinds:
            if kind == "string":
                members.append(
                    Annotated[str, msgspec.Meta(**{k: v for k, v in lengths.items() if v is not None})]
                )
            elif kind in ("integer", "number"):
                members.append(Annotated[int, msgspec.Meta(ge=low, le=high)])
                if kind == "number":
                    floor = None if low is None else _inward(low, upper=False)
                    ceiling = None if high is None else _inward(high, upper=True)
                    members.append(Annotated[float, msgspec.Meta(ge=floor, le=ceiling)])
            elif kind == "boolean":
                members.append(bool)
            elif kind == "null":
                members.append(None)
            else:
                raise Untranslatable(f"type {kind!r}")
        check = self._names(node).all_valid if "pattern" in node else None
        if check is not None and kinds != ["string"]:
            raise Untranslatable("a pattern on a type beside string")
        if check is not None and self._literal:
            return self._literal_of(self._names(node)), None
        return (members[0] if len(members) == 1 else Union[tuple(members)]), check  # noqa: UP007

    def _array(self, node: dict[str, Any]) -> tuple[Any, Check | None]:
        if node.keys() - _ANNOTATIONS - _ARRAY_KEYWORDS or "items" not in node:
            raise Untranslatable("an array without items or with other keywords")
        item, item_check = self.translate(node["items"])
        lengths = {"min_length": node.get("minItems"), "max_length": node.get("maxItems")}
        kind = Annotated[list[item], msgspec.Meta(**{k: v for k, v in lengths.items() if v is not None})]  # type: ignore[valid-type]
        if item_check is None:
            return kind, None
        # filter drops UNSET and empty lists, both falsy
        return kind, lambda arrays: item_check(chain.from_iterable(filter(None, arrays)))

    def _object(self, node: dict[str, Any]) -> tuple[Any, Check | None]:
        if node.keys() - _ANNOTATIONS - _OBJECT_KEYWORDS:
            raise Untranslatable(f"keywords {sorted(node.keys() - _ANNOTATIONS - _OBJECT_KEYWORDS)}")
        properties: dict[str, Any] = node.get("properties", {})
        names = self._names(self._resolve(node["propertyNames"])) if "propertyNames" in node else None
        if not properties:
            return self._map(node, names)
        if names is not None and not names.all_valid(properties):
            raise Untranslatable("a property the object's propertyNames refuse")
        most = node.get("maxProperties")
        if most is not None and len(properties) > most:
            raise Untranslatable("more properties than maxProperties")
        required = set(node.get("required", ()))
        if not required <= properties.keys():
            raise Untranslatable("a required property without a subschema")
        fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
        checks: list[tuple[str, Check]] = []
        for name, subschema in properties.items():
            try:
                kind, check = self.translate(subschema)
            except Untranslatable:
                if name in required:
                    raise
                continue  # left out: an event with this property takes the old path
            fields.append(
                (name, kind) if name in required else (name, kind | msgspec.UnsetType, msgspec.UNSET)
            )
            if check is not None:
                checks.append((name, check))
        # Required fields first (a Struct's fields without a default must come before those with one),
        # each part in WRITTEN_ORDER, then the others as the schema lists them.
        fields.sort(key=lambda spec: (len(spec) == 3, _WRITTEN_AT.get(spec[0], len(_WRITTEN_AT))))
        self._structs += 1
        # gc=False: decoded values hold no cycles, and the collector need not track them
        struct = msgspec.defstruct(f"Hot{self._structs}", fields, forbid_unknown_fields=True, gc=False)
        if not checks:
            return struct, None

        columns = tuple((_column(name), check) for name, check in checks)

        def check_fields(structs: Iterable[Any]) -> bool:
            present = list(filter(None, structs))  # without UNSET, falsy; a Struct is truthy
            # Every check passes an empty column: a property no event has costs no pass of its own.
            # A loop, not all() over a generator: a generator's frame per call, for two or three checks.
            if present:
                for column, check in columns:
                    if not check(column(present)):
                        return False
            return True

        return struct, check_fields

    def _map(self, node: dict[str, Any], names: _KnownNames | None) -> tuple[Any, Check | None]:
        extra = node.get("additionalProperties", True)
        if extra is True or node.get("required"):
            raise Untranslatable("an object of any values, or a map with required keys")
        value, value_check = self.translate(extra)
        most = node.get("maxProperties")
        key: Any = str
        if names is not None and self._literal:
            key, names = self._literal_of(names), None
        kind = Annotated[dict[key, value], msgspec.Meta(max_length=most)]  # type: ignore[valid-type]
        if names is None and value_check is None:
            return kind, None

        def check_map(maps: Iterable[Any]) -> bool:
            present = list(filter(None, maps))  # without UNSET and empty maps, both falsy
            if not present:
                return True  # as for check_fields: nothing to check
            # set().union reads each dict's keys with the hashes the dict holds, in C
            if names is not None and not names.all_valid(set().union(*present)):
                return False
            return value_check is None or value_check(chain.from_iterable(map(dict.values, present)))

        return kind, check_map


class HotEvents:
    """A body's events that the hot path accepted, as msgspec decoded them (Structs). The dicts orjson
    would build are made only when something reads them (`dicts`): the collector's own path never
    does, as the envelope carries the body's text and the answer needs only how many there are, and
    making them was a quarter of the path's instructions (docs/capacity.md)."""

    __slots__ = ("_decoded",)

    def __init__(self, decoded: list[Any]) -> None:
        self._decoded = decoded

    def __len__(self) -> int:
        return len(self._decoded)

    def dicts(self) -> list[dict[str, Any]]:
        """The events as orjson reads them from the body."""
        events: list[dict[str, Any]] = msgspec.to_builtins(self._decoded)
        return events


class HotShape:
    """The one-pass decode and judgement of a body of one app's events (see the module docstring)."""

    def __init__(self, event_schema: dict[str, Any], max_events: int) -> None:
        self._names: dict[int, tuple[Any, _KnownNames]] = {}
        event, check = _Translator(event_schema, self._names).translate(event_schema)
        self._max_events = min(max_events, limits.MAX_EVENTS_PER_REQUEST)
        self._shapes = [(msgspec.json.Decoder(list[event]), check)]  # type: ignore[valid-type]
        written = _written_only(event_schema)
        self._learnable = event_schema if written is None else written
        if written is not None:
            try:
                event, check = _Translator(written, self._names).translate(written)
            except Untranslatable:
                self._learnable = event_schema
            else:
                self._shapes.insert(0, (msgspec.json.Decoder(list[event]), check))  # type: ignore[valid-type]
        # The decoder an ordinary body takes (bench/collect.py times it alone)
        self._decoder = self._shapes[0][0]
        # The shape of names learned (_learn): None until built, False once past LITERAL_NAMES
        self._learned: tuple[Any, Check | None] | Literal[False] | None = None
        self._learned_names = 0
        self._missed = 0  # bodies _learn saw since the learned shape was last built
        # The root's properties some accepted event had (and the required ones): the learned shape's
        # Structs have only these fields
        self._fields_seen = set(event_schema.get("required", ()))

    def accepted(self, body: bytes) -> HotEvents | None:
        """The body's events when every one is valid; else None (don't know).

        The events are decoded first into Structs of only the fields the tracker writes (and the
        required ones), then, if that fails (an event with another of the schema's properties, or
        one that is not valid), into Structs of every property. Those have a field per property of
        the schema (38 in today's), which the decode fills with UNSET and the collector frees one
        by one for the 20 or so a tracker's event has: 17k of the 345k instructions that bench/collect.py's
        20-event body cost (callgrind). The first Structs are the second's fields restricted to
        the tracker's, typed and checked alike, so an event either accepts reads as the same values,
        in the same order: the judgement is the second's.

        Before both, once a body has been accepted, comes the learned shape (_learn): the first
        Structs, with only the properties events have had, and each pattern-checked string and
        name a Literal of the ones found valid so far.
        """
        learned = self._learned
        if learned:
            try:
                decoded = learned[0].decode(body)
            except (msgspec.DecodeError, ValueError):
                pass
            else:
                # _judged written out: the call is one more frame on every ordinary body
                check = learned[1]
                if len(decoded) > self._max_events or (check is not None and not check(decoded)):
                    return None
                return HotEvents(decoded)
        for decoder, check in self._shapes:
            try:
                decoded = decoder.decode(body)
            except (msgspec.DecodeError, ValueError):  # ValueError: invalid UTF-8 inside a string
                continue
            events = self._judged(decoded, check)
            # Only the shape the learned one is made from teaches it: a body that only the shape of
            # every property accepts has fields the learned shape never has.
            if events is not None and learned is not False and decoder is self._decoder:
                self._learn(decoded)
            return events
        return None

    def _judged(self, decoded: list[Any], check: Check | None) -> HotEvents | None:
        if len(decoded) > self._max_events:
            return None
        if check is not None and not check(decoded):
            return None
        return HotEvents(decoded)

    def _learn(self, decoded: list[Any]) -> None:
        """Build the learned shape again when names have been found valid, or properties seen in an
        event (`decoded`, accepted), since it was built.

        The patterns and property names are then judged by msgspec's Literal lookups as it decodes,
        not by the checks afterwards (sets of the names read, looked up in the known ones): 60k of
        the 331k instructions of bench/collect.py's 20-event body (callgrind). A Literal holds only
        names jsonschema-rs found valid against the subschema (its lengths and pattern), so the
        learned shape accepts a subset of what the shape it is made from accepts: the judgement
        stays that one's. A body with a name not yet known fails its decode and takes the shapes
        after it, which learn the name. Once built, it is built again at most once per REBUILD_EVERY
        bodies that missed it, so a sender bringing a new name in every body pays for a build over
        that many of its bodies. Past LITERAL_NAMES names in a subschema (a sender inventing names)
        the learned shape is dropped for good.

        Its Structs have only the properties events have had (a property first seen fails the decode
        the same way, and is then learned): the fields an event lacks cost their UNSET fill and
        free, 7k instructions for the 5 of the 22 tracker fields bench/collect.py's events lack.
        """
        if decoded:
            seen = self._fields_seen
            for name in type(decoded[0]).__struct_fields__:
                if name not in seen and any(getattr(event, name) is not msgspec.UNSET for event in decoded):
                    seen.add(name)
        self._missed += 1
        if self._learned is not None and self._missed < REBUILD_EVERY:
            return  # built before: what is new waits for the next build (REBUILD_EVERY)
        sets = [names.known() for _, names in self._names.values()]
        count = sum(map(len, sets)) + len(self._fields_seen)
        if count == self._learned_names:
            return
        self._learned_names = count
        self._missed = 0
        if max(map(len, sets), default=0) > LITERAL_NAMES:
            self._learned = False
            return
        schema = self._learnable
        properties = schema.get("properties", {})
        seen_only = {name: node for name, node in properties.items() if name in self._fields_seen}
        if seen_only:  # (without any, the root would translate as a map)
            schema = {**schema, "properties": seen_only}
        try:
            event, check = _Translator(schema, self._names, literal=True).translate(schema)
        except Untranslatable:
            return  # a required name not known yet
        self._learned = (msgspec.json.Decoder(list[event]), check)  # type: ignore[valid-type]

    def events(self, body: bytes) -> list[dict[str, Any]] | None:
        """The body's events as orjson reads them, when every one is valid; else None (don't know)."""
        accepted = self.accepted(body)
        return None if accepted is None else accepted.dicts()


def _written_only(event_schema: dict[str, Any]) -> dict[str, Any] | None:
    """The event schema with only the properties the tracker writes (WRITTEN_ORDER) and the required
    ones, when that leaves some out; else None."""
    properties = event_schema.get("properties")
    if not isinstance(properties, dict):
        return None
    keep = set(WRITTEN_ORDER).union(event_schema.get("required", ()))
    written = {name: node for name, node in properties.items() if name in keep}
    # None written: an object without properties would translate as a map of additionalProperties,
    # which does not check the declared properties at all; so is every one: nothing to restrict.
    if not written or len(written) == len(properties):
        return None
    return {**event_schema, "properties": written}


def hot_shape(event_schema: dict[str, Any], max_events: int) -> HotShape | None:
    """The app's HotShape, or None when the schema's root cannot be translated (every body then takes
    the old path)."""
    try:
        return HotShape(event_schema, max_events)
    except Untranslatable:
        return None
