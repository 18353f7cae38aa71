//! The HTTP front end's view of the player: commands through the one
//! command path, status from it, and the last frame from door 3.

use crate::control::{parse_line, CommandPath, Reply};
use crate::handoff::SlotReader;
use crate::library::Library;
use std::sync::{Arc, Mutex};

/// [`crate::http::Backend`] over the command path and the published frames.
pub struct PlayerBackend {
    path: Arc<CommandPath>,
    /// The reader of the frames the player publishes, and the last one
    /// taken (RGB) with its counter. Only the HTTP thread locks it.
    frames: Mutex<(SlotReader, Vec<u8>, Option<u64>)>,
    /// Channels per LED in the published frames (3 or 4).
    channels: usize,
}

impl PlayerBackend {
    /// A backend on `path`, reading frames of `channels` per LED.
    pub fn new(path: Arc<CommandPath>, reader: SlotReader, channels: usize) -> PlayerBackend {
        PlayerBackend {
            path,
            frames: Mutex::new((reader, Vec::new(), None)),
            channels: channels.max(1),
        }
    }
}

impl crate::http::Backend for PlayerBackend {
    fn command(&self, line: &str) -> Result<String, String> {
        let req = parse_line(line.as_bytes()).map_err(|e| e.to_string())?;
        match self.path.handle(&req).map_err(|e| e.to_string())? {
            Reply::Ok => Ok("ok".into()),
            Reply::Json(v) => Ok(v.to_string()),
            // HTTP answers at once: the switch was accepted (`status` shows
            // it as pending until its row 0 is out).
            Reply::Wait(_) => Ok("ok".into()),
        }
    }

    fn status(&self) -> serde_json::Value {
        self.path.status()
    }

    fn library(&self) -> Arc<Library> {
        self.path.library()
    }

    fn default_fps(&self) -> Option<f64> {
        Some(self.path.default_fps() as f64)
    }

    fn last_frame(&self, dst: &mut Vec<u8>) -> Option<u64> {
        let mut g = self.frames.lock().unwrap_or_else(|e| e.into_inner());
        let (reader, last, counter) = &mut *g;
        if let Some(f) = reader.take() {
            last.clear();
            for px in f.pixels.chunks_exact(self.channels) {
                // RGBW: white shown as added to each colour, as the eye sees it.
                let w = if self.channels == 4 { px[3] } else { 0 };
                last.extend([px[0], px[1], px[2]].map(|c| c.saturating_add(w)));
            }
            *counter = Some(f.counter);
        }
        dst.clear();
        dst.extend_from_slice(last);
        *counter
    }
}
