"""Tests of the miss classes in ktrace.attribute, on made-up traces.

    python3 bench/test_ktrace.py     (run by .ci/run)
"""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ktrace  # noqa: E402

MS = 1_000_000
PERIOD = 20 * MS


def ticks_every(start, end, step=4 * MS, skip=()):
    """Tick times from start to end, leaving out the spans in `skip`."""
    return [t for t in range(start, end, step) if not any(a < t < b for a, b in skip)]


def trace(cpu0, cpu1, wakes, comm="busy"):
    ticks = {0: sorted(cpu0), 1: sorted(cpu1)}
    comms = {c: [comm] * len(v) for c, v in ticks.items()}
    return ticks, sorted(wakes), 0, comms


def miss(d, woke, sent=None):
    return {"deadline_ns": d, "woke_ns": woke, "sent_ns": sent if sent else woke + 20_000}


class Attribute(unittest.TestCase):
    D = 1000 * MS  # the deadline of the miss in every case

    def classify(self, tr, m):
        att = ktrace.attribute(tr, [m], PERIOD)
        self.assertEqual(len(att["detail"]), 1)
        return att, att["detail"][0]

    def test_a_cpu_that_took_no_interrupt_until_the_late_wake_up_is_silent(self):
        late = self.D + 9 * MS
        # Back from the silence, the CPU runs its tick just before the
        # player's timer, in the same late interrupt.
        cpu0 = ticks_every(0, 2000 * MS, skip=[(self.D - 2 * MS, late)]) + [late - 200_000]
        cpu1 = ticks_every(1, 2000 * MS)
        att, row = self.classify(trace(cpu0, cpu1, [(late, 0)]),
                                 miss(self.D, late + 20_000))
        self.assertEqual(row["class"], "cpu-silent")
        self.assertEqual(att["all-cpus-silent"], 0)

    def test_every_cpu_silent_at_once_is_counted_as_such(self):
        late = self.D + 9 * MS
        gap = [(self.D - 2 * MS, late)]
        cpu0 = ticks_every(0, 2000 * MS, skip=gap) + [late - 200_000]
        cpu1 = ticks_every(1, 2000 * MS, skip=gap) + [late - 100_000]
        att, row = self.classify(trace(cpu0, cpu1, [(late, 0)]),
                                 miss(self.D, late + 20_000))
        self.assertEqual(row["class"], "cpu-silent")
        self.assertTrue(row["all_cpus"])
        self.assertEqual(att["all-cpus-silent"], 1)

    def test_a_late_timer_on_a_cpu_taking_ticks_is_timer_late(self):
        late = self.D + 9 * MS
        cpu0 = ticks_every(0, 2000 * MS)  # ticks right through the lateness
        cpu1 = ticks_every(1, 2000 * MS)
        _, row = self.classify(trace(cpu0, cpu1, [(late, 0)]), miss(self.D, late + 20_000))
        self.assertEqual(row["class"], "timer-late")

    def test_woken_on_time_and_run_late_names_the_task_that_kept_the_cpu(self):
        cpu0 = ticks_every(0, 2000 * MS)
        cpu1 = ticks_every(1, 2000 * MS)
        tr = trace(cpu0, cpu1, [(self.D + 10_000, 0)], comm="stress-ng-hdd")
        _, row = self.classify(tr, miss(self.D, self.D + 6 * MS))
        self.assertEqual(row["class"], "ran-late")
        self.assertEqual(row["held_by"], "stress-ng-hdd")

    def test_running_on_time_and_sending_late_is_the_players_own(self):
        cpu0 = ticks_every(0, 2000 * MS)
        cpu1 = ticks_every(1, 2000 * MS)
        _, row = self.classify(trace(cpu0, cpu1, [(self.D + 10_000, 0)]),
                               miss(self.D, self.D + 30_000, self.D + 7 * MS))
        self.assertEqual(row["class"], "sent-late")

    def test_a_miss_older_than_the_kept_trace_is_not_judged(self):
        cpu0 = ticks_every(self.D + 50 * MS, 2000 * MS)  # the ring lost the start
        cpu1 = ticks_every(1, 2000 * MS)
        _, row = self.classify(trace(cpu0, cpu1, [(self.D + 9 * MS, 0)]),
                               miss(self.D, self.D + 9 * MS))
        self.assertEqual(row["class"], "no-trace")

    def test_a_miss_without_a_wake_up_in_the_trace_is_not_judged(self):
        cpu0 = ticks_every(0, 2000 * MS)
        cpu1 = ticks_every(1, 2000 * MS)
        _, row = self.classify(trace(cpu0, cpu1, [(self.D - 40 * MS, 0)]),
                               miss(self.D, self.D + 9 * MS))
        self.assertEqual(row["class"], "no-trace")

    def test_no_trace_at_all_gives_no_attribution(self):
        self.assertIsNone(ktrace.attribute(None, [miss(self.D, self.D + 9 * MS)], PERIOD))
        self.assertIsNone(ktrace.summary(None, 10))

    def test_the_summary_counts_every_class(self):
        cpu0 = ticks_every(0, 2000 * MS)
        att = ktrace.attribute(trace(cpu0, cpu0, [(self.D + 10_000, 0)], comm="kworker"),
                               [miss(self.D, self.D + 6 * MS)], PERIOD)
        s = ktrace.summary(att, 120)
        self.assertIn("of 1 logged misses", s)
        self.assertIn("1 woken on time but run late", s)
        self.assertIn("held by kworker", s)
        self.assertIn("120 ms", s)


class ReadEvents(unittest.TestCase):
    LINES = [
        "# tracer: nop\n",
        "  stress-ng-vm-9737    [001] d.h.. 100.000100: hrtimer_expire_entry: hrtimer=0 function=tick\n",
        "  stress-ng-vm-9737    [001] d.h2. 100.000200: sched_waking: comm=rowplay-player pid=11 prio=49 target_cpu=001\n",
        "  stress-ng-vm-9737    [001] d.h2. 100.000300: sched_waking: comm=rowplay-player pid=99 prio=120 target_cpu=000\n",
        "  stress-ng-vm-9737    [001] d.h2. 100.000400: sched_waking: comm=cyclictest pid=22 prio=49 target_cpu=001\n",
        "  stress-ng-vm-9737    [001] d.h2. 100.000500: sched_waking: comm=cyclictest pid=21 prio=120 target_cpu=001\n",
        "  rowplay-5           [001] d..2. 100.000600: sched_switch: prev_comm=rowplay prev_pid=5 prev_prio=50 prev_state=R+ ==> next_comm=rowplay-player next_pid=11 next_prio=49\n",
        "  rowplay-7           [001] d..2. 100.000700: sched_switch: prev_comm=rowplay prev_pid=7 prev_prio=120 prev_state=R ==> next_comm=cyclictest next_pid=22 next_prio=49\n",
    ]

    def test_only_the_threads_under_test_and_cyclictests_timed_thread(self):
        ev = ktrace.read_events(self.LINES, pids={11, 21, 22})
        self.assertEqual(ev["ticks"], {1: [100_000_100_000]})
        self.assertEqual(ev["comms"], {1: ["stress-ng-vm"]})
        self.assertEqual(ev["wakes"], [(100_000_200_000, 1)])
        self.assertEqual(ev["cyclic_wakes"], [100_000_400_000])
        self.assertEqual(ev["switches_in"], [(100_000_600_000, 1, "rowplay", "R+")])
        self.assertEqual(ev["cyclic_switches"], [(100_000_700_000, 1, "rowplay", "R")])

    def test_without_pids_every_player_thread_counts(self):
        ev = ktrace.read_events(self.LINES)
        self.assertEqual(len(ev["wakes"]), 2)
        self.assertEqual(len(ev["cyclic_wakes"]), 1)


if __name__ == "__main__":
    unittest.main()
