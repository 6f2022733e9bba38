"""The system calls behind worker isolation, through ctypes (stdlib only).

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
- ``overlay_options``: the ``lowerdir=...`` option string, escaped.

``namespaces`` decides what to call and when; nothing here keeps state except
the loaded libc.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import socket
import struct

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
