//! Interned names. A [`Symbol`] is four bytes, compares as a number and reads as a
//! `&'static str`: a large file repeats a few thousand names millions of times, and with an
//! inline string each of them took 40 bytes instead of 16.
//!
//! The interner is global and never frees a name: a program's distinct names are few, and a
//! long language-server session adds at most the names (and prefixes of names) typed in it.

use rustc_hash::FxHashMap;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

/// An interned name. Equal symbols are equal names; hashing and ordering go by the text, so a
/// map keyed by symbols can be read with a `&str` and sorts alphabetically.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Symbol(NonZeroU32);

impl Symbol {
    pub fn intern(name: &str) -> Symbol {
        interner().intern(name)
    }

    /// The symbol's number: the same name for the life of the process (packed bodies keep it).
    pub(super) fn number(self) -> u32 {
        self.0.get()
    }

    /// The symbol [`Symbol::number`] gave `n`.
    pub(super) fn from_number(n: u32) -> Symbol {
        Symbol(NonZeroU32::new(n).expect("a symbol's number is never 0"))
    }

    pub fn as_str(self) -> &'static str {
        let (chunk, offset) = place(self.0.get());
        interner().names[chunk]
            .get()
            .and_then(|names| names[offset].get())
            .expect("a symbol's name is stored before the symbol is handed out")
    }
}

/// Chunk `k` holds the names of symbols `2^k .. 2^(k+1)`, so chunks are allocated as they fill
/// and a name never moves (readers take no lock).
const CHUNKS: usize = 32;
const SHARDS: usize = 16;

struct Interner {
    shards: [Mutex<FxHashMap<&'static str, Symbol>>; SHARDS],
    last: AtomicU32,
    names: [OnceLock<Box<[OnceLock<&'static str>]>>; CHUNKS],
}

fn interner() -> &'static Interner {
    static INTERNER: OnceLock<Interner> = OnceLock::new();
    INTERNER.get_or_init(|| Interner {
        shards: std::array::from_fn(|_| Mutex::default()),
        last: AtomicU32::new(0),
        names: std::array::from_fn(|_| OnceLock::new()),
    })
}

/// The chunk and the offset in it of symbol number `n` (from 1).
fn place(n: u32) -> (usize, usize) {
    let chunk = (u32::BITS - 1 - n.leading_zeros()) as usize;
    (chunk, (n - (1 << chunk)) as usize)
}

impl Interner {
    fn intern(&self, name: &str) -> Symbol {
        let shard = rustc_hash::FxBuildHasher.hash_one(name) as usize % SHARDS;
        let mut map = self.shards[shard]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(&symbol) = map.get(name) {
            return symbol;
        }
        let n = self.last.fetch_add(1, Ordering::Relaxed) + 1;
        let number = NonZeroU32::new(n).expect("fewer than 2^32 distinct names");
        let stored: &'static str = Box::leak(name.into());
        let (chunk, offset) = place(n);
        let names = self.names[chunk]
            .get_or_init(|| (0..1usize << chunk).map(|_| OnceLock::new()).collect());
        names[offset]
            .set(stored)
            .expect("each symbol number is handed out once");
        let symbol = Symbol(number);
        map.insert(stored, symbol);
        symbol
    }
}

impl std::ops::Deref for Symbol {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Symbol {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl std::borrow::Borrow<str> for Symbol {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl Hash for Symbol {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl PartialOrd for Symbol {
    fn partial_cmp(&self, other: &Symbol) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Symbol {
    fn cmp(&self, other: &Symbol) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl From<&str> for Symbol {
    fn from(name: &str) -> Symbol {
        Symbol::intern(name)
    }
}

impl PartialEq<str> for Symbol {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Symbol {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Symbol {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<Symbol> for str {
    fn eq(&self, other: &Symbol) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<Symbol> for &str {
    fn eq(&self, other: &Symbol) -> bool {
        *self == other.as_str()
    }
}

impl PartialEq<Symbol> for String {
    fn eq(&self, other: &Symbol) -> bool {
        self == other.as_str()
    }
}

impl From<Symbol> for String {
    fn from(symbol: Symbol) -> String {
        symbol.as_str().to_string()
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_names_are_one_symbol_across_threads() {
        let names: Vec<String> = (0..5000).map(|i| format!("name_{i}")).collect();
        let here: Vec<Symbol> = names.iter().map(|n| Symbol::intern(n)).collect();
        let there: Vec<Symbol> = std::thread::scope(|s| {
            s.spawn(|| names.iter().rev().map(|n| Symbol::intern(n)).collect())
                .join()
                .unwrap()
        });
        for (i, name) in names.iter().enumerate() {
            assert_eq!(here[i], there[names.len() - 1 - i]);
            assert_eq!(here[i].as_str(), name);
        }
        assert_ne!(here[0], here[1]);
    }

    #[test]
    fn symbols_hash_and_sort_as_their_names() {
        let mut map = std::collections::HashMap::new();
        map.insert(Symbol::intern("beta"), 2);
        assert_eq!(map.get("beta"), Some(&2));
        let mut sorted = [Symbol::intern("zeta"), Symbol::intern("alpha")];
        sorted.sort();
        assert_eq!(sorted.map(Symbol::as_str), ["alpha", "zeta"]);
    }

    #[test]
    fn chunks_hold_every_number() {
        assert_eq!(place(1), (0, 0));
        assert_eq!(place(2), (1, 0));
        assert_eq!(place(3), (1, 1));
        assert_eq!(place(4), (2, 0));
        assert_eq!(place(u32::MAX), (31, (1 << 31) - 1));
    }
}
