//! SPI output through rppal: the LED strip on the Pi.
//!
//! [`SpiOutput::prepare`](crate::output::Output::prepare) encodes the row into
//! a buffer allocated once at open; `send` is one `write(2)` of the whole
//! frame to `/dev/spidevB.C` (one write per frame, never per LED: a
//! transfer over 96 bytes on SPI0 goes by DMA with no gaps between bytes).
//!
//! Set-up on the Pi, which [`SpiOutput::open`] checks and explains:
//!
//! - Enable SPI: add `dtparam=spi=on` to `/boot/config.txt`
//!   (`/boot/firmware/config.txt` on Bookworm) and reboot. SPI1 needs
//!   `dtoverlay=spi1-1cs` instead (it has no DMA; prefer SPI0).
//! - Permission: the user must be in the `spi` group
//!   (`sudo adduser $USER spi`, then log in again).
//! - Frame size: spidev refuses transfers over its `bufsiz` (default 4096
//!   bytes, `/sys/module/spidev/parameters/bufsiz`). Bigger frames need
//!   `spidev.bufsiz=65536` appended to the one line of `/boot/cmdline.txt`
//!   (`/boot/firmware/cmdline.txt` on Bookworm), and a reboot.
//! - Clock: the controller divides the VPU core clock by an even divider (see
//!   [`real_clock_hz`]). The core clock scales with load unless it is pinned,
//!   and the SPI clock (and WS2812 timing) moves with it
//!   (raspberrypi/linux#3381): pin it with `core_freq=250` in config.txt
//!   (Pi 4: `core_freq=500` and `core_freq_min=500`).

use super::chip::{Encoder, WireFrame};
use super::{FrameMeta, Output, OutputError};
use std::fmt;
use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};

/// Where the spidev device nodes are.
pub const DEV_DIR: &str = "/dev";
/// spidev's per-transfer limit, as a module parameter.
pub const BUFSIZ_PATH: &str = "/sys/module/spidev/parameters/bufsiz";
/// spidev's default `bufsiz` (drivers/spi/spidev.c: `bufsiz = 4096`), used
/// when the parameter file cannot be read.
pub const DEFAULT_BUFSIZ: usize = 4096;
/// The `bufsiz` to recommend: 64 KiB covers 4000 WS2812 LEDs at 2.4 MHz.
pub const RECOMMENDED_BUFSIZ: usize = 65_536;
/// Largest BCM283x clock divider (BCM2835 ARM Peripherals, 10.5 CLK
/// register: CDIV is 16 bits, 0 means 65536).
pub const MAX_CDIV: u64 = 65_536;
/// Highest SPI bus number rppal knows (SPI0..SPI6 on the Pi 4).
pub const MAX_BUS: u8 = 6;
/// Highest chip select on any Pi SPI bus (SPI1 has CE0..CE2).
pub const MAX_CS: u8 = 2;

/// Which SPI device and how to clock it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpiParams {
    /// Bus number (0 = SPI0).
    pub bus: u8,
    /// Chip select.
    pub cs: u8,
    /// Requested clock in Hz.
    pub hz: u32,
    /// SPI mode 0..=3 (LED chips use 0).
    pub mode: u8,
}

/// Opening the SPI device failed. Each message says how to fix it.
#[derive(Debug)]
pub enum SpiError {
    /// Bus number above [`MAX_BUS`].
    Bus(u8),
    /// Chip select above [`MAX_CS`].
    Cs(u8),
    /// SPI mode above 3.
    Mode(u8),
    /// Requested clock of 0 Hz, or one the driver refuses.
    Clock(u32),
    /// The device node does not exist: SPI is not enabled.
    NoDevice(PathBuf),
    /// The device node is not accessible to this user.
    Permission(PathBuf),
    /// The frame is larger than spidev's `bufsiz`.
    BufTooSmall {
        /// Bytes of one frame.
        frame: usize,
        /// spidev's limit.
        bufsiz: usize,
    },
    /// Any other failure opening or setting up the device.
    Io(PathBuf, io::Error),
}

impl fmt::Display for SpiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpiError::Bus(b) => write!(f, "SPI bus {b} does not exist: use 0 (SPI0) or 1..={MAX_BUS}"),
            SpiError::Cs(c) => write!(f, "SPI chip select {c} does not exist: use 0..={MAX_CS}"),
            SpiError::Mode(m) => write!(f, "SPI mode {m} does not exist: use 0 (LED strips use mode 0)"),
            SpiError::Clock(hz) => write!(f, "SPI clock {hz} Hz refused: leave [spi] hz out for the chip's default"),
            SpiError::NoDevice(p) => write!(
                f,
                "{} not found: add dtparam=spi=on to /boot/config.txt (or /boot/firmware/config.txt) and reboot",
                p.display()
            ),
            SpiError::Permission(p) => write!(
                f,
                "{}: permission denied: add the user to the spi group (sudo adduser $USER spi) and log in again",
                p.display()
            ),
            SpiError::BufTooSmall { frame, bufsiz } => write!(
                f,
                "a frame is {frame} bytes but spidev takes at most {bufsiz}: add spidev.bufsiz={} to the line in /boot/cmdline.txt (or /boot/firmware/cmdline.txt) and reboot",
                RECOMMENDED_BUFSIZ.max(frame.next_power_of_two())
            ),
            SpiError::Io(p, e) => write!(f, "{}: {e}", p.display()),
        }
    }
}

impl std::error::Error for SpiError {}

/// `/dev/spidevB.C` under `dev_dir`.
pub fn device_path(dev_dir: &Path, bus: u8, cs: u8) -> PathBuf {
    dev_dir.join(format!("spidev{bus}.{cs}"))
}

/// The error for an `open(2)` of the device that failed with `e`.
pub fn open_error(path: &Path, e: io::Error) -> SpiError {
    match (e.kind(), e.raw_os_error()) {
        (io::ErrorKind::NotFound, _)
        | (_, Some(libc::ENOENT) | Some(libc::ENODEV) | Some(libc::ENXIO)) => {
            SpiError::NoDevice(path.to_path_buf())
        }
        (io::ErrorKind::PermissionDenied, _) | (_, Some(libc::EACCES) | Some(libc::EPERM)) => {
            SpiError::Permission(path.to_path_buf())
        }
        _ => SpiError::Io(path.to_path_buf(), e),
    }
}

/// spidev's `bufsiz` from its parameter file; [`DEFAULT_BUFSIZ`] when the
/// file is missing or unreadable (the module is built in, or sysfs is not
/// mounted), since that is then what the kernel uses.
pub fn read_bufsiz(sysfs_path: &Path) -> usize {
    std::fs::read_to_string(sysfs_path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(DEFAULT_BUFSIZ)
}

/// Fails when a `frame`-byte write would exceed `bufsiz`.
pub fn check_bufsiz(frame: usize, bufsiz: usize) -> Result<(), SpiError> {
    if frame > bufsiz {
        Err(SpiError::BufTooSmall { frame, bufsiz })
    } else {
        Ok(())
    }
}

/// The clock the BCM283x SPI controller really produces for `requested_hz`
/// with a VPU core clock of `core_hz`.
///
/// The controller divides the core clock by CDIV, which must be even
/// (BCM2835 ARM Peripherals, 10.5 CLK register: "SCLK = Core Clock / CDIV",
/// odd values are rounded down, 0 = 65536). The Linux driver
/// (drivers/spi/spi-bcm2835.c) picks `CDIV = ceil(core / requested)`, rounded
/// up to even, at least 2, so the clock is never faster than requested:
/// e.g. 2.4 MHz at 250 MHz -> CDIV 106 -> 2358490 Hz. A request of 0 Hz
/// gives the slowest clock, core / 65536.
pub fn real_clock_hz(requested_hz: u32, core_hz: u32) -> u32 {
    let (req, core) = (u64::from(requested_hz), u64::from(core_hz));
    let cdiv = if req >= core / 2 {
        2
    } else if req == 0 {
        MAX_CDIV
    } else {
        let d = core.div_ceil(req);
        (d + d % 2).min(MAX_CDIV)
    };
    (core / cdiv) as u32
}

fn rppal_bus(bus: u8) -> Result<rppal::spi::Bus, SpiError> {
    use rppal::spi::Bus::*;
    Ok(match bus {
        0 => Spi0,
        1 => Spi1,
        2 => Spi2,
        3 => Spi3,
        4 => Spi4,
        5 => Spi5,
        6 => Spi6,
        _ => return Err(SpiError::Bus(bus)),
    })
}

fn rppal_cs(cs: u8) -> Result<rppal::spi::SlaveSelect, SpiError> {
    use rppal::spi::SlaveSelect::*;
    Ok(match cs {
        0 => Ss0,
        1 => Ss1,
        2 => Ss2,
        _ => return Err(SpiError::Cs(cs)),
    })
}

fn rppal_mode(mode: u8) -> Result<rppal::spi::Mode, SpiError> {
    use rppal::spi::Mode::*;
    Ok(match mode {
        0 => Mode0,
        1 => Mode1,
        2 => Mode2,
        3 => Mode3,
        _ => return Err(SpiError::Mode(mode)),
    })
}

/// Check the parameters, the device node and spidev's `bufsiz` for a
/// `frame`-byte transfer, then open the device through rppal. Shared with
/// the self-test.
pub(crate) fn open_spi(
    dev_dir: &Path,
    sysfs_path: &Path,
    params: &SpiParams,
    frame: usize,
) -> Result<rppal::spi::Spi, SpiError> {
    let bus = rppal_bus(params.bus)?;
    let cs = rppal_cs(params.cs)?;
    let mode = rppal_mode(params.mode)?;
    if params.hz == 0 {
        return Err(SpiError::Clock(0));
    }
    let path = device_path(dev_dir, params.bus, params.cs);
    // Open it ourselves first: rppal's error for a missing node or a
    // permission problem is a bare io::Error without the fix.
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| open_error(&path, e))?;
    check_bufsiz(frame, read_bufsiz(sysfs_path))?;
    rppal::spi::Spi::new(bus, cs, params.hz, mode).map_err(|e| match e {
        rppal::spi::Error::Io(e) => open_error(&path, e),
        rppal::spi::Error::ClockSpeedNotSupported(hz) => SpiError::Clock(hz),
        rppal::spi::Error::ModeNotSupported(_) => SpiError::Mode(params.mode),
        other => SpiError::Io(path.clone(), io::Error::other(other.to_string())),
    })
}

/// An LED strip on an SPI bus. See the module docs.
pub struct SpiOutput {
    spi: rppal::spi::Spi,
    frame: WireFrame,
}

impl fmt::Debug for SpiOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpiOutput")
            .field("encoder", self.frame.encoder())
            .field("frame_len", &self.frame.bytes().len())
            .finish()
    }
}

impl SpiOutput {
    /// Open `/dev/spidev{bus}.{cs}` for frames from `encoder`.
    pub fn open(params: &SpiParams, encoder: Encoder) -> Result<SpiOutput, SpiError> {
        SpiOutput::open_at(Path::new(DEV_DIR), Path::new(BUFSIZ_PATH), params, encoder)
    }

    /// [`SpiOutput::open`] with the device directory and the `bufsiz` file
    /// given, so that every failure can be tested without hardware. (The
    /// final open through rppal always uses `/dev`.)
    pub fn open_at(
        dev_dir: &Path,
        sysfs_path: &Path,
        params: &SpiParams,
        encoder: Encoder,
    ) -> Result<SpiOutput, SpiError> {
        // Starts as the all-off frame, so a send before any prepare is dark.
        let frame = WireFrame::new(encoder);
        let spi = open_spi(dev_dir, sysfs_path, params, frame.bytes().len())?;
        Ok(SpiOutput { spi, frame })
    }

    /// Bytes written per frame.
    pub fn frame_len(&self) -> usize {
        self.frame.bytes().len()
    }

    /// The encoder in use.
    pub fn encoder(&self) -> &Encoder {
        self.frame.encoder()
    }
}

impl Output for SpiOutput {
    fn prepare(&mut self, pixels: &[u8]) {
        self.frame.encode(pixels);
    }

    fn send(&mut self, _meta: &FrameMeta) -> Result<(), OutputError> {
        let frame = self.frame.bytes();
        match self.spi.write(frame) {
            Ok(n) if n == frame.len() => Ok(()),
            Ok(written) => Err(OutputError::Short {
                written,
                expected: frame.len(),
            }),
            Err(rppal::spi::Error::Io(e)) => {
                Err(OutputError::Io(e.raw_os_error().unwrap_or(libc::EIO)))
            }
            Err(_) => Err(OutputError::Io(libc::EIO)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::chip::{ChipKind, ChipSettings};

    fn params() -> SpiParams {
        SpiParams {
            bus: 0,
            cs: 0,
            hz: 2_400_000,
            mode: 0,
        }
    }

    fn tmp(_name: &str) -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    fn ws2812(leds: usize) -> Encoder {
        Encoder::new(ChipSettings::new(ChipKind::Ws2812), leds)
    }

    #[test]
    fn real_clock_follows_the_even_divider() {
        // 250 MHz: 2.4 MHz -> ceil(104.2) = 105 -> 106 -> 2358490.
        assert_eq!(real_clock_hz(2_400_000, 250_000_000), 2_358_490);
        // 3.2 MHz -> ceil(78.1) = 79 -> 80 -> 3125000.
        assert_eq!(real_clock_hz(3_200_000, 250_000_000), 3_125_000);
        // 8 MHz -> ceil(31.25) = 32 (even) -> 7812500.
        assert_eq!(real_clock_hz(8_000_000, 250_000_000), 7_812_500);
        // 400 MHz: 2.4 MHz -> ceil(166.7) = 167 -> 168 -> 2380952.
        assert_eq!(real_clock_hz(2_400_000, 400_000_000), 2_380_952);
        // An exact even divider is kept: 500 MHz / 500 = 1 MHz.
        assert_eq!(real_clock_hz(1_000_000, 500_000_000), 1_000_000);
        // Fastest is core / 2, slowest core / 65536.
        assert_eq!(real_clock_hz(200_000_000, 250_000_000), 125_000_000);
        assert_eq!(real_clock_hz(1, 250_000_000), 3814);
        assert_eq!(real_clock_hz(0, 250_000_000), 3814);
    }

    #[test]
    fn open_errors_map_to_their_fix() {
        let p = Path::new("/dev/spidev0.0");
        let e = |err| open_error(p, err);
        assert!(matches!(
            e(io::Error::from(io::ErrorKind::NotFound)),
            SpiError::NoDevice(_)
        ));
        assert!(matches!(
            e(io::Error::from_raw_os_error(libc::ENOENT)),
            SpiError::NoDevice(_)
        ));
        assert!(matches!(
            e(io::Error::from_raw_os_error(libc::EACCES)),
            SpiError::Permission(_)
        ));
        assert!(matches!(
            e(io::Error::from_raw_os_error(libc::EPERM)),
            SpiError::Permission(_)
        ));
        assert!(matches!(
            e(io::Error::from_raw_os_error(libc::EBUSY)),
            SpiError::Io(..)
        ));
        let msg = e(io::Error::from_raw_os_error(libc::EACCES)).to_string();
        assert!(msg.contains("spi group"), "{msg}");
    }

    #[test]
    fn missing_device_says_to_enable_spi() {
        let t = tmp("nodev");
        let d = t.path();
        let err = SpiOutput::open_at(d, &d.join("bufsiz"), &params(), ws2812(10)).unwrap_err();
        assert!(
            matches!(&err, SpiError::NoDevice(p) if *p == d.join("spidev0.0")),
            "{err}"
        );
        assert!(err.to_string().contains("dtparam=spi=on"), "{err}");
    }

    #[test]
    fn frame_over_bufsiz_says_what_to_add_to_cmdline() {
        let t = tmp("bufsiz");
        let d = t.path();
        std::fs::write(d.join("spidev0.0"), b"").unwrap();
        std::fs::write(d.join("bufsiz"), b"4096\n").unwrap();
        // 500 WS2812 LEDs: 1 + 9 * 500 + 90 = 4591 bytes > 4096.
        let err = SpiOutput::open_at(d, &d.join("bufsiz"), &params(), ws2812(500)).unwrap_err();
        assert!(
            matches!(
                err,
                SpiError::BufTooSmall {
                    frame: 4591,
                    bufsiz: 4096
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("spidev.bufsiz=65536"), "{err}");
        assert!(err.to_string().contains("/boot/cmdline.txt"), "{err}");
        // A frame larger than the recommendation asks for enough.
        let msg = SpiError::BufTooSmall {
            frame: 100_000,
            bufsiz: 65_536,
        }
        .to_string();
        assert!(msg.contains("spidev.bufsiz=131072"), "{msg}");
    }

    #[test]
    fn bufsiz_file_is_read_or_defaults() {
        let t = tmp("read");
        let d = t.path();
        std::fs::write(d.join("bufsiz"), b"65536\n").unwrap();
        assert_eq!(read_bufsiz(&d.join("bufsiz")), 65_536);
        assert_eq!(read_bufsiz(&d.join("missing")), DEFAULT_BUFSIZ);
        assert!(check_bufsiz(4096, 4096).is_ok());
        assert!(check_bufsiz(4097, 4096).is_err());
    }

    #[test]
    fn bad_parameters_are_refused_before_any_device_access() {
        let t = tmp("params");
        let d = t.path();
        let open = |p: SpiParams| SpiOutput::open_at(d, d, &p, ws2812(1)).unwrap_err();
        assert!(matches!(
            open(SpiParams { bus: 7, ..params() }),
            SpiError::Bus(7)
        ));
        assert!(matches!(
            open(SpiParams { cs: 3, ..params() }),
            SpiError::Cs(3)
        ));
        assert!(matches!(
            open(SpiParams {
                mode: 4,
                ..params()
            }),
            SpiError::Mode(4)
        ));
        assert!(matches!(
            open(SpiParams { hz: 0, ..params() }),
            SpiError::Clock(0)
        ));
    }
}
