//! GPIO outputs: clocked strips bit-banged on two pins (`gpio-clocked`), and
//! one pin per channel for discrete LEDs or relays (`gpio`).
//!
//! Both drive pins through the small [`Pins`] trait: on the Pi that is
//! rppal's memory-mapped GPIO ([`RppalPins`]); for tests and machines
//! without GPIO it is an [`EdgeLog`], which records every level change of
//! every pin, in order, one byte each (`pin << 1 | level`), and hands each
//! frame's changes to a record writer (`--gpio-stand-in DIR`).
//!
//! `gpio-clocked` sends exactly the bytes the SPI output would send for the
//! chip (one [`WireFrame`]), most significant bit first: data is set while
//! the clock is low and the chip samples it on the rising edge (APA102,
//! SK9822 and WS2801 datasheets). The bit clock is never faster than `hz`:
//! after each byte the send waits until `8 * bytes / hz` has passed since it
//! began. On a Pi Zero one GPIO write takes a few tens of ns, so rates up to
//! [`crate::app::settings::MAX_BITBANG_HZ`] (4 MHz) are reachable; a
//! 300-LED APA102 frame (1224 bytes) is then 2.5 ms, at the default 2 MHz
//! 4.9 ms, inside a 20 ms period. The send runs on the frame loop when this
//! is the first output, else on its own worker thread
//! ([`super::worker`]), so that it delays no other output.
//!
//! `gpio` maps the slice's channel values, in order (LED `first`'s R, G, B,
//! then the next LED's), to its pins: a pin is high when its value is at or
//! above the threshold. With `pwm_hz` a thread of its own (normal priority,
//! never the frame loop) dims the pins by software PWM: each period it
//! raises every pin with a non-zero value and lowers each after
//! `value / 255` of the period. Its timing is approximate (the thread is
//! not realtime; expect jitter of the order of the kernel's wake-up
//! latency), good for lamps, not for video.

use super::chip::{Encoder, WireFrame};
use super::{FrameMeta, Output, OutputError};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;

/// Pins an output drives, by index into the list it was opened with.
pub trait Pins: Send {
    /// Set pin `i` high or low.
    fn set(&mut self, i: usize, high: bool);
    /// Changes recorded since the last call, for stand-ins (the real pins
    /// have none).
    fn take_log(&mut self) -> &[u8] {
        &[]
    }
}

/// GPIO that could not be opened.
#[derive(Debug)]
pub enum GpioError {
    /// No GPIO here (not a Raspberry Pi, or an unknown model).
    NoGpio(String),
    /// The pin could not be claimed.
    Pin(u8, String),
}

impl fmt::Display for GpioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GpioError::NoGpio(e) => write!(
                f,
                "no GPIO on this machine ({e}): run on a Raspberry Pi, in the gpio group"
            ),
            GpioError::Pin(p, e) => write!(f, "GPIO{p} could not be claimed: {e}"),
        }
    }
}

impl std::error::Error for GpioError {}

/// The Pi's GPIO pins through rppal, set low at open.
pub struct RppalPins {
    pins: Vec<rppal::gpio::OutputPin>,
}

impl RppalPins {
    /// Claim `pins` (BCM numbers) as outputs, low.
    pub fn open(pins: &[u8]) -> Result<RppalPins, GpioError> {
        let gpio = rppal::gpio::Gpio::new().map_err(|e| GpioError::NoGpio(e.to_string()))?;
        let pins = pins
            .iter()
            .map(|&p| {
                gpio.get(p)
                    .map(|p| p.into_output_low())
                    .map_err(|e| GpioError::Pin(p, e.to_string()))
            })
            .collect::<Result<_, _>>()?;
        Ok(RppalPins { pins })
    }
}

impl Pins for RppalPins {
    fn set(&mut self, i: usize, high: bool) {
        if let Some(p) = self.pins.get_mut(i) {
            if high {
                p.set_high()
            } else {
                p.set_low()
            }
        }
    }
}

/// A stand-in for the GPIO chip: records every level change, one byte each
/// (`bcm_pin << 1 | level`), into a buffer sized once. Pins start low; a set
/// to the level a pin already has is not a change.
pub struct EdgeLog {
    bcm: Vec<u8>,
    level: Vec<bool>,
    log: Box<[u8]>,
    len: usize,
}

impl EdgeLog {
    /// A log for `bcm` pins holding up to `cap` changes per frame.
    pub fn new(bcm: &[u8], cap: usize) -> EdgeLog {
        EdgeLog {
            bcm: bcm.to_vec(),
            level: vec![false; bcm.len()],
            log: vec![0; cap].into_boxed_slice(),
            len: 0,
        }
    }
}

impl Pins for EdgeLog {
    fn set(&mut self, i: usize, high: bool) {
        let (Some(l), Some(&p)) = (self.level.get_mut(i), self.bcm.get(i)) else {
            return;
        };
        if *l != high {
            *l = high;
            if let Some(slot) = self.log.get_mut(self.len) {
                *slot = p << 1 | high as u8;
                self.len += 1;
            }
        }
    }
    fn take_log(&mut self) -> &[u8] {
        let n = std::mem::take(&mut self.len);
        &self.log[..n]
    }
}

/// Level changes one bit-banged frame of `bytes` bytes makes at most: data
/// and two clock edges per bit, and data back low at the end.
pub fn clocked_log_cap(bytes: usize) -> usize {
    bytes * 8 * 3 + 1
}

/// Busy-waits until a monotonic time, for the bit clock.
fn spin_until(t: u64) {
    while crate::clock::monotonic_ns() < t {
        std::hint::spin_loop();
    }
}

/// Index of the data pin and the clock pin in a clocked output's [`Pins`].
const DATA: usize = 0;
const CLOCK: usize = 1;

/// A clocked strip bit-banged on a data and a clock pin. See the module docs.
pub struct ClockedOutput<P: Pins> {
    pins: P,
    frame: WireFrame,
    hz: u32,
    /// Where the stand-in's edges go (none on real pins).
    log_out: Option<Box<dyn Output>>,
}

impl<P: Pins> ClockedOutput<P> {
    /// Frames from `encoder` on `pins` (data first, then clock) at `hz`;
    /// with `log_out`, each frame's level changes are sent there.
    pub fn new(
        pins: P,
        encoder: Encoder,
        hz: u32,
        log_out: Option<Box<dyn Output>>,
    ) -> ClockedOutput<P> {
        ClockedOutput {
            pins,
            frame: WireFrame::new(encoder),
            hz: hz.max(1),
            log_out,
        }
    }
}

impl<P: Pins> Output for ClockedOutput<P> {
    fn prepare(&mut self, pixels: &[u8]) {
        self.frame.encode(pixels);
    }

    fn send(&mut self, meta: &FrameMeta) -> Result<(), OutputError> {
        let t0 = crate::clock::monotonic_ns();
        let ns_per_byte = 8_000_000_000 / u64::from(self.hz);
        for (n, &b) in self.frame.bytes().iter().enumerate() {
            for bit in (0..8).rev() {
                self.pins.set(DATA, b >> bit & 1 == 1);
                self.pins.set(CLOCK, true);
                self.pins.set(CLOCK, false);
            }
            spin_until(t0 + (n as u64 + 1) * ns_per_byte);
        }
        // Data rests low, so every frame starts from both pins low (and a
        // record of each frame's changes decodes on its own).
        self.pins.set(DATA, false);
        if let Some(out) = &mut self.log_out {
            out.prepare(self.pins.take_log());
            let _ = out.send(meta);
        }
        Ok(())
    }

    fn dropped(&self) -> u64 {
        self.log_out.as_ref().map_or(0, |o| o.dropped())
    }

    fn write_errors(&self) -> u64 {
        self.log_out.as_ref().map_or(0, |o| o.write_errors())
    }

    fn finish(&mut self) {
        if let Some(o) = &mut self.log_out {
            o.finish();
        }
    }
}

/// One pin per channel value; on/off at a threshold, or software PWM. See
/// the module docs.
pub struct PinsOutput<P: Pins + 'static> {
    pins: Option<P>,
    threshold: u8,
    values: Box<[u8]>,
    /// The levels of the last frame sent, one byte (0/1) per pin.
    levels: Box<[u8]>,
    pwm: Option<Pwm>,
    log_out: Option<Box<dyn Output>>,
    record: Option<Box<dyn Output>>,
}

struct Pwm {
    duty: Arc<[AtomicU8]>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl<P: Pins + 'static> PinsOutput<P> {
    /// `n` pins driven through `pins`: on at `threshold`, or PWM at `pwm_hz`
    /// from a thread of its own. `log_out` takes the stand-in's level
    /// changes per frame, `record` the pin levels per frame (one byte each).
    pub fn new(
        mut pins: P,
        n: usize,
        threshold: u8,
        pwm_hz: Option<u32>,
        log_out: Option<Box<dyn Output>>,
        record: Option<Box<dyn Output>>,
    ) -> std::io::Result<PinsOutput<P>> {
        let (pins, pwm) = match pwm_hz {
            Some(hz) => {
                let duty: Arc<[AtomicU8]> = (0..n).map(|_| AtomicU8::new(0)).collect();
                let stop = Arc::new(AtomicBool::new(false));
                let (d, s) = (duty.clone(), stop.clone());
                let thread = std::thread::Builder::new()
                    .name("rowplay-pwm".into())
                    .stack_size(64 << 10)
                    .spawn(move || pwm_loop(&mut pins, &d, &s, hz, &mut crate::clock::Monotonic))?;
                let pwm = Pwm {
                    duty,
                    stop,
                    thread: Some(thread),
                };
                (None, Some(pwm))
            }
            None => (Some(pins), None),
        };
        Ok(PinsOutput {
            pins,
            threshold,
            values: vec![0; n].into_boxed_slice(),
            levels: vec![0; n].into_boxed_slice(),
            pwm,
            log_out,
            record,
        })
    }
}

impl<P: Pins + 'static> Output for PinsOutput<P> {
    fn prepare(&mut self, pixels: &[u8]) {
        for (i, v) in self.values.iter_mut().enumerate() {
            *v = pixels.get(i).copied().unwrap_or(0);
        }
    }

    fn send(&mut self, meta: &FrameMeta) -> Result<(), OutputError> {
        for (l, v) in self.levels.iter_mut().zip(self.values.iter()) {
            *l = (*v >= self.threshold) as u8;
        }
        match (&mut self.pins, &self.pwm) {
            (Some(pins), _) => {
                for (i, l) in self.levels.iter().enumerate() {
                    pins.set(i, *l == 1);
                }
                if let Some(out) = &mut self.log_out {
                    out.prepare(pins.take_log());
                    let _ = out.send(meta);
                }
            }
            (None, Some(pwm)) => {
                for (d, v) in pwm.duty.iter().zip(self.values.iter()) {
                    d.store(*v, Relaxed);
                }
            }
            (None, None) => {}
        }
        if let Some(r) = &mut self.record {
            r.prepare(&self.levels);
            let _ = r.send(meta);
        }
        Ok(())
    }

    fn dropped(&self) -> u64 {
        self.log_out.as_ref().map_or(0, |o| o.dropped())
            + self.record.as_ref().map_or(0, |o| o.dropped())
    }

    fn write_errors(&self) -> u64 {
        self.log_out.as_ref().map_or(0, |o| o.write_errors())
            + self.record.as_ref().map_or(0, |o| o.write_errors())
    }

    fn finish(&mut self) {
        if let Some(pwm) = &mut self.pwm {
            pwm.stop.store(true, Relaxed);
            if let Some(t) = pwm.thread.take() {
                let _ = t.join();
            }
        }
        for o in [&mut self.log_out, &mut self.record].into_iter().flatten() {
            o.finish();
        }
    }
}

impl<P: Pins + 'static> Drop for PinsOutput<P> {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Software PWM: each period raise every pin with a non-zero duty, lower
/// each after `duty / 255` of the period, in order of duty. Timed by
/// `clock` (the monotonic clock; a mock one in tests).
fn pwm_loop<P: Pins, C: crate::clock::Clock>(
    pins: &mut P,
    duty: &[AtomicU8],
    stop: &AtomicBool,
    hz: u32,
    clock: &mut C,
) {
    let period = 1_000_000_000 / u64::from(hz.max(1));
    let mut order: Vec<(u8, usize)> = Vec::with_capacity(duty.len());
    let mut start = clock.now_ns();
    while !stop.load(Relaxed) {
        order.clear();
        order.extend(duty.iter().enumerate().map(|(i, d)| (d.load(Relaxed), i)));
        order.sort_unstable();
        for &(d, i) in &order {
            pins.set(i, d > 0);
        }
        for &(d, i) in &order {
            if d > 0 && d < 255 {
                clock.sleep_until(start + period * u64::from(d) / 255);
                pins.set(i, false);
            }
        }
        start += period;
        clock.sleep_until(start);
    }
    for i in 0..duty.len() {
        pins.set(i, false);
    }
}

/// Decode a clocked output's level changes (an [`EdgeLog`]'s bytes) back
/// to the bytes sent: a bit is the data level at each rising clock edge.
/// For tests and inspection.
pub fn decode_clocked(log: &[u8], data_pin: u8, clock_pin: u8) -> Vec<u8> {
    let (mut data, mut out, mut byte, mut bits) = (false, Vec::new(), 0u8, 0);
    for &e in log {
        let (pin, high) = (e >> 1, e & 1 == 1);
        if pin == data_pin {
            data = high;
        } else if pin == clock_pin && high {
            byte = byte << 1 | data as u8;
            bits += 1;
            if bits == 8 {
                out.push(byte);
                (byte, bits) = (0, 0);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::chip::{ChipKind, ChipSettings};
    use crate::output::decode::decode;

    #[test]
    fn bit_banged_edges_decode_to_the_wire_bytes_and_the_pixels() {
        for chip in [ChipKind::Apa102, ChipKind::Sk9822, ChipKind::Ws2801] {
            let enc = Encoder::new(ChipSettings::new(chip), 5);
            let px: Vec<u8> = (0..15).map(|i| (i * 37 % 256) as u8).collect();
            let mut o = ClockedOutput::new(
                EdgeLog::new(&[5, 6], clocked_log_cap(enc.frame_len())),
                enc.clone(),
                4_000_000,
                None,
            );
            o.prepare(&px);
            for _ in 0..2 {
                // Each frame's changes decode on their own.
                o.send(&FrameMeta::default()).unwrap();
                let wire = decode_clocked(o.pins.take_log(), 5, 6);
                assert_eq!(wire, o.frame.bytes(), "{chip}");
                assert_eq!(decode(&enc, &wire).unwrap(), px, "{chip}");
            }
        }
    }

    /// Pins that log each level change with the mock clock's time, and
    /// stop the PWM loop once `until` is reached.
    struct TimedPins {
        clock: crate::clock::MockClock,
        changes: Vec<(u64, usize, bool)>,
        stop: Arc<AtomicBool>,
        until: u64,
    }

    impl Pins for TimedPins {
        fn set(&mut self, i: usize, high: bool) {
            use crate::clock::Clock;
            let t = self.clock.now_ns();
            self.changes.push((t, i, high));
            if t >= self.until {
                self.stop.store(true, Relaxed);
            }
        }
    }

    /// Fraction of `0..end` that pin `i` spent high, from its changes.
    fn high_fraction(changes: &[(u64, usize, bool)], i: usize, end: u64) -> f64 {
        let (mut high_since, mut total) = (None, 0u64);
        for &(t, _, high) in changes.iter().filter(|c| c.1 == i) {
            match (high, high_since) {
                (true, None) => high_since = Some(t.min(end)),
                (false, Some(s)) => {
                    total += t.min(end) - s;
                    high_since = None;
                }
                _ => {}
            }
        }
        if let Some(s) = high_since {
            total += end - s;
        }
        total as f64 / end as f64
    }

    #[test]
    fn software_pwm_holds_each_pin_high_for_its_share_of_the_period() {
        const HZ: u32 = 100;
        const PERIODS: u64 = 50;
        let period = 1_000_000_000 / u64::from(HZ);
        let values = [0u8, 1, 64, 128, 200, 255];
        let duty: Vec<AtomicU8> = values.iter().map(|v| AtomicU8::new(*v)).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let mut clock = crate::clock::MockClock::new(0);
        let mut pins = TimedPins {
            clock: clock.clone(),
            changes: Vec::new(),
            stop: stop.clone(),
            until: PERIODS * period,
        };
        pwm_loop(&mut pins, &duty, &stop, HZ, &mut clock);
        let end = PERIODS * period;
        for (i, v) in values.iter().enumerate() {
            let got = high_fraction(&pins.changes, i, end);
            let want = f64::from(*v) / 255.0;
            assert!(
                (got - want).abs() < 0.05,
                "pin {i} value {v}: high {got:.3} of the time, want {want:.3}"
            );
            let rises = pins.changes.iter().filter(|c| c.1 == i && c.2).count() as u64;
            match v {
                // Never raised: a pin already low is set low again.
                0 => assert_eq!(rises, 0, "pin {i}"),
                // Raised every period, each rise a new level only after a fall.
                1..=254 => assert!(rises >= PERIODS, "pin {i}: {rises} rises"),
                _ => {
                    let falls = pins.changes.iter().filter(|c| c.1 == i && !c.2).count();
                    // Only the stop lowers it.
                    assert_eq!(falls, 1, "pin {i}");
                }
            }
        }
        // Stopped: every pin low at the end.
        for i in 0..values.len() {
            let last = pins.changes.iter().rev().find(|c| c.1 == i).unwrap();
            assert!(!last.2, "pin {i} left high");
        }
    }

    /// Pins that count rising and falling edges per pin, shared with the
    /// test while the PWM thread drives them.
    #[derive(Clone)]
    struct EdgeCount {
        level: Arc<[AtomicBool]>,
        rises: Arc<[std::sync::atomic::AtomicU64]>,
        falls: Arc<[std::sync::atomic::AtomicU64]>,
    }

    impl Pins for EdgeCount {
        fn set(&mut self, i: usize, high: bool) {
            if self.level[i].swap(high, Relaxed) != high {
                let c = if high { &self.rises[i] } else { &self.falls[i] };
                c.fetch_add(1, Relaxed);
            }
        }
    }

    #[test]
    fn the_pwm_thread_toggles_only_pins_with_a_partial_value() {
        use std::sync::atomic::AtomicU64;
        let n = 3;
        let pins = EdgeCount {
            level: (0..n).map(|_| AtomicBool::new(false)).collect(),
            rises: (0..n).map(|_| AtomicU64::new(0)).collect(),
            falls: (0..n).map(|_| AtomicU64::new(0)).collect(),
        };
        let seen = pins.clone();
        let mut o = PinsOutput::new(pins, n, 128, Some(1000), None, None).unwrap();
        o.prepare(&[0, 100, 255]);
        o.send(&FrameMeta::default()).unwrap();
        // Wait for a few periods by counting them, not by the clock.
        while seen.falls[1].load(Relaxed) < 5 {
            std::thread::yield_now();
        }
        assert_eq!(seen.rises[0].load(Relaxed), 0, "value 0 stays low");
        assert_eq!(seen.rises[2].load(Relaxed), 1, "value 255 stays high");
        assert_eq!(seen.falls[2].load(Relaxed), 0);
        assert!(seen.level[2].load(Relaxed));
        assert!(seen.rises[1].load(Relaxed) >= 5);
        o.finish();
        assert!(
            seen.level.iter().all(|l| !l.load(Relaxed)),
            "all low after finish"
        );
    }

    #[test]
    fn pins_follow_the_threshold() {
        let mut o =
            PinsOutput::new(EdgeLog::new(&[5, 6, 13], 16), 3, 128, None, None, None).unwrap();
        o.prepare(&[127, 128, 255]);
        o.send(&FrameMeta::default()).unwrap();
        assert_eq!(&*o.levels, &[0, 1, 1]);
        let log = o.pins.as_mut().unwrap().take_log().to_vec();
        assert_eq!(log, vec![6 << 1 | 1, 13 << 1 | 1]);
        o.prepare(&[200, 0]);
        o.send(&FrameMeta::default()).unwrap();
        let log = o.pins.as_mut().unwrap().take_log().to_vec();
        assert_eq!(
            log,
            vec![5 << 1 | 1, 6 << 1, 13 << 1],
            "missing values are 0"
        );
    }
}
