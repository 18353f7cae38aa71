//! `rowplay ctl`: one command to a running player.

use super::{load_config, settings, AppError};
use crate::cli::CtlArgs;
use crate::control;

/// The command line to send: the words joined, with `--json` and `--wait`
/// taken out wherever they stand (clap hands words after the command over
/// as part of it); `--wait` becomes the `wait` prefix verb.
pub fn command_line(a: &mut CtlArgs) -> String {
    if let Some(i) = a.command.iter().position(|w| w == "--json") {
        a.command.remove(i);
        a.json = true;
    }
    if let Some(i) = a.command.iter().position(|w| w == "--wait") {
        a.command.remove(i);
        a.wait = true;
    }
    let line = a.command.join(" ");
    if a.wait {
        format!("wait {line}")
    } else {
        line
    }
}

/// Send the command, print the reply; an `error:` reply is an error.
pub fn run(mut a: CtlArgs) -> Result<(), AppError> {
    let cfg = load_config(a.config.as_deref())?;
    let socket = settings::ctl_socket(&a, &cfg);
    let line = command_line(&mut a);
    let reply = control::ctl(socket.as_deref(), &line)?;
    if let Some(e) = reply.strip_prefix("error: ") {
        return Err(AppError::Refused(e.to_string()));
    }
    let is_status = a.command.first().map(String::as_str) == Some("status");
    if is_status && !a.json {
        // A readable form of the JSON object.
        match serde_json::from_str::<serde_json::Value>(&reply) {
            Ok(serde_json::Value::Object(m)) => {
                for (k, v) in m {
                    println!("{k}: {v}");
                }
            }
            _ => println!("{reply}"),
        }
    } else {
        println!("{reply}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn line(words: &str) -> (String, bool) {
        match Cli::parse_from(words.split_whitespace()).command {
            Command::Ctl(mut a) => (command_line(&mut a), a.json),
            _ => unreachable!(),
        }
    }

    #[test]
    fn wait_and_json_flags_anywhere() {
        assert_eq!(
            line("rowplay ctl play wave_17"),
            ("play wave_17".into(), false)
        );
        assert_eq!(
            line("rowplay ctl play wave_17 --wait"),
            ("wait play wave_17".into(), false)
        );
        assert_eq!(line("rowplay ctl --wait next"), ("wait next".into(), false));
        assert_eq!(line("rowplay ctl prev --wait"), ("wait prev".into(), false));
        assert_eq!(line("rowplay ctl status --json"), ("status".into(), true));
    }
}
