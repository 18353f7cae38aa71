//! The master's file name to one of our arrays.
//!
//! In this order: an entry of the override table (config
//! `[multisync.names]`, keyed by the name as the master sends it, or by
//! that name without `.fseq`); the name without `.fseq` as a whole array
//! name; the name without `.fseq` as the last path component of exactly
//! one array (`Song` matches `shows/Song`). Nothing else matches.

use crate::library::Library;
use std::fmt;

/// The array names a name is looked up in. [`Library`] is one; tests use
/// a slice.
pub trait ArrayNames {
    /// Number of arrays.
    fn count(&self) -> u32;
    /// Name of array `i < count()`.
    fn name_of(&self, i: u32) -> &str;
    /// Index of the array with exactly this name.
    fn find_exact(&self, name: &str) -> Option<u32> {
        (0..self.count()).find(|&i| self.name_of(i) == name)
    }
}

impl ArrayNames for Library {
    fn count(&self) -> u32 {
        self.len()
    }
    fn name_of(&self, i: u32) -> &str {
        self.name(i)
    }
    fn find_exact(&self, name: &str) -> Option<u32> {
        self.find(name)
    }
}

impl<S: AsRef<str>> ArrayNames for [S] {
    fn count(&self) -> u32 {
        self.len().min(u32::MAX as usize) as u32
    }
    fn name_of(&self, i: u32) -> &str {
        self[i as usize].as_ref()
    }
}

/// Why a master's name maps to no array.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameError<'a> {
    /// No array has this name, as a whole or as its last component.
    Unknown(&'a str),
    /// Several arrays end in this last component (how many).
    Ambiguous(&'a str, u32),
    /// The override table maps it to an array that does not exist.
    OverrideUnknown(&'a str),
}

impl fmt::Display for NameError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Unknown(n) => write!(
                f,
                "master file {n:?} matches no array; add it to [multisync.names]"
            ),
            NameError::Ambiguous(n, k) => write!(
                f,
                "master file {n:?} matches {k} arrays; add it to [multisync.names]"
            ),
            NameError::OverrideUnknown(n) => write!(
                f,
                "[multisync.names] maps {n:?} to an array that is not in the pack"
            ),
        }
    }
}

impl std::error::Error for NameError<'_> {}

/// `Song.fseq` -> `Song` (the extension compared without case).
pub fn strip_fseq(name: &str) -> &str {
    let n = name.len();
    if n > 5 && name.is_char_boundary(n - 5) && name[n - 5..].eq_ignore_ascii_case(".fseq") {
        &name[..n - 5]
    } else {
        name
    }
}

/// The override table, sorted by key for binary search.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NameMap {
    overrides: Vec<(String, String)>,
}

impl NameMap {
    /// A map with these `(master name, array name)` overrides. A later
    /// duplicate key wins.
    pub fn new(overrides: impl IntoIterator<Item = (String, String)>) -> NameMap {
        let mut v: Vec<(String, String)> = Vec::new();
        for (k, a) in overrides {
            match v.iter_mut().find(|(kk, _)| *kk == k) {
                Some(e) => e.1 = a,
                None => v.push((k, a)),
            }
        }
        v.sort_by(|a, b| a.0.cmp(&b.0));
        NameMap { overrides: v }
    }

    fn lookup(&self, key: &str) -> Option<&str> {
        self.overrides
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .map(|i| self.overrides[i].1.as_str())
    }

    /// The array the master's `file` names. Never allocates.
    pub fn resolve<'a, L: ArrayNames + ?Sized>(
        &self,
        file: &'a str,
        lib: &L,
    ) -> Result<u32, NameError<'a>> {
        let stem = strip_fseq(file);
        if let Some(target) = self.lookup(file).or_else(|| self.lookup(stem)) {
            return lib
                .find_exact(target)
                .ok_or(NameError::OverrideUnknown(file));
        }
        if stem.is_empty() {
            return Err(NameError::Unknown(file));
        }
        if let Some(i) = lib.find_exact(stem) {
            return Ok(i);
        }
        let mut found = None;
        let mut count = 0u32;
        for i in 0..lib.count() {
            let n = lib.name_of(i);
            if n.len() > stem.len()
                && n.ends_with(stem)
                && n.as_bytes()[n.len() - stem.len() - 1] == b'/'
            {
                count += 1;
                found = Some(i);
            }
        }
        match (count, found) {
            (1, Some(i)) => Ok(i),
            (0, _) => Err(NameError::Unknown(file)),
            (k, _) => Err(NameError::Ambiguous(file, k)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: &[&str] = &["Intro", "a/Dup", "b/Dup", "shows/Song", "x/Intro"];

    #[test]
    fn whole_name_then_last_component() {
        let m = NameMap::default();
        assert_eq!(m.resolve("Intro.fseq", NAMES), Ok(0), "whole name first");
        assert_eq!(m.resolve("Song.fseq", NAMES), Ok(3));
        assert_eq!(m.resolve("Song.FSEQ", NAMES), Ok(3));
        assert_eq!(m.resolve("shows/Song.fseq", NAMES), Ok(3));
        assert_eq!(m.resolve("Song", NAMES), Ok(3), "no extension is fine");
    }

    #[test]
    fn unknown_and_ambiguous() {
        let m = NameMap::default();
        assert_eq!(
            m.resolve("Nope.fseq", NAMES),
            Err(NameError::Unknown("Nope.fseq"))
        );
        assert_eq!(
            m.resolve("Dup.fseq", NAMES),
            Err(NameError::Ambiguous("Dup.fseq", 2))
        );
        // a suffix that is not a whole component does not match
        assert_eq!(
            m.resolve("ong.fseq", NAMES),
            Err(NameError::Unknown("ong.fseq"))
        );
        assert_eq!(m.resolve(".fseq", NAMES), Err(NameError::Unknown(".fseq")));
    }

    #[test]
    fn overrides_win() {
        let m = NameMap::new([
            ("Dup.fseq".to_string(), "b/Dup".to_string()),
            ("Christmas".to_string(), "shows/Song".to_string()),
            ("Gone".to_string(), "nowhere".to_string()),
            ("Intro.fseq".to_string(), "a/Dup".to_string()),
        ]);
        assert_eq!(m.resolve("Dup.fseq", NAMES), Ok(2));
        assert_eq!(
            m.resolve("Christmas.fseq", NAMES),
            Ok(3),
            "key without .fseq"
        );
        assert_eq!(m.resolve("Intro.fseq", NAMES), Ok(1));
        assert_eq!(
            m.resolve("Gone.fseq", NAMES),
            Err(NameError::OverrideUnknown("Gone.fseq"))
        );
    }

    #[test]
    fn strip_only_fseq() {
        assert_eq!(strip_fseq("A.fseq"), "A");
        assert_eq!(strip_fseq("A.mp3"), "A.mp3");
        assert_eq!(strip_fseq(".fseq"), ".fseq");
        assert_eq!(strip_fseq("é.fseq"), "é");
    }
}
