//! A Nock 4K evaluator with gas, on an explicit work stack.
//!
//! [`nock`] computes `*[subject formula]` by the Nock 4K rules (opcodes
//! 0–11 and autocons). Opcode 12 (scry) always fails with
//! [`NockError::Scry`]: nspec's Nockma reads scry values from a `Storage`
//! that its runnable sets to `emptyStorage`, and the executor contract gives
//! a guest no way to read storage other than by a step's read requests.
//!
//! Nothing recurses on the host stack: every pending reduction is an entry
//! of an explicit work stack, and every reduction costs at least one unit of
//! gas, so any formula, however deep or looping, ends in a value, a crash
//! ([`NockError::Crash`]) or [`NockError::OutOfGas`].

use std::fmt;

use executor_noun::Noun;

/// The price list.
///
/// Every reduction of nspec's Nockma (`notes/nockma.juvix.md`,
/// `getGasCost`) costs what nspec's `nock` charges for it, including the
/// inner reductions nspec performs for opcodes 6, 9, 10 and 11, **except**
/// that reductions nspec prices at 0 (opcodes 1, 2 and 11, and autocons)
/// cost 1 here: an executable arrives `jam`med with back-references, so a
/// formula of a few bytes can have an exponential number of cells, and free
/// reductions would make its evaluation unmetered.
///
/// | formula | gas (besides evaluating its sub-formulas) |
/// |---|---|
/// | autocons `[[b c] d]` | 1 |
/// | `[0 b]` (axis `b`, `L` = bits of `b`) | 1 + 2·max(0, L−2) |
/// | `[1 b]` | 1 |
/// | `[2 b c]` | 1 |
/// | `[3 b]` | 1 |
/// | `[4 b]` | 1 |
/// | `[5 b c]` | 2 |
/// | `[6 b c d]` | 7 (3, plus the two increments and two axis lookups of 4K's reduction) |
/// | `[7 b c]` | 2 |
/// | `[8 b c]` | 2 |
/// | `[9 b c]` (`L` = bits of `b`) | 6 + 2·max(0, L−2) (3, plus 4K's `[2 [0 1] 0 b]`) |
/// | `[10 [b c] d]` (`L` = bits of `b`) | 1 + L·(L−1) (nspec's `#`, which re-walks from the root at each level) |
/// | `[11 [b c] d]` | 2 (1, plus 4K's `[0 3]`) |
/// | `[11 b c]` | 1 |
/// | `[12 …]` | fails ([`NockError::Scry`]) |
pub mod gas {
    /// Autocons `[[b c] d]` (nspec: 0).
    pub const AUTOCONS: u64 = 1;
    /// Opcode 0, and each inner `[0 b]` of opcodes 6, 9 and 11 (nspec:
    /// `Slash`); plus [`axis_walk`].
    pub const SLASH: u64 = 1;
    /// Opcode 1 (nspec: 0).
    pub const CONSTANT: u64 = 1;
    /// Opcode 2, and the inner `[2 …]` of opcode 9 (nspec: 0).
    pub const APPLY: u64 = 1;
    /// Opcode 3.
    pub const CELL_TEST: u64 = 1;
    /// Opcode 4, and each inner increment of opcode 6.
    pub const INCREMENT: u64 = 1;
    /// Opcode 5.
    pub const EQUAL: u64 = 2;
    /// Opcode 6 itself (its inner reductions are charged too).
    pub const IF: u64 = 3;
    /// Opcode 7.
    pub const COMPOSE: u64 = 2;
    /// Opcode 8.
    pub const EXTEND: u64 = 2;
    /// Opcode 9 itself (its inner reductions are charged too).
    pub const INVOKE: u64 = 3;
    /// Opcode 10 itself; plus [`edit_walk`].
    pub const POUND: u64 = 1;
    /// Opcode 11 (nspec: 0); a dynamic hint also pays one [`SLASH`].
    pub const HINT: u64 = 1;

    /// What nspec's `slash` charges to walk to an axis of `bits` bits:
    /// two units per level below the first (`/[(a+a) b] -> /[2 /[a b]]`
    /// costs a `Slash` for each of its two lookups).
    pub fn axis_walk(bits: u64) -> u64 {
        bits.saturating_sub(2).saturating_mul(2)
    }

    /// What nspec's `pound` charges to edit an axis of `bits` bits: at each
    /// of the `bits − 1` levels, a `Slash`, the sibling's [`axis_walk`] and a
    /// `Pound`; in total `bits · (bits − 1)`.
    pub fn edit_walk(bits: u64) -> u64 {
        bits.saturating_mul(bits.saturating_sub(1))
    }

    /// Total for opcode 6 besides its sub-formulas.
    pub const IF_TOTAL: u64 = IF + 2 * INCREMENT + 2 * SLASH;

    /// Total for opcode 9 with an axis of `bits` bits, besides its
    /// sub-formulas.
    pub fn invoke_total(bits: u64) -> u64 {
        (INVOKE + APPLY + 2 * SLASH).saturating_add(axis_walk(bits))
    }
}

/// Why an evaluation stopped without a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NockError {
    /// A reduction cost more than the gas left.
    OutOfGas {
        /// The cost of the reduction that could not be paid.
        needed: u64,
        /// The gas left before it.
        left: u64,
    },
    /// Nock crashed (the 4K spec's infinite loops `*a`, `/a`, `+[a b]`,
    /// `#a`): an invalid formula, axis or operand. The text names it.
    Crash(String),
    /// Opcode 12 (scry): no storage is available to this guest.
    Scry,
}

impl fmt::Display for NockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NockError::OutOfGas { needed, left } => {
                write!(f, "out of gas: a reduction costs {needed} and {left} is left")
            }
            NockError::Crash(what) => write!(f, "nock crash: {what}"),
            NockError::Scry => f.write_str(
                "scry (opcode 12) failed: this guest has no storage to read (nspec's runnable \
                 uses an empty storage); read keys with step requests instead",
            ),
        }
    }
}

impl std::error::Error for NockError {}

fn crash(what: impl Into<String>) -> NockError {
    NockError::Crash(what.into())
}

/// How much of a noun an error message shows.
const SHOW: usize = 120;

fn show(noun: &Noun) -> String {
    noun.to_string_limited(SHOW)
}

fn charge(gas: &mut u64, cost: u64) -> Result<(), NockError> {
    if cost > *gas {
        return Err(NockError::OutOfGas { needed: cost, left: *gas });
    }
    *gas -= cost;
    Ok(())
}

/// Pending work.
enum Work {
    /// Reduce `*[subject formula]` and push the product.
    Eval(Noun, Noun),
    /// Pop tail and head, push the cell (autocons).
    Cons,
    /// Pop formula and subject, reduce them (opcode 2).
    Apply,
    /// Pop, push 0 for a cell and 1 for an atom (opcode 3).
    CellTest,
    /// Pop an atom, push it plus one (opcode 4).
    Increment,
    /// Pop two, push 0 if equal, 1 if not (opcode 5).
    Equal,
    /// Pop the condition, continue with `yes` (0) or `no` (1) (opcode 6).
    Branch { subject: Noun, yes: Noun, no: Noun },
    /// Pop a subject, reduce it with the formula (opcode 7).
    Compose(Noun),
    /// Pop a value, reduce `[value subject]` with the formula (opcode 8).
    Push { subject: Noun, formula: Noun },
    /// Pop a core, reduce it with the arm at the axis (opcode 9).
    Invoke(Noun),
    /// Pop the target and the new value, edit at the axis (opcode 10).
    Edit(Noun),
    /// Pop the product and the hint, push the product (opcode 11).
    Hint,
}

/// Reduces `*[subject formula]` by Nock 4K, charging [`gas`] costs against
/// `gas` (which is left at what remains, also on error).
pub fn nock(subject: &Noun, formula: &Noun, gas: &mut u64) -> Result<Noun, NockError> {
    let mut work = vec![Work::Eval(subject.clone(), formula.clone())];
    let mut values: Vec<Noun> = Vec::new();
    while let Some(item) = work.pop() {
        match item {
            Work::Eval(subject, formula) => {
                reduce(subject, &formula, gas, &mut work, &mut values)?;
            }
            Work::Cons => {
                let tail = pop(&mut values)?;
                let head = pop(&mut values)?;
                values.push(Noun::cell(head, tail));
            }
            Work::Apply => {
                let formula = pop(&mut values)?;
                let subject = pop(&mut values)?;
                work.push(Work::Eval(subject, formula));
            }
            Work::CellTest => {
                let product = pop(&mut values)?;
                values.push(Noun::atom(if product.is_cell() { 0 } else { 1 }));
            }
            Work::Increment => {
                let product = pop(&mut values)?;
                let next = product
                    .increment()
                    .ok_or_else(|| crash(format!("opcode 4: cannot increment a cell: {}", show(&product))))?;
                values.push(next);
            }
            Work::Equal => {
                let right = pop(&mut values)?;
                let left = pop(&mut values)?;
                values.push(Noun::atom(if left == right { 0 } else { 1 }));
            }
            Work::Branch { subject, yes, no } => {
                let condition = pop(&mut values)?;
                // 4K: *[a *[[c d] 0 *[[2 3] 0 *[a 4 4 b]]]]
                let branch = if condition.is_atom_eq(0) {
                    yes
                } else if condition.is_atom_eq(1) {
                    no
                } else if condition.is_cell() {
                    return Err(crash(format!("opcode 6: condition is a cell, not 0 or 1: {}", show(&condition))));
                } else {
                    return Err(crash(format!("opcode 6: condition is {}, not 0 or 1", show(&condition))));
                };
                charge(gas, 2 * gas::SLASH)?;
                work.push(Work::Eval(subject, branch));
            }
            Work::Compose(formula) => {
                let subject = pop(&mut values)?;
                work.push(Work::Eval(subject, formula));
            }
            Work::Push { subject, formula } => {
                let value = pop(&mut values)?;
                work.push(Work::Eval(Noun::cell(value, subject), formula));
            }
            Work::Invoke(axis) => {
                let core = pop(&mut values)?;
                let bits = axis.bit_len().unwrap_or(0);
                charge(gas, gas::invoke_total(bits) - gas::INVOKE)?;
                let arm = slot(&axis, &core).map_err(|e| in_op(9, e))?;
                work.push(Work::Eval(core, arm));
            }
            Work::Edit(axis) => {
                let target = pop(&mut values)?;
                let value = pop(&mut values)?;
                let bits = axis.bit_len().unwrap_or(0);
                charge(gas, gas::edit_walk(bits))?;
                values.push(edit(&axis, value, &target)?);
            }
            Work::Hint => {
                let product = pop(&mut values)?;
                let _hint = pop(&mut values)?;
                charge(gas, gas::SLASH)?;
                values.push(product);
            }
        }
    }
    let result = pop(&mut values)?;
    if values.is_empty() { Ok(result) } else { Err(crash("internal: evaluator left values on its stack")) }
}

fn pop(values: &mut Vec<Noun>) -> Result<Noun, NockError> {
    values.pop().ok_or_else(|| crash("internal: evaluator value stack underflow"))
}

fn in_op(op: u8, e: NockError) -> NockError {
    match e {
        NockError::Crash(what) => NockError::Crash(format!("opcode {op}: {what}")),
        other => other,
    }
}

/// Splits a cell operand, or names what opcode `op` expected.
fn pair<'a>(args: &'a Noun, op: u8, shape: &str) -> Result<(&'a Noun, &'a Noun), NockError> {
    args.as_cell().ok_or_else(|| crash(format!("opcode {op} needs {shape} after it, got the atom {}", show(args))))
}

fn atom_operand(noun: &Noun, op: u8, what: &str) -> Result<(), NockError> {
    if noun.is_cell() {
        return Err(crash(format!("opcode {op}: {what} must be an atom, got {}", show(noun))));
    }
    Ok(())
}

/// One reduction of `*[subject formula]`: charges it and schedules its
/// parts.
fn reduce(
    subject: Noun,
    formula: &Noun,
    gas: &mut u64,
    work: &mut Vec<Work>,
    values: &mut Vec<Noun>,
) -> Result<(), NockError> {
    let Some((op, args)) = formula.as_cell() else {
        return Err(crash(format!("formula is an atom: {}", show(formula))));
    };
    if op.is_cell() {
        // *[a [b c] d] -> [*[a b c] *[a d]]
        charge(gas, gas::AUTOCONS)?;
        work.push(Work::Cons);
        work.push(Work::Eval(subject.clone(), args.clone()));
        work.push(Work::Eval(subject, op.clone()));
        return Ok(());
    }
    let code = match op.as_u64() {
        Some(code @ 0..=12) => code as u8,
        _ => return Err(crash(format!("unknown opcode {} in formula {}", show(op), show(formula)))),
    };
    match code {
        0 => {
            // *[a 0 b] -> /[b a]
            atom_operand(args, 0, "the axis")?;
            let bits = args.bit_len().unwrap_or(0);
            charge(gas, gas::SLASH.saturating_add(gas::axis_walk(bits)))?;
            values.push(slot(args, &subject).map_err(|e| in_op(0, e))?);
        }
        1 => {
            // *[a 1 b] -> b
            charge(gas, gas::CONSTANT)?;
            values.push(args.clone());
        }
        2 => {
            // *[a 2 b c] -> *[*[a b] *[a c]]
            let (b, c) = pair(args, 2, "[b c]")?;
            charge(gas, gas::APPLY)?;
            work.push(Work::Apply);
            work.push(Work::Eval(subject.clone(), c.clone()));
            work.push(Work::Eval(subject, b.clone()));
        }
        3 => {
            // *[a 3 b] -> ?*[a b]
            charge(gas, gas::CELL_TEST)?;
            work.push(Work::CellTest);
            work.push(Work::Eval(subject, args.clone()));
        }
        4 => {
            // *[a 4 b] -> +*[a b]
            charge(gas, gas::INCREMENT)?;
            work.push(Work::Increment);
            work.push(Work::Eval(subject, args.clone()));
        }
        5 => {
            // *[a 5 b c] -> =[*[a b] *[a c]]
            let (b, c) = pair(args, 5, "[b c]")?;
            charge(gas, gas::EQUAL)?;
            work.push(Work::Equal);
            work.push(Work::Eval(subject.clone(), c.clone()));
            work.push(Work::Eval(subject, b.clone()));
        }
        6 => {
            // *[a 6 b c d] -> *[a *[[c d] 0 *[[2 3] 0 *[a 4 4 b]]]]
            let (b, cd) = pair(args, 6, "[b c d]")?;
            let (c, d) = pair(cd, 6, "[b c d]")?;
            charge(gas, gas::IF + 2 * gas::INCREMENT)?;
            work.push(Work::Branch { subject: subject.clone(), yes: c.clone(), no: d.clone() });
            work.push(Work::Eval(subject, b.clone()));
        }
        7 => {
            // *[a 7 b c] -> *[*[a b] c]
            let (b, c) = pair(args, 7, "[b c]")?;
            charge(gas, gas::COMPOSE)?;
            work.push(Work::Compose(c.clone()));
            work.push(Work::Eval(subject, b.clone()));
        }
        8 => {
            // *[a 8 b c] -> *[[*[a b] a] c]
            let (b, c) = pair(args, 8, "[b c]")?;
            charge(gas, gas::EXTEND)?;
            work.push(Work::Push { subject: subject.clone(), formula: c.clone() });
            work.push(Work::Eval(subject, b.clone()));
        }
        9 => {
            // *[a 9 b c] -> *[*[a c] 2 [0 1] 0 b]
            let (b, c) = pair(args, 9, "[b c]")?;
            atom_operand(b, 9, "the arm axis")?;
            charge(gas, gas::INVOKE)?;
            work.push(Work::Invoke(b.clone()));
            work.push(Work::Eval(subject, c.clone()));
        }
        10 => {
            // *[a 10 [b c] d] -> #[b *[a c] *[a d]]
            let (bc, d) = pair(args, 10, "[[b c] d]")?;
            let (b, c) = bc.as_cell().ok_or_else(|| crash(format!("opcode 10 needs [[b c] d], got {}", show(args))))?;
            atom_operand(b, 10, "the axis")?;
            charge(gas, gas::POUND)?;
            work.push(Work::Edit(b.clone()));
            work.push(Work::Eval(subject.clone(), d.clone()));
            work.push(Work::Eval(subject, c.clone()));
        }
        11 => {
            let (hint, d) = pair(args, 11, "[b c]")?;
            charge(gas, gas::HINT)?;
            match hint.as_cell() {
                Some((_tag, c)) => {
                    // *[a 11 [b c] d] -> *[[*[a c] *[a d]] 0 3]
                    work.push(Work::Hint);
                    work.push(Work::Eval(subject.clone(), d.clone()));
                    work.push(Work::Eval(subject, c.clone()));
                }
                None => {
                    // *[a 11 b c] -> *[a c]
                    work.push(Work::Eval(subject, d.clone()));
                }
            }
        }
        _ => return Err(NockError::Scry),
    }
    Ok(())
}

/// The bits of `axis` below its leading 1, most significant first: the
/// path from the root (0 = head, 1 = tail).
fn axis_path(axis: &Noun) -> Result<(Vec<u8>, u64), NockError> {
    let bytes = axis.atom_bytes().ok_or_else(|| crash("an axis must be an atom"))?;
    let bits = axis.bit_len().unwrap_or(0);
    if bits == 0 {
        return Err(crash("axis 0 does not exist"));
    }
    Ok((bytes, bits))
}

fn path_bit(bytes: &[u8], i: u64) -> bool {
    let byte = bytes.get((i / 8) as usize).copied().unwrap_or(0);
    (byte >> (i % 8)) & 1 == 1
}

/// `/[axis noun]`.
pub fn slot(axis: &Noun, noun: &Noun) -> Result<Noun, NockError> {
    let (bytes, bits) = axis_path(axis)?;
    let mut current = noun;
    for i in (0..bits - 1).rev() {
        let (head, tail) = current
            .as_cell()
            .ok_or_else(|| crash(format!("axis {} is not in the subject {}", show(axis), show(noun))))?;
        current = if path_bit(&bytes, i) { tail } else { head };
    }
    Ok(current.clone())
}

/// `#[axis value target]`: `target` with the noun at `axis` replaced.
pub fn edit(axis: &Noun, value: Noun, target: &Noun) -> Result<Noun, NockError> {
    let (bytes, bits) = axis_path(axis).map_err(|e| in_op(10, e))?;
    let mut path: Vec<(bool, Noun)> = Vec::new();
    let mut current = target;
    for i in (0..bits - 1).rev() {
        let (head, tail) = current
            .as_cell()
            .ok_or_else(|| crash(format!("opcode 10: axis {} is not in the target {}", show(axis), show(target))))?;
        if path_bit(&bytes, i) {
            path.push((true, head.clone()));
            current = tail;
        } else {
            path.push((false, tail.clone()));
            current = head;
        }
    }
    let mut acc = value;
    while let Some((went_tail, sibling)) = path.pop() {
        acc = if went_tail { Noun::cell(sibling, acc) } else { Noun::cell(acc, sibling) };
    }
    Ok(acc)
}
