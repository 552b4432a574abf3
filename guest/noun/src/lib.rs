//! Nouns, and Urbit's `jam`/`cue` serialization.
//!
//! Nouns are the data model of Nock guests (`nockma-guest`), not of every
//! guest, so they live in a crate of their own rather than in the guest SDK:
//! a guest that does not speak Nock does not compile them, and a host or a
//! test can build and decode nockma executables and states natively without
//! the SDK. Everything here is plain `std` code, the same in wasm and natively.
//!
//! A [`Noun`] is an *atom* (a natural number of any size) or a *cell* (an
//! ordered pair of nouns). Cells are reference-counted, so copying a noun or
//! taking a subtree is O(1) and a decoded back-reference is shared, never
//! deep-copied.
//!
//! Atoms convert to and from bytes **little-endian**, as Urbit cords do: the
//! cord `'a'` is the atom 97 and `"ab"` is `0x6261`. Trailing zero bytes are
//! not significant (`[0x61, 0]` is also 97) and the atom 0 is the empty byte
//! string.
//!
//! [`jam`] and [`cue`] are Urbit's `++jam` and `++cue` (`hoon.hoon`), bit for
//! bit, including back-references: `jam` shares every repeated subnoun that
//! is structurally equal (not just pointer-equal), as Urbit does, so its
//! output is the canonical one; `cue` accepts everything Urbit's `cue`
//! accepts (including non-canonical lengths and trailing bits) and returns an
//! error where Urbit would crash.
//!
//! Nothing here recurses on the host stack: `jam`, `cue`, equality,
//! formatting and `Drop` all use explicit stacks, so a noun a million levels
//! deep (either way) is fine. Work is linear in the noun's *DAG* size (its
//! distinct shared nodes), not its tree size, wherever structure is shared:
//! a back-reference bomb decodes in linear memory, re-jams in linear time and
//! compares in linear time.
//!
//! ```
//! use executor_noun::{Noun, cue, jam, noun};
//!
//! let n = noun!([1 [2 3] (Noun::cord("a"))]);
//! assert_eq!(n.to_string(), "[1 [2 3] 97]");
//! assert_eq!(cue(&jam(&n)).unwrap(), n);
//! assert_eq!(jam(&noun!([1 2])), 4657u32.to_le_bytes()[..2].to_vec());
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::rc::Rc;

/// A noun: an atom of arbitrary precision, or a cell of two nouns.
///
/// Cloning is O(1). Equality is structural.
#[derive(Clone)]
pub struct Noun {
    repr: Repr,
}

#[derive(Clone)]
enum Repr {
    /// An atom below 2^64.
    Small(u64),
    /// An atom of 2^64 or more: little-endian bytes, more than 8 of them,
    /// the last one nonzero.
    Big(Rc<[u8]>),
    Cell(Rc<Cell>),
}

struct Cell {
    head: Noun,
    tail: Noun,
}

impl Drop for Cell {
    /// Dismantles uniquely owned descendants with an explicit stack, so
    /// dropping a deep noun never overflows the host stack.
    fn drop(&mut self) {
        let mut stack: Vec<Rc<Cell>> = Vec::new();
        for child in [std::mem::take(&mut self.head), std::mem::take(&mut self.tail)] {
            if let Repr::Cell(rc) = child.repr {
                stack.push(rc);
            }
        }
        while let Some(rc) = stack.pop() {
            if let Ok(mut cell) = Rc::try_unwrap(rc) {
                for child in [std::mem::take(&mut cell.head), std::mem::take(&mut cell.tail)] {
                    if let Repr::Cell(rc) = child.repr {
                        stack.push(rc);
                    }
                }
                // `cell` now holds two atoms; its own drop does not recurse.
            }
        }
    }
}

impl Default for Noun {
    /// The atom 0.
    fn default() -> Self {
        Noun::ZERO
    }
}

impl Noun {
    /// The atom 0 (also the empty list, `~`).
    pub const ZERO: Noun = Noun { repr: Repr::Small(0) };

    /// An atom from a `u64`.
    pub const fn atom(value: u64) -> Noun {
        Noun { repr: Repr::Small(value) }
    }

    /// An atom from little-endian bytes; trailing zero bytes are ignored.
    pub fn from_bytes(bytes: &[u8]) -> Noun {
        let len = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        let bytes = bytes.get(..len).unwrap_or_default();
        if bytes.len() <= 8 {
            let mut word = [0u8; 8];
            for (dst, src) in word.iter_mut().zip(bytes) {
                *dst = *src;
            }
            Noun::atom(u64::from_le_bytes(word))
        } else {
            Noun { repr: Repr::Big(Rc::from(bytes)) }
        }
    }

    /// The Urbit cord of `text`: its UTF-8 bytes as a little-endian atom
    /// (`Noun::cord("a")` is 97).
    pub fn cord(text: &str) -> Noun {
        Noun::from_bytes(text.as_bytes())
    }

    /// The cell `[head tail]`.
    pub fn cell(head: Noun, tail: Noun) -> Noun {
        Noun { repr: Repr::Cell(Rc::new(Cell { head, tail })) }
    }

    /// A right-nested tuple: `[a b c]` is `[a [b c]]`. One item is the item
    /// itself; no items is 0.
    pub fn tuple(items: impl IntoIterator<Item = Noun>) -> Noun {
        let mut items: Vec<Noun> = items.into_iter().collect();
        let mut acc = items.pop().unwrap_or_default();
        while let Some(item) = items.pop() {
            acc = Noun::cell(item, acc);
        }
        acc
    }

    /// A null-terminated list: `[a b c 0]`.
    pub fn list(items: impl IntoIterator<Item = Noun>) -> Noun {
        Noun::tuple(items.into_iter().chain([Noun::ZERO]))
    }

    pub fn is_atom(&self) -> bool {
        !self.is_cell()
    }

    pub fn is_cell(&self) -> bool {
        matches!(self.repr, Repr::Cell(_))
    }

    /// `(head, tail)` of a cell; `None` for an atom.
    pub fn as_cell(&self) -> Option<(&Noun, &Noun)> {
        match &self.repr {
            Repr::Cell(c) => Some((&c.head, &c.tail)),
            _ => None,
        }
    }

    pub fn head(&self) -> Option<&Noun> {
        self.as_cell().map(|(h, _)| h)
    }

    pub fn tail(&self) -> Option<&Noun> {
        self.as_cell().map(|(_, t)| t)
    }

    /// The atom's value if it is an atom below 2^64.
    pub fn as_u64(&self) -> Option<u64> {
        match self.repr {
            Repr::Small(v) => Some(v),
            _ => None,
        }
    }

    /// Whether this is the atom `value`.
    pub fn is_atom_eq(&self, value: u64) -> bool {
        self.as_u64() == Some(value)
    }

    /// The atom's minimal little-endian bytes (0 is empty); `None` for a cell.
    pub fn atom_bytes(&self) -> Option<Vec<u8>> {
        self.atom_view().map(|a| a.bytes().to_vec())
    }

    /// The atom's number of significant bits (Hoon's `met 0`; 0 for 0);
    /// `None` for a cell.
    pub fn bit_len(&self) -> Option<u64> {
        self.atom_view().map(|a| a.bit_len())
    }

    /// The atom plus one; `None` for a cell.
    pub fn increment(&self) -> Option<Noun> {
        match &self.repr {
            Repr::Small(v) => Some(match v.checked_add(1) {
                Some(w) => Noun::atom(w),
                None => Noun::from_bytes(&[0, 0, 0, 0, 0, 0, 0, 0, 1]),
            }),
            Repr::Big(bytes) => {
                let mut out = bytes.to_vec();
                let mut carry = true;
                for byte in out.iter_mut() {
                    let (sum, overflow) = byte.overflowing_add(1);
                    *byte = sum;
                    if !overflow {
                        carry = false;
                        break;
                    }
                }
                if carry {
                    out.push(1);
                }
                Some(Noun::from_bytes(&out))
            }
            Repr::Cell(_) => None,
        }
    }

    /// Serializes with [`jam`].
    pub fn jam(&self) -> Vec<u8> {
        jam(self)
    }

    /// Formats like [`Display`](fmt::Display) but stops after about `limit`
    /// characters (ending in `…`), for error messages about nouns of any
    /// size.
    pub fn to_string_limited(&self, limit: usize) -> String {
        let mut out = String::new();
        // A write to a String only fails when the limit is hit.
        let _ = write_noun(self, &mut out, limit);
        out
    }

    fn atom_view(&self) -> Option<AtomView<'_>> {
        match &self.repr {
            Repr::Small(v) => Some(AtomView::Small(v.to_le_bytes())),
            Repr::Big(b) => Some(AtomView::Big(b)),
            Repr::Cell(_) => None,
        }
    }

    /// The address of a cell's allocation, which identifies it while the
    /// noun is alive.
    fn cell_addr(&self) -> Option<usize> {
        match &self.repr {
            Repr::Cell(c) => Some(Rc::as_ptr(c) as usize),
            _ => None,
        }
    }
}

impl From<u64> for Noun {
    fn from(value: u64) -> Self {
        Noun::atom(value)
    }
}

impl From<&Noun> for Noun {
    fn from(value: &Noun) -> Self {
        value.clone()
    }
}

/// Builds a noun in Hoon-like notation: `noun!([1 [2 3] 4])` is
/// `[1 [[2 3] 4]]`. An element is an integer literal, an identifier, a
/// bracketed noun, or any expression in parentheses that converts
/// `Into<Noun>` (`u64`, `Noun`, `&Noun`).
///
/// ```
/// use executor_noun::{Noun, noun};
/// let x = Noun::atom(7);
/// assert_eq!(noun!([x [0 1] (Noun::cord("hi"))]).to_string(), "[7 [0 1] 26984]");
/// ```
#[macro_export]
macro_rules! noun {
    ([$($item:tt)+]) => {
        $crate::Noun::tuple([$($crate::noun!($item)),+])
    };
    (($value:expr)) => {
        $crate::Noun::from($value)
    };
    ($value:expr) => {
        $crate::Noun::from($value)
    };
}

enum AtomView<'a> {
    Small([u8; 8]),
    Big(&'a [u8]),
}

impl AtomView<'_> {
    /// Minimal little-endian bytes.
    fn bytes(&self) -> &[u8] {
        match self {
            AtomView::Small(word) => {
                let len = word.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
                word.get(..len).unwrap_or_default()
            }
            AtomView::Big(b) => b,
        }
    }

    fn bit_len(&self) -> u64 {
        bytes_bit_len(self.bytes())
    }
}

fn bytes_bit_len(bytes: &[u8]) -> u64 {
    match bytes.iter().rposition(|&b| b != 0) {
        None => 0,
        Some(i) => {
            let top = bytes.get(i).copied().unwrap_or(0);
            (i as u64) * 8 + u64::from(8 - top.leading_zeros())
        }
    }
}

// ---------------------------------------------------------------------------
// Equality

impl PartialEq for Noun {
    fn eq(&self, other: &Self) -> bool {
        // A direct walk that skips pointer-equal subtrees, and remembers the
        // pairs of *shared* cells it has met so it compares each such pair
        // once (an unshared pair is only reachable through its parents'
        // pair). Where much is shared, the pairs could grow quadratically,
        // so past a budget switch to hash-consing, which is linear in the
        // number of distinct nodes.
        const PAIR_BUDGET: usize = 4096;
        let mut pairs: HashSet<(usize, usize)> = HashSet::new();
        let mut stack: Vec<(&Noun, &Noun)> = vec![(self, other)];
        while let Some((a, b)) = stack.pop() {
            match (&a.repr, &b.repr) {
                (Repr::Small(x), Repr::Small(y)) => {
                    if x != y {
                        return false;
                    }
                }
                (Repr::Big(x), Repr::Big(y)) => {
                    if !Rc::ptr_eq(x, y) && x != y {
                        return false;
                    }
                }
                (Repr::Cell(x), Repr::Cell(y)) => {
                    if Rc::ptr_eq(x, y) {
                        continue;
                    }
                    if Rc::strong_count(x) > 1 || Rc::strong_count(y) > 1 {
                        let key = (Rc::as_ptr(x) as usize, Rc::as_ptr(y) as usize);
                        if !pairs.insert(key) {
                            continue;
                        }
                        if pairs.len() > PAIR_BUDGET {
                            let mut interner = Interner::default();
                            return interner.intern(self) == interner.intern(other);
                        }
                    }
                    stack.push((&x.tail, &y.tail));
                    stack.push((&x.head, &y.head));
                }
                _ => return false,
            }
        }
        true
    }
}

impl Eq for Noun {}

/// Assigns every structurally distinct noun a number (hash-consing), in time
/// linear in the number of distinct allocations visited.
#[derive(Default)]
struct Interner {
    /// Atom contents are chosen by whoever wrote the input, so they go in a
    /// B-tree, immune to hash flooding.
    atoms: BTreeMap<AtomKey, usize>,
    cells: HashMap<(usize, usize), usize>,
    /// Cell allocation address -> id. Valid while the interned nouns live.
    by_addr: HashMap<usize, usize>,
    next: usize,
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum AtomKey {
    Small(u64),
    Big(Rc<[u8]>),
}

impl Interner {
    fn fresh(&mut self) -> usize {
        let id = self.next;
        self.next += 1;
        id
    }

    fn atom_id(&mut self, noun: &Noun) -> usize {
        let key = match &noun.repr {
            Repr::Small(v) => AtomKey::Small(*v),
            Repr::Big(b) => AtomKey::Big(Rc::clone(b)),
            Repr::Cell(_) => return usize::MAX,
        };
        if let Some(&id) = self.atoms.get(&key) {
            return id;
        }
        let id = self.fresh();
        self.atoms.insert(key, id);
        id
    }

    /// The id of an already interned noun.
    fn id(&mut self, noun: &Noun) -> Option<usize> {
        match noun.cell_addr() {
            Some(addr) => self.by_addr.get(&addr).copied(),
            None => Some(self.atom_id(noun)),
        }
    }

    /// Interns `root` and all its descendants; returns the id of `root`.
    fn intern(&mut self, root: &Noun) -> usize {
        enum Task<'a> {
            Visit(&'a Noun),
            Combine(&'a Noun),
        }
        let mut tasks = vec![Task::Visit(root)];
        let mut ids: Vec<usize> = Vec::new();
        while let Some(task) = tasks.pop() {
            match task {
                Task::Visit(noun) => match &noun.repr {
                    Repr::Cell(cell) => {
                        let addr = Rc::as_ptr(cell) as usize;
                        if let Some(&id) = self.by_addr.get(&addr) {
                            ids.push(id);
                        } else {
                            tasks.push(Task::Combine(noun));
                            tasks.push(Task::Visit(&cell.tail));
                            tasks.push(Task::Visit(&cell.head));
                        }
                    }
                    _ => {
                        let id = self.atom_id(noun);
                        ids.push(id);
                    }
                },
                Task::Combine(noun) => {
                    let tail = ids.pop().unwrap_or(usize::MAX);
                    let head = ids.pop().unwrap_or(usize::MAX);
                    let id = match self.cells.get(&(head, tail)) {
                        Some(&id) => id,
                        None => {
                            let id = self.fresh();
                            self.cells.insert((head, tail), id);
                            id
                        }
                    };
                    if let Some(addr) = noun.cell_addr() {
                        self.by_addr.insert(addr, id);
                    }
                    ids.push(id);
                }
            }
        }
        ids.pop().unwrap_or(usize::MAX)
    }
}

// ---------------------------------------------------------------------------
// Formatting

impl fmt::Display for Noun {
    /// Hoon-like notation, right-nested cells flattened (`[1 2 3]` is
    /// `[1 [2 3]]`); atoms below 2^64 in decimal, larger ones in `0x` hex.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_noun(self, f, usize::MAX)
    }
}

impl fmt::Debug for Noun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Writes `noun` iteratively; stops with `…` and an error after `limit`
/// characters.
fn write_noun(noun: &Noun, out: &mut dyn fmt::Write, limit: usize) -> fmt::Result {
    enum Task<'a> {
        Noun(&'a Noun, bool),
        Text(&'static str),
    }
    let mut written = 0usize;
    let mut emit = |out: &mut dyn fmt::Write, s: &str| -> fmt::Result {
        written = written.saturating_add(s.len());
        if written > limit {
            out.write_str("…")?;
            return Err(fmt::Error);
        }
        out.write_str(s)
    };
    let mut tasks = vec![Task::Noun(noun, false)];
    while let Some(task) = tasks.pop() {
        match task {
            Task::Text(s) => emit(out, s)?,
            Task::Noun(n, in_tail) => match &n.repr {
                Repr::Small(v) => emit(out, &v.to_string())?,
                Repr::Big(bytes) => {
                    let mut s = String::from("0x");
                    for b in bytes.iter().rev() {
                        s.push_str(&format!("{b:02x}"));
                    }
                    emit(out, &s)?;
                }
                Repr::Cell(c) => {
                    if !in_tail {
                        emit(out, "[")?;
                        tasks.push(Task::Text("]"));
                    }
                    tasks.push(Task::Noun(&c.tail, true));
                    tasks.push(Task::Text(" "));
                    tasks.push(Task::Noun(&c.head, false));
                }
            },
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// jam

/// Appends bits least-significant first.
struct BitWriter {
    bytes: Vec<u8>,
    acc: u64,
    acc_bits: u32,
    len: u64,
}

impl BitWriter {
    fn new() -> Self {
        Self { bytes: Vec::new(), acc: 0, acc_bits: 0, len: 0 }
    }

    /// Writes the low `n` bits of `value`, `n <= 32`.
    fn bits32(&mut self, value: u64, n: u32) {
        debug_assert!(n <= 32);
        if n == 0 {
            return;
        }
        let masked = value & ((1u64 << n) - 1);
        self.acc |= masked << self.acc_bits;
        self.acc_bits += n;
        self.len += u64::from(n);
        while self.acc_bits >= 8 {
            self.bytes.push(self.acc as u8);
            self.acc >>= 8;
            self.acc_bits -= 8;
        }
    }

    /// Writes the low `n` bits of `value`, `n <= 64`.
    fn bits(&mut self, value: u64, n: u32) {
        if n > 32 {
            self.bits32(value, 32);
            self.bits32(value >> 32, n - 32);
        } else {
            self.bits32(value, n);
        }
    }

    fn zeros(&mut self, mut n: u64) {
        while n > 0 {
            let k = n.min(32);
            self.bits32(0, k as u32);
            n -= k;
        }
    }

    /// Writes the `n` low bits of the little-endian `bytes`.
    fn atom_bits(&mut self, bytes: &[u8], n: u64) {
        let mut left = n;
        for &b in bytes {
            if left == 0 {
                break;
            }
            let k = left.min(8);
            self.bits32(u64::from(b), k as u32);
            left -= k;
        }
        self.zeros(left);
    }

    fn finish(mut self) -> Vec<u8> {
        if self.acc_bits > 0 {
            self.bytes.push(self.acc as u8);
        }
        let len = self.bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        self.bytes.truncate(len);
        self.bytes
    }

    /// Hoon's `++mat`: a self-delimiting encoding of an atom.
    fn mat(&mut self, atom: &[u8]) {
        let b = bytes_bit_len(atom);
        if b == 0 {
            self.bits(1, 1);
            return;
        }
        let c = 64 - u64::from(b.leading_zeros());
        self.zeros(c);
        self.bits(1, 1);
        // The low c-1 bits of b (its top bit is implied).
        self.bits(b, (c - 1) as u32);
        self.atom_bits(atom, b);
    }
}

/// Urbit's `++jam`: serializes a noun to bits, as little-endian bytes with
/// no trailing zero byte (so `jam(&0)` is `[0x02]`).
///
/// Every subnoun equal to one already written is written as a
/// back-reference to the first one's bit position, unless it is an atom no
/// longer (in bits) than that position, exactly as Urbit does.
pub fn jam(noun: &Noun) -> Vec<u8> {
    let mut interner = Interner::default();
    interner.intern(noun);
    // Interned id -> bit position of its first occurrence.
    let mut seen: Vec<u64> = vec![u64::MAX; interner.next];
    let mut out = BitWriter::new();
    let mut stack: Vec<&Noun> = vec![noun];
    while let Some(n) = stack.pop() {
        let id = interner.id(n).unwrap_or(usize::MAX);
        if let Some(&pos) = seen.get(id).filter(|&&p| p != u64::MAX) {
            let pos_bytes = pos.to_le_bytes();
            match n.atom_view() {
                Some(atom) if atom.bit_len() <= bytes_bit_len(&pos_bytes) => {
                    out.bits(0, 1);
                    out.mat(atom.bytes());
                }
                _ => {
                    out.bits(0b11, 2);
                    out.mat(&pos_bytes);
                }
            }
            continue;
        }
        if let Some(slot) = seen.get_mut(id) {
            *slot = out.len;
        }
        match &n.repr {
            Repr::Cell(cell) => {
                out.bits(0b01, 2);
                stack.push(&cell.tail);
                stack.push(&cell.head);
            }
            _ => {
                out.bits(0, 1);
                if let Some(atom) = n.atom_view() {
                    out.mat(atom.bytes());
                }
            }
        }
    }
    out.finish()
}

// ---------------------------------------------------------------------------
// cue

/// Reads bits least-significant first; bits past the end read as 0, as in
/// Hoon's `cut`.
struct BitReader<'a> {
    bytes: &'a [u8],
    /// Number of significant bits (Hoon's `met 0`).
    len: u64,
}

impl BitReader<'_> {
    fn bit(&self, pos: u64) -> bool {
        if pos >= self.len {
            return false;
        }
        let byte = self.bytes.get((pos / 8) as usize).copied().unwrap_or(0);
        (byte >> (pos % 8)) & 1 == 1
    }

    /// The position of the first 1 bit at or after `pos`.
    fn next_one(&self, pos: u64) -> Option<u64> {
        let mut p = pos;
        while p < self.len && !p.is_multiple_of(8) {
            if self.bit(p) {
                return Some(p);
            }
            p += 1;
        }
        while p < self.len {
            let byte = self.bytes.get((p / 8) as usize).copied().unwrap_or(0);
            if byte != 0 {
                return Some(p + u64::from(byte.trailing_zeros()));
            }
            p += 8;
        }
        None
    }

    /// `n <= 64` bits at `pos` as a number.
    fn word(&self, pos: u64, n: u64) -> u64 {
        let mut value = 0u64;
        for i in 0..n.min(64) {
            if self.bit(pos.saturating_add(i)) {
                value |= 1 << i;
            }
        }
        value
    }

    /// `n` bits at `pos` as an atom (only the bits inside the input are
    /// materialized; the rest are zeros).
    fn atom(&self, pos: u64, n: u64) -> Noun {
        if pos >= self.len || n == 0 {
            return Noun::ZERO;
        }
        let n = n.min(self.len - pos);
        let mut out = vec![0u8; n.div_ceil(8) as usize];
        let shift = (pos % 8) as u32;
        let start = (pos / 8) as usize;
        for (i, dst) in out.iter_mut().enumerate() {
            let lo = self.bytes.get(start + i).copied().unwrap_or(0);
            let hi = self.bytes.get(start + i + 1).copied().unwrap_or(0);
            let word = u16::from(lo) | (u16::from(hi) << 8);
            *dst = (word >> shift) as u8;
        }
        let extra = (out.len() as u64) * 8 - n;
        if let Some(last) = out.last_mut() {
            *last &= 0xffu8 >> extra;
        }
        Noun::from_bytes(&out)
    }

    /// Hoon's `++rub`: decodes a `mat` at `pos`; returns (bits used, atom).
    /// The bit count saturates: a length too large to count means the value
    /// runs past the end of the input, where it reads as zeros.
    fn rub(&self, pos: u64) -> Result<(u64, Noun), String> {
        let one = self.next_one(pos).ok_or_else(|| format!("cue: length prefix at bit {pos} runs past the end"))?;
        let c = one - pos;
        if c == 0 {
            return Ok((1, Noun::ZERO));
        }
        let d = one + 1;
        let low_bits = c - 1;
        let value_pos = d.saturating_add(low_bits);
        if low_bits >= 64 {
            // e >= 2^64: longer than any input, so the whole rest of the
            // input is the value.
            return Ok((u64::MAX, self.atom(value_pos, u64::MAX)));
        }
        let e = (1u64 << low_bits).saturating_add(self.word(d, low_bits));
        let used = c.saturating_mul(2).saturating_add(e);
        Ok((used, self.atom(value_pos, e)))
    }
}

/// Urbit's `++cue`: deserializes [`jam`] output (little-endian bytes;
/// trailing zero bytes are ignored).
///
/// Malformed input is an `Err`, never a panic: a length prefix or a noun
/// starting past the end, or a back-reference to a position where no noun
/// has been completed. Bits after the noun are ignored, as in Urbit.
/// Back-references share the referenced noun, so memory is linear in the
/// input whatever the tree size of the result.
pub fn cue(bytes: &[u8]) -> Result<Noun, String> {
    let reader = BitReader { bytes, len: bytes_bit_len(bytes) };
    // Every noun begun, in order of its start position (so sorted): a
    // back-reference may only name one that is complete.
    let mut seen: Vec<(u64, Option<Noun>)> = Vec::new();
    enum Frame {
        Head { entry: usize },
        Tail { entry: usize, head: Noun },
    }
    let mut frames: Vec<Frame> = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        // Decode the noun at `cursor`: an atom, a back-reference, or the
        // start of a cell.
        let start = cursor;
        if start > reader.len {
            // The atom before it claimed more bits than there are (its
            // length saturates: the bit may be no real position).
            return Err(format!("cue: an atom's length runs past the end of the input ({} bits)", reader.len));
        }
        if start == reader.len {
            return Err(format!("cue: noun at bit {start} starts past the end of the input"));
        }
        let mut value = if !reader.bit(start) {
            let (used, atom) = reader.rub(start.saturating_add(1))?;
            cursor = start.saturating_add(1).saturating_add(used);
            seen.push((start, Some(atom.clone())));
            atom
        } else if !reader.bit(start.saturating_add(1)) {
            frames.push(Frame::Head { entry: seen.len() });
            seen.push((start, None));
            cursor = start.saturating_add(2);
            continue;
        } else {
            let (used, target) = reader.rub(start.saturating_add(2))?;
            cursor = start.saturating_add(2).saturating_add(used);
            let found = target.as_u64().and_then(|pos| {
                let i = seen.binary_search_by_key(&pos, |(p, _)| *p).ok()?;
                seen.get(i)?.1.as_ref()
            });
            match found {
                Some(noun) => noun.clone(),
                None => {
                    return Err(format!(
                        "cue: back-reference at bit {start} to {} where no noun was decoded",
                        target.to_string_limited(40)
                    ));
                }
            }
        };
        // Complete the cells waiting on `value`.
        loop {
            match frames.pop() {
                None => return Ok(value),
                Some(Frame::Head { entry }) => {
                    frames.push(Frame::Tail { entry, head: value });
                    break;
                }
                Some(Frame::Tail { entry, head }) => {
                    value = Noun::cell(head, value);
                    if let Some(slot) = seen.get_mut(entry) {
                        slot.1 = Some(value.clone());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The project's one seeded, version-stable generator.
    use executor_testkit::Rng;

    fn random_atom(rng: &mut Rng) -> Noun {
        match rng.below(4) {
            0 => Noun::atom(rng.below(4)),
            1 => Noun::atom(rng.next_u64() >> rng.below(64)),
            2 => {
                let len = rng.below(20) as usize;
                let bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
                Noun::from_bytes(&bytes)
            }
            _ => Noun::atom(u64::MAX - rng.below(3)),
        }
    }

    /// A random noun with deliberate sharing and repeated equal subnouns.
    fn random_noun(rng: &mut Rng, size: usize) -> Noun {
        let mut pool: Vec<Noun> = Vec::new();
        for _ in 0..size.max(1) {
            let n = match rng.below(5) {
                0 | 1 => random_atom(rng),
                _ if pool.is_empty() => random_atom(rng),
                2 => {
                    // Rebuild an equal copy of an existing noun (no sharing).
                    let i = rng.below(pool.len() as u64) as usize;
                    cue(&jam(&pool[i])).unwrap()
                }
                _ => {
                    let i = rng.below(pool.len() as u64) as usize;
                    let j = rng.below(pool.len() as u64) as usize;
                    Noun::cell(pool[i].clone(), pool[j].clone())
                }
            };
            pool.push(n);
        }
        pool.pop().unwrap()
    }

    #[test]
    fn known_vectors() {
        // Checked by hand against ++jam and ++mat in Urbit's hoon.hoon
        // (urbit/urbit, pkg/arvo/sys/hoon.hoon) and against an independent
        // transcription of them; 1, [1 1], [1 2] and [~ 19] are also the
        // examples of Urbit's ++jam documentation (12, 817, 4.657, 39.689).
        assert_eq!(jam(&Noun::atom(0)), vec![0x02]);
        assert_eq!(jam(&Noun::atom(1)), vec![0x0c]);
        assert_eq!(jam(&Noun::atom(2)), vec![0x48]);
        assert_eq!(jam(&noun!([0 0])), vec![0x29]);
        assert_eq!(jam(&noun!([1 2])), 4657u64.to_le_bytes()[..2].to_vec());
        // The second 1 is written as an atom, being no longer than its
        // back-reference would be.
        assert_eq!(jam(&noun!([1 1])), 817u64.to_le_bytes()[..2].to_vec());
        assert_eq!(jam(&noun!([0 19])), 39689u64.to_le_bytes()[..2].to_vec());
        // A repeated cell is a back-reference: [[1 2] [1 2]].
        let pair = noun!([1 2]);
        let twice = jam(&noun!([(&pair)(&pair)]));
        assert_eq!(cue(&twice).unwrap(), noun!([[1 2] 1 2]));
        assert!(twice.len() < 2 * jam(&pair).len());
        for (n, bytes) in [
            (Noun::atom(0), vec![0x02]),
            (Noun::atom(1), vec![0x0c]),
            (Noun::atom(2), vec![0x48]),
            (noun!([0 0]), vec![0x29]),
            (noun!([1 2]), vec![0x31, 0x12]),
        ] {
            assert_eq!(cue(&bytes).unwrap(), n);
        }
    }

    #[test]
    fn atoms_and_bytes() {
        assert!(Noun::cord("a").is_atom_eq(97));
        assert_eq!(Noun::from_bytes(&[0x61, 0, 0]), Noun::atom(97));
        assert_eq!(Noun::from_bytes(&[]), Noun::ZERO);
        assert_eq!(Noun::ZERO.atom_bytes().unwrap(), Vec::<u8>::new());
        let big = Noun::from_bytes(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 0]);
        assert_eq!(big.atom_bytes().unwrap(), vec![1, 2, 3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(big.bit_len(), Some(68));
        assert_eq!(Noun::atom(u64::MAX).increment().unwrap().atom_bytes().unwrap(), {
            let mut v = vec![0; 8];
            v.push(1);
            v
        });
        let all_ff = Noun::from_bytes(&[0xff; 12]);
        let mut expect = vec![0; 12];
        expect.push(1);
        assert_eq!(all_ff.increment().unwrap().atom_bytes().unwrap(), expect);
        assert_eq!(Noun::atom(41).increment(), Some(Noun::atom(42)));
        assert_eq!(noun!([1 2]).increment(), None);
        assert_eq!(Noun::atom(5).bit_len(), Some(3));
        assert_eq!(noun!([1 2 3]).to_string(), "[1 2 3]");
        assert_eq!(noun!([[1 2] 3]).to_string(), "[[1 2] 3]");
        assert_eq!(Noun::list([Noun::atom(1), Noun::atom(2)]).to_string(), "[1 2 0]");
        assert_eq!(big.to_string(), "0x090807060504030201");
        assert_eq!(noun!([1 2 3 4 5]).to_string_limited(5), "[1 2 …");
    }

    #[test]
    fn round_trip_random() {
        let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
        for round in 0..2000 {
            let n = random_noun(&mut rng, 1 + round % 60);
            let bytes = jam(&n);
            assert_ne!(bytes.last(), Some(&0));
            let back = cue(&bytes).unwrap();
            assert_eq!(back, n);
            // jam is canonical: re-jamming the decoded noun gives the same bits.
            assert_eq!(jam(&back), bytes);
        }
    }

    #[test]
    fn cue_never_panics_on_random_bytes() {
        let mut rng = Rng::new(12345);
        let mut ok = 0;
        for _ in 0..20_000 {
            let len = rng.below(24) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            if let Ok(n) = cue(&bytes) {
                ok += 1;
                // Whatever decodes re-encodes to something that decodes equal.
                assert_eq!(cue(&jam(&n)).unwrap(), n);
            }
        }
        assert!(ok > 0);
        // Mutations of valid encodings.
        for _ in 0..5_000 {
            let n = random_noun(&mut rng, 20);
            let mut bytes = jam(&n);
            let flips = 1 + rng.below(3);
            for _ in 0..flips {
                if bytes.is_empty() {
                    break;
                }
                let i = rng.below(bytes.len() as u64) as usize;
                bytes[i] ^= 1 << rng.below(8);
            }
            if rng.below(4) == 0 {
                let cut = rng.below(bytes.len() as u64 + 1) as usize;
                bytes.truncate(cut);
            }
            let _ = cue(&bytes);
        }
    }

    #[test]
    fn cue_rejects_malformed() {
        assert!(cue(&[]).is_err());
        assert!(cue(&[0]).is_err());
        // Cell whose head runs past the end.
        assert!(cue(&[0b01]).is_err());
        // Back-reference to position 0 before anything was decoded: bits
        // 1,1 then mat(0) = 1 -> 0b111.
        assert!(cue(&[0b111]).is_err());
        // A length prefix with no terminating 1 bit.
        assert!(cue(&[0b11]).is_err());
        // A length prefix running into the stray tag of a cell.
        assert!(cue(&[0b1101]).is_err());
        // A cell whose head is an atom of 2^64 bits or more: its length
        // saturates, and the error names no bit past the input's end.
        let mut huge = vec![0x71];
        huge.extend([0; 19]);
        huge.extend([0xc0, 0xa7, 0x4b, 0xc3, 0x2b, 0x0b]);
        let error = cue(&huge).unwrap_err();
        assert_eq!(error, "cue: an atom's length runs past the end of the input (204 bits)");
    }

    #[test]
    fn cue_accepts_what_urbit_accepts() {
        // Trailing bits after the noun are ignored: jam(1) = 0b1100, plus a
        // stray high bit.
        assert_eq!(cue(&[0b1000_1100]).unwrap(), Noun::atom(1));
        // Trailing zero bytes are not significant.
        assert_eq!(cue(&[0x0c, 0, 0]).unwrap(), Noun::atom(1));
        // An atom whose length runs past the end reads zeros: tag 0, mat
        // with c = 2 (bits 0 0 1), low bit of b = 1 -> b = 3, then value bits
        // 1 (only one present): atom 1.
        // bits: 0 | 0 0 1 | 1 | 1  -> 0b111000 = 0x38
        assert_eq!(cue(&[0x38]).unwrap(), Noun::atom(1));
        // A 62-bit length prefix whose value lies wholly past the end: 0.
        assert_eq!(cue(&[0, 0, 0, 0, 0, 0, 0, 0x80]).unwrap(), Noun::ZERO);
    }

    fn right_deep(depth: usize) -> Noun {
        let mut n = Noun::atom(7);
        for i in 0..depth {
            n = Noun::cell(Noun::atom(i as u64 % 3), n);
        }
        n
    }

    fn left_deep(depth: usize) -> Noun {
        let mut n = Noun::atom(7);
        for i in 0..depth {
            n = Noun::cell(n, Noun::atom(i as u64 % 3));
        }
        n
    }

    #[test]
    fn deep_nouns_do_not_overflow_the_stack() {
        for n in [right_deep(1_000_000), left_deep(1_000_000)] {
            let bytes = jam(&n);
            let back = cue(&bytes).unwrap();
            assert!(back == n);
            let copy = back.clone();
            assert!(copy == back);
            let s = n.to_string_limited(50);
            assert!(s.ends_with('…'));
            drop(back);
            drop(copy);
            drop(n);
        }
    }

    #[test]
    fn sharing_bomb_stays_linear() {
        // x_k = [x_{k-1} x_{k-1}]: tree size 2^k, DAG size k.
        let mut x = Noun::atom(1);
        let mut y = Noun::atom(1);
        for _ in 0..200 {
            x = Noun::cell(x.clone(), x);
            y = Noun::cell(y.clone(), y);
        }
        // Structurally equal, no pointer shared: still linear.
        assert!(x == y);
        let z = Noun::cell(x.clone(), Noun::atom(2));
        assert!(z != Noun::cell(y.clone(), Noun::atom(3)));
        let bytes = jam(&x);
        assert!(bytes.len() < 4000, "{}", bytes.len());
        let back = cue(&bytes).unwrap();
        assert!(back == x);
        assert_eq!(jam(&back), bytes);
    }

    #[test]
    fn noun_macro() {
        let a = Noun::atom(5);
        assert_eq!(noun!([a [0 1] (Noun::atom(9))]).to_string(), "[5 [0 1] 9]");
        assert_eq!(noun!(3), Noun::atom(3));
        assert_eq!(noun!([1 [2 3] [4 5]]).to_string(), "[1 [2 3] 4 5]");
    }
}
