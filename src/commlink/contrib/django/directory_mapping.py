"""The declared mapping from a host's models to commlink's directory.

``settings.COMMLINK["DIRECTORY"]`` names the host's person, company and
opportunity models and where their names, addresses, domains, companies and
points of contact are (see ``docs/django.md``). This module checks that
mapping against the models once and resolves it into ``DirectoryMapping``;
every mistake is a ``ConfigError`` naming the setting.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

import attrs
from django.apps import apps
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.db.models.constants import LOOKUP_SEP

from ...addresses import address_key, normalise_domain
from ...errors import ConfigError

__all__ = ["DirectoryMapping", "ModelMapping", "ValueSpec", "parse_mapping"]

ValueKind = Literal["address", "domain"]

_SECTIONS = {
    "person": {"model", "name", "company", "addresses"},
    "company": {"model", "name", "domains"},
    "opportunity": {"model", "name", "company", "contacts", "open"},
}
_TOP = {"using", "person", "company", "opportunity", "create_contacts"}


@attrs.frozen
class ValueSpec:
    """Where one kind of a record's addresses or domains is held.

    ``path`` is a lookup path from the record's model to a text field;
    ``key`` an optional lookup path to a field on the same model holding the
    normalised form (kept current by commlink's ``pre_save`` hook); a
    ``separator`` means the field holds several values.
    """

    path: str
    kind: ValueKind
    key: str | None = None
    separator: str | None = None

    def normalise(self, text: str) -> str:
        """The comparison key of one stored value (``""`` if invalid)."""
        text = text.strip()
        return address_key(text) if self.kind == "address" else normalise_domain(text)

    def values(self, stored: str | None) -> list[str]:
        """The comparison keys of a stored field value."""
        if not stored:
            return []
        parts = stored.split(self.separator) if self.separator else [stored]
        return [key for key in map(self.normalise, parts) if key]

    @property
    def relation(self) -> str:
        """The relation part of ``path`` (``""`` for a field of the record itself)."""
        return self.path.rpartition(LOOKUP_SEP)[0]

    @property
    def field_name(self) -> str:
        return self.path.rpartition(LOOKUP_SEP)[2]

    @property
    def key_field_name(self) -> str | None:
        return self.key.rpartition(LOOKUP_SEP)[2] if self.key else None


@attrs.frozen
class ModelMapping:
    """One mapped model: its name fields, company link and value fields."""

    model: type[models.Model]
    name_fields: tuple[str, ...]
    company: str | None = None
    values: tuple[ValueSpec, ...] = ()
    contacts: str | None = None
    open_filter: Mapping[str, Any] = attrs.field(factory=dict)

    def name_of(self, row: Mapping[str, Any]) -> str:
        """The display name of a row fetched with ``values()`` of the name fields."""
        return " ".join(str(row[f]) for f in self.name_fields if row.get(f)).strip()

    def pk_of(self, text: str) -> Any:
        """A primary key from its string form, or ``None`` if it cannot be one."""
        return _to_python(self.model._meta.pk, text)


@attrs.frozen
class DirectoryMapping:
    """The resolved ``COMMLINK["DIRECTORY"]`` setting."""

    using: str
    person: ModelMapping
    company: ModelMapping
    opportunity: ModelMapping | None
    create_contacts: bool = True

    def watched_models(self) -> list[type[models.Model]]:
        """The mapped models and the models their value fields live on."""
        found: list[type[models.Model]] = []
        for mapping in (self.person, self.company, self.opportunity):
            if mapping is None:
                continue
            found.append(mapping.model)
            for spec in mapping.values:
                found.append(value_model(mapping.model, spec))
        return list(dict.fromkeys(found))


def parse_mapping(raw: Any) -> DirectoryMapping:
    """Resolve ``COMMLINK["DIRECTORY"]`` against the installed models."""
    where = 'COMMLINK["DIRECTORY"]'
    data = _table(raw, where)
    _known(data, _TOP, where)
    using = data.get("using", "default")
    if not isinstance(using, str):
        raise ConfigError(f'{where}["using"] must be a database alias')
    person = _model_mapping(data, "person", "addresses", "address", required=True)
    company = _model_mapping(data, "company", "domains", "domain", required=True)
    opportunity = _model_mapping(data, "opportunity", None, "domain", required=False)
    assert person is not None
    assert company is not None
    if person.company is not None:
        _check_relation(
            person.model, person.company, company.model, f"{where}['person']['company']"
        )
    if opportunity is not None:
        if opportunity.company is not None:
            _check_relation(
                opportunity.model,
                opportunity.company,
                company.model,
                f"{where}['opportunity']['company']",
            )
        if opportunity.contacts is not None:
            _check_relation(
                opportunity.model,
                opportunity.contacts,
                person.model,
                f"{where}['opportunity']['contacts']",
            )
    create = data.get("create_contacts", True)
    if not isinstance(create, bool):
        raise ConfigError(f'{where}["create_contacts"] must be true or false')
    return DirectoryMapping(using, person, company, opportunity, create)


def value_model(model: type[models.Model], spec: ValueSpec) -> type[models.Model]:
    """The model holding a value spec's field (``model`` itself for its own field)."""
    current = model
    for part in spec.path.split(LOOKUP_SEP)[:-1]:
        related = current._meta.get_field(part).related_model
        assert isinstance(related, type)
        current = related
    return current


def _model_mapping(
    data: Mapping[str, Any],
    section: str,
    values_key: str | None,
    kind: ValueKind,
    *,
    required: bool,
) -> ModelMapping | None:
    where = f'COMMLINK["DIRECTORY"]["{section}"]'
    if section not in data:
        if required:
            raise ConfigError(f"{where} is required")
        return None
    raw = _table(data[section], where)
    _known(raw, _SECTIONS[section], where)
    model = _model(raw.get("model"), f'{where}["model"]')
    names = raw.get("name", ())
    name_fields = (names,) if isinstance(names, str) else tuple(names)
    for name in name_fields:
        _check_text_field(model, name, f'{where}["name"]')
    values: tuple[ValueSpec, ...] = ()
    if values_key is not None:
        values = _value_specs(model, raw.get(values_key), kind, f'{where}["{values_key}"]')
    open_filter = raw.get("open", {})
    if not isinstance(open_filter, Mapping):
        raise ConfigError(f'{where}["open"] must be a dict of filter() arguments')
    return ModelMapping(
        model=model,
        name_fields=name_fields,
        company=_optional_path(raw, "company", where),
        values=values,
        contacts=_optional_path(raw, "contacts", where),
        open_filter=dict(open_filter),
    )


def _value_specs(
    model: type[models.Model], raw: Any, kind: ValueKind, where: str
) -> tuple[ValueSpec, ...]:
    items = [raw] if isinstance(raw, (str, Mapping)) else list(raw or ())
    if not items:
        raise ConfigError(f"{where} must name at least one field")
    specs: list[ValueSpec] = []
    for item in items:
        entry = {"path": item} if isinstance(item, str) else dict(item)
        _known(entry, {"path", "key", "separator"}, where)
        path, key, separator = entry.get("path"), entry.get("key"), entry.get("separator")
        if not isinstance(path, str) or not path:
            raise ConfigError(f'{where}: each entry needs a "path"')
        if separator is not None and (not isinstance(separator, str) or not separator):
            raise ConfigError(f'{where}: "separator" must be a non-empty string')
        spec = ValueSpec(path=path, kind=kind, key=key, separator=separator)
        _check_text_field(model, path, where)
        if key is not None:
            if not isinstance(key, str) or key.rpartition(LOOKUP_SEP)[0] != spec.relation:
                raise ConfigError(f'{where}: "key" must be a field beside {path!r}')
            if separator is not None:
                raise ConfigError(f'{where}: a "key" field holds one value, not a list')
            _check_text_field(model, key, where)
        specs.append(spec)
    return tuple(specs)


def _model(label: Any, where: str) -> type[models.Model]:
    if not isinstance(label, str) or label.count(".") != 1:
        raise ConfigError(f'{where} must be "app_label.ModelName"')
    try:
        return apps.get_model(label)
    except (LookupError, ValueError) as exc:
        raise ConfigError(f"{where}: no installed model {label!r}") from exc


def _follow(model: type[models.Model], path: str, where: str) -> models.Field[Any, Any] | Any:
    current = model
    field: Any = None
    parts = path.split(LOOKUP_SEP)
    for index, part in enumerate(parts):
        try:
            field = current._meta.get_field(part)
        except FieldDoesNotExist as exc:
            raise ConfigError(f"{where}: {current.__name__} has no field {part!r}") from exc
        if index < len(parts) - 1:
            if not field.is_relation or not isinstance(field.related_model, type):
                raise ConfigError(f"{where}: {part!r} in {path!r} is not a relation")
            current = field.related_model
    return field


def _check_text_field(model: type[models.Model], path: str, where: str) -> None:
    field = _follow(model, path, where)
    if not isinstance(field, (models.CharField, models.TextField)):
        raise ConfigError(f"{where}: {path!r} is not a text field")


def _check_relation(
    model: type[models.Model], path: str, target: type[models.Model], where: str
) -> None:
    field = _follow(model, path, where)
    if not field.is_relation or field.related_model is not target:
        raise ConfigError(f"{where}: {path!r} does not lead to {target.__name__}")


def _optional_path(raw: Mapping[str, Any], key: str, where: str) -> str | None:
    value = raw.get(key)
    if value is not None and (not isinstance(value, str) or not value):
        raise ConfigError(f'{where}["{key}"] must be a field name or lookup path')
    return value


def _table(raw: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a dict")
    return raw


def _known(raw: Mapping[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown} (known: {sorted(known)})")


def _to_python(field: Any, text: str) -> Any:
    from django.core.exceptions import ValidationError

    convert: Callable[[Any], Any] = field.to_python
    if "\x00" in text:
        return None  # no database text holds it (PostgreSQL refuses the query)
    try:
        value = convert(text)
    except (ValidationError, TypeError, ValueError, OverflowError):
        return None
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        return None  # no database column holds it
    return value
