"""Run a program under a seccomp filter built like systemd's SystemCallFilter= (an allow
list: anything else kills the process, as systemd does without SystemCallErrorNumber=)
and RestrictAddressFamilies= (socket(2) of another family fails with EAFNOSUPPORT).

    python3 seccomp_exec.py SYSCALLS FAMILIES -- PROGRAM ARGS...

SYSCALLS is a comma-separated list of system call names (`-`: no allow list), FAMILIES
one of address family numbers. Uses libseccomp (libseccomp.so.2, which systemd itself links)
through ctypes; the stand-in for systemd where systemd is not PID 1.
"""

from __future__ import annotations

import ctypes
import errno
import os
import sys

SCMP_ACT_KILL_PROCESS = 0x80000000
SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_CMP_EQ = 4
AF_MAX = 46


def SCMP_ACT_ERRNO(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)


class ArgCmp(ctypes.Structure):
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


def main() -> None:
    syscalls, families_text, dash, *program = sys.argv[1:]
    assert dash == "--" and program
    lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint, ctypes.c_void_p
    ]  # fmt: skip
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]

    allow = lib.seccomp_init(SCMP_ACT_ALLOW if syscalls == "-" else SCMP_ACT_KILL_PROCESS)
    names = [] if syscalls == "-" else syscalls.split(",")
    for name in names:
        number = lib.seccomp_syscall_resolve_name(name.encode())
        if number < 0:  # not a system call of this architecture
            continue
        rc = lib.seccomp_rule_add_array(allow, SCMP_ACT_ALLOW, number, 0, None)
        if rc < 0 and rc != -errno.EEXIST:
            sys.exit(f"seccomp_rule_add({name}) failed: {rc}")

    families = {int(f) for f in families_text.split(",") if f}
    restrict = lib.seccomp_init(SCMP_ACT_ALLOW)
    socket_nr = lib.seccomp_syscall_resolve_name(b"socket")
    for family in range(AF_MAX):
        if family in families:
            continue
        cmp = ArgCmp(0, SCMP_CMP_EQ, family, 0)
        rc = lib.seccomp_rule_add_array(
            restrict, SCMP_ACT_ERRNO(errno.EAFNOSUPPORT), socket_nr, 1, ctypes.byref(cmp)
        )
        if rc < 0:
            sys.exit(f"seccomp_rule_add(socket, {family}) failed: {rc}")
    # Load the address families first: loading needs system calls the allow list may lack.
    for ctx in (restrict, allow):
        rc = lib.seccomp_load(ctx)
        if rc < 0:
            sys.exit(f"seccomp_load failed: {rc}")
    os.execvp(program[0], program)


if __name__ == "__main__":
    main()
