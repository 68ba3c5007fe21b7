"""A private Dovecot IMAP server for tests and benchmarks.

``DovecotServer`` writes a self-contained configuration under a temporary
directory (its own ``base_dir``, a static passdb, Maildir homes) and
starts ``dovecot -F`` on a free port on 127.0.0.1, with plain-text login and
no TLS. Nothing is installed or changed outside that directory.

    with DovecotServer() as server:
        client = imapclient.IMAPClient(server.host, server.port, ssl=False)
        client.login(server.username, server.password)

When started as root, Dovecot will not own mail as root: mail belongs to
``nobody:nogroup`` and files written with ``deliver()`` are handed to it.
"""

from __future__ import annotations

import functools
import os
import pwd
import shutil
import socket
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from ..errors import ConfigError
from .imap_account import ImapAccount
from .server_process import LocalServer, Startup, accepts, chown_tree, free_port, service_owner

__all__ = ["DovecotAccount", "DovecotServer", "ImapAccount", "dovecot_binary", "free_port"]

#: Capabilities of a server without CONDSTORE/QRESYNC (``condstore=False``).
PLAIN_CAPABILITIES = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ SPECIAL-USE"

_SPECIAL = {
    "Sent": r"\Sent",
    "Drafts": r"\Drafts",
    "Trash": r"\Trash",
    "Junk": r"\Junk",
    "Archive": r"\Archive",
}


def dovecot_binary() -> str | None:
    """The path of the ``dovecot`` binary, or ``None`` when it is not installed."""
    found = shutil.which("dovecot")
    if found:
        return found
    for candidate in ("/usr/sbin/dovecot", "/usr/local/sbin/dovecot"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


class DovecotServer(LocalServer):
    """A private Dovecot instance; use it as a context manager or call
    ``start()`` and ``stop()``.

    ``condstore=False`` advertises no CONDSTORE/QRESYNC (``PLAIN_CAPABILITIES``).
    ``special_use=False`` leaves the SPECIAL-USE attributes off the default
    folders, as on older servers. ``extra`` is appended to the configuration.
    """

    def __init__(
        self,
        root: Path | str | None = None,
        *,
        username: str = "user",
        password: str = "secret",
        condstore: bool = True,
        special_use: bool = True,
        folders: Sequence[str] = ("Sent", "Drafts", "Trash", "Junk", "Archive"),
        extra: str = "",
    ) -> None:
        binary = dovecot_binary()
        if binary is None:
            raise RuntimeError("dovecot is not installed (Debian: apt-get install dovecot-imapd)")
        self.binary = binary
        self._own_root = root is None
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="dovecot-"))
        self.username = username
        self.password = password
        self.condstore = condstore
        self.special_use = special_use
        self.folders = tuple(folders)
        self.extra = extra
        self.host = "127.0.0.1"
        self.port = 0
        self._delivered = 0
        self.uid, self.gid, _ = service_owner()

    # -- layout ----------------------------------------------------------------

    @property
    def home(self) -> Path:
        return self.root / "home" / self.username

    @property
    def maildir(self) -> Path:
        """The first user's Maildir (Maildir++ layout: folder ``A/B`` is ``.A.B``)."""
        return self.maildir_of(self.username)

    def maildir_of(self, username: str) -> Path:
        return self.root / "home" / username / "Maildir"

    @property
    def config_path(self) -> Path:
        return self.root / "dovecot.conf"

    @property
    def log_path(self) -> Path:
        return self.root / "dovecot.log"

    def folder_path(self, folder: str, username: str | None = None) -> Path:
        """The Maildir directory of an IMAP folder name."""
        maildir = self.maildir_of(username or self.username)
        if folder.upper() == "INBOX":
            return maildir
        return maildir / ("." + folder.replace("/", "."))

    def add_user(self, username: str) -> None:
        """Create a user's empty Maildir. Every user name logs in with the
        server's ``password`` (a static passdb), so this is optional."""
        if not username or "/" in username or username.startswith("."):
            raise ConfigError(f"unusable user name {username!r}", field="username")
        maildir = self.maildir_of(username)
        if not maildir.exists():
            for sub in ("cur", "new", "tmp"):
                (maildir / sub).mkdir(parents=True, exist_ok=True)
            self._chown(maildir.parent)

    def _config(self) -> str:
        user = pwd.getpwuid(os.getuid()).pw_name
        login_user = "dovenull" if os.geteuid() == 0 else user
        internal_user = "dovecot" if os.geteuid() == 0 else user
        mailboxes = "".join(
            f'  mailbox "{name}" {{\n    auto = subscribe\n'
            + (
                f"    special_use = {_SPECIAL[name]}\n"
                if self.special_use and name in _SPECIAL
                else ""
            )
            + "  }\n"
            for name in self.folders
        )
        capability = "" if self.condstore else f"imap_capability = {PLAIN_CAPABILITIES}\n"
        return f"""\
base_dir = {self.root}/run
state_dir = {self.root}/state
log_path = {self.log_path}
info_log_path = {self.log_path}
instance_name = commlink-{self.port}
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
default_login_user = {login_user}
default_internal_user = {internal_user}
first_valid_uid = {min(self.uid, 100)}
first_valid_gid = 0
mail_location = maildir:~/Maildir
mail_fsync = never
{capability}
passdb {{
  driver = static
  args = password={self.password}
}}
userdb {{
  driver = static
  args = uid={self.uid} gid={self.gid} home={self.root}/home/%u
}}
namespace inbox {{
  inbox = yes
  separator = /
{mailboxes}}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
  chroot =
}}
service pop3-login {{
  inet_listener pop3 {{
    port = 0
  }}
}}
service anvil {{
  chroot =
  # no growing delay for an IP after failed logins: tests refuse logins on purpose
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
{self.extra}
"""

    # -- lifecycle -------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> None:
        """Write the configuration and start Dovecot; returns when it accepts connections."""
        if self._process is not None:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        self.port = free_port()
        (self.root / "home").mkdir(exist_ok=True)
        self._chown(self.root / "home")
        self.add_user(self.username)
        self.config_path.write_text(self._config())
        command = [self.binary, "-F", "-c", str(self.config_path)]
        greets = functools.partial(accepts, self.host, self.port, timeout=0.5, greeting=b"* OK")
        started = self._run(command, self.log_path, greets, timeout, own_session=True)
        if started is Startup.EXITED:
            raise RuntimeError(f"dovecot exited at start: {self.log_tail()}")
        if started is Startup.TIMED_OUT:
            self.stop()
            raise RuntimeError(f"dovecot did not start: {self.log_tail()}")

    def stop(self) -> None:
        """Stop Dovecot (and remove the directory when it made it)."""
        self._stop_process()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # -- mail ------------------------------------------------------------------

    def deliver(
        self,
        folder: str,
        messages: Sequence[bytes],
        *,
        seen: bool = True,
        username: str | None = None,
    ) -> None:
        """Write messages straight into a folder's Maildir (fast; for large set-ups).

        The folder is created when missing. Dovecot assigns UIDs when it next
        looks at the folder.
        """
        maildir = self.maildir_of(username or self.username)
        path = self.folder_path(folder, username)
        for sub in ("cur", "new", "tmp"):
            (path / sub).mkdir(parents=True, exist_ok=True)
        if path != maildir:
            (path / "maildirfolder").touch()
        stamp = int(time.time())
        flags = ":2,S" if seen else ":2,"
        host = socket.gethostname().replace("/", "_").replace(":", "_")
        for raw in messages:
            self._delivered += 1
            name = f"{stamp}.M{self._delivered}P{os.getpid()}.{host}{flags}"
            (path / "cur" / name).write_bytes(raw)
        self._chown(path)
        if path != maildir:
            self._subscribe(maildir, folder)

    def delete_index(self, folder: str = "INBOX", *, username: str | None = None) -> list[str]:
        """Delete a folder's index files (``dovecot.index*``), keeping its
        ``dovecot-uidlist``: Dovecot rebuilds the index when it next opens the
        folder, with the same UIDVALIDITY and UIDs but HIGHESTMODSEQ starting
        low again, as after a lost or corrupted index. Returns the names removed.

        Sessions that have the folder open keep their old view: open new ones.
        """
        path = self.folder_path(folder, username)
        removed = []
        for index in sorted(path.glob("dovecot.index*")):
            index.unlink()
            removed.append(index.name)
        return removed

    def _subscribe(self, maildir: Path, folder: str) -> None:
        subscriptions = maildir / "subscriptions"
        existing = subscriptions.read_text().splitlines() if subscriptions.exists() else []
        if folder not in existing:
            with subscriptions.open("a") as out:
                out.write(folder + "\n")
            self._chown(subscriptions)

    def _chown(self, path: Path) -> None:
        chown_tree(path, self.uid, self.gid)


class DovecotAccount(ImapAccount):
    """A fresh user on a running ``DovecotServer`` (an ``ImapAccount``)."""

    server: DovecotServer
