"""rowplay.Client against a real `rowplay play --clock step`: frames are
granted by the test (`step N`), so nothing depends on wall-clock timing."""

import os
import socket
import struct
import subprocess
import threading
import time

import numpy as np
import pytest

import rowplay

RNG = np.random.default_rng(7)
ARRAYS = {n: RNG.integers(0, 256, (20, 6, 3), dtype=np.uint8) for n in ("a", "b", "c")}
ALL_OFF = 0xFFFFFFFF


class Player:
    def __init__(self, bin_, pack, tmp, sock):
        self.sock = str(sock)
        self.capture = tmp / "cap.bin"
        self.err = open(tmp / "player.err", "w+")
        self.p = subprocess.Popen(
            [bin_, "play", str(pack), "--clock", "step", "--rt-priority", "0",
             "--socket", self.sock, "--output", f"capture:{self.capture}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.err,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                s = socket.socket(socket.AF_UNIX)
                s.connect(self.sock)
                s.close()
                break
            except OSError:
                s.close()
                assert self.p.poll() is None, self.stderr()
                assert time.monotonic() < deadline, "player did not open its socket"
                time.sleep(0.01)
        self.client = rowplay.Client(self.sock)

    def stderr(self):
        self.err.seek(0)
        return self.err.read()

    def step(self, n=1):
        """Grant n frames and wait until they were played."""
        target = self.client.status()["frames"] + n
        self.client.step(n)
        deadline = time.monotonic() + 30
        while self.client.status()["frames"] < target:
            assert time.monotonic() < deadline, "frames did not advance"
            time.sleep(0.002)

    def finish(self):
        self.p.terminate()
        try:
            self.client.step(1)
        except (OSError, rowplay.ControlError):
            pass
        self.p.wait(timeout=30)
        self.err.close()
        return records(self.capture.read_bytes())


def records(b):
    """capture: records -> [(array, row, pixels)]."""
    out, at = [], 0
    while at < len(b):
        _t, array, row, n = struct.unpack_from("<QIII", b, at)
        at += 20
        out.append((array, row, b[at : at + n]))
        at += n
    return out


@pytest.fixture
def player(rowplay_bin, pack, tmp_path):
    p = Player(rowplay_bin, pack(ARRAYS), tmp_path, tmp_path / "ctl.sock")
    yield p
    if p.p.poll() is None:
        p.p.kill()
        p.p.wait()


def test_play_status_list_and_the_frames_they_give(player):
    c = player.client
    assert c.list() == ["a", "b", "c"]
    player.step(3)
    c.play("b")
    player.step(1)
    s = c.status()
    assert (s["array"], s["index"], s["row"], s["state"]) == ("b", 1, 0, "playing")
    player.step(2)
    c.play(2)  # by index: `play #2`
    player.step(1)
    assert (c.status()["array"], c.status()["row"]) == ("c", 0)
    recs = [r for r in player.finish() if r[0] != ALL_OFF]
    shown = [(a, r) for a, r, _ in recs]
    assert shown[:3] == [(0, 0), (0, 1), (0, 2)]
    assert shown[3:6] == [(1, 0), (1, 1), (1, 2)]
    assert shown[6] == (2, 0)
    # Pixels (no chip: gamma 1, brightness 1) are the pack's rows.
    for a, r, px in recs[:7]:
        assert px == ARRAYS["abc"[a]][r].tobytes()


def test_next_prev_pause_resume_stop_brightness(player):
    c = player.client
    player.step(1)
    c.next()
    player.step(1)
    assert c.status()["array"] == "b"
    c.prev()
    player.step(1)
    assert c.status()["array"] == "a"
    c.pause()
    player.step(2)
    s = c.status()
    assert s["state"] == "paused"
    row = s["row"]
    player.step(2)
    assert c.status()["row"] == row
    c.resume()
    player.step(1)
    assert c.status()["state"] == "playing"
    c.brightness(0.5)
    player.step(1)
    assert c.status()["brightness"] == 0.5
    c.brightness("+0.25")
    player.step(1)
    assert c.status()["brightness"] == 0.75
    c.brightness("-0.5")
    player.step(1)
    assert c.status()["brightness"] == 0.25
    c.stop()
    player.step(1)
    assert c.status()["state"] == "stopped"


def test_error_replies_raise_control_error(player):
    c = player.client
    with pytest.raises(rowplay.ControlError, match=r'^no array named "nope"$'):
        c.play("nope")
    with pytest.raises(rowplay.ControlError, match=r"^index 9 out of range \(0\.\.3\)$"):
        c.play(9)
    with pytest.raises(rowplay.ControlError, match=r"^brightness 7 outside 0\.\.1$"):
        c.brightness(7)
    with pytest.raises(rowplay.ControlError, match="^bad brightness"):
        c.brightness("bright")
    with pytest.raises(ValueError):
        c.play("")
    with pytest.raises(TypeError):
        c.play(1.5)
    # The connection is per command: the client still works after errors.
    assert c.list() == ["a", "b", "c"]


def wait_supported(c):
    try:
        c.command("wait")
    except rowplay.ControlError as e:
        return not str(e).startswith('unknown command "wait"')
    return True


def test_wait_replies_after_row_0_was_handed_out(player):
    """Needs the `wait` prefix verb in the player (being added on main)."""
    c = player.client
    if not wait_supported(c):
        pytest.skip('this rowplay binary has no `wait` verb (unknown command "wait")')
    player.step(2)
    for call, want in ((lambda: c.play("c", wait=True), 2),
                       (lambda: c.prev(wait=True), 1),
                       (lambda: c.next(wait=True), 2)):
        done, errors = [], []

        def go():
            try:
                call()
                done.append(c.status()["frames"])
            except Exception as e:  # reported below
                errors.append(e)

        t = threading.Thread(target=go)
        t.start()
        granted = 0
        # Frames are granted one at a time until the reply comes: it must
        # come within 50 frames, once the target's row 0 was played.
        while t.is_alive() and granted < 60:
            c.step(1)
            granted += 1
            t.join(0.05)
        t.join(30)
        assert not errors, errors
        assert done, "no reply to a wait command"
        s = c.status()
        assert s["index"] == want
    recs = [(a, r) for a, r, _ in player.finish() if a != ALL_OFF]
    assert (2, 0) in recs and (1, 0) in recs


def test_default_socket_order(monkeypatch):
    monkeypatch.setenv("RUNTIME_DIRECTORY", "/srv/rt:/other")
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    assert rowplay.default_socket_candidates() == [
        "/srv/rt/rowplay.sock",
        "/run/rowplay/rowplay.sock",
        "/run/user/1000/rowplay.sock",
        f"/tmp/rowplay-{os.getuid()}/rowplay.sock",
    ]
    monkeypatch.delenv("RUNTIME_DIRECTORY")
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert rowplay.default_socket_candidates() == [
        "/run/rowplay/rowplay.sock",
        f"/tmp/rowplay-{os.getuid()}/rowplay.sock",
    ]


def test_the_first_socket_that_accepts_a_connection_is_used(
        rowplay_bin, pack, tmp_path, monkeypatch):
    if os.path.exists("/run/rowplay/rowplay.sock"):
        pytest.skip("a player is running on /run/rowplay/rowplay.sock")
    stale_dir = tmp_path / "stale"
    live_dir = tmp_path / "live"
    stale_dir.mkdir()
    live_dir.mkdir()
    # A socket file nobody listens on (a player that died) comes first.
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(stale_dir / "rowplay.sock"))
    s.close()
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(stale_dir))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(live_dir))
    p = Player(rowplay_bin, pack(ARRAYS), tmp_path, live_dir / "rowplay.sock")
    try:
        c = rowplay.Client()
        assert c.socket == str(live_dir / "rowplay.sock")
        assert c.list() == ["a", "b", "c"]
    finally:
        p.finish()
    with pytest.raises(rowplay.ControlError, match="no running player found"):
        rowplay.Client()
