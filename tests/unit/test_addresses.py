from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commlink.addresses import (
    FREE_MAIL_DOMAINS,
    address_key,
    blocklist_match,
    domain_candidates,
    in_domains,
    is_free_mail,
    is_role_address,
    keys_of,
    normalise_domain,
    normalise_entry,
    parse_address,
)
from commlink.testing.strategies import (
    INVALID_ADDRESSES,
    address_variants,
    addresses,
    invalid_addresses,
)


class TestParse:
    def test_plain_address_is_lower_cased(self) -> None:
        a = parse_address("John.Smith@Example.COM", "John")
        assert a.valid
        assert a.key == "john.smith@example.com"
        assert a.email == "john.smith@example.com"
        assert a.name == "John"
        assert a.domain == "example.com"
        assert a.local == "john.smith"

    @pytest.mark.parametrize(
        "text", ["foo@bücher.de", "Foo@Bücher.de", "foo@xn--bcher-kva.de", "FOO@XN--BCHER-KVA.DE"]
    )
    def test_idna_and_unicode_domains_share_one_key(self, text: str) -> None:
        a = parse_address(text)
        assert a.key == "foo@xn--bcher-kva.de"
        assert a.email == "foo@bücher.de"
        assert a.domain == "xn--bcher-kva.de"

    def test_idna_2008_rules_match_the_domain_normaliser(self) -> None:
        # IDNA 2003 would fold "ß" to "ss"; addresses and domains must agree.
        a = parse_address("x@faß.de")
        assert a.domain == normalise_domain("faß.de") == "xn--fa-hia.de"
        assert a.domain != normalise_domain("fass.de")

    def test_odd_but_valid_local_parts(self) -> None:
        assert parse_address("o'brien+tag@x.co.uk").key == "o'brien+tag@x.co.uk"
        assert parse_address("a_b=c@x.io").valid
        assert parse_address('"john smith"@example.com').valid

    def test_unicode_local_part(self) -> None:
        a = parse_address("Jörg@Example.de")
        assert a.valid
        assert a.key == "jörg@example.de"

    def test_surrounding_whitespace_is_ignored(self) -> None:
        assert parse_address("  a@b.com\t", " Name ") == parse_address("a@b.com", "Name")

    def test_display_name_form(self) -> None:
        a = parse_address('"Smith, John" <John@Example.com>')
        assert a.key == "john@example.com"
        assert a.name == "Smith, John"
        assert parse_address("<j@x.com>").key == "j@x.com"
        assert parse_address("Ann <a@x.com>", "Given").name == "Given"

    @pytest.mark.parametrize("text", INVALID_ADDRESSES)
    def test_invalid_forms(self, text: str) -> None:
        a = parse_address(text)
        assert not a.valid
        assert a.key == ""
        assert a.domain == ""
        assert a.raw == text.strip()

    def test_overlong_address_is_invalid(self) -> None:
        assert not parse_address("a" * 250 + "@example.com").valid
        assert parse_address("a" * 60 + "@example.com").valid

    def test_never_raises(self) -> None:
        for text in ["\x00@x.com", "a@b@c", "<>", "a@" + "x" * 300 + ".com", "@", "a@.com"]:
            assert not parse_address(text).valid

    def test_keys_of_skips_invalid(self) -> None:
        found = keys_of([parse_address("A@x.com"), parse_address("bad"), parse_address("a@X.com")])
        assert found == {"a@x.com"}

    @settings(max_examples=200, deadline=None)
    @given(st.data())
    def test_variants_share_the_key(self, data: st.DataObject) -> None:
        text = data.draw(addresses())
        original = parse_address(text)
        assert original.valid
        variant = data.draw(address_variants(text))
        assert parse_address(variant).key == original.key

    @settings(max_examples=200, deadline=None)
    @given(addresses())
    def test_key_is_idempotent(self, text: str) -> None:
        key = parse_address(text).key
        assert parse_address(key).key == key
        assert key == key.lower()
        assert parse_address(text).domain.isascii()


class TestAddressKey:
    @pytest.mark.parametrize(
        "text", ["ann@faß.de", "Ann@FAß.DE", "ann@xn--fa-hia.de", " ANN@XN--FA-HIA.de "]
    )
    def test_idna_2008_keys(self, text: str) -> None:
        assert address_key(text) == "ann@xn--fa-hia.de"

    def test_idna_2003_mapping_is_another_domain(self) -> None:
        # IDNA 2003 (Python's "idna" codec) maps faß.de to fass.de; IDNA 2008 does not
        assert address_key("ann@fass.de") == "ann@fass.de"
        assert normalise_domain("faß.de") == "xn--fa-hia.de"

    @pytest.mark.parametrize("text", INVALID_ADDRESSES)
    def test_invalid_is_empty(self, text: str) -> None:
        assert address_key(text) == ""

    @settings(max_examples=300, deadline=None)
    @given(
        st.one_of(
            addresses(),
            invalid_addresses(),
            addresses().flatmap(address_variants),
            st.text(alphabet="aB.@ -_<>xn\t\u00e9\u00fc\u00df\u0130", max_size=20),
            st.emails().map(lambda e: f" {e.upper()} "),
        )
    )
    def test_fast_path_agrees_with_parse_address(self, text: str) -> None:
        assert address_key(text) == parse_address(text).key


class TestDomains:
    def test_normalise_domain(self) -> None:
        assert normalise_domain(" @Example.COM. ") == "example.com"
        assert normalise_domain("Bücher.DE") == "xn--bcher-kva.de"
        assert normalise_domain("XN--BCHER-KVA.de") == "xn--bcher-kva.de"
        assert normalise_domain("") == ""
        assert normalise_domain("xn--zz.com") == ""

    def test_candidates_run_from_most_specific_and_skip_the_tld(self) -> None:
        assert domain_candidates("a.b.example.com") == (
            "a.b.example.com",
            "b.example.com",
            "example.com",
        )
        assert domain_candidates("example.com") == ("example.com",)
        assert domain_candidates("com") == ()

    def test_in_domains_includes_subdomains_only(self) -> None:
        org = frozenset({"acme.com"})
        assert in_domains("acme.com", org)
        assert in_domains("eu.mail.acme.com", org)
        assert not in_domains("notacme.com", org)
        assert not in_domains("acme.com.evil.io", org)
        assert not in_domains("", org)
        assert not in_domains("acme.com", frozenset())

    def test_free_mail(self) -> None:
        assert "gmail.com" in FREE_MAIL_DOMAINS
        for domain in ("gmail.com", "googlemail.com", "outlook.com", "yahoo.com"):
            assert is_free_mail(domain)
        assert is_free_mail("sub.gmail.com")
        assert not is_free_mail("acme.com")
        assert not is_free_mail("gmail.com.acme.io")


class TestRoles:
    @pytest.mark.parametrize(
        "key",
        [
            "noreply@x.com",
            "no-reply@x.com",
            "no_reply@x.com",
            "no.reply@x.com",
            "donotreply@x.com",
            "do-not-reply@x.com",
            "mailer-daemon@x.com",
            "postmaster@x.com",
            "bounces+abc=x.com@lists.x.com",
            "bounce-123@x.com",
            "notifications@github.com",
            "billing-noreply@x.com",
            "newsletter@x.com",
        ],
    )
    def test_role_addresses(self, key: str) -> None:
        assert is_role_address(key)

    @pytest.mark.parametrize(
        "key",
        ["john@x.com", "reply@x.com", "replyguy@x.com", "noreplyjoe@x.com", "info@x.com", ""],
    )
    def test_people_are_not_role_addresses(self, key: str) -> None:
        assert not is_role_address(key)


class TestBlocklist:
    def test_normalise_entry(self) -> None:
        assert normalise_entry(" John@Example.com ") == "john@example.com"
        assert normalise_entry("@Bücher.de") == "@xn--bcher-kva.de"
        assert normalise_entry("@") == ""
        assert normalise_entry("not an address") == ""

    def test_exact_address(self) -> None:
        entries = {normalise_entry("Spam@Example.com")}
        assert blocklist_match("spam@example.com", entries) == "spam@example.com"
        assert blocklist_match("other@example.com", entries) is None

    def test_domain_entry_covers_subdomains(self) -> None:
        entries = {normalise_entry("@example.com")}
        assert blocklist_match("a@example.com", entries) == "@example.com"
        assert blocklist_match("a@mail.eu.example.com", entries) == "@example.com"
        assert blocklist_match("a@notexample.com", entries) is None
        assert blocklist_match("a@example.com.evil.io", entries) is None

    def test_idn_domain_entry(self) -> None:
        entries = {normalise_entry("@bücher.de")}
        assert blocklist_match(parse_address("x@Sub.Bücher.de").key, entries) == (
            "@xn--bcher-kva.de"
        )

    def test_empty_key_or_entries(self) -> None:
        assert blocklist_match("", {"@example.com"}) is None
        assert blocklist_match("a@example.com", set()) is None
