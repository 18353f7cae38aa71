#!/usr/bin/env python3
"""Checks of .ci/qemu-fork-watch's signature on made-up process tables."""

import importlib.machinery
import importlib.util
import os
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
loader = importlib.machinery.SourceFileLoader("qfw", os.path.join(HERE, "qemu-fork-watch"))
spec = importlib.util.spec_from_loader("qfw", loader)
qfw = importlib.util.module_from_spec(spec)
loader.exec_module(qfw)

TEST = b"/usr/bin/qemu-arm\0target-arm/deps/it-1234\0"
PLAYER = b"/usr/bin/qemu-arm\0target-arm/debug/rowplay\0play\0lib.rowpack\0"


class Signature(unittest.TestCase):
    def test_an_old_unexeced_copy_of_an_emulated_parent_is_the_deadlock(self):
        procs = {
            10: (1, b"cargo\0test\0", "cargo", 90.0),
            11: (10, TEST, "it-1234", 80.0),
            12: (11, TEST, "rates::a_pack_w", 30.0),
        }
        self.assertEqual(qfw.stuck_forks(procs), [(12, "rates::a_pack_w", 30.0)])

    def test_a_young_copy_an_execed_child_or_a_native_fork_is_not(self):
        procs = {
            11: (10, TEST, "it-1234", 80.0),
            12: (11, TEST, "rates::a_pack_w", 0.5),
            13: (11, PLAYER, "rowplay", 60.0),
            20: (1, b"bash\0x\0", "bash", 90.0),
            21: (20, b"bash\0x\0", "bash", 90.0),
        }
        self.assertEqual(qfw.stuck_forks(procs), [])

    def test_exit_codes_pass_through_and_a_long_run_fails(self):
        self.assertEqual(qfw.run_once([sys.executable, "-c", "raise SystemExit(3)"], 60), 3)
        self.assertEqual(qfw.run_once([sys.executable, "-c", "import time; time.sleep(30)"], 1), 124)

    def test_the_whole_tree_is_killed(self):
        # A grandchild in a session of its own dies with the command.
        p = subprocess.Popen(
            [sys.executable, "-c",
             "import subprocess, sys, time; "
             "c = subprocess.Popen(['sleep', '60'], start_new_session=True); "
             "print(c.pid, flush=True); time.sleep(60)"],
            stdout=subprocess.PIPE, start_new_session=True)
        grandchild = int(p.stdout.readline())
        qfw.kill_session(p)
        for _ in range(100):
            st = qfw.read(f"/proc/{grandchild}/stat").decode()
            if not st or st.split(") ")[1].startswith("Z"):
                break
            time.sleep(0.05)
        else:
            self.fail("the grandchild lived on")


if __name__ == "__main__":
    unittest.main()
