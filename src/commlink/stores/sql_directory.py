"""``SqlDirectory``: reference CRM tables (people, companies, opportunities)
implementing the ``Directory`` port, for hosts without their own and demos.

Lookups are batched: one query per call, the keys sent as one parameter,
its rows read as plain tuples from the driver's cursor (a batch of mail
looks up about a thousand keys: a result row object for each is work the
lookup does not need).
Addresses and domains are compared by the ``commlink.addresses`` keys, and
the admin methods follow the rules in ``directory_rules`` (shared with
``InMemoryDirectory``).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ..addresses import address_key, normalise_domain
from ..closing import Closing
from ..errors import InvalidInput
from ..records import CompanyRef, NewContact, OpportunityRef, PersonRef
from .directory_rules import (
    ContactPlan,
    by_contact_key,
    company_domain_keys,
    contacts_by_key,
    person_keys,
    plan_contacts,
    wanted_domains,
)
from .sql_bulk import among_sql, fetch, is_postgres, key_set
from .sql_schema import (
    among,
    chunks,
    companies,
    company_domains,
    create_engine,
    database_errors,
    deleted_addresses,
    dispose,
    engine_lock,
    ensure_schema,
    insert_many,
    opportunities,
    opportunity_contacts,
    people,
    person_addresses,
    prepare_engine,
    store_error,
    upsert,
)

__all__ = ["PersonRow", "SqlDirectory"]

#: ``(id, name, addresses, company_id)`` for ``SqlDirectory.add_people_bulk``.
PersonRow = tuple[str, str, Sequence[str], "str | None"]


class _HasEngine(Protocol):
    @property
    def engine(self) -> Engine: ...


def _new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


class SqlDirectory(Closing):
    """The ``Directory`` port on the reference tables, plus admin methods.

    ``store_or_engine`` is a ``SqlStore`` (its database is used), an
    ``Engine`` or a SQLAlchemy URL.
    """

    def __init__(self, store_or_engine: _HasEngine | Engine | str | sa.URL) -> None:
        if isinstance(store_or_engine, Engine):
            self.engine = prepare_engine(store_or_engine)
        elif isinstance(store_or_engine, (str, sa.URL)):
            self.engine = create_engine(store_or_engine)
        else:
            self.engine = store_or_engine.engine
        self._owns_engine = isinstance(store_or_engine, (str, sa.URL))
        self._errors = database_errors(self.engine)
        ensure_schema(self.engine)

    def close(self) -> None:
        """Release pooled connections (of an engine this directory created)."""
        if self._owns_engine:
            dispose(self.engine)

    @contextmanager
    def _tx(self, write: bool = False) -> Iterator[Connection]:
        try:
            with (
                engine_lock(self.engine),
                self.engine.connect().execution_options(commlink_write=write) as conn,
                conn.begin(),
            ):
                yield conn
        except self._errors as exc:
            raise store_error(exc) from exc

    # the Directory port

    def people_by_addresses(self, keys: Collection[str]) -> Mapping[str, PersonRef]:
        with self._tx() as conn:
            return self._people(conn, keys)

    @staticmethod
    def _people(conn: Connection, keys: Collection[str]) -> dict[str, PersonRef]:
        normal = {key: address_key(key) for key in keys}
        if not normal:
            return {}
        rows = _rows(
            conn,
            _keyed_sql(
                conn,
                "a.key, p.id, p.company_id, p.name",
                person_addresses.c.key,
                "a",
                f"JOIN {people.name} p ON p.id = a.person_id",
            ),
            key_set(conn, sorted({n for n in normal.values() if n})),
        )
        refs = {key: PersonRef(id=i, company_id=c, name=n) for key, i, c, n in rows}
        return {key: refs[norm] for key, norm in normal.items() if norm in refs}

    def companies_by_domains(self, domains: Collection[str]) -> Mapping[str, CompanyRef]:
        with self._tx() as conn:
            return self._companies(conn, domains)

    @staticmethod
    def _companies(conn: Connection, domains: Collection[str]) -> dict[str, CompanyRef]:
        normal = {domain: normalise_domain(domain) for domain in domains}
        if not normal:
            return {}
        rows = _rows(
            conn,
            _keyed_sql(
                conn,
                "d.domain, c.id, c.name",
                company_domains.c.domain,
                "d",
                f"JOIN {companies.name} c ON c.id = d.company_id",
            ),
            key_set(conn, sorted({n for n in normal.values() if n})),
        )
        refs = {domain: CompanyRef(id=i, name=n) for domain, i, n in rows}
        return {domain: refs[norm] for domain, norm in normal.items() if norm in refs}

    def opportunities_for(
        self, company_ids: Collection[str], person_ids: Collection[str]
    ) -> Mapping[str, Sequence[OpportunityRef]]:
        """Opportunities by company id, and by person id for points of contact."""
        found: dict[str, list[OpportunityRef]] = {}
        columns = "o.id, o.company_id, o.name"
        with self._tx() as conn:
            by_company = _rows(
                conn,
                f"SELECT o.company_id, {columns} FROM {opportunities.name} o "
                f"WHERE {among_sql(conn, opportunities.c.company_id, 'o')} ORDER BY o.id",
                key_set(conn, sorted(set(company_ids))),
            )
            by_person = _rows(
                conn,
                f"SELECT c.person_id, {columns} FROM {opportunity_contacts.name} c "
                f"JOIN {opportunities.name} o ON o.id = c.opportunity_id "
                f"WHERE {among_sql(conn, opportunity_contacts.c.person_id, 'c')} ORDER BY o.id",
                key_set(conn, sorted(set(person_ids))),
            )
        for owner, opp_id, company_id, name in by_company:
            found.setdefault(owner, []).append(OpportunityRef(opp_id, company_id, name))
        for owner, opp_id, company_id, name in by_person:
            ref = OpportunityRef(opp_id, company_id, name)
            if ref not in found.setdefault(owner, []):
                found[owner].append(ref)
        return found

    def create_contacts(self, new: Sequence[NewContact]) -> Mapping[str, PersonRef]:
        """Create people (and companies for unowned work domains); returns every
        valid requested address's person by its key, existing people included.
        An address of a deleted person (``delete_person``) is never created
        again, until ``forget_deletion``."""
        contacts = contacts_by_key(new)
        if not contacts:
            return {}
        with self._tx(write=True) as conn:
            existing = self._people(conn, list(contacts))
            todo = {k: c for k, c in contacts.items() if k not in existing}
            for key in self._deleted(conn, todo):
                del todo[key]
            if todo:
                domains = wanted_domains(todo.values())
                owners = {d: ref.id for d, ref in self._companies(conn, domains).items()}
                self._write(conn, plan_contacts(todo, owners, _new_id))
            found = self._people(conn, list(contacts))
        return by_contact_key(new, found)

    def _write(self, conn: Connection, plan: ContactPlan) -> None:
        """Write planned people and companies; where another writer won an
        address or a domain meanwhile, theirs is kept and ours dropped."""
        rows = [{"id": i, "name": name} for i, (name, _domain) in plan.companies.items()]
        upsert(conn, companies, rows, ["id"])
        rows = [{"domain": d, "company_id": i} for i, (_name, d) in plan.companies.items()]
        upsert(conn, company_domains, rows, ["domain"])
        won = self._companies(conn, [d for _name, d in plan.companies.values()])
        moved = {
            i: won[d].id for i, (_name, d) in plan.companies.items() if d in won and won[d].id != i
        }
        for part in chunks(sorted(moved)):
            conn.execute(sa.delete(companies).where(among(conn, companies.c.id, part)))
        if not plan.people:
            return
        insert_many(
            conn,
            sa.insert(people),
            [
                {"id": i, "name": name, "company_id": moved.get(c, c) if c else None}
                for i, name, c in plan.people.values()
            ],
        )
        rows = [{"key": key, "person_id": i} for key, (i, _n, _c) in plan.people.items()]
        upsert(conn, person_addresses, rows, ["key"])
        winners = {k: ref.id for k, ref in self._people(conn, list(plan.people)).items()}
        orphans = [i for key, (i, _n, _c) in plan.people.items() if winners.get(key) != i]
        for part in chunks(orphans):
            conn.execute(sa.delete(people).where(among(conn, people.c.id, part)))

    # admin methods for hosts and demos (the same rules as InMemoryDirectory)

    def add_company(self, company_id: str, name: str, domains: Iterable[str] = ()) -> CompanyRef:
        """Add or replace a company and the domains it owns (never free-mail ones)."""
        keys = company_domain_keys(domains)
        with self._tx(write=True) as conn:
            upsert(conn, companies, [{"id": company_id, "name": name}], ["id"], ["name"])
            self._set_domains(conn, company_id, keys)
        return CompanyRef(id=company_id, name=name)

    def set_company_domains(self, company_id: str, domains: Iterable[str]) -> None:
        """Replace a company's domains."""
        keys = company_domain_keys(domains)
        with self._tx(write=True) as conn:
            _require(conn, companies, [company_id], "company")
            self._set_domains(conn, company_id, keys)

    @staticmethod
    def _set_domains(conn: Connection, company_id: str, keys: Sequence[str]) -> None:
        conn.execute(sa.delete(company_domains).where(company_domains.c.company_id == company_id))
        rows = [{"domain": d, "company_id": company_id} for d in keys]
        upsert(conn, company_domains, rows, ["domain"])
        _refuse_taken(
            conn, company_domains.c.domain, company_domains.c.company_id, keys, company_id
        )

    def add_person(
        self, person_id: str, name: str, addresses: Iterable[str], company_id: str | None = None
    ) -> PersonRef:
        """Add or replace a person with these addresses (their opportunities stay)."""
        keys = person_keys(addresses)
        with self._tx(write=True) as conn:
            if company_id is not None:
                _require(conn, companies, [company_id], "company")
            upsert(
                conn,
                people,
                [{"id": person_id, "name": name, "company_id": company_id}],
                ["id"],
                ["name", "company_id"],
            )
            self._set_addresses(conn, person_id, keys)
        return PersonRef(id=person_id, company_id=company_id, name=name)

    def set_person_addresses(self, person_id: str, addresses: Iterable[str]) -> None:
        """Replace a person's addresses."""
        keys = person_keys(addresses)
        with self._tx(write=True) as conn:
            _require(conn, people, [person_id], "person")
            self._set_addresses(conn, person_id, keys)

    @staticmethod
    def _set_addresses(conn: Connection, person_id: str, keys: Sequence[str]) -> None:
        conn.execute(sa.delete(person_addresses).where(person_addresses.c.person_id == person_id))
        rows = [{"key": k, "person_id": person_id} for k in keys]
        upsert(conn, person_addresses, rows, ["key"])
        _refuse_taken(conn, person_addresses.c.key, person_addresses.c.person_id, keys, person_id)

    def delete_person(self, person_id: str) -> None:
        """Delete a person, their addresses and their points of contact (if
        any). Their addresses are remembered (a tombstone holding the key and
        the time): ``create_contacts`` never creates them again, so the next
        mail does not bring a deleted person back; ``forget_deletion`` lifts it."""
        now = datetime.now(timezone.utc)
        with self._tx(write=True) as conn:
            gone = conn.execute(
                sa.delete(person_addresses)
                .where(person_addresses.c.person_id == person_id)
                .returning(person_addresses.c.key)
            ).scalars()
            rows = [{"key": key, "deleted_at": now} for key in gone]
            upsert(conn, deleted_addresses, rows, ["key"], ["deleted_at"])
            conn.execute(
                sa.delete(opportunity_contacts).where(opportunity_contacts.c.person_id == person_id)
            )
            conn.execute(sa.delete(people).where(people.c.id == person_id))

    def forget_deletion(self, address: str) -> bool:
        """Let ``create_contacts`` create a person for the address of a deleted
        person again (the host's explicit decision); whether it was one."""
        key = address_key(address)
        with self._tx(write=True) as conn:
            gone = conn.execute(sa.delete(deleted_addresses).where(deleted_addresses.c.key == key))
            return bool(gone.rowcount)

    @staticmethod
    def _deleted(conn: Connection, keys: Collection[str]) -> set[str]:
        """Those of these (normalised) address keys whose person was deleted."""
        if not keys:
            return set()
        rows = fetch(
            conn,
            f"SELECT key FROM {deleted_addresses.name} "
            f"WHERE {among_sql(conn, deleted_addresses.c.key)}",
            key_set(conn, sorted(keys)),
        )
        return {str(key) for (key,) in rows}

    def add_opportunity(
        self,
        opportunity_id: str,
        name: str,
        company_id: str | None = None,
        contacts: Iterable[str] = (),
    ) -> OpportunityRef:
        """Add or replace an opportunity and its point-of-contact people."""
        contact_ids = sorted(set(contacts))
        with self._tx(write=True) as conn:
            if company_id is not None:
                _require(conn, companies, [company_id], "company")
            _require(conn, people, contact_ids, "person")
            upsert(
                conn,
                opportunities,
                [{"id": opportunity_id, "name": name, "company_id": company_id}],
                ["id"],
                ["name", "company_id"],
            )
            conn.execute(
                sa.delete(opportunity_contacts).where(
                    opportunity_contacts.c.opportunity_id == opportunity_id
                )
            )
            rows = [{"opportunity_id": opportunity_id, "person_id": p} for p in contact_ids]
            upsert(conn, opportunity_contacts, rows, ["opportunity_id", "person_id"])
        return OpportunityRef(id=opportunity_id, company_id=company_id, name=name)

    def add_people_bulk(self, rows: Iterable[PersonRow]) -> int:
        """Insert many new people with their addresses fast (PostgreSQL:
        ``COPY``); ids and addresses must not exist yet (``StoreError``), and an
        address must be valid and given once (``InvalidInput``). Returns how many."""
        person_rows: list[tuple[str, str, str | None]] = []
        owners: dict[str, str] = {}
        for person_id, name, addresses, company_id in rows:
            person_rows.append((person_id, name, company_id))
            for key in person_keys(addresses):
                if owners.setdefault(key, person_id) != person_id:
                    raise InvalidInput(f"{key} given for {owners[key]!r} and {person_id!r}")
        with self._tx(write=True) as conn:
            _bulk_insert(conn, people, ("id", "name", "company_id"), person_rows)
            _bulk_insert(conn, person_addresses, ("key", "person_id"), list(owners.items()))
        return len(person_rows)


def _keyed_sql(conn: Connection, columns: str, key: sa.Column[Any], alias: str, join: str) -> str:
    """``SELECT columns`` from ``key``'s table (as ``alias``) and ``join``,
    for the rows whose ``key`` is in a set of distinct keys (``key_set``, one
    parameter). On SQLite the keys drive the join, one index probe each:
    ``IN (SELECT value FROM json_each(?))`` would first build a temporary
    index of them (a sixth of a 2,000-key lookup of people)."""
    table = f"{key.table.name} {alias}"
    if is_postgres(conn):
        return f"SELECT {columns} FROM {table} {join} WHERE {among_sql(conn, key, alias)}"
    on = f"{alias}.{key.name} = k.value"
    return f"SELECT {columns} FROM json_each(?) k CROSS JOIN {table} ON {on} {join}"


def _rows(conn: Connection, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """All rows of a lookup as the driver's cursor returns them (see the
    module's docstring); the statement still goes through SQLAlchemy, its
    events and error handling included."""
    result = conn.exec_driver_sql(sql, params)
    try:
        return list(result.cursor.fetchall())
    finally:
        result.close()


def _bulk_insert(
    conn: Connection, table: sa.Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Plain INSERT of many rows through the driver, skipping per-row overhead."""
    names = ", ".join(columns)
    raw = conn.connection.driver_connection
    if conn.dialect.driver == "psycopg" and raw is not None:
        with raw.cursor() as cursor, cursor.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    mark = {"qmark": "?", "format": "%s", "pyformat": "%s"}.get(conn.dialect.paramstyle)
    if mark is None:
        for part in chunks(rows):
            insert_many(conn, sa.insert(table), [dict(zip(columns, r, strict=True)) for r in part])
        return
    sql = f"INSERT INTO {table.name} ({names}) VALUES ({', '.join(mark for _ in columns)})"
    for part in chunks(rows):
        conn.exec_driver_sql(sql, list(part))


def _require(conn: Connection, table: sa.Table, ids: Sequence[str], kind: str) -> None:
    """``InvalidInput`` unless every id is a row of ``table``."""
    if not ids:
        return
    found = set(conn.execute(sa.select(table.c.id).where(table.c.id.in_(ids))).scalars())
    missing = [i for i in ids if i not in found]
    if missing:
        raise InvalidInput(f"no {kind} {missing[0]!r}")


def _refuse_taken(
    conn: Connection, key: sa.Column[Any], owner: sa.Column[Any], keys: Sequence[str], owner_id: str
) -> None:
    """``InvalidInput`` when one of ``keys`` stayed with another owner (the
    insert before did nothing for it); the transaction then rolls back."""
    if not keys:
        return
    taken = conn.execute(
        sa.select(key, owner).where(key.in_(keys), owner != owner_id).order_by(key).limit(1)
    ).first()
    if taken is not None:
        kind = "company" if owner is company_domains.c.company_id else "person"
        raise InvalidInput(f"{taken[0]} already belongs to {kind} {taken[1]!r}")
