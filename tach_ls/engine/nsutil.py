"""The system-level pieces of worker isolation: ctypes calls, the upper layer, the network guard (stdlib only).

Zygote side. Thin wrappers that raise ``OSError`` with the call that failed
in the message, so a refusal can be shown to the user as it happened:

- ``unshare``, ``mount``: namespaces and mounts (libc);
- ``write_id_maps``: the uid/gid map of a fresh user namespace (own ids only,
  which an unprivileged process may write);
- ``loopback_up``: ``SIOCSIFFLAGS`` on ``lo``, the ``ip link set lo up`` of a
  new network namespace, without the ``ip`` binary;
- ``landlock_guard``: a Landlock domain whose only restriction that a test can
  notice is the one we want (no ptrace-mode access, hence no
  ``/proc/<pid>/cwd``, ``root`` or ``fd``, into processes outside the worker);
- ``overlay_options``: the ``lowerdir=...`` option string, escaped;
- ``upper_changes``: what a test wrote into the project, read from the
  overlay's upper layer;
- ``install_net_guard``: the audit hook that makes a connection beyond
  loopback fail at once with words that say why.

``namespaces`` decides what to call and when; nothing here keeps state except
the loaded libc.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import socket
import stat
import struct
import sys
from typing import Any

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000

_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
_IFREQ = struct.Struct("16sH14x")

# Landlock: the same numbers on every architecture that has it (the unified syscall table).
_SYS_LANDLOCK_CREATE_RULESET = 444
_SYS_LANDLOCK_ADD_RULE = 445
_SYS_LANDLOCK_RESTRICT_SELF = 446
_LANDLOCK_CREATE_RULESET_VERSION = 1
_LANDLOCK_RULE_PATH_BENEATH = 1
_ACCESS_FS_MAKE_BLOCK = 1 << 11
_ACCESS_FS_REFER = 1 << 13
LANDLOCK_MIN_ABI = 2
"""ABI 1 (Linux 5.13-5.18) denies every rename across directories; 2 lets a rule allow them."""


class _PathBeneath(ctypes.Structure):
    _pack_ = 1  # struct landlock_path_beneath_attr is __attribute__((packed))
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.syscall.restype = ctypes.c_long


def _fail(what: str) -> OSError:
    errno = ctypes.get_errno()
    return OSError(errno, f"{what}: {os.strerror(errno)}")


def _b(text: str | None) -> bytes | None:
    return None if text is None else os.fsencode(text)


def unshare(flags: int, what: str) -> None:
    if _libc.unshare(flags) != 0:
        raise _fail(f"unshare({what})")


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    if _libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)) != 0:
        kind = fstype or ("bind" if flags & MS_BIND else "propagation" if flags & MS_PRIVATE else "remount")
        raise _fail(f"mount {kind} on {target}")


def write_id_maps(uid: int, gid: int) -> None:
    """Map our own uid and gid to themselves in a user namespace we just created."""
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1\n"), ("gid_map", f"{gid} {gid} 1\n")):
        fd = os.open(f"/proc/self/{name}", os.O_WRONLY)
        try:
            os.write(fd, text.encode())
        except OSError as exc:
            raise OSError(exc.errno, f"writing /proc/self/{name}: {exc.strerror}") from None
        finally:
            os.close(fd)


def loopback_up() -> None:
    """Bring ``lo`` up in the current network namespace (127.0.0.1 and ::1 come with it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            current = fcntl.ioctl(sock, _SIOCGIFFLAGS, _IFREQ.pack(b"lo", 0))
            flags = _IFREQ.unpack(current)[1]
            fcntl.ioctl(sock, _SIOCSIFFLAGS, _IFREQ.pack(b"lo", flags | _IFF_UP))
        except OSError as exc:
            raise OSError(exc.errno, f"bringing up lo (SIOCSIFFLAGS): {exc.strerror}") from None


def landlock_abi() -> int:
    """The kernel's Landlock ABI version; 0 when it has none (or it is disabled at boot)."""
    version = _libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0),
                            ctypes.c_uint32(_LANDLOCK_CREATE_RULESET_VERSION))  # fmt: skip
    return max(0, int(version))


def landlock_guard() -> None:
    """Enter a Landlock domain that restricts nothing a test does, except reaching outside processes.

    Every Landlock domain denies ptrace-mode access to processes outside it,
    which is what ``/proc/<pid>/cwd``, ``root``, ``fd`` and ``environ`` need;
    a domain that handles a filesystem right also forbids mount and umount,
    so a test running as root cannot take the overlay off the project. The
    rights handled are creating block devices (denied) and renaming across
    directories (``REFER``: granted everywhere below ``/``, since Landlock
    denies it by default once a ruleset exists).
    """
    abi = landlock_abi()
    if abi < LANDLOCK_MIN_ABI:
        raise OSError(38, f"Landlock ABI {abi} (need {LANDLOCK_MIN_ABI}, Linux 5.19+ with landlock enabled)")
    handled = ctypes.c_uint64(_ACCESS_FS_MAKE_BLOCK | _ACCESS_FS_REFER)
    ruleset = _libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(handled), ctypes.c_size_t(8), ctypes.c_uint32(0))
    if ruleset < 0:
        raise _fail("landlock_create_ruleset")
    try:
        top = os.open("/", os.O_PATH | os.O_DIRECTORY)
        try:
            rule = _PathBeneath(allowed_access=_ACCESS_FS_REFER, parent_fd=top)
            if _libc.syscall(_SYS_LANDLOCK_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(_LANDLOCK_RULE_PATH_BENEATH),
                             ctypes.byref(rule), ctypes.c_uint32(0)) != 0:  # fmt: skip
                raise _fail("landlock_add_rule")
        finally:
            os.close(top)
        if _libc.syscall(_SYS_LANDLOCK_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
            raise _fail("landlock_restrict_self")
    finally:
        os.close(ruleset)


def overlay_options(lower: str, upper: str, work: str, extra: str = "") -> str:
    """The data string of an overlay mount; commas, colons and backslashes in paths escaped."""
    def esc(path: str) -> str:
        return path.replace("\\", "\\\\").replace(",", "\\,").replace(":", "\\:")

    options = f"lowerdir={esc(lower)},upperdir={esc(upper)},workdir={esc(work)}"
    return f"{options},{extra}" if extra else options


_MNT_DETACH = 2


def umount(target: str) -> None:
    if _libc.umount2(_b(target), _MNT_DETACH) != 0:
        raise _fail(f"umount {target}")


# -- the overlay's upper layer ---------------------------------------------------------------------------------------

Seen = dict[str, tuple[int, int, int]]


def upper_changes(upper_fd: int, lower_fd: int, seen: Seen) -> tuple[list[str], Seen]:
    """'A path', 'M path' or 'D path' per change in an overlay's upper layer since ``seen``; and the new ``seen``.

    A file in the upper layer was added, or modified when the lower layer has
    it; a whiteout (a 0/0 character device) is a deletion. ``__pycache__``
    folders are left out: the import system writes them, not the test.
    """
    now: Seen = {}
    for top, dirs, files, dir_fd in os.fwalk(".", dir_fd=upper_fd):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in dirs + files:
            try:
                info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except OSError:
                continue
            now[os.path.normpath(os.path.join(top, name))] = (info.st_mode, info.st_mtime_ns, info.st_size)
    changes = []
    for rel, (mode, mtime, size) in sorted(now.items()):
        if seen.get(rel) == (mode, mtime, size):
            continue
        in_lower = _exists(lower_fd, rel)
        if stat.S_ISCHR(mode):
            if in_lower or rel in seen:
                changes.append(f"D {rel}")
        elif stat.S_ISDIR(mode):
            if not in_lower and rel not in seen:
                changes.append(f"A {rel}/")
        else:
            changes.append(f"{'M' if in_lower else 'A'} {rel}")
    return changes, now


def _exists(dir_fd: int, rel: str) -> bool:
    try:
        os.stat(rel, dir_fd=dir_fd, follow_symlinks=False)
        return True
    except OSError:
        return False


# -- the network guard -----------------------------------------------------------------------------------------------

_NO_NETWORK = (
    "tach-ls isolation: this test runs in a private network namespace with only loopback (127.0.0.1, ::1), "
    "so {what} cannot be reached; run it with --isolation off (the `isolation` setting) if it needs the network"
)


def local_names() -> list[str]:
    """Names a private network can still resolve: localhost's, this host's, and those of /etc/hosts."""
    names = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback", socket.gethostname().lower()}
    try:
        with open("/etc/hosts", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                names.update(n.lower() for n in line.split("#", 1)[0].split()[1:])
    except OSError:
        pass
    return sorted(names)


def install_net_guard(names: list[str]) -> None:
    """An audit hook: connecting beyond loopback, or looking up a name DNS would answer, fails now, saying why.

    Without it the kernel already refuses (no route: ENETUNREACH; the resolver
    fails too), but with words that do not mention isolation.
    """
    local = frozenset(names)
    inet = (socket.AF_INET, socket.AF_INET6)

    def guard(event: str, args: tuple[Any, ...]) -> None:
        if event == "socket.connect":
            address = args[1]
            if getattr(args[0], "family", None) in inet and isinstance(address, tuple) and not is_local(address[0], local):
                raise OSError(errno.ENETUNREACH, _NO_NETWORK.format(what=f"{address[0]}:{address[1]}"))
        elif event == "socket.getaddrinfo":
            host = args[0]
            if host is not None and not _numeric(host) and not is_local(host, local):
                raise socket.gaierror(socket.EAI_NONAME, _NO_NETWORK.format(what=f"the name {host!r}"))

    sys.addaudithook(guard)


def is_local(host: Any, names: frozenset[str]) -> bool:
    """True for an address or name that a private network with only loopback can reach."""
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return True
    host = host.strip("[]").split("%", 1)[0].lower()
    if host in ("", "::", "::1", "0.0.0.0") or host in names or host.endswith(".localhost"):
        return True
    return bool(host.startswith(("127.", "::ffff:127.")))


def _numeric(host: Any) -> bool:
    text = host.decode("ascii", "replace") if isinstance(host, bytes) else str(host)
    return ":" in text or text.replace(".", "").isdigit()
