"""Every page of the example CRM, as the two demo users.

The demo gives each visibility level to a colleague: Bob sees Alice's
mailbox at ``subject`` and her legal mailbox at ``metadata``; Alice sees
Bob's mailbox and calendar in ``full``. Each owner sees all of their own.
Run with ``python examples/django_crm/manage.py test crm``.
"""

from __future__ import annotations

import re
import tempfile
import urllib.error
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import SplitResult, quote, urlsplit

from crm_site.local_google import local_gmail_channel, token_key
from django.conf import settings
from django.contrib.auth import get_user_model
from django.http import HttpResponse
from django.test import Client, TestCase
from django.urls import reverse
from django.utils import timezone

from commlink.records import PageRequest, Target, TargetKind, Viewer

from .access import store
from .demo import set_up_demo
from .local_accounts import LocalAccounts
from .models import Company, EmailAddress, Opportunity, Person

# What the demo mail says, by who may read it.
ALICE_BODY = "procurement needs the quote in EUR"  # Alice's mailbox (subject to colleagues)
ALICE_SUBJECT = "Globex renewal for 2027"
LEGAL_SUBJECT = "Globex MSA redlines"  # Alice's legal mailbox (metadata to colleagues)
LEGAL_BODY = "liability cap"
BOB_SUBJECT = "Globex: seat count check"  # Bob's mailbox (full to colleagues)
BOB_BODY = "The order form and the quote differ"
BOB_REPLY = "who should our admins talk to?"  # Bob's copy in Alice's renewal thread
HIDDEN_SUBJECT = "subject not shared"
HIDDEN_BODY = "The content is not shared with you."
#: the Calendar tab's past, paged back to the end of the demo's meetings
END_OF_DEMO = "2026-12-01T00:00:00+00:00"


def thread_of(message_id: str) -> str:
    return store().threads_by_message_ids([message_id])[message_id]


def thread_url(thread_id: str, after: str | None = None) -> str:
    url = f"{reverse('thread')}?id={quote(thread_id, safe='')}"
    return url + (f"&after={quote(after, safe='')}" if after else "")


def next_link(response: HttpResponse, name: str) -> str | None:
    found = re.search(rf'href="([^"]+)" id="{name}"', response.content.decode())
    return found[1].replace("&amp;", "&") if found else None


def setUpModule() -> None:
    """The demo, synced once into the test database; each test's changes are
    rolled back."""
    reports = set_up_demo()
    assert all(not r.errors for r in reports), [r.errors for r in reports]


class DemoTestCase(TestCase):
    globex: Company
    hank: Person

    @classmethod
    def setUpTestData(cls) -> None:
        cls.globex = Company.objects.get(name="Globex")
        cls.hank = Person.objects.get(first_name="Hank")

    def sign_in(self, username: str) -> None:
        assert self.client.login(username=username, password="northwind")

    def company_page(self, **query: str) -> HttpResponse:
        url = reverse("company", args=[self.globex.pk])
        return self.client.get(url, query)

    def every_email_page(self, url: str) -> list[HttpResponse]:
        """The Emails tab of a record, page after page."""
        pages = [self.client.get(url)]
        while (older := next_link(pages[-1], "older")) is not None:
            pages.append(self.client.get(url + older))
        return pages

    def read_thread(self, url: str) -> str:
        """A whole conversation, page after page."""
        pages = [self.client.get(url)]
        while (later := next_link(pages[-1], "later")) is not None:
            pages.append(self.client.get(reverse("thread") + later))
        assert all(page.status_code == 200 for page in pages)
        return "".join(page.content.decode() for page in pages)

    def company_emails(self) -> str:
        url = reverse("company", args=[self.globex.pk])
        return "".join(page.content.decode() for page in self.every_email_page(url))


class SignInTests(DemoTestCase):
    def test_every_page_needs_a_signed_in_user(self) -> None:
        thread = thread_of("g1.demo@northwind.example")
        for url in (
            reverse("home"),
            reverse("people"),
            reverse("companies"),
            reverse("opportunities"),
            reverse("person", args=[self.hank.pk]),
            reverse("company", args=[self.globex.pk]),
            thread_url(thread),
            reverse("missing"),
            reverse("accounts"),
        ):
            response = self.client.get(url)
            assert response.status_code == 302, url
            assert response["Location"].startswith(reverse("login")), url

    def test_sign_in_page_and_a_wrong_password(self) -> None:
        self.assertContains(self.client.get(reverse("login")), "Demo users")
        response = self.client.post(reverse("login"), {"username": "bob", "password": "nope"})
        self.assertContains(response, "do not match")
        response = self.client.post(reverse("login"), {"username": "bob", "password": "northwind"})
        self.assertRedirects(response, reverse("home"))

    def test_sign_out(self) -> None:
        self.sign_in("bob")
        self.assertRedirects(self.client.post(reverse("logout")), reverse("login"))
        assert self.client.get(reverse("home")).status_code == 302


class RecordPageTests(DemoTestCase):
    def test_lists_and_home(self) -> None:
        self.sign_in("bob")
        self.assertContains(self.client.get(reverse("home")), "Globex renewal 2027")
        self.assertContains(self.client.get(reverse("companies")), "Initech")
        self.assertContains(self.client.get(reverse("people")), "Hank Scorpio")
        self.assertContains(self.client.get(reverse("opportunities")), "Initech pilot")

    def test_each_kind_of_record_shows_its_email(self) -> None:
        self.sign_in("alice")
        opportunity = Opportunity.objects.get(title="Initech pilot")
        peter = Person.objects.get(first_name="Peter")
        for url, expected in (
            (reverse("person", args=[self.hank.pk]), "Re: Globex renewal for 2027"),
            (reverse("company", args=[self.globex.pk]), LEGAL_SUBJECT),
            (reverse("opportunity", args=[opportunity.pk]), "Initech pilot: next steps"),
            (reverse("person", args=[peter.pk]), "Initech pilot: SSO setup"),
        ):
            pages = self.every_email_page(url)
            assert any(expected in page.content.decode() for page in pages), url

    def test_unknown_records_are_not_found(self) -> None:
        self.sign_in("bob")
        assert self.client.get(reverse("person", args=[999999])).status_code == 404

    def test_participants_link_to_their_people(self) -> None:
        self.sign_in("bob")
        self.assertContains(self.company_page(), reverse("person", args=[self.hank.pk]))

    def test_emails_tab_pages_through_every_thread_once(self) -> None:
        self.sign_in("alice")
        pages = self.every_email_page(reverse("company", args=[self.globex.pk]))
        assert len(pages) > 1
        for later in pages[1:]:
            self.assertContains(later, "Newest")
        links = re.compile(r'class="thread-link" href="[^"]*\?id=([^"]+)"')
        seen = [i for page in pages for i in links.findall(page.content.decode())]
        assert len(seen) == len(set(seen))
        target = Target(TargetKind.COMPANY, str(self.globex.pk))
        every = store().timeline(target, Viewer("alice"), PageRequest(limit=100)).items
        assert set(seen) == {quote(t.thread_id, safe="") for t in every}

    def test_a_stale_page_link_is_a_bad_request(self) -> None:
        self.sign_in("bob")
        assert self.company_page(after="not-a-token").status_code == 400
        for before in (
            "yesterday",
            "2026-10-10T00:00:00",
            "0001-01-01T00:00:00+00:00",
            "2026-13-01",
        ):
            assert self.company_page(tab="calendar", before=before).status_code == 400, before
        assert self.company_page(tab="calendar", after="%%%").status_code == 400


class OpportunityTests(DemoTestCase):
    # A person and a company share an id here (both are row 2): the pilot of
    # Initech (company 2) must not show Mindy's (person 2) mail.
    def test_an_opportunity_shows_only_its_companys_and_contacts_mail(self) -> None:
        pilot = Opportunity.objects.get(title="Initech pilot")
        self.sign_in("alice")
        emails = "".join(
            page.content.decode()
            for page in self.every_email_page(reverse("opportunity", args=[pilot.pk]))
        )
        assert "Initech pilot: next steps" in emails
        assert "Globex" not in emails


class ColleagueVisibilityTests(DemoTestCase):
    """What a colleague sees of each channel, at each level."""

    def test_bob_sees_alices_subjects_and_only_the_metadata_of_her_legal_mail(self) -> None:
        self.sign_in("bob")
        emails = self.company_emails()
        assert ALICE_SUBJECT in emails
        assert HIDDEN_SUBJECT in emails
        assert "Lana Kane" in emails  # participants are metadata
        assert LEGAL_SUBJECT not in emails
        assert ALICE_BODY not in emails

    def test_alice_sees_all_of_her_own_and_bobs_full_mail(self) -> None:
        self.sign_in("alice")
        emails = self.company_emails()
        assert LEGAL_SUBJECT in emails
        assert BOB_SUBJECT in emails
        assert BOB_BODY in emails  # the snippet of a full channel
        assert HIDDEN_SUBJECT not in emails

    def test_a_thread_shows_each_message_as_its_channel_allows(self) -> None:
        thread = thread_url(thread_of("g1.demo@northwind.example"))
        self.sign_in("bob")
        page = self.read_thread(thread)
        assert ALICE_SUBJECT in page
        assert HIDDEN_BODY in page
        assert ALICE_BODY not in page
        assert BOB_REPLY in page  # his own copy
        self.sign_in("alice")
        page = self.read_thread(thread)
        assert ALICE_BODY in page
        assert BOB_REPLY in page  # Bob shares his mailbox in full
        assert HIDDEN_BODY not in page

    def test_a_long_thread_is_paged(self) -> None:
        self.sign_in("alice")
        first = self.client.get(thread_url(thread_of("g1.demo@northwind.example")))
        later = next_link(first, "later")
        assert later is not None
        rest = self.client.get(reverse("thread") + later)
        self.assertContains(rest, "First messages")
        shown = [
            len(re.findall(r'class="card message"', p.content.decode())) for p in (first, rest)
        ]
        assert shown == [4, 1]

    def test_a_metadata_thread_shows_participants_and_times_only(self) -> None:
        thread = thread_url(thread_of("l-msa1.demo@globex.example"))
        self.sign_in("bob")
        response = self.client.get(thread)
        self.assertContains(response, "Conversation (subject not shared)")
        self.assertContains(response, "lana@globex.example")
        self.assertContains(response, "2026-10-19 09:10")
        self.assertNotContains(response, LEGAL_SUBJECT)
        self.assertNotContains(response, LEGAL_BODY)
        self.sign_in("alice")
        self.assertContains(self.client.get(thread), LEGAL_SUBJECT)

    def test_an_unknown_thread_is_not_found(self) -> None:
        self.sign_in("bob")
        assert self.client.get(thread_url("nobody@nowhere.example")).status_code == 404
        assert self.client.get(reverse("thread")).status_code == 404

    def test_html_mail_is_shown_sanitised_without_remote_images(self) -> None:
        thread = thread_url(thread_of("b-sso1.demo@northwind.example"))
        for user in ("bob", "alice"):
            self.sign_in(user)
            page = self.read_thread(thread).split("</header>")[1]
            assert "<b>pilot-tester</b>" in page
            assert "<script" not in page
            assert "onclick" not in page
            assert 'data-commlink-src="https://tracker.initech.example/open.gif"' in page
            assert not re.search(r'\ssrc="https://tracker', page)


class AttachmentTests(DemoTestCase):
    """Attachments open for those shown the message in full, and never as a
    page of the CRM's own: the sender's HTML would run with the reader's session."""

    def links(self, message_id: str) -> dict[str, str]:
        page = self.read_thread(thread_url(thread_of(message_id)))
        found = re.findall(r'<a href="([^"]+)" download><bdi>([^<]+)</bdi>', page)
        return {name: href.replace("&amp;", "&") for href, name in found}

    def test_an_html_attachment_is_only_ever_downloaded(self) -> None:
        for user in ("bob", "alice"):  # the owner, and a colleague shown the mailbox in full
            self.sign_in(user)
            url = self.links("b-sso2.demo@initech.example")["sso-setup.html"]
            for asked in (url, url + "&inline=1"):
                response = self.client.get(asked)
                assert response.status_code == 200
                assert response["Content-Type"] == "application/octet-stream"
                assert response["Content-Disposition"] == 'attachment; filename="sso-setup.html"'
                assert response["X-Content-Type-Options"] == "nosniff"
                assert "sandbox" in response["Content-Security-Policy"]
                assert b"<script>" in b"".join(response.streaming_content)

    def test_an_inline_picture_is_shown_from_the_crm(self) -> None:
        self.sign_in("alice")
        page = self.read_thread(thread_url(thread_of("b-sso2.demo@initech.example")))
        found = re.search(r'<img src="(/thread/attachment/[^"]+)" alt="Initech"', page)
        assert found is not None
        response = self.client.get(found[1].replace("&amp;", "&"))
        assert response.status_code == 200
        assert response["Content-Type"] == "image/png"
        assert response["Content-Disposition"] == 'inline; filename="initech.png"'
        assert b"".join(response.streaming_content).startswith(b"\x89PNG")

    def test_a_download_keeps_its_name(self) -> None:
        name = "Globex quote \u2013 40 seats.pdf"
        for user in ("alice", "bob"):  # each from their own copy of the message
            self.sign_in(user)
            response = self.client.get(self.links("g2.demo@northwind.example")[name])
            assert response.status_code == 200
            assert response["Content-Type"] == "application/pdf"
            assert response["Content-Disposition"] == (
                'attachment; filename="Globex quote _ 40 seats.pdf"; '
                "filename*=UTF-8''Globex%20quote%20%E2%80%93%2040%20seats.pdf"
            )
            assert b"".join(response.streaming_content).startswith(b"%PDF-")

    def test_below_full_visibility_nothing_opens(self) -> None:
        thread = thread_of("l-msa1.demo@globex.example")
        # the legal mailbox keeps metadata only, for its owner too: the
        # message's PDF was never fetched, and a made-up link opens nothing
        query = f"thread={quote(thread, safe='')}&message=l-msa1.demo%40globex.example&n=0"
        for user in ("alice", "bob"):
            self.sign_in(user)
            assert not self.links("l-msa1.demo@globex.example")
            assert self.client.get(f"{reverse('attachment')}?{query}").status_code == 404

    def test_a_wrong_or_malformed_request_opens_nothing(self) -> None:
        self.sign_in("bob")
        url = self.links("b-sso2.demo@initech.example")["sso-setup.html"]
        other_thread = quote(thread_of("l-msa1.demo@globex.example"), safe="")
        moved = re.sub(r"thread=[^&]+", f"thread={other_thread}", url)
        for wrong in (moved, url.replace("n=1", "n=9"), url.replace("n=1", "n=%C2%B2")):
            assert self.client.get(wrong).status_code in (400, 404), wrong
        assert self.client.get(reverse("attachment")).status_code == 400


class ForgedSenderTests(DemoTestCase):
    """ "Hank" asking Bob to pay Globex's invoices elsewhere: the receiving
    server's DMARC check failed, so the CRM says the sender is not verified."""

    def test_a_forged_sender_is_shown_as_not_verified(self) -> None:
        forged = thread_url(thread_of("b-bank.demo@globex-billing.example"))
        genuine = thread_url(thread_of("b-g5.demo@globex.example"))
        for user in ("bob", "alice"):
            self.sign_in(user)
            self.assertContains(self.client.get(forged), "sender not verified")
            self.assertNotContains(self.client.get(genuine), "sender not verified")


class CalendarTests(DemoTestCase):
    """Upcoming meetings come from recurring series, so some are always ahead;
    the past ones of the demo are in October and November 2026, shown by
    paging the past back to the end of November."""

    def calendar(self) -> tuple[str, str]:
        """The upcoming part of the Calendar tab, and its past up to December 2026."""
        upcoming = self.company_page(tab="calendar").content.decode()
        past = self.company_page(tab="calendar", before=END_OF_DEMO).content.decode()
        return upcoming.partition("<h2>Past</h2>")[0], past.partition("<h2>Past</h2>")[2]

    def test_bob_sees_titles_of_alices_meetings_and_his_own_in_full(self) -> None:
        self.sign_in("bob")
        upcoming, past = self.calendar()
        assert "Globex weekly check-in" in past
        assert "Renewal progress and onboarding plan." not in past
        assert "abc-defg-hij" not in past
        assert "Globex monthly business review" in upcoming  # his own
        assert "Adoption, support tickets" in upcoming

    def test_alice_sees_bobs_meetings_in_full(self) -> None:
        self.sign_in("alice")
        upcoming, past = self.calendar()
        assert "Renewal progress and onboarding plan." in past
        assert "Six Globex admins" in past
        assert 'href="https://meet.google.com/qbr-glob-exx"' in upcoming

    def test_upcoming_and_past_are_split_at_now(self) -> None:
        self.sign_in("alice")
        page = self.company_page(tab="calendar").content.decode()
        upcoming, _, past = page.partition("<h2>Past</h2>")
        assert "Globex monthly business review" in upcoming
        assert "Globex weekly check-in" not in upcoming  # the series ended in November
        now = timezone.now()
        for shown in re.findall(r'<time datetime="([^"]+)">', past):
            assert (
                now - timedelta(days=91) < datetime.fromisoformat(shown) < now + timedelta(hours=2)
            )

    def test_upcoming_meetings_are_paged(self) -> None:
        self.sign_in("bob")
        initech = reverse("company", args=[Company.objects.get(name="Initech").pk])
        first = self.client.get(initech, {"tab": "calendar"})
        later = re.search(r'href="(\?tab=calendar&amp;after=[^"]+)"', first.content.decode())
        assert later is not None
        second = self.client.get(initech + later[1].replace("&amp;", "&"))
        starts = re.compile(r'<time datetime="([^"]+)">')
        upcoming = [
            starts.findall(page.content.decode().partition("<h2>Past</h2>")[0])
            for page in (first, second)
        ]
        assert len(upcoming[0]) == 2 * 4  # four meetings, a start and an end each
        assert max(upcoming[0]) < min(upcoming[1])

    def test_earlier_moves_the_past_window_back(self) -> None:
        self.sign_in("alice")
        response = self.company_page(tab="calendar", before="2026-10-10T00:00:00+00:00")
        past = response.content.decode().partition("<h2>Past</h2>")[2]
        assert "2026-10-06 15:00" in past
        assert "2026-11-03" not in past


class MissingEmailTests(DemoTestCase):
    def test_an_internal_message_names_the_reason_but_not_the_content(self) -> None:
        for user in ("alice", "bob"):
            self.sign_in(user)
            response = self.client.get(
                reverse("missing"), {"message_id": "<b1.demo@northwind.example>"}
            )
            self.assertContains(response, "alice-mail")
            self.assertContains(response, "Every participant is inside the organisation")
            self.assertNotContains(response, "Lunch?")

    def test_a_blocked_and_a_group_message(self) -> None:
        self.sign_in("alice")
        response = self.client.get(reverse("missing"), {"message_id": "x1.demo@northwind.example"})
        self.assertContains(response, "blocklist")
        response = self.client.get(reverse("missing"), {"message_id": "n1.demo@northwind.example"})
        self.assertContains(response, "group or automated mail")

    def test_a_stored_message_links_to_its_conversation(self) -> None:
        self.sign_in("bob")
        response = self.client.get(reverse("missing"), {"message_id": "g1.demo@northwind.example"})
        self.assertContains(response, "open the conversation")
        self.assertContains(
            response, thread_url(thread_of("g1.demo@northwind.example")).replace("&", "&amp;")
        )

    def test_a_message_nobody_has_seen_lists_the_accounts(self) -> None:
        self.sign_in("bob")
        response = self.client.get(reverse("missing"), {"message_id": "never@seen.example"})
        self.assertContains(response, "No connected mailbox has seen")
        self.assertContains(response, "bob-calendar")

    def test_by_address(self) -> None:
        self.sign_in("alice")
        missing = reverse("missing")
        response = self.client.get(missing, {"address": "jobs@headhunters.example"})
        self.assertContains(response, "Your blocklist for <strong>alice-mail</strong> matches it")
        self.assertContains(response, "No person in the CRM has this address")
        self.assertContains(
            self.client.get(missing, {"address": "no-reply@billing.example"}), "automated sender"
        )
        self.assertContains(
            self.client.get(missing, {"address": "bob@northwind.example"}),
            "inside your organisation",
        )
        self.assertContains(
            self.client.get(missing, {"address": "Hank@GLOBEX.example"}), "Hank Scorpio"
        )
        self.assertContains(
            self.client.get(missing, {"address": "not an address"}), "not a valid email address"
        )
        self.sign_in("bob")  # Bob's channels block nothing
        response = self.client.get(missing, {"address": "jobs@headhunters.example"})
        self.assertNotContains(response, "blocklist")


class AccountsTests(DemoTestCase):
    def test_each_user_sees_only_their_own_accounts(self) -> None:
        self.sign_in("alice")
        response = self.client.get(reverse("accounts"))
        for channel in ("alice-mail", "alice-calendar", "alice-legal"):
            self.assertContains(response, f'id="account-{channel}"')
        self.assertNotContains(response, "bob-mail")
        self.assertContains(response, "active")

    def test_nobody_changes_a_colleagues_account(self) -> None:
        self.sign_in("bob")
        url = reverse("set_visibility", args=["alice-mail"])
        assert self.client.post(url, {"visibility": "full"}).status_code == 404
        assert self.client.post(reverse("sync_now", args=["alice-mail"])).status_code == 404
        assert self.client.get(reverse("sync_now", args=["bob-mail"])).status_code == 405

    def test_sync_now(self) -> None:
        self.sign_in("bob")
        response = self.client.post(reverse("sync_now", args=["bob-mail"]), follow=True)
        self.assertContains(response, "bob-mail: active, 0 imported")

    def test_lowering_and_raising_what_colleagues_see(self) -> None:
        thread = thread_url(thread_of("g1.demo@northwind.example"))
        change = reverse("set_visibility", args=["alice-mail"])
        self.sign_in("alice")
        assert self.client.post(change, {"visibility": "bogus"}).status_code == 400
        self.client.post(change, {"visibility": "metadata"})
        self.sign_in("bob")
        page = self.read_thread(thread)
        assert HIDDEN_SUBJECT in page
        assert "Signed order form" not in page
        assert BOB_REPLY in page
        self.sign_in("alice")
        self.client.post(change, {"visibility": "full"})
        self.sign_in("bob")
        assert ALICE_BODY in self.read_thread(thread)  # read again from the mailbox

    def test_metadata_calendar(self) -> None:
        self.sign_in("bob")
        self.client.post(
            reverse("set_visibility", args=["bob-calendar"]), {"visibility": "metadata"}
        )
        self.sign_in("alice")
        response = self.company_page(tab="calendar")
        self.assertContains(response, "title not shared")
        self.assertNotContains(response, "Globex monthly business review")
        self.assertNotContains(response, "Adoption, support tickets")


class DirectoryTests(DemoTestCase):
    def test_contacts_from_sent_mail_are_created_once(self) -> None:
        assert EmailAddress.objects.filter(address__iexact="hank@globex.example").count() == 1
        dana = Person.objects.get(emails__address="dana@hooli.example")
        assert dana.company is not None
        assert set_up_demo()[0].imported == 0  # a second setup changes nothing
        assert Person.objects.filter(emails__address="dana@hooli.example").count() == 1

    def test_editing_a_persons_addresses_relinks_their_mail(self) -> None:
        carol = Person.objects.get(first_name="Carol")
        page = reverse("person", args=[carol.pk])
        self.sign_in("alice")
        self.assertContains(self.client.get(page), "Question about pricing")
        with self.captureOnCommitCallbacks(execute=True):
            carol.emails.all().delete()
        self.assertNotContains(self.client.get(page), "Question about pricing")
        with self.captureOnCommitCallbacks(execute=True):
            EmailAddress.objects.create(person=carol, address="Carol.Baskin@gmail.com")
        self.assertContains(self.client.get(page), "Question about pricing")

    def test_records_are_edited_in_the_admin(self) -> None:
        self.sign_in("alice")
        response = self.client.get(reverse("person", args=[self.hank.pk]))
        edit = reverse("admin:crm_person_change", args=[self.hank.pk])
        self.assertContains(response, f'href="{edit}"')
        self.assertContains(self.client.get(edit), "hank@globex.example")

    def test_demo_users(self) -> None:
        names = set(get_user_model().objects.values_list("username", flat=True))
        assert names == {"alice", "bob"}


class ConnectTests(DemoTestCase):
    """The accounts page with a Gmail channel at the local Google servers."""

    def test_bob_connects_and_syncs_a_gmail_account(self) -> None:
        client = Client(SERVER_NAME="127.0.0.1")  # a loopback callback, as registered
        with tempfile.TemporaryDirectory() as folder, LocalAccounts(Path(folder)) as local:
            commlink = {
                **settings.COMMLINK,
                "CHANNELS": [
                    *settings.COMMLINK["CHANNELS"],
                    local_gmail_channel(local.endpoints, {"org_domains": ["northwind.example"]}),
                ],
                "TOKENS": {"key": token_key(Path(folder))},
                "OAUTH": {"DONE_URL": reverse("accounts")},
            }
            with self.settings(COMMLINK=commlink):
                assert client.login(username="bob", password="northwind")
                self.assertContains(client.get(reverse("accounts")), 'class="connect"')
                start = client.get(reverse("commlink:connect", args=["bob-gmail"]))
                answer = consent(start["Location"])
                done = client.get(answer.path + "?" + answer.query)
                self.assertRedirects(done, reverse("accounts"), fetch_redirect_response=False)
                accounts = client.get(reverse("accounts"))
                self.assertContains(accounts, "connected as bob@northwind.example")
                synced = client.post(reverse("sync_now", args=["bob-gmail"]), follow=True)
                self.assertContains(synced, "bob-gmail: active, 3 imported")
                initech = reverse("company", args=[Company.objects.get(name="Initech").pk])
                self.assertContains(client.get(initech), "Forty users logged in.")
                assert client.login(username="alice", password="northwind")
                page = client.get(initech)  # Bob's Gmail shares subjects
                self.assertContains(page, "Pilot usage report")
                self.assertNotContains(page, "Forty users logged in.")


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def consent(url: str) -> SplitResult:
    """Follow a sign-in link to the local server, which consents at once;
    where it sends the browser back to."""
    try:
        urllib.request.build_opener(_NoRedirects).open(url, timeout=10)
    except urllib.error.HTTPError as redirect:
        location = redirect.headers["Location"] if redirect.code == 302 else None
    else:
        location = None
    if location is None:
        raise AssertionError("the sign-in server did not send the browser back")
    return urlsplit(location)
