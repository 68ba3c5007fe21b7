"""``ModelDirectory``: the ``Directory`` port over the host's own Django models.

The host declares where its people, companies and opportunities keep their
names, addresses, domains and links (``COMMLINK["DIRECTORY"]``, see
``docs/django.md``); commlink reads those rows in place, so nothing is copied.

Every port call is batched: one query per mapped value field per chunk of
keys. A value field with a ``key`` shadow field is looked up with an exact
``IN`` on that (indexable) column; without one, with ``IN`` on
``LOWER(field)`` over the ASCII and Unicode forms of each key. Either way,
candidates are checked in Python with ``address_key`` / ``normalise_domain``,
so a match is always exact by commlink's rules (case-insensitive, IDNA 2008).
"""

from __future__ import annotations

import contextvars
import itertools
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import attrs
from django.db import IntegrityError, models, transaction
from django.db.models import Q
from django.db.models.functions import Lower

from ...errors import ConfigError
from ...records import CompanyRef, NewContact, OpportunityRef, PersonRef
from ...stores.directory_rules import by_contact_key, contacts_by_key, plan_contacts, wanted_domains
from .directory_mapping import DirectoryMapping, ModelMapping, ValueSpec, parse_mapping, value_model

__all__ = ["ModelDirectory", "creating_contacts"]

#: keys per query with an IN list (two variants each stay far below SQLite's parameter limit)
IN_CHUNK = 400
#: keys per query on a delimited field (each key is a LIKE term)
LIKE_CHUNK = 50

_creating: contextvars.ContextVar[bool] = contextvars.ContextVar("commlink_creating", default=False)


def creating_contacts() -> bool:
    """Whether the current code runs inside ``ModelDirectory.create_contacts``
    (the relinking hooks skip rows it writes: sync links them itself)."""
    return _creating.get()


@contextmanager
def _mark_creating() -> Iterator[None]:
    token = _creating.set(True)
    try:
        yield
    finally:
        _creating.reset(token)


class ModelDirectory:
    """A ``commlink.ports.Directory`` reading the host's mapped models.

    Ids are the string form of the rows' primary keys. ``create_contacts``
    writes new host rows (a person with the first mapped address field, a
    company with the first mapped domain field) unless the mapping says
    ``"create_contacts": False``.
    """

    def __init__(self, mapping: DirectoryMapping) -> None:
        self.mapping = mapping

    @classmethod
    def from_settings(cls, raw: Any) -> ModelDirectory:
        """A directory from a ``COMMLINK["DIRECTORY"]``-shaped dict."""
        return cls(parse_mapping(raw))

    # -- the Directory port ----------------------------------------------------

    def people_by_addresses(self, keys: Collection[str]) -> Mapping[str, PersonRef]:
        wanted = _normalised(keys, self.mapping.person.values[0])
        found = self._people(set(wanted.values()))
        return {given: found[key] for given, key in wanted.items() if key in found}

    def companies_by_domains(self, domains: Collection[str]) -> Mapping[str, CompanyRef]:
        wanted = _normalised(domains, self.mapping.company.values[0])
        found = self._companies(set(wanted.values()))
        return {given: found[key] for given, key in wanted.items() if key in found}

    def opportunities_for(
        self, company_ids: Collection[str], person_ids: Collection[str]
    ) -> Mapping[str, Sequence[OpportunityRef]]:
        mapping = self.mapping.opportunity
        if mapping is None:
            return {}
        found: dict[str, dict[str, OpportunityRef]] = {}
        if mapping.company and company_ids:
            pks = _pks(self.mapping.company, company_ids)
            for chunk in _chunks(pks, IN_CHUNK):
                for row in self._opportunity_rows(mapping, {f"{mapping.company}__in": chunk}):
                    ref = self._opportunity_ref(mapping, row)
                    if ref.company_id is not None:
                        found.setdefault(ref.company_id, {})[ref.id] = ref
        if mapping.contacts and person_ids:
            pks = _pks(self.mapping.person, person_ids)
            wanted = {str(pk) for pk in pks}
            for chunk in _chunks(pks, IN_CHUNK):
                filters = {f"{mapping.contacts}__in": chunk}
                for row in self._opportunity_rows(mapping, filters, mapping.contacts):
                    contact = row[mapping.contacts]
                    if contact is not None and str(contact) in wanted:
                        ref = self._opportunity_ref(mapping, row)
                        found.setdefault(str(contact), {})[ref.id] = ref
        return {owner: list(refs.values()) for owner, refs in found.items()}

    def create_contacts(self, new: Sequence[NewContact]) -> Mapping[str, PersonRef]:
        """Create host people (and companies for unowned work domains); returns
        every valid requested address's person by its key, existing ones included."""
        contacts = contacts_by_key(new)
        found = self._people(contacts)
        todo = {
            key: self._fitting(contact)
            for key, contact in contacts.items()
            if key not in found and self._fits(self.mapping.person, key)
        }
        if todo and self.mapping.create_contacts:
            owners = {
                d: ref.id for d, ref in self._companies(wanted_domains(todo.values())).items()
            }
            plan = plan_contacts(todo, owners, _placeholder)
            using = self.mapping.using
            try:
                with transaction.atomic(using=using), _mark_creating():
                    companies = {
                        placeholder: self._create_company(name, domain)
                        for placeholder, (name, domain) in plan.companies.items()
                    }
                    for key, (_, _, owner) in plan.people.items():
                        company = companies.get(owner) if owner else None
                        company_id = company.id if company else owner
                        found[key] = self._create_person(todo[key], key, company_id)
            except IntegrityError as exc:  # a NOT NULL or unique field the mapping leaves out
                raise ConfigError(
                    "cannot create contacts in the host models (a required field the "
                    'mapping does not fill?); set COMMLINK["DIRECTORY"]["create_contacts"] '
                    f"to False or give the field a default: {type(exc).__name__}"
                ) from exc
        return by_contact_key(new, found)

    # -- maintenance -----------------------------------------------------------

    def refresh_keys(self) -> int:
        """Recompute every ``key`` shadow field (after ``bulk_create`` or
        ``QuerySet.update``, which skip the save hook); returns rows changed."""
        changed = 0
        for mapping in (self.mapping.person, self.mapping.company):
            for spec in mapping.values:
                if spec.key is not None:
                    changed += self._refresh(mapping.model, spec)
        return changed

    def _refresh(self, model: type[models.Model], spec: ValueSpec) -> int:
        holder = value_model(model, spec)
        field, key_field = spec.field_name, spec.key_field_name
        assert key_field is not None
        manager = holder._default_manager.db_manager(self.mapping.using)
        stale = []
        for row in manager.values_list("pk", field, key_field).iterator(chunk_size=2000):
            key = spec.normalise(row[1] or "")
            if key != row[2]:
                stale.append(holder(pk=row[0], **{key_field: key}))
        manager.bulk_update(stale, [key_field], batch_size=500)
        return len(stale)

    # -- lookups ---------------------------------------------------------------

    def _people(self, keys: Iterable[str]) -> dict[str, PersonRef]:
        mapping = self.mapping.person
        rows = self._match(mapping, set(keys))
        return {key: self._person_ref(row) for key, row in rows.items()}

    def _companies(self, domains: set[str]) -> dict[str, CompanyRef]:
        mapping = self.mapping.company
        rows = self._match(mapping, domains)
        return {
            key: CompanyRef(id=str(row["pk"]), name=mapping.name_of(row))
            for key, row in rows.items()
        }

    def _match(self, mapping: ModelMapping, keys: set[str]) -> dict[str, dict[str, Any]]:
        """The row holding each normalised key, the lowest primary key winning."""
        keys.discard("")
        found: dict[str, dict[str, Any]] = {}
        fields = ["pk", *mapping.name_fields, *([mapping.company] if mapping.company else [])]
        manager = mapping.model._default_manager.db_manager(self.mapping.using)
        for spec in mapping.values:
            todo = sorted(keys - found.keys())
            size = LIKE_CHUNK if spec.separator else IN_CHUNK
            for chunk in _chunks(todo, size):
                wanted = set(chunk)
                query = _candidates(manager.all(), spec, chunk)
                for row in query.values(*fields, spec.path).order_by("pk"):
                    for key in spec.values(row[spec.path]):
                        if key in wanted:
                            found.setdefault(key, row)
        return found

    def _person_ref(self, row: Mapping[str, Any]) -> PersonRef:
        mapping = self.mapping.person
        company = row.get(mapping.company) if mapping.company else None
        return PersonRef(
            id=str(row["pk"]),
            company_id=str(company) if company is not None else None,
            name=mapping.name_of(row),
        )

    def _opportunity_rows(
        self, mapping: ModelMapping, filters: Mapping[str, Any], *extra: str
    ) -> Iterable[dict[str, Any]]:
        fields = ["pk", *mapping.name_fields, *([mapping.company] if mapping.company else [])]
        manager = mapping.model._default_manager.db_manager(self.mapping.using)
        query = manager.filter(**mapping.open_filter).filter(**filters)
        rows: Iterable[dict[str, Any]] = query.values(*fields, *extra).order_by("pk")
        return rows

    @staticmethod
    def _opportunity_ref(mapping: ModelMapping, row: Mapping[str, Any]) -> OpportunityRef:
        company = row.get(mapping.company) if mapping.company else None
        return OpportunityRef(
            id=str(row["pk"]),
            company_id=str(company) if company is not None else None,
            name=mapping.name_of(row),
        )

    # -- creation --------------------------------------------------------------

    def _fits(self, mapping: ModelMapping, value: str) -> bool:
        return len(value) <= _max_length(mapping.model, mapping.values[0])

    def _fitting(self, contact: NewContact) -> NewContact:
        domain = contact.company_domain
        if domain and not self._fits(self.mapping.company, domain):
            return attrs.evolve(contact, company_domain=None)  # could never be found again
        return contact

    def _create_company(self, name: str, domain: str) -> CompanyRef:
        mapping = self.mapping.company
        company = mapping.model(**_name_values(mapping, (name,)))
        self._save_with_value(mapping, company, domain)
        return CompanyRef(id=str(company.pk), name=mapping.name_of(_name_values(mapping, (name,))))

    def _create_person(self, contact: NewContact, key: str, company_id: str | None) -> PersonRef:
        mapping = self.mapping.person
        parts = (contact.first_name, contact.last_name)
        names = _name_values(mapping, parts if any(parts) else (contact.name,))
        person = mapping.model(**names)
        if company_id is not None and mapping.company:
            field: Any = mapping.model._meta.get_field(mapping.company)
            setattr(person, field.attname, self.mapping.company.pk_of(company_id))
        self._save_with_value(mapping, person, contact.address.email or key)
        return PersonRef(
            id=str(person.pk),
            company_id=company_id if mapping.company else None,
            name=mapping.name_of(names),
        )

    def _save_with_value(self, mapping: ModelMapping, row: models.Model, value: str) -> None:
        spec = mapping.values[0]
        using = self.mapping.using
        if not spec.relation:
            setattr(row, spec.field_name, value)
            if spec.key_field_name:
                setattr(row, spec.key_field_name, spec.normalise(value))
            row.save(using=using)
            return
        row.save(using=using)
        relation = mapping.model._meta.get_field(spec.relation)
        holder = relation.related_model
        assert isinstance(holder, type)
        values = {relation.field.name: row, spec.field_name: value}  # type: ignore[union-attr]
        if spec.key_field_name:
            values[spec.key_field_name] = spec.normalise(value)
        holder(**values).save(using=using)


def _normalised(given: Iterable[str], spec: ValueSpec) -> dict[str, str]:
    """Each input by its comparison key (``""`` for an invalid one)."""
    return {text: spec.normalise(text) for text in given}


def _candidates(query: Any, spec: ValueSpec, keys: Sequence[str]) -> Any:
    """Rows that may hold one of ``keys`` (checked exactly by the caller)."""
    if spec.key is not None:
        return query.filter(**{f"{spec.key}__in": keys})
    variants = sorted({v for key in keys for v in _variants(key, spec.kind)})
    if spec.separator:
        terms = Q()
        for variant in variants:
            terms |= Q(**{f"{spec.path}__icontains": variant})
        return query.filter(terms)
    return query.alias(commlink_value=Lower(spec.path)).filter(commlink_value__in=variants)


def _variants(key: str, kind: str) -> set[str]:
    """The lower-cased forms a host may have stored a key in: ASCII and Unicode domain."""
    local, at, domain = key.rpartition("@") if kind == "address" else ("", "", key)
    return {key, f"{local}{at}{_unicode_domain(domain)}".lower()}


def _unicode_domain(domain: str) -> str:
    labels = []
    for label in domain.split("."):
        if label.startswith("xn--"):
            with suppress(UnicodeError, ValueError):
                label = label[4:].encode("ascii").decode("punycode")
        labels.append(label)
    return ".".join(labels)


def _pks(mapping: ModelMapping, ids: Collection[str]) -> list[Any]:
    pks = (mapping.pk_of(str(text)) for text in ids)
    return sorted({pk for pk in pks if pk is not None}, key=str)


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _name_values(mapping: ModelMapping, parts: Sequence[str]) -> dict[str, str]:
    """Name fields to write: parts field by field, the rest joined into the last."""
    fields = mapping.name_fields
    if not fields:
        return {}
    parts = [p for p in parts if p] or [""]
    values = dict(zip(fields, parts, strict=False))
    if len(parts) > len(fields):
        values[fields[-1]] = " ".join(parts[len(fields) - 1 :])
    for field in fields:
        values.setdefault(field, "")
    return {f: v[: _field_length(mapping.model, f)] for f, v in values.items()}


def _field_length(model: type[models.Model], name: str) -> int | None:
    length = getattr(model._meta.get_field(name), "max_length", None)
    return length if isinstance(length, int) else None


def _max_length(model: type[models.Model], spec: ValueSpec) -> int:
    holder = value_model(model, spec)
    return _field_length(holder, spec.field_name) or 1_000_000


_placeholder_ids = itertools.count(1)


def _placeholder(prefix: str) -> str:
    return f"new-{prefix}-{next(_placeholder_ids)}"
