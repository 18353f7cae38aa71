"""Tests of the same-CPU comparison (bench/samecpu.py), on made-up data.

    python3 bench/test_samecpu.py
"""
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import phases  # noqa: E402
import samecpu  # noqa: E402

MS = 1_000_000
P = samecpu.PERIOD_NS
T0 = 5000 * MS


class Parse(unittest.TestCase):
    def test_cyclictest_samples_in_ns_skip_the_header_and_summary(self):
        text = ("Max CPUs = 2\n# /dev/cpu_dma_latency set to 0us\nThread 0 Interval: 20000\n"
                "       0:       0:   18241\n       0:       1:  5000001\n"
                "T: 0 (30322) P: 1 I:20000 C:      2 Min:  17064 Act:   17064 Avg:   17717\n")
        self.assertEqual(samecpu.cyclictest_ns(text), [18241, 5000001])

    def test_the_wake_log_csv_skips_its_comment_and_header(self):
        with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
            f.write("# 3 older ticks overwritten\ndeadline_ns,woke_ns,sent_ns\n20,25,30\n40,41,47\n")
        try:
            self.assertEqual(samecpu.read_wake_log(f.name), [(20, 25, 30), (40, 41, 47)])
        finally:
            os.remove(f.name)

    def test_both_are_pinned_to_the_same_cpu(self):
        self.assertEqual(samecpu.cyclictest_cmd(20)[:3], ["taskset", "-c", "1"])
        self.assertIn("-N", samecpu.cyclictest_cmd(20))
        self.assertEqual(samecpu.cyclictest_cmd(20)[-1], "1000")
        self.assertEqual(samecpu.pinned(["rowplay"]), ["taskset", "-c", "1", "rowplay"])


    def test_cyclictest_goes_a_quarter_millisecond_before_the_players_grid(self):
        cmd = samecpu.cyclictest_cmd(20, beside_ns=T0 + 7 * MS + 123_456)
        self.assertEqual(cmd[-1], "--secaligned=6873")
        # a player's deadline early in the period: cyclictest's at its end
        self.assertEqual(samecpu.cyclictest_cmd(20, beside_ns=T0 + 100_000)[-1],
                         "--secaligned=19850")


class Place(unittest.TestCase):
    def test_a_sample_a_period_late_has_no_wake_up_and_the_grid_still_holds(self):
        lat = [20_000] * 30
        lat[4] = 22 * MS  # sample 4 ran 22 ms late: cyclictest skips grid point 5
        grid = [k for k in range(31) if k != 5]
        wakes = [T0 + k * P + 15_000 for k in grid]
        wakes[4] = T0 + 4 * P + 22 * MS - 5_000
        d = samecpu.place_cyclictest(lat, wakes[:30], lost=0)
        self.assertEqual(d, [T0 - 5_000 + k * P for k in grid[:30]])

    def test_a_grid_set_in_the_period_places_on_it_not_early(self):
        # the first wake-up less the first latency (which counts its time
        # from wake-up to clock read) comes 5 us early; the set phase does not
        lat = [20_000] * 10
        wakes = [T0 + k * P + 15_000 for k in range(10)]
        self.assertEqual(samecpu.place_cyclictest(lat, wakes, lost=0)[0], T0 - 5_000)
        d = samecpu.place_cyclictest(lat, wakes, lost=0, phase_ns=T0 % P)
        self.assertEqual(d, [T0 + k * P for k in range(10)])
        self.assertEqual(samecpu.snap(T0 + P - 1_000, T0 % P), T0 + P)
        self.assertEqual(samecpu.cyclictest_phase(T0 + 123_456), (T0 + 123_000 - 250_000) % P)

    def test_an_early_extra_wake_up_is_passed_over(self):
        lat = [10_000] * 30
        wakes = [T0 - 7 * MS] + [T0 + k * P + 10_000 for k in range(30)]
        self.assertEqual(samecpu.place_cyclictest(lat, wakes, lost=0)[0], T0)

    def test_a_trace_that_lost_its_start_places_the_last_samples(self):
        lat = [10_000] * 40
        lat[30] = 81 * MS  # a long stall: grid points skipped
        grid = list(range(30)) + [30] + [k + 4 for k in range(31, 40)]
        wakes = [T0 + g * P + 12_000 for g in grid]
        wakes[30] = T0 + 30 * P + 81 * MS - 3_000
        d = samecpu.place_cyclictest(lat, wakes[15:], lost=3)
        self.assertEqual(d[:15], [None] * 15)
        want = [T0 + g * P for g in grid[15:]]
        self.assertTrue(all(abs(a - b) <= 10_000 for a, b in zip(d[15:], want)), d[15:])

    def test_wake_ups_that_do_not_fit_are_not_placed(self):
        lat = [10_000] * 8
        wakes = [T0 + k * P for k in range(8)]
        self.assertIsNone(samecpu.place_cyclictest(lat, [T0 + k * 7 * MS for k in range(8)], 0))
        self.assertIsNone(samecpu.place_cyclictest([], wakes, 0))
        self.assertIsNone(samecpu.place_cyclictest(lat, wakes + wakes, 0))


class ConfirmLate(unittest.TestCase):
    def test_late_samples_check_a_placement_a_period_off(self):
        lat = [20_000] * 50
        lat[10], lat[30] = 7 * MS, 3 * MS
        deadlines = [T0 + k * P for k in range(50)]
        switches = [(d + x - 3_000, 1, "x", "1") for d, x in zip(deadlines, lat)]
        self.assertEqual(samecpu.confirm_late(lat, deadlines, switches), (2, 2))
        # a whole period off: every on-time sample still meets a switch-in,
        # the late ones do not
        shifted = [d + P for d in deadlines]
        self.assertEqual(samecpu.confirm_late(lat, shifted, switches), (0, 2))
        self.assertEqual(samecpu.confirm_late(lat, [None] * 50, switches), (0, 0))


class Compare(unittest.TestCase):
    def test_the_poisson_bound(self):
        self.assertEqual(samecpu.poisson_bound(0), 3)
        self.assertEqual(samecpu.poisson_bound(9), 21)

    def test_tail_causes_tell_a_late_timer_from_a_held_cpu(self):
        late = [(T0, T0 + 300_000), (T0 + P, T0 + P + 400_000), (T0 + 2 * P, T0 + 2 * P + 10_000)]
        wakes = [T0 + 280_000, T0 + P + 5_000, T0 + 2 * P + 5_000]
        switches = [(T0 + P + 399_000, 1, "rowplay-loader", "S")]
        c = samecpu.tail_causes(late, wakes, switches, threshold=50_000)
        self.assertEqual(c, {"timer late": 1, "ran late behind rowplay-loader": 1})

    def test_a_thread_switched_in_on_time_that_reads_its_clock_late_is_told_apart(self):
        # woken at +5 us, switched in at +25 us from stress-ng-vm, its own
        # clock read at +195 us: held once it ran, not behind stress-ng-vm
        late = [(T0, T0 + 195_000), (T0 + P, T0 + P + 195_000)]
        wakes = [T0 + 5_000, T0 + P + 5_000]
        switches = [(T0 + 25_000, 1, "stress-ng-vm", "R"), (T0 + P + 180_000, 1, "stress-ng-vm", "R")]
        c = samecpu.tail_causes(late, wakes, switches, threshold=50_000)
        self.assertEqual(c, {"late after switch-in": 1, "ran late behind stress-ng-vm": 1})

    def test_every_player_miss_gets_a_row_with_cyclictest_beside_it(self):
        ticks = [(T0 + k * P, T0 + k * P + 30_000, T0 + k * P + 40_000) for k in range(20)]
        ticks[7] = (T0 + 7 * P, T0 + 7 * P + 11 * MS, T0 + 7 * P + 11 * MS + 10_000)
        cyc_lat = [20_000] * 20
        cyc_lat[6] = 2 * MS  # within a period before the miss
        cyc_lat[9] = 9 * MS  # further off
        cyc_d = [T0 + 3 * MS + k * P for k in range(20)]
        att = {"detail": [{"deadline_ns": T0 + 7 * P, "class": "cpu-silent", "cpu": 1}]}
        info = ({1: [T0 + 7 * P + 1 * MS]}, {1: ["stress-ng-vm"]},
                [(T0 + 7 * P + 11 * MS - 1_000, 1, "stress-ng-vm", "R")])
        r = samecpu.compare(ticks, 1, cyc_lat, cyc_d, att, info)
        self.assertEqual(r["player"]["misses_in_log"], 1)
        self.assertEqual(r["cyclictest"]["over_5ms"], 1)
        self.assertEqual(r["bound"], 7)
        self.assertTrue(r["rate_ok"])
        m = r["misses"][0]
        self.assertEqual(m["t_s"], 0.14)
        self.assertEqual(m["woke_late_ms"], 11.0)
        self.assertEqual(m["class"], "cpu-silent")
        self.assertEqual(m["cyclictest_nearest_ms"], 0.02)
        self.assertEqual(m["cyclictest_nearest_offset_ms"], 3.0)
        self.assertEqual(m["cyclictest_max_within_period_ms"], 2.0)
        self.assertEqual(m["on_cpu_between"], ["stress-ng-vm"])
        self.assertEqual(m["switched_in_from"], "stress-ng-vm (R)")
        self.assertEqual(r["cyclictest_ahead_ns"], 17 * MS)  # 3 ms after: 17 before
        self.assertEqual(r["player"]["p50"], 30_000)
        self.assertEqual(r["player"]["max"], 11 * MS)
        # The hand-out, from the deadline and from the wake-up.
        self.assertEqual(r["player"]["sent"]["p50"], 40_000)
        self.assertEqual(r["player"]["sent"]["max"], 11 * MS + 10_000)
        self.assertEqual(r["player"]["after_wake"]["max"], 10_000)
        md = samecpu.report(r, 0.4, "t")
        self.assertTrue(any("cpu-silent" in line for line in md))
        self.assertTrue(any("first output) p50 / p99 / max 40.0 / " in line for line in md))


class Phases(unittest.TestCase):
    def test_samples_by_thread_skip_the_header_and_summary(self):
        text = ("# /dev/cpu_dma_latency set to 0us\nThread 0 Interval: 20000\n"
                "       0:       0:   18241\n       1:       0:   20000\n"
                "       0:       1:   19000\n"
                "T: 0 (30322) P:50 I:20000 C:      2 Min:  17064 Act:   17064 Avg:   17717\n")
        self.assertEqual(phases.per_thread(text), {0: [18241, 19000], 1: [20000]})

    def test_a_moment_of_the_period_that_is_late_more_often_shows(self):
        lat = {t: [20_000] * 99 + [50_000] for t in range(4)}
        lat[2] = [20_000] * 90 + [100_000 + i * 1000 for i in range(10)]
        s = phases.spread(lat, 1 * MS)
        self.assertEqual(s["pooled_p99_ns"], 105_000)  # the 396th of 400
        by = {r["thread"]: r for r in s["threads"]}
        self.assertEqual(by[2]["phase_ms"], 2.0)
        self.assertEqual(by[2]["over_pooled_p99"], 0.04)
        self.assertEqual(by[0]["over_pooled_p99"], 0.0)
        self.assertEqual((s["p99_min_ns"], s["p99_max_ns"]), (20_000, 108_000))
        self.assertEqual((s["share_min"], s["share_max"]), (0.0, 0.04))
        self.assertTrue(any("| 2.0 |" in line for line in phases.report(
            {"seconds": 2, "threads": 4, "step_us": 1000, "spread": s})))


    def test_touch_lines_are_read_and_reported(self):
        text = ("thread 0 phase_us 0 pages 0 samples 5950 over50 2 over100 1 wake_over100 9\n"
                "touch: mlockall refused\n"
                "thread 1 phase_us 500 pages 256 samples 5950 over50 64 over100 63 "
                "wake_over100 60\n")
        rows = phases.parse_touch(text)
        self.assertEqual([r["pages"] for r in rows], [0, 256])
        self.assertEqual(rows[1]["over100"], 63)
        md = phases.touch_report({"seconds": 120, "pages": 256, "rows": rows})
        self.assertIn("| 1 | 500 | 256 | 64 | 63 | 60 | 5950 |", md)


if __name__ == "__main__":
    unittest.main()
