//! GPIO buttons: each `[[button]]` maps a BCM pin to a control command line,
//! handed to a submit callback (the control module's command queue) on every press.
//!
//! Presses are edge interrupts with rppal's debounce, handled on rppal's
//! interrupt thread (never the player's). With `pull = "up"` (the default,
//! button between the pin and ground) a press is the falling edge; with
//! `pull = "down"` (button to 3.3 V) the rising edge; with `pull = "off"` an
//! external pull-up is assumed (falling edge).

use crate::config::ButtonConfig;
use rppal::gpio::{Gpio, InputPin, Trigger};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Highest BCM pin on the 40-pin header (GPIO0..GPIO27).
pub const MAX_PIN: u8 = 27;
/// Debounce when none is configured: long enough for common tact switches
/// (they bounce for 1-10 ms), short enough for quick double presses.
pub const DEFAULT_DEBOUNCE_MS: u32 = 30;
/// Longest debounce accepted: anything longer swallows real presses.
pub const MAX_DEBOUNCE_MS: u32 = 1000;

/// The pin's bias resistor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pull {
    /// Internal pull-up; the button goes to ground.
    Up,
    /// Internal pull-down; the button goes to 3.3 V.
    Down,
    /// No internal resistor (an external one is fitted).
    Off,
}

/// A validated button.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Button {
    /// BCM pin.
    pub pin: u8,
    /// Command line to submit.
    pub command: String,
    /// Bias.
    pub pull: Pull,
    /// Debounce time.
    pub debounce: Duration,
}

impl Button {
    /// The edge that is a press.
    pub fn trigger(&self) -> Trigger {
        match self.pull {
            Pull::Down => Trigger::RisingEdge,
            Pull::Up | Pull::Off => Trigger::FallingEdge,
        }
    }
}

/// A button that could not be set up.
#[derive(Debug)]
pub enum ButtonError {
    /// Pin outside 0..=27.
    Pin(u8),
    /// A pull value other than up, down, off.
    Pull(u8, String),
    /// An empty command.
    EmptyCommand(u8),
    /// Debounce above [`MAX_DEBOUNCE_MS`].
    Debounce(u8, u32),
    /// Two buttons on one pin.
    DuplicatePin(u8),
    /// No GPIO here (not a Raspberry Pi, or an unknown model).
    NoGpio(String),
    /// The GPIO device is not accessible to this user.
    Permission(String),
    /// The pin could not be claimed or watched.
    Gpio(u8, String),
}

impl fmt::Display for ButtonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ButtonError::Pin(p) => write!(f, "button pin {p} is not a header GPIO: use a BCM number 0..={MAX_PIN}"),
            ButtonError::Pull(p, v) => write!(f, "button on pin {p}: pull {v:?} is not up, down or off"),
            ButtonError::EmptyCommand(p) => write!(f, "button on pin {p} has an empty command: give e.g. command = \"next\""),
            ButtonError::Debounce(p, ms) => write!(f, "button on pin {p}: debounce_ms {ms} is over {MAX_DEBOUNCE_MS}: 30 is typical"),
            ButtonError::DuplicatePin(p) => write!(f, "two buttons on pin {p}: give each its own pin"),
            ButtonError::NoGpio(e) => write!(f, "GPIO not available ({e}): buttons need a Raspberry Pi; remove the [[button]] entries elsewhere"),
            ButtonError::Permission(e) => write!(f, "GPIO permission denied ({e}): add the user to the gpio group (sudo adduser $USER gpio)"),
            ButtonError::Gpio(p, e) => write!(f, "button on pin {p}: {e}"),
        }
    }
}

impl std::error::Error for ButtonError {}

/// Check one `[[button]]` entry.
pub fn validate(b: &ButtonConfig) -> Result<Button, ButtonError> {
    if b.pin > MAX_PIN {
        return Err(ButtonError::Pin(b.pin));
    }
    let pull = match b.pull.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("up") => Pull::Up,
        Some("down") => Pull::Down,
        Some("off") => Pull::Off,
        Some(_) => return Err(ButtonError::Pull(b.pin, b.pull.clone().unwrap_or_default())),
    };
    if b.command.trim().is_empty() {
        return Err(ButtonError::EmptyCommand(b.pin));
    }
    let ms = b.debounce_ms.unwrap_or(DEFAULT_DEBOUNCE_MS);
    if ms > MAX_DEBOUNCE_MS {
        return Err(ButtonError::Debounce(b.pin, ms));
    }
    Ok(Button {
        pin: b.pin,
        command: b.command.trim().to_string(),
        pull,
        debounce: Duration::from_millis(u64::from(ms)),
    })
}

/// Check every entry, and that no two share a pin.
pub fn validate_all(buttons: &[ButtonConfig]) -> Result<Vec<Button>, ButtonError> {
    let mut out: Vec<Button> = Vec::with_capacity(buttons.len());
    for b in buttons {
        let b = validate(b)?;
        if out.iter().any(|o| o.pin == b.pin) {
            return Err(ButtonError::DuplicatePin(b.pin));
        }
        out.push(b);
    }
    Ok(out)
}

/// Running buttons. Dropping it stops them (the pins are released).
pub struct Buttons {
    _pins: Vec<InputPin>,
}

impl fmt::Debug for Buttons {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Buttons({} pins)", self._pins.len())
    }
}

fn gpio_error(pin: u8, e: rppal::gpio::Error) -> ButtonError {
    match e {
        rppal::gpio::Error::UnknownModel => ButtonError::NoGpio(e.to_string()),
        rppal::gpio::Error::PermissionDenied(p) => ButtonError::Permission(p),
        rppal::gpio::Error::Io(ref io) if io.kind() == std::io::ErrorKind::NotFound => {
            ButtonError::NoGpio(e.to_string())
        }
        other => ButtonError::Gpio(pin, other.to_string()),
    }
}

/// Validate the buttons and start watching them; each press calls
/// `submit(command)` from rppal's interrupt thread. No buttons: nothing is
/// opened (so a config without buttons works off the Pi).
pub fn start(
    buttons: &[ButtonConfig],
    submit: Arc<dyn Fn(&str) + Send + Sync>,
) -> Result<Buttons, ButtonError> {
    let buttons = validate_all(buttons)?;
    if buttons.is_empty() {
        return Ok(Buttons { _pins: Vec::new() });
    }
    let first = buttons[0].pin;
    let gpio = Gpio::new().map_err(|e| gpio_error(first, e))?;
    let mut pins = Vec::with_capacity(buttons.len());
    for b in buttons {
        let pin = gpio.get(b.pin).map_err(|e| gpio_error(b.pin, e))?;
        let mut input = match b.pull {
            Pull::Up => pin.into_input_pullup(),
            Pull::Down => pin.into_input_pulldown(),
            Pull::Off => pin.into_input(),
        };
        let submit = Arc::clone(&submit);
        let command = b.command.clone();
        input
            .set_async_interrupt(b.trigger(), Some(b.debounce), move |_| submit(&command))
            .map_err(|e| gpio_error(b.pin, e))?;
        pins.push(input);
    }
    Ok(Buttons { _pins: pins })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pin: u8, pull: Option<&str>) -> ButtonConfig {
        ButtonConfig {
            pin,
            command: "next".into(),
            pull: pull.map(String::from),
            debounce_ms: None,
        }
    }

    #[test]
    fn valid_entries_with_defaults() {
        let b = validate(&cfg(17, None)).unwrap();
        assert_eq!(b.pull, Pull::Up);
        assert_eq!(b.trigger(), Trigger::FallingEdge);
        assert_eq!(b.debounce, Duration::from_millis(30));
        let b = validate(&cfg(0, Some("Down"))).unwrap();
        assert_eq!((b.pull, b.trigger()), (Pull::Down, Trigger::RisingEdge));
        assert_eq!(validate(&cfg(27, Some("off"))).unwrap().pull, Pull::Off);
    }

    #[test]
    fn bad_entries_name_the_pin_and_value() {
        assert!(matches!(
            validate(&cfg(28, None)),
            Err(ButtonError::Pin(28))
        ));
        assert!(matches!(
            validate(&cfg(5, Some("high"))),
            Err(ButtonError::Pull(5, v)) if v == "high"
        ));
        let mut c = cfg(5, None);
        c.command = "  ".into();
        assert!(matches!(validate(&c), Err(ButtonError::EmptyCommand(5))));
        c.command = "next".into();
        c.debounce_ms = Some(5000);
        assert!(matches!(validate(&c), Err(ButtonError::Debounce(5, 5000))));
        assert!(matches!(
            validate_all(&[cfg(4, None), cfg(4, Some("down"))]),
            Err(ButtonError::DuplicatePin(4))
        ));
        let msg = ButtonError::Pin(40).to_string();
        assert!(msg.contains("0..=27"), "{msg}");
    }

    #[test]
    fn no_buttons_opens_nothing_and_bad_ones_fail_before_gpio() {
        let submit: Arc<dyn Fn(&str) + Send + Sync> = Arc::new(|_| {});
        assert!(start(&[], Arc::clone(&submit)).is_ok());
        assert!(matches!(
            start(&[cfg(99, None)], submit),
            Err(ButtonError::Pin(99))
        ));
    }
}
