"""A private Cyrus IMAP (and CalDAV) server for tests and benchmarks.

Debian's ``cyrus-imapd`` conflicts with ``dovecot-imapd``, so the tests run
Cyrus from the Debian packages unpacked into a directory of their own
(``apt-get download cyrus-common cyrus-imapd cyrus-caldav`` and ``dpkg -x``;
``.ci/cyrus`` does it, into ``/opt/commlink-cyrus`` by default). Nothing is
installed as a service. ``CyrusServer`` finds that tree (``COMMLINK_CYRUS_ROOT``,
``/opt/commlink-cyrus``, or a regular install under ``/``), writes a private
``imapd.conf`` and ``cyrus.conf`` under a temporary directory and runs
``master`` in the foreground with ``imapd`` and ``httpd`` (CalDAV) on free
ports of 127.0.0.1, and ``idled`` so that IDLE wakes at once::

    with CyrusServer() as server:
        server.add_user("bob")
        client = imapclient.IMAPClient(server.host, server.port, ssl=False)
        client.login("bob", server.password)

Users log in with the server's ``password`` through a private sasldb
(``saslpasswd2``, Debian package ``sasl2-bin``); wrong passwords are refused.
A user's INBOX and the usual folders (with SPECIAL-USE) are created at the
first login. ``condstore=False`` hides CONDSTORE and QRESYNC from the
capabilities (``suppress_capabilities``).

Started as root, Cyrus runs as ``nobody`` and owns the directory. Cyrus logs
only to syslog; when nothing listens on ``/dev/log`` its log is lost.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..errors import ConfigError
from .dav_account import DavAccount
from .imap_account import ImapAccount
from .server_process import LocalServer, Startup, accepts, chown_tree, free_port, service_owner

__all__ = [
    "CyrusAccount",
    "CyrusDavAccount",
    "CyrusServer",
    "cyrus_missing",
    "cyrus_root",
    "free_port",
]

#: Where ``.ci/cyrus`` unpacks the Debian packages unless told otherwise.
DEFAULT_ROOT = "/opt/commlink-cyrus"
_BIN = Path("usr/lib/cyrus/bin")
_RESOURCETYPE = (
    b'<?xml version="1.0"?><propfind xmlns="DAV:"><prop><resourcetype/></prop></propfind>'
)
_SPECIAL = {
    "Sent": "sent",
    "Drafts": "drafts",
    "Trash": "trash",
    "Junk": "junk",
    "Archive": "archive",
}


def cyrus_root() -> Path | None:
    """The directory holding ``usr/lib/cyrus/bin/master``: ``$COMMLINK_CYRUS_ROOT``,
    ``/opt/commlink-cyrus`` or ``/``; ``None`` when Cyrus is nowhere."""
    candidates = [os.environ.get("COMMLINK_CYRUS_ROOT", ""), DEFAULT_ROOT, "/"]
    for candidate in candidates:
        if candidate and os.access(Path(candidate) / _BIN / "master", os.X_OK):
            return Path(candidate)
    return None


def _saslpasswd2() -> str | None:
    return shutil.which("saslpasswd2") or (
        "/usr/sbin/saslpasswd2" if os.access("/usr/sbin/saslpasswd2", os.X_OK) else None
    )


def cyrus_missing() -> str | None:
    """Why a ``CyrusServer`` cannot start here, or ``None`` when it can."""
    if cyrus_root() is None:
        return (
            "Cyrus IMAP is not unpacked (run .ci/cyrus, or set COMMLINK_CYRUS_ROOT "
            "to a tree holding usr/lib/cyrus/bin/master)"
        )
    if _saslpasswd2() is None:
        return "saslpasswd2 is missing (Debian package sasl2-bin)"
    return None


class CyrusServer(LocalServer):
    """A private Cyrus instance (IMAP, and CalDAV unless ``caldav=False``);
    use it as a context manager or call ``start()`` and ``stop()``.

    ``condstore=False`` suppresses CONDSTORE/QRESYNC. ``special_use=False``
    leaves the SPECIAL-USE attributes off the default ``folders``.
    ``idle=False`` runs no ``idled`` and offers no IDLE. ``extra`` is
    appended to ``imapd.conf``.
    """

    admin_user = "cyrus"

    def __init__(
        self,
        root: Path | str | None = None,
        *,
        password: str = "secret",
        condstore: bool = True,
        caldav: bool = True,
        special_use: bool = True,
        idle: bool = True,
        folders: Sequence[str] = ("Sent", "Drafts", "Trash", "Junk", "Archive"),
        extra: str = "",
    ) -> None:
        missing = cyrus_missing()
        if missing is not None:
            raise RuntimeError(missing)
        install = cyrus_root()
        saslpasswd2 = _saslpasswd2()
        assert install is not None
        assert saslpasswd2 is not None
        self.install = install
        self.saslpasswd2 = saslpasswd2
        self._own_root = root is None
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="cyrus-"))
        self.password = password
        self.condstore = condstore
        self.caldav = caldav
        self.special_use = special_use
        self.idle = idle
        self.folders = tuple(folders)
        self.extra = extra
        self.host = "127.0.0.1"
        self.port = 0
        self.http_port = 0
        self.users: set[str] = set()
        self.uid, self.gid, self.user = service_owner()

    # -- layout ----------------------------------------------------------------

    @property
    def bin_dir(self) -> Path:
        return self.install / _BIN

    @property
    def config_path(self) -> Path:
        return self.root / "imapd.conf"

    @property
    def master_config_path(self) -> Path:
        return self.root / "cyrus.conf"

    @property
    def sasldb(self) -> Path:
        return self.root / "sasldb2"

    @property
    def log_path(self) -> Path:
        """What ``master`` writes to stdout/stderr (Cyrus itself logs to syslog)."""
        return self.root / "master.log"

    @property
    def dav_url(self) -> str:
        """The CalDAV root (``/dav/``); the client discovers the user's calendars from it."""
        return f"http://{self.host}:{self.http_port}/dav/"

    def _command(self, name: str, *args: str) -> str:
        return " ".join([str(self.bin_dir / name), "-C", str(self.config_path), *args])

    def _imapd_conf(self) -> str:
        special = "".join(
            f"xlist-{_SPECIAL[name]}: {name}\n"
            for name in self.folders
            if self.special_use and name in _SPECIAL
        )
        folders = "|".join(self.folders)
        created = (
            f"autocreate_inbox_folders: {folders}\nautocreate_subscribe_folders: {folders}\n"
            if folders
            else ""
        )
        suppressed = "" if self.condstore else "suppress_capabilities: CONDSTORE QRESYNC\n"
        if not self.idle:
            suppressed += "imapidlepoll: 0\n"
        config = self.root / "config"
        return f"""\
configdirectory: {config}
defaultpartition: default
partition-default: {self.root}/spool
sievedir: {self.root}/sieve
proc_path: {config}/proc
mboxname_lockpath: {config}/lock
idlesocket: {config}/socket/idle
notifysocket: {config}/socket/notify
lmtpsocket: {config}/socket/lmtp
cyrus_user: {self.user}
admins: {self.admin_user}
servername: localhost
syslog_prefix: commlink-cyrus-{self.port}
altnamespace: yes
unixhierarchysep: yes
hashimapspool: no
allowplaintext: yes
sasl_mech_list: PLAIN LOGIN
sasl_pwcheck_method: auxprop
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: {self.sasldb}
failedloginpause: 0
autocreate_quota: 0
autocreate_post: yes
{created}{special}{suppressed}httpmodules: caldav
httpallowcompress: no
caldav_create_default: no
caldav_create_attach: no
{self.extra}
"""

    def _cyrus_conf(self) -> str:
        http = (
            f'  http cmd="{self._command("httpd")}" listen="{self.host}:{self.http_port}" '
            "prefork=0\n"
            if self.caldav
            else ""
        )
        idled = f'  idled cmd="{self._command("idled")}"\n' if self.idle else ""
        return f"""\
START {{
  recover cmd="{self._command("ctl_cyrusdb", "-r")}"
}}
SERVICES {{
  imap cmd="{self._command("imapd")}" listen="{self.host}:{self.port}" prefork=0
{http}}}
EVENTS {{
  checkpoint cmd="{self._command("ctl_cyrusdb", "-c")}" period=30
}}
DAEMON {{
{idled}}}
"""

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.install != Path("/"):
            libs = sorted({str(p.parent) for p in self.install.glob("usr/lib/**/libcyrus*.so*")})
            env["LD_LIBRARY_PATH"] = os.pathsep.join(
                [*libs, *filter(None, [env.get("LD_LIBRARY_PATH")])]
            )
        return env

    # -- users -----------------------------------------------------------------

    def add_user(self, username: str) -> None:
        """Let ``username`` log in with the server's ``password`` (idempotent).

        Its INBOX and folders are created by Cyrus at the first login.
        """
        if not username or not username.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(f"unusable user name {username!r}", field="username")
        if username in self.users:
            return
        self._sasl_user(username)
        self.users.add(username)

    def _sasl_user(self, username: str) -> None:
        result = subprocess.run(
            [self.saslpasswd2, "-p", "-c", "-f", str(self.sasldb), "-u", "localhost", username],
            input=self.password.encode(),
            capture_output=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"saslpasswd2 failed: {result.stderr.decode(errors='replace')}")
        self._chown(self.sasldb)

    # -- lifecycle -------------------------------------------------------------

    def start(self, timeout: float = 20.0) -> None:
        """Write the configuration and start ``master``; returns when IMAP
        (and HTTP) accept connections."""
        if self._process is not None:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        self.port = free_port()
        self.http_port = free_port() if self.caldav else 0
        for sub in ("db", "socket", "proc", "lock", "log"):
            (self.root / "config" / sub).mkdir(parents=True, exist_ok=True)
        for sub in ("spool", "sieve"):
            (self.root / sub).mkdir(exist_ok=True)
        self.config_path.write_text(self._imapd_conf())
        self.master_config_path.write_text(self._cyrus_conf())
        self._sasl_user(self.admin_user)
        self._chown(self.root)
        command = [
            str(self.bin_dir / "master"),
            "-C",
            str(self.config_path),
            "-M",
            str(self.master_config_path),
            "-p",
            str(self.root / "master.pid"),
            "-D",
        ]
        ports = [self.port] + ([self.http_port] if self.caldav else [])

        def all_accept() -> bool:
            while ports and self._accepts(ports[0]):
                ports.pop(0)
            return not ports

        env = self._environment()
        started = self._run(command, self.log_path, all_accept, timeout, env=env, own_session=True)
        if started is Startup.EXITED:
            code = self._process.returncode if self._process is not None else None
            self.stop()
            raise RuntimeError(f"cyrus master exited at start with status {code}")
        if started is Startup.TIMED_OUT:
            self.stop()
            raise RuntimeError(f"cyrus did not start within {timeout}s")

    def _accepts(self, port: int) -> bool:
        greeting = b"* OK" if port == self.port else b""
        return accepts(self.host, port, timeout=1, greeting=greeting)

    def stop(self) -> None:
        """Stop ``master`` and its services (and remove the directory when it made it)."""
        self._stop_process(group=True)
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def _chown(self, path: Path) -> None:
        chown_tree(path, self.uid, self.gid)

    # -- accounts --------------------------------------------------------------

    def dav_account(self, username: str) -> CyrusDavAccount:
        """A CalDAV user (created, with an empty calendar home)."""
        if not self.caldav:
            raise ConfigError("this server runs without CalDAV", field="caldav")
        self.add_user(username)
        account = CyrusDavAccount(self, username)
        account.provision(self)
        return account


class CyrusAccount(ImapAccount):
    """A fresh user on a running ``CyrusServer`` (an ``ImapAccount``)."""

    server: CyrusServer


class CyrusDavAccount(DavAccount):
    """A CalDAV user of a ``CyrusServer``: calendars live under
    ``/dav/calendars/user/<name>/``."""

    def __init__(self, server: CyrusServer, username: str) -> None:
        super().__init__(
            f"http://{server.host}:{server.http_port}",
            username,
            server.password,
            home=f"/dav/calendars/user/{username}/",
            root="/dav/",
        )

    def provision(self, server: CyrusServer) -> None:
        """Log in once over IMAP, where Cyrus creates the user's mailbox, then
        over HTTP, where it creates the calendar home."""
        import imapclient

        client = imapclient.IMAPClient(server.host, server.port, ssl=False)
        try:
            client.login(self.username, self.password)
            client.logout()
        except Exception:
            client.shutdown()
            raise
        headers = {"Depth": "0", "Content-Type": "application/xml"}
        status, body = self.request("PROPFIND", self.home(), _RESOURCETYPE, headers)
        if status != 207:
            raise RuntimeError(f"Cyrus did not provision {self.username}: {status} {body[:200]!r}")
