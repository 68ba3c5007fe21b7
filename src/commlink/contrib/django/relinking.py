"""Matching follows the host's CRM edits without host code.

Saving or deleting a mapped person, company or opportunity (or one of the
rows holding their addresses and domains, or an opportunity's contacts)
queues the record; once the host's transaction commits, the queued records
are re-matched in one ``Relinker`` pass. Rows ``ModelDirectory`` creates
during a sync are not queued: the sync links them itself. A failing relink
is logged and never reaches the host's save.

Hooks cover fields of the mapped model itself and relations one level deep
(``emails__address``); deeper value paths are read but not watched.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

import attrs
from django.db import models, transaction
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save

from ...sync.relink import Relinker
from .directory import creating_contacts
from .directory_mapping import DirectoryMapping, ModelMapping, ValueSpec, value_model

__all__ = ["RelinkHooks", "install_key_hooks", "pending_relinks"]

logger = logging.getLogger("commlink.contrib.django")

Receiver = Callable[..., None]


@attrs.define
class _Queue:
    """Records changed in one database's transaction, not relinked yet."""

    people: set[str] = attrs.field(factory=set)
    companies: dict[str, set[str]] = attrs.field(factory=dict)
    opportunities: set[str] = attrs.field(factory=set)

    def __bool__(self) -> bool:
        return bool(self.people or self.companies or self.opportunities)


class _Pending(threading.local):
    def __init__(self) -> None:
        self.by_alias: dict[str, _Queue] = {}

    def queue(self, using: str) -> _Queue:
        return self.by_alias.setdefault(using, _Queue())

    def take(self, using: str) -> _Queue:
        return self.by_alias.pop(using, None) or _Queue()


_pending = _Pending()


def pending_relinks() -> tuple[set[str], dict[str, set[str]], set[str]]:
    """What this thread has queued and not yet relinked, on every database
    (people, companies with their changed domains, opportunities)."""
    people: set[str] = set()
    companies: dict[str, set[str]] = {}
    opportunities: set[str] = set()
    for queue in _pending.by_alias.values():
        people |= queue.people
        for company_id, domains in queue.companies.items():
            companies.setdefault(company_id, set()).update(domains)
        opportunities |= queue.opportunities
    return people, companies, opportunities


class RelinkHooks:
    """Signal receivers for one mapping; ``connect()`` and ``disconnect()``.

    ``relinker`` builds the ``Relinker`` when a flush runs (the store and
    directory are only needed then)."""

    def __init__(self, mapping: DirectoryMapping, relinker: Callable[[], Relinker]) -> None:
        self.mapping = mapping
        self.relinker = relinker
        self._connected: list[tuple[Any, Receiver, type[models.Model]]] = []

    # -- wiring ----------------------------------------------------------------

    def connect(self) -> None:
        mapping = self.mapping
        self._record(mapping.person, self._person_saved, self._person_row_changed)
        self._record(mapping.company, self._company_saved, self._company_row_changed)
        self._watch(pre_save, self._company_before_save, mapping.company.model)
        opportunity = mapping.opportunity
        if opportunity is not None:
            self._watch(post_save, self._opportunity_changed, opportunity.model)
            self._watch(post_delete, self._opportunity_changed, opportunity.model)
            if opportunity.contacts:
                field = opportunity.model._meta.get_field(opportunity.contacts)
                through = getattr(field, "remote_field", None)
                through_model = getattr(through, "through", None)
                if isinstance(through_model, type):
                    self._watch(m2m_changed, self._contacts_changed, through_model)

    def disconnect(self) -> None:
        for signal, receiver, sender in self._connected:
            signal.disconnect(receiver, sender=sender)
        self._connected.clear()

    def _watch(self, signal: Any, receiver: Receiver, sender: type[models.Model]) -> None:
        signal.connect(receiver, sender=sender, weak=False)
        self._connected.append((signal, receiver, sender))

    def _record(self, mapping: ModelMapping, saved: Receiver, row_changed: Receiver) -> None:
        self._watch(post_save, saved, mapping.model)
        self._watch(post_delete, saved, mapping.model)
        for holder in {_row_model(mapping, spec) for spec in mapping.values if spec.relation}:
            if holder is not None:
                self._watch(post_save, row_changed, holder)
                self._watch(post_delete, row_changed, holder)

    # -- receivers -------------------------------------------------------------

    def _person_saved(self, sender: Any, instance: models.Model, **kwargs: Any) -> None:
        if not creating_contacts():
            self._queue(kwargs).people.add(str(instance.pk))
            self._schedule(kwargs)

    def _person_row_changed(self, sender: Any, instance: models.Model, **kwargs: Any) -> None:
        owner = _owner_pk(self.mapping.person, sender, instance)
        if owner is not None and not creating_contacts():
            self._queue(kwargs).people.add(owner)
            self._schedule(kwargs)

    def _company_before_save(self, sender: Any, instance: models.Model, **kwargs: Any) -> None:
        """Remember the own-field domains a saved company had (to relink only on a change)."""
        specs = [s for s in self.mapping.company.values if not s.relation]
        if not specs or instance.pk is None or creating_contacts():
            return
        manager = sender._default_manager.db_manager(kwargs.get("using"))
        old = manager.filter(pk=instance.pk).values(*[s.path for s in specs]).first() or {}
        setattr(instance, "_commlink_domains", _domains_of(specs, old))  # noqa: B010

    def _company_saved(self, sender: Any, instance: models.Model, **kwargs: Any) -> None:
        if creating_contacts():
            return
        specs = [s for s in self.mapping.company.values if not s.relation]
        now = _domains_of(specs, {s.path: getattr(instance, s.path, "") for s in specs})
        before: set[str] = getattr(instance, "_commlink_domains", set())
        changed = now ^ before if kwargs.get("signal") is not post_delete else set()
        self._queue(kwargs).companies.setdefault(str(instance.pk), set()).update(changed)
        self._schedule(kwargs)

    def _company_row_changed(self, sender: Any, instance: models.Model, **kwargs: Any) -> None:
        owner = _owner_pk(self.mapping.company, sender, instance)
        if owner is None or creating_contacts():
            return
        specs = [s for s in self.mapping.company.values if _row_model(self.mapping.company, s)]
        domains = {
            key
            for spec in specs
            if _row_model(self.mapping.company, spec) is sender
            for key in spec.values(getattr(instance, spec.field_name, ""))
        }
        self._queue(kwargs).companies.setdefault(owner, set()).update(domains)
        self._schedule(kwargs)

    def _opportunity_changed(self, sender: Any, instance: models.Model, **kwargs: Any) -> None:
        self._queue(kwargs).opportunities.add(str(instance.pk))
        self._schedule(kwargs)

    def _contacts_changed(self, sender: Any, instance: models.Model, **kwargs: Any) -> None:
        if not str(kwargs.get("action", "")).startswith("post_"):
            return
        queue = self._queue(kwargs)
        if kwargs.get("reverse"):  # a person's opportunities changed
            opportunity_pks = kwargs.get("pk_set") or set()
            queue.opportunities.update(str(pk) for pk in opportunity_pks)
            if kwargs.get("action") == "post_clear":
                queue.people.add(str(instance.pk))
        else:
            queue.opportunities.add(str(instance.pk))
        self._schedule(kwargs)

    def _queue(self, signal_kwargs: dict[str, Any]) -> _Queue:
        """The queue of the change's database."""
        return _pending.queue(signal_kwargs.get("using") or self.mapping.using)

    def _schedule(self, signal_kwargs: dict[str, Any]) -> None:
        """Flush the queue once the change's transaction commits (at once
        outside one). One callback per change: after a rollback the queue
        is flushed with the next commit (relinking more than needed is harmless)."""
        using = signal_kwargs.get("using") or self.mapping.using
        transaction.on_commit(functools.partial(self.flush, using), using=using)

    # -- the relink pass -------------------------------------------------------

    def flush(self, using: str) -> int:
        """Relink what this thread queued on ``using``; returns addresses relinked."""
        queue = _pending.take(using)
        if not queue:
            return 0
        people, companies, opportunities = queue.people, queue.companies, queue.opportunities
        try:
            relinker = self.relinker()
            count = 0
            addresses = self._addresses(self.mapping.person, people)
            for person_id in sorted(people):
                count += relinker.person_changed(person_id, addresses.get(person_id, ()))
            for company_id, domains in sorted(companies.items()):
                count += relinker.company_changed(company_id, domains)
            contacts = self._contact_addresses(opportunities)
            for opportunity_id in sorted(opportunities):
                count += relinker.opportunity_changed(
                    opportunity_id, contacts.get(opportunity_id, ())
                )
            return count
        except Exception:
            logger.exception(
                "relinking after a CRM change failed (%d people, %d companies, "
                "%d opportunities); they are relinked with the next change or sync",
                len(people),
                len(companies),
                len(opportunities),
            )
            return 0

    def _addresses(self, mapping: ModelMapping, pks: Iterable[str]) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        wanted = [pk for pk in (mapping.pk_of(p) for p in pks) if pk is not None]
        manager = mapping.model._default_manager.db_manager(self.mapping.using)
        for spec in mapping.values:
            rows = manager.filter(pk__in=wanted).values_list("pk", spec.path)
            for pk, value in rows:
                found.setdefault(str(pk), set()).update(spec.values(value))
        return found

    def _contact_addresses(self, pks: set[str]) -> dict[str, set[str]]:
        mapping = self.mapping.opportunity
        if mapping is None or not mapping.contacts or not pks:
            return {}
        found: dict[str, set[str]] = {}
        wanted = [pk for pk in (mapping.pk_of(p) for p in pks) if pk is not None]
        manager = mapping.model._default_manager.db_manager(self.mapping.using)
        for spec in self.mapping.person.values:
            path = f"{mapping.contacts}__{spec.path}"
            for pk, value in manager.filter(pk__in=wanted).values_list("pk", path):
                found.setdefault(str(pk), set()).update(spec.values(value))
        return found


def install_key_hooks(mapping: DirectoryMapping) -> list[tuple[Receiver, type[models.Model]]]:
    """Keep every mapped ``key`` shadow field equal to its value's key on save."""
    hooks: list[tuple[Receiver, type[models.Model]]] = []
    for record in (mapping.person, mapping.company):
        for spec in record.values:
            if spec.key is not None:
                holder = value_model(record.model, spec)
                receiver = _key_filler(spec)
                pre_save.connect(receiver, sender=holder, weak=False)
                hooks.append((receiver, holder))
    return hooks


def _key_filler(spec: ValueSpec) -> Receiver:
    field, key_field = spec.field_name, spec.key_field_name
    assert key_field is not None

    def fill_key(sender: Any, instance: models.Model, **_: Any) -> None:
        setattr(instance, key_field, spec.normalise(getattr(instance, field) or ""))

    return fill_key


def _row_model(mapping: ModelMapping, spec: ValueSpec) -> type[models.Model] | None:
    """The model of a value row one relation away, else ``None``."""
    if not spec.relation or "__" in spec.relation:
        return None
    return value_model(mapping.model, spec)


def _owner_pk(mapping: ModelMapping, sender: Any, instance: models.Model) -> str | None:
    """The mapped record a value row belongs to (through the relation's foreign key)."""
    for spec in mapping.values:
        if _row_model(mapping, spec) is not sender:
            continue
        relation: Any = mapping.model._meta.get_field(spec.relation)
        if relation.one_to_many:  # a reverse foreign key: the row points at its owner
            owner = getattr(instance, relation.field.attname, None)
            return str(owner) if owner is not None else None
    return None


def _domains_of(specs: Iterable[ValueSpec], row: dict[str, Any]) -> set[str]:
    return {key for spec in specs for key in spec.values(row.get(spec.path))}
