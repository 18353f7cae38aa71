"""A client of a running ``rowplay play``: its control socket, from Python.

The protocol is the one ``rowplay ctl`` speaks (documented in the
repository's ``src/control.rs``): one command line, one reply line, ``ok``,
``error: ...`` or one JSON object. Each call opens a connection, sends one
line and reads one reply, so a client object can be kept for a program's
whole life and survives the player being restarted.
"""

import os

# `socket` and `json` are imported by the methods that use them: a program
# that only reads packs (on a 512 MB Pi) does not pay for them.

#: Longest command line the player accepts, in bytes (with the newline).
MAX_LINE = 1024


class ControlError(Exception):
    """The player answered ``error: ...`` (the text after it is the message)."""


def default_socket_candidates():
    """Where ``rowplay ctl`` looks for the player's socket, in order."""
    v = []
    d = os.environ.get("RUNTIME_DIRECTORY")
    if d:
        # systemd may list several folders separated by ':'.
        v.append(os.path.join(d.split(":")[0], "rowplay.sock"))
    v.append("/run/rowplay/rowplay.sock")
    d = os.environ.get("XDG_RUNTIME_DIR")
    if d:
        v.append(os.path.join(d, "rowplay.sock"))
    v.append(f"/tmp/rowplay-{os.getuid()}/rowplay.sock")
    return v


def _connect(path, timeout):
    import socket as _socket

    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        s.connect(path)
    except BaseException:
        s.close()
        raise
    return s


class Client:
    """Commands to a running player.

    ``socket``: the socket's path; by default the first of
    ``default_socket_candidates()`` that accepts a connection (checked when
    the client is made). ``timeout``: seconds to wait for one reply (a
    ``wait`` command waits for the frame, at most 50 frames).
    """

    def __init__(self, socket=None, timeout=10.0):
        self.timeout = timeout
        if socket is not None:
            self.socket = os.fspath(socket)
            return
        tried = default_socket_candidates()
        for p in tried:
            try:
                _connect(p, timeout).close()
            except OSError:
                continue
            self.socket = p
            return
        raise ControlError(
            "no running player found (no socket accepting connections at "
            + ", ".join(tried)
            + "); give Client(socket=PATH)"
        )

    def __repr__(self):
        return f"<rowplay.Client {self.socket!r}>"

    def command(self, line):
        """Send one command line; return the reply line (``error:`` raises)."""
        data = (line.strip() + "\n").encode("utf-8")
        if len(data) > MAX_LINE:
            raise ValueError(f"command longer than {MAX_LINE} bytes")
        s = _connect(self.socket, self.timeout)
        try:
            s.sendall(data)
            reply = bytearray()
            while not reply.endswith(b"\n"):
                b = s.recv(65536)
                if not b:
                    break
                reply += b
        finally:
            s.close()
        text = reply.decode("utf-8", "replace").rstrip("\r\n")
        if not text:
            raise ControlError(f"{self.socket}: the player closed the connection")
        if text.startswith("error: "):
            raise ControlError(text[len("error: "):])
        return text

    def _ok(self, line):
        reply = self.command(line)
        if reply != "ok":
            raise ControlError(f"unexpected reply {reply!r} to {line!r}")

    @staticmethod
    def _wait(wait):
        return "wait " if wait else ""

    def play(self, name, wait=False):
        """Play array ``name`` (a str) or ``#index`` (an int) from row 0.

        With ``wait=True`` the reply comes only once row 0 of it was handed
        to the output (``wait play``).
        """
        if isinstance(name, bool):
            raise TypeError("play takes an array name or index")
        if isinstance(name, int):
            target = f"#{name}"
        elif isinstance(name, str):
            if not name.strip() or "\n" in name:
                raise ValueError(f"bad array name {name!r}")
            target = name
        else:
            raise TypeError("play takes an array name or index")
        self._ok(f"{self._wait(wait)}play {target}")

    def next(self, wait=False):
        """Next playlist entry (or array)."""
        self._ok(f"{self._wait(wait)}next")

    def prev(self, wait=False):
        """Previous playlist entry (or array)."""
        self._ok(f"{self._wait(wait)}prev")

    def pause(self):
        """Hold the current row."""
        self._ok("pause")

    def resume(self):
        """Continue after ``pause`` or ``stop``."""
        self._ok("resume")

    def stop(self):
        """All LEDs off; the player keeps running."""
        self._ok("stop")

    def reload(self):
        """Re-open the pack (after ``rowplay pack`` replaced it)."""
        self._ok("reload")

    def brightness(self, x):
        """Set brightness 0..1 (a number), or change it by a string
        ``"+0.1"`` / ``"-0.1"``."""
        if isinstance(x, str):
            arg = x.strip()
        else:
            arg = repr(float(x))
        self._ok(f"brightness {arg}")

    def status(self):
        """The player's status object (position, counters, latency)."""
        import json

        return json.loads(self.command("status"))

    def list(self):
        """Array names, in index order."""
        import json

        return json.loads(self.command("list"))["arrays"]

    def step(self, n=1):
        """Grant ``n`` frames to a player started with ``--clock step``."""
        self._ok(f"step {int(n)}")
