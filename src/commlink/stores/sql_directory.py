"""``SqlDirectory``: reference CRM tables (people, companies, opportunities)
implementing the ``Directory`` port, for hosts without their own and demos.

Lookups are batched: one query per call, the keys sent as one parameter.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ..errors import StoreError
from ..records import CompanyRef, NewContact, OpportunityRef, PersonRef
from .sql_bulk import among_sql, fetch, key_set
from .sql_schema import (
    among,
    chunks,
    companies,
    company_domains,
    create_engine,
    database_errors,
    engine_lock,
    ensure_schema,
    insert_many,
    opportunities,
    opportunity_contacts,
    people,
    person_addresses,
    prepare_engine,
    upsert,
)

__all__ = ["PersonRow", "SqlDirectory", "normalise_domain", "normalise_key"]

#: ``(id, name, addresses, company_id)`` for ``SqlDirectory.add_people_bulk``.
PersonRow = tuple[str, str, Sequence[str], "str | None"]


class _HasEngine(Protocol):
    @property
    def engine(self) -> Engine: ...


def normalise_domain(domain: str) -> str:
    """Lower-case ASCII (IDNA) form of a domain; unchanged but lower-cased if
    it cannot be encoded."""
    text = domain.strip().rstrip(".").lower()
    if text.isascii():
        return text
    try:
        return text.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return text


def normalise_key(address: str) -> str:
    """The comparison key of an address: lower-cased, IDNA domain."""
    text = address.strip()
    if text.isascii():  # the common case, without IDNA
        local, at, domain = text.lower().rpartition("@")
        return f"{local}@{domain.strip().rstrip('.')}" if at else domain
    local, at, domain = text.rpartition("@")
    if not at:
        return text.lower()
    return f"{local.lower()}@{normalise_domain(domain)}"


def _company_name(domain: str) -> str:
    return domain.split(".")[0].replace("-", " ").title()


def _new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


class SqlDirectory:
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
        self._errors = database_errors(self.engine)
        ensure_schema(self.engine)

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
            raise StoreError(str(exc)) from exc

    # the Directory port

    def people_by_addresses(self, keys: Collection[str]) -> Mapping[str, PersonRef]:
        with self._tx() as conn:
            return self._people(conn, keys)

    @staticmethod
    def _people(conn: Connection, keys: Collection[str]) -> dict[str, PersonRef]:
        normal = {key: normalise_key(key) for key in keys}
        if not normal:
            return {}
        rows = fetch(
            conn,
            "SELECT a.key, p.id, p.company_id, p.name "
            f"FROM {person_addresses.name} a JOIN {people.name} p ON p.id = a.person_id "
            f"WHERE {among_sql(conn, person_addresses.c.key, 'a')}",
            key_set(conn, sorted(set(normal.values()))),
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
        rows = fetch(
            conn,
            "SELECT d.domain, c.id, c.name "
            f"FROM {company_domains.name} d JOIN {companies.name} c ON c.id = d.company_id "
            f"WHERE {among_sql(conn, company_domains.c.domain, 'd')}",
            key_set(conn, sorted(set(normal.values()))),
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
            by_company = fetch(
                conn,
                f"SELECT o.company_id, {columns} FROM {opportunities.name} o "
                f"WHERE {among_sql(conn, opportunities.c.company_id, 'o')} ORDER BY o.id",
                key_set(conn, sorted(set(company_ids))),
            )
            by_person = fetch(
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
        requested address's person by key, existing people included."""
        contacts: dict[str, NewContact] = {}
        for contact in new:
            if contact.address.valid and contact.address.key:
                contacts.setdefault(normalise_key(contact.address.key), contact)
        if not contacts:
            return {}
        with self._tx(write=True) as conn:
            existing = self._people(conn, list(contacts))
            todo = {k: c for k, c in contacts.items() if k not in existing}
            domains = {
                normalise_domain(c.company_domain) for c in todo.values() if c.company_domain
            }
            owners = self._companies(conn, domains)
            created = {d: _new_id("company") for d in sorted(domains - set(owners))}
            upsert(
                conn,
                companies,
                [{"id": i, "name": _company_name(d)} for d, i in created.items()],
                ["id"],
            )
            upsert(
                conn,
                company_domains,
                [{"domain": d, "company_id": i} for d, i in created.items()],
                ["domain"],
            )
            owners = self._companies(conn, domains)  # another writer may have won a domain
            rows: list[dict[str, Any]] = []
            for key, contact in todo.items():
                name = f"{contact.first_name} {contact.last_name}".strip()
                domain = normalise_domain(contact.company_domain or "")
                company = owners.get(domain) if contact.company_domain else None
                rows.append(
                    {
                        "id": _new_id("person"),
                        "name": name or contact.address.name or contact.address.email,
                        "company_id": company.id if company else None,
                        "key": key,
                    }
                )
            if rows:
                insert_many(
                    conn,
                    sa.insert(people),
                    [{k: r[k] for k in ("id", "name", "company_id")} for r in rows],
                )
                upsert(
                    conn,
                    person_addresses,
                    [{"key": r["key"], "person_id": r["id"]} for r in rows],
                    ["key"],
                )
                # another writer may have created the same address meanwhile
                winners = {
                    k: ref.id for k, ref in self._people(conn, [r["key"] for r in rows]).items()
                }
                orphans = [r["id"] for r in rows if winners.get(r["key"]) != r["id"]]
                for part in chunks(orphans):
                    conn.execute(sa.delete(people).where(among(conn, people.c.id, part)))
            found = self._people(conn, list(contacts))
        return {contacts[k].address.key: ref for k, ref in found.items()}

    # admin methods for hosts and demos

    def add_company(self, company_id: str, name: str, domains: Iterable[str] = ()) -> None:
        with self._tx(write=True) as conn:
            upsert(conn, companies, [{"id": company_id, "name": name}], ["id"], ["name"])
            self._set_domains(conn, company_id, domains)

    def set_company_domains(self, company_id: str, domains: Iterable[str]) -> None:
        with self._tx(write=True) as conn:
            self._set_domains(conn, company_id, domains)

    @staticmethod
    def _set_domains(conn: Connection, company_id: str, domains: Iterable[str]) -> None:
        conn.execute(sa.delete(company_domains).where(company_domains.c.company_id == company_id))
        rows = [
            {"domain": d, "company_id": company_id}
            for d in sorted({normalise_domain(x) for x in domains})
        ]
        upsert(conn, company_domains, rows, ["domain"], ["company_id"])

    def add_person(
        self, person_id: str, name: str, addresses: Iterable[str], company_id: str | None = None
    ) -> None:
        with self._tx(write=True) as conn:
            upsert(
                conn,
                people,
                [{"id": person_id, "name": name, "company_id": company_id}],
                ["id"],
                ["name", "company_id"],
            )
            self._set_addresses(conn, person_id, addresses)

    def set_person_addresses(self, person_id: str, addresses: Iterable[str]) -> None:
        with self._tx(write=True) as conn:
            self._set_addresses(conn, person_id, addresses)

    @staticmethod
    def _set_addresses(conn: Connection, person_id: str, addresses: Iterable[str]) -> None:
        conn.execute(sa.delete(person_addresses).where(person_addresses.c.person_id == person_id))
        rows = [
            {"key": k, "person_id": person_id}
            for k in sorted({normalise_key(a) for a in addresses})
        ]
        upsert(conn, person_addresses, rows, ["key"], ["person_id"])

    def delete_person(self, person_id: str) -> None:
        with self._tx(write=True) as conn:
            for table in (person_addresses, opportunity_contacts):
                conn.execute(sa.delete(table).where(table.c.person_id == person_id))
            conn.execute(sa.delete(people).where(people.c.id == person_id))

    def add_opportunity(
        self, opportunity_id: str, name: str, company_id: str | None, contacts: Iterable[str] = ()
    ) -> None:
        """Add or replace an opportunity and its point-of-contact people."""
        with self._tx(write=True) as conn:
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
            rows = [
                {"opportunity_id": opportunity_id, "person_id": p} for p in sorted(set(contacts))
            ]
            upsert(conn, opportunity_contacts, rows, ["opportunity_id", "person_id"])

    def add_people_bulk(self, rows: Iterable[PersonRow]) -> int:
        """Insert many new people with their addresses fast (PostgreSQL:
        ``COPY``); ids and addresses must not exist yet. Returns how many."""
        person_rows: list[tuple[str, str, str | None]] = []
        owners: dict[str, str] = {}
        for person_id, name, addresses, company_id in rows:
            person_rows.append((person_id, name, company_id))
            for address in addresses:
                owners[normalise_key(address)] = person_id
        with self._tx(write=True) as conn:
            _bulk_insert(conn, people, ("id", "name", "company_id"), person_rows)
            _bulk_insert(conn, person_addresses, ("key", "person_id"), list(owners.items()))
        return len(person_rows)


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
