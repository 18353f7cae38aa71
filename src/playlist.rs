//! The playlist: what plays after what.
//!
//! [`PlaylistSpec`] is a playlist by name (from `--playlist` or the
//! config), [`resolve`] turns it into [`PlaylistItem`]s against a library,
//! and [`Cursor`] walks them: loop, once or shuffle at the end, repeats and
//! durations per entry, `next`/`prev`, and the array predicted to follow
//! (which the loader prefetches). The cursor is pure: the frame loop asks it
//! what to play and holds no playlist logic of its own. It never allocates
//! after [`Cursor::new`] (shuffling permutes a vector made there).

use crate::library::Library;
use std::fmt;

/// What happens at the end of the playlist.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Order {
    /// Start again from the first entry.
    #[default]
    Loop,
    /// Go dark after the last entry and keep running.
    Once,
    /// Play the entries in a new random order on each pass.
    Shuffle,
}

/// A playlist entry by name, as the config or `--playlist` gives it.
#[derive(Clone, Debug, PartialEq)]
pub struct PlaylistSpec {
    /// Array name.
    pub name: String,
    /// Times through.
    pub repeat: u32,
    /// Or for this long.
    pub seconds: Option<f64>,
}

impl PlaylistSpec {
    /// `name`, once through.
    pub fn once(name: impl Into<String>) -> PlaylistSpec {
        PlaylistSpec {
            name: name.into(),
            repeat: 1,
            seconds: None,
        }
    }
}

/// One playlist entry, resolved against a library.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlaylistItem {
    /// Array index.
    pub array: u32,
    /// Times through the array (>= 1).
    pub repeat: u32,
    /// Or: play (looping) for this long, in ns of playback time (at
    /// whatever rate plays).
    pub duration_ns: Option<u64>,
}

impl PlaylistItem {
    /// Play `array` once through.
    pub fn once(array: u32) -> PlaylistItem {
        PlaylistItem {
            array,
            repeat: 1,
            duration_ns: None,
        }
    }
}

/// A playlist name that is not in the library.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownEntry {
    /// The name.
    pub name: String,
    /// The pack it is not in.
    pub pack: String,
}

impl fmt::Display for UnknownEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "playlist array {:?} is not in {} (see `rowplay inspect`)",
            self.name, self.pack
        )
    }
}

impl std::error::Error for UnknownEntry {}

/// Resolve playlist names against a library.
pub fn resolve(lib: &Library, spec: &[PlaylistSpec]) -> Result<Vec<PlaylistItem>, UnknownEntry> {
    spec.iter()
        .map(|s| {
            let array = lib.find(&s.name).ok_or_else(|| UnknownEntry {
                name: s.name.clone(),
                pack: lib.path().display().to_string(),
            })?;
            Ok(PlaylistItem {
                array,
                repeat: s.repeat.max(1),
                duration_ns: s
                    .seconds
                    .filter(|x| x.is_finite())
                    .map(|x| (x * 1e9).round().max(1.0) as u64),
            })
        })
        .collect()
}

/// What to play next, as the cursor decides it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Go {
    /// Array `i` from row 0.
    Play(u32),
    /// Nothing: the playlist ended (`once`).
    Dark,
}

/// Where playback is in the playlist. See the module docs.
#[derive(Clone, Debug)]
pub struct Cursor {
    items: Vec<PlaylistItem>,
    /// Play order of the item positions (shuffled in place).
    order: Vec<u32>,
    mode: Order,
    /// Position in `order`, or `None` when playing outside the playlist.
    pos: Option<usize>,
    passes: u32,
    /// Playback time spent in the current entry.
    entry_ns: u64,
    rng: fastrand::Rng,
}

impl Cursor {
    /// A cursor over `items`; `seed` decides the shuffles.
    pub fn new(items: Vec<PlaylistItem>, mode: Order, seed: u64) -> Cursor {
        let mut c = Cursor {
            order: (0..items.len() as u32).collect(),
            items,
            mode,
            pos: None,
            passes: 0,
            entry_ns: 0,
            rng: fastrand::Rng::with_seed(seed),
        };
        c.reset_order();
        c
    }

    /// Change the end-of-playlist rule and the shuffle seed (re-orders the
    /// entries; no allocation).
    pub fn set_mode(&mut self, mode: Order, seed: u64) {
        self.mode = mode;
        self.rng = fastrand::Rng::with_seed(seed);
        self.reset_order();
    }

    /// The entries.
    pub fn items(&self) -> &[PlaylistItem] {
        &self.items
    }

    /// The position in play order, or `None` outside the playlist.
    pub fn position(&self) -> Option<usize> {
        self.pos
    }

    /// Back to the entries' own order (reshuffled for `shuffle`).
    pub fn reset_order(&mut self) {
        for (i, o) in self.order.iter_mut().enumerate() {
            *o = i as u32;
        }
        if self.mode == Order::Shuffle {
            self.shuffle();
        }
    }

    fn shuffle(&mut self) {
        // Fisher-Yates in place: no allocation.
        for i in (1..self.order.len()).rev() {
            let j = self.rng.usize(..=i);
            self.order.swap(i, j);
        }
    }

    fn item(&self, pos: usize) -> PlaylistItem {
        self.items[self.order[pos] as usize]
    }

    fn enter(&mut self, pos: Option<usize>, array: u32) -> Go {
        self.pos = pos;
        self.passes = 0;
        self.entry_ns = 0;
        Go::Play(array)
    }

    fn enter_pos(&mut self, pos: usize) -> Go {
        let a = self.item(pos).array;
        self.enter(Some(pos), a)
    }

    /// The first array: `start` if given, else the first entry, else 0.
    pub fn start(&mut self, start: Option<u32>) -> Go {
        match start {
            Some(i) => self.jump(i),
            None if !self.items.is_empty() => self.enter_pos(0),
            None => self.enter(None, 0),
        }
    }

    /// Play array `i` from row 0; stay in the playlist if it is in it.
    pub fn jump(&mut self, i: u32) -> Go {
        match (0..self.order.len()).find(|&p| self.item(p).array == i) {
            Some(p) => self.enter_pos(p),
            None => self.enter(None, i),
        }
    }

    /// `next` (`forward`) or `prev`: the neighbouring entry, or without a
    /// playlist the neighbouring array of the `arrays` in the library.
    pub fn step(&mut self, forward: bool, current: u32, arrays: u32) -> Go {
        let n = self.order.len();
        if n > 0 {
            let pos = match self.pos {
                Some(p) if forward => (p + 1) % n,
                Some(p) => (p + n - 1) % n,
                None => 0,
            };
            return self.enter_pos(pos);
        }
        let len = arrays.max(1);
        let i = if forward {
            (current + 1) % len
        } else {
            (current + len - 1) % len
        };
        self.enter(None, i)
    }

    /// A frame of the current entry was shown for `period_ns`. `Some` when
    /// the entry's duration is over and playback moves on.
    pub fn frame_shown(&mut self, period_ns: u64) -> Option<Go> {
        self.entry_ns = self.entry_ns.saturating_add(period_ns);
        let p = self.pos?;
        let item = self.item(p);
        if item.duration_ns.is_some_and(|d| self.entry_ns >= d) {
            Some(self.next_entry(p))
        } else {
            None
        }
    }

    /// The last row of `current` was shown: what plays now.
    pub fn end_of_pass(&mut self, current: u32) -> Go {
        let Some(p) = self.pos else {
            return Go::Play(current);
        };
        self.passes += 1;
        let item = self.item(p);
        if item.duration_ns.is_some() || self.passes < item.repeat {
            Go::Play(item.array)
        } else {
            self.next_entry(p)
        }
    }

    /// `current` cannot be played (bad body): what plays instead.
    pub fn skip(&mut self, current: u32) -> Go {
        match self.pos {
            Some(p) if self.items.len() > 1 => self.next_entry(p),
            // Nothing else to play: replay its head rows.
            _ => Go::Play(current),
        }
    }

    fn next_entry(&mut self, p: usize) -> Go {
        if p + 1 < self.order.len() {
            return self.enter_pos(p + 1);
        }
        match self.mode {
            Order::Loop => self.enter_pos(0),
            Order::Shuffle => {
                self.shuffle();
                self.enter_pos(0)
            }
            Order::Once => {
                self.pos = None;
                Go::Dark
            }
        }
    }

    /// The array that will play after the current pass of `current`, if it
    /// is known now (for prefetching).
    pub fn predict(&self, current: u32) -> Option<u32> {
        let Some(p) = self.pos else {
            return Some(current);
        };
        let item = self.item(p);
        if item.duration_ns.is_some() || self.passes + 1 < item.repeat {
            Some(item.array)
        } else if p + 1 < self.order.len() {
            Some(self.item(p + 1).array)
        } else if self.mode == Order::Loop {
            Some(self.item(0).array)
        } else {
            None // once: dark next; shuffle: not known yet
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(array: u32, repeat: u32, duration_ns: Option<u64>) -> PlaylistItem {
        PlaylistItem {
            array,
            repeat,
            duration_ns,
        }
    }

    /// Walk `passes` ends of pass from the start, listing what plays.
    fn walk(c: &mut Cursor, passes: usize) -> Vec<Go> {
        let mut out = vec![c.start(None)];
        for _ in 0..passes {
            let cur = match *out.last().unwrap() {
                Go::Play(a) => a,
                Go::Dark => break,
            };
            out.push(c.end_of_pass(cur));
        }
        out
    }

    #[test]
    fn loop_plays_every_entry_with_its_repeats_then_starts_again() {
        let mut c = Cursor::new(vec![item(5, 2, None), item(7, 1, None)], Order::Loop, 1);
        let plays: Vec<Go> = walk(&mut c, 5);
        use Go::Play;
        assert_eq!(
            plays,
            vec![Play(5), Play(5), Play(7), Play(5), Play(5), Play(7)]
        );
    }

    #[test]
    fn once_goes_dark_after_the_last_entry_and_predicts_nothing() {
        let mut c = Cursor::new(vec![item(1, 1, None), item(2, 1, None)], Order::Once, 1);
        assert_eq!(c.start(None), Go::Play(1));
        assert_eq!(c.predict(1), Some(2));
        assert_eq!(c.end_of_pass(1), Go::Play(2));
        assert_eq!(c.predict(2), None);
        assert_eq!(c.end_of_pass(2), Go::Dark);
        assert_eq!(c.position(), None);
    }

    #[test]
    fn shuffle_plays_each_entry_once_per_pass_in_a_new_order() {
        let items: Vec<PlaylistItem> = (0..20).map(|a| item(a, 1, None)).collect();
        let mut c = Cursor::new(items, Order::Shuffle, 42);
        let plays = walk(&mut c, 39);
        let pass = |k: usize| {
            let mut v: Vec<u32> = plays[k * 20..(k + 1) * 20]
                .iter()
                .map(|g| match g {
                    Go::Play(a) => *a,
                    Go::Dark => u32::MAX,
                })
                .collect();
            let order = v.clone();
            v.sort_unstable();
            assert_eq!(
                v,
                (0..20).collect::<Vec<_>>(),
                "pass {k} plays every entry once"
            );
            order
        };
        let (a, b) = (pass(0), pass(1));
        assert_ne!(a, b, "the second pass is reshuffled");
        assert_ne!(a, (0..20).collect::<Vec<_>>(), "the first pass is shuffled");
    }

    #[test]
    fn a_duration_is_playback_time_whatever_the_rows_and_the_rate() {
        // 100 ms: 4 frames at 25 ms (40 fps).
        let mut c = Cursor::new(
            vec![item(3, 1, Some(100_000_000)), item(4, 1, None)],
            Order::Loop,
            1,
        );
        assert_eq!(c.start(None), Go::Play(3));
        // The array ends after 2 rows: it loops inside its duration.
        assert_eq!(c.frame_shown(25_000_000), None);
        assert_eq!(c.frame_shown(25_000_000), None);
        assert_eq!(c.end_of_pass(3), Go::Play(3));
        assert_eq!(c.predict(3), Some(3));
        assert_eq!(c.frame_shown(25_000_000), None);
        assert_eq!(c.frame_shown(25_000_000), Some(Go::Play(4)));
        // The same 100 ms at 20 ms (50 fps) is 5 frames.
        c.jump(3);
        for _ in 0..4 {
            assert_eq!(c.frame_shown(20_000_000), None);
        }
        assert_eq!(c.frame_shown(20_000_000), Some(Go::Play(4)));
    }

    #[test]
    fn next_and_prev_wrap_around_the_playlist_and_the_library() {
        let mut c = Cursor::new(vec![item(9, 1, None), item(8, 1, None)], Order::Loop, 1);
        c.start(None);
        assert_eq!(c.step(true, 9, 100), Go::Play(8));
        assert_eq!(c.step(true, 8, 100), Go::Play(9));
        assert_eq!(c.step(false, 9, 100), Go::Play(8));
        let mut bare = Cursor::new(Vec::new(), Order::Loop, 1);
        assert_eq!(bare.start(None), Go::Play(0));
        assert_eq!(bare.step(false, 0, 3), Go::Play(2));
        assert_eq!(bare.step(true, 2, 3), Go::Play(0));
        // Without a playlist the array loops.
        assert_eq!(bare.end_of_pass(0), Go::Play(0));
        assert_eq!(bare.predict(0), Some(0));
    }

    #[test]
    fn a_jump_into_the_playlist_continues_from_there_and_outside_it_loops() {
        let mut c = Cursor::new(
            vec![item(1, 1, None), item(2, 1, None), item(3, 1, None)],
            Order::Loop,
            1,
        );
        c.start(None);
        assert_eq!(c.jump(2), Go::Play(2));
        assert_eq!(c.position(), Some(1));
        assert_eq!(c.end_of_pass(2), Go::Play(3));
        assert_eq!(c.jump(50), Go::Play(50));
        assert_eq!(c.position(), None);
        assert_eq!(c.end_of_pass(50), Go::Play(50));
        assert_eq!(c.start(Some(3)), Go::Play(3));
        assert_eq!(c.position(), Some(2));
    }

    #[test]
    fn a_bad_array_is_skipped_unless_it_is_the_only_entry() {
        let mut c = Cursor::new(vec![item(1, 1, None), item(2, 1, None)], Order::Loop, 1);
        c.start(None);
        assert_eq!(c.skip(1), Go::Play(2));
        let mut one = Cursor::new(vec![item(1, 1, None)], Order::Loop, 1);
        one.start(None);
        assert_eq!(one.skip(1), Go::Play(1));
    }
}
