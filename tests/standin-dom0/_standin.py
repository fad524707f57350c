"""Shared by the stand-in dom0 tools (xl, lvcreate, lvremove, lvs, qemu-img).

There is no Xen hypervisor on the machines pushgate is tested on, so its xen provisioner is
tested over a real SSH connection to a "dom0" whose PATH holds these scripts. They keep domain
and volume state in files under $STANDIN_STATE, check their arguments and guest configs the way
the real tools do, log every call to $STANDIN_STATE/transcript, and can be told to fail
($STANDIN_STATE/fail/TOOL-SUBCOMMAND) or hang ($STANDIN_STATE/hang/TOOL-SUBCOMMAND).
"""
import os
import sys
import time

STATE = os.environ.get("STANDIN_STATE")


def die(message, code=1):
    sys.stderr.write(message + "\n")
    sys.exit(code)


def begin(tool, argv):
    """Logs the call and applies any injected failure or hang."""
    if not STATE:
        die(f"{tool}: STANDIN_STATE is not set")
    with open(os.path.join(STATE, "transcript"), "a") as t:
        t.write(" ".join([tool] + argv) + "\n")
    sub = argv[0] if argv and not argv[0].startswith("-") else ""
    for name in (f"{tool}-{sub}", tool):
        if os.path.exists(os.path.join(STATE, "hang", name)):
            time.sleep(3600)
        if os.path.exists(os.path.join(STATE, "fail", name)):
            die(f"{tool}: injected failure ({name})")


def path(*parts):
    p = os.path.join(STATE, *parts)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    return p
