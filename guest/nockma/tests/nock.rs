//! The Nock 4K evaluator: every rule, crashes, deep and hostile formulas,
//! and exact gas, checked against a literal transcription of nspec's
//! recursive `nock` (with our price changes).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use executor_noun::noun;
use executor_noun::{Noun, cue, jam};
use nockma_guest::{NockError, gas, nock};

fn n(s: u64) -> Noun {
    Noun::atom(s)
}

/// Evaluates with a large budget; returns (product, gas used).
fn run(subject: &Noun, formula: &Noun) -> Result<(Noun, u64), NockError> {
    let budget = 1_000_000_000;
    let mut left = budget;
    nock(subject, formula, &mut left).map(|p| (p, budget - left))
}

fn eval(subject: Noun, formula: Noun) -> Noun {
    run(&subject, &formula).unwrap().0
}

fn crash_text(subject: Noun, formula: Noun) -> String {
    match run(&subject, &formula) {
        Err(NockError::Crash(what)) => what,
        other => panic!("expected a crash, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// A reference: nspec's `nock`, `slash` and `pound` transcribed literally
// (recursive, charging where nspec's code calls `consume`), with the two
// changes this guest makes: zero-priced reductions cost 1, and opcode 3
// follows Nock 4K. Small inputs only.

struct Reference {
    gas: u64,
}

impl Reference {
    fn consume(&mut self, cost: u64) -> Result<(), ()> {
        if cost > self.gas {
            return Err(());
        }
        self.gas -= cost;
        Ok(())
    }

    fn slash(&mut self, x: u64, s: &Noun) -> Result<Noun, ()> {
        match x {
            0 => Err(()),
            1 => Ok(s.clone()),
            2 => s.head().cloned().ok_or(()),
            3 => s.tail().cloned().ok_or(()),
            _ => {
                self.consume(1)?;
                let r = self.slash(x / 2, s)?;
                self.consume(1)?;
                self.slash(2 + x % 2, &r)
            }
        }
    }

    fn pound(&mut self, x: u64, b: Noun, c: &Noun) -> Result<Noun, ()> {
        match x {
            0 => Err(()),
            1 => Ok(b),
            _ => {
                if c.is_atom() {
                    return Err(());
                }
                self.consume(1)?;
                let sibling = self.slash(x ^ 1, c)?;
                self.consume(1)?;
                let b = if x.is_multiple_of(2) { Noun::cell(b, sibling) } else { Noun::cell(sibling, b) };
                self.pound(x / 2, b, c)
            }
        }
    }

    fn nock(&mut self, a: &Noun, f: &Noun) -> Result<Noun, ()> {
        let (op, rest) = f.as_cell().ok_or(())?;
        if let Some((b, c)) = op.as_cell() {
            self.consume(1)?; // autocons: nspec 0
            let r1 = self.nock(a, &Noun::cell(b.clone(), c.clone()))?;
            let r2 = self.nock(a, rest)?;
            return Ok(Noun::cell(r1, r2));
        }
        let code = op.as_u64().ok_or(())?;
        let cost = match code {
            0 => 1,
            1 => 1, // nspec 0
            2 => 1, // nspec 0
            3 | 4 => 1,
            5 => 2,
            6 => 3,
            7 | 8 => 2,
            9 => 3,
            10 => 1,
            11 => 1, // nspec 0
            _ => return Err(()),
        };
        self.consume(cost)?;
        let pair = |x: &Noun| x.as_cell().map(|(h, t)| (h.clone(), t.clone())).ok_or(());
        match code {
            0 => self.slash(rest.as_u64().ok_or(())?, a),
            1 => Ok(rest.clone()),
            2 => {
                let (b, c) = pair(rest)?;
                let r1 = self.nock(a, &b)?;
                let r2 = self.nock(a, &c)?;
                self.nock(&r1, &r2)
            }
            3 => Ok(n(if self.nock(a, rest)?.is_cell() { 0 } else { 1 })),
            4 => self.nock(a, rest)?.increment().ok_or(()),
            5 => {
                let (b, c) = pair(rest)?;
                let r1 = self.nock(a, &b)?;
                let r2 = self.nock(a, &c)?;
                Ok(n(if r1 == r2 { 0 } else { 1 }))
            }
            6 => {
                let (b, cd) = pair(rest)?;
                let (c, d) = pair(&cd)?;
                let r1 = self.nock(a, &noun!([4 4 b]))?;
                let r2 = self.nock(&noun!([2 3]), &noun!([0 r1]))?;
                let r3 = self.nock(&noun!([c d]), &noun!([0 r2]))?;
                self.nock(a, &r3)
            }
            7 => {
                let (b, c) = pair(rest)?;
                let r = self.nock(a, &b)?;
                self.nock(&r, &c)
            }
            8 => {
                let (b, c) = pair(rest)?;
                let r = self.nock(a, &b)?;
                self.nock(&Noun::cell(r, a.clone()), &c)
            }
            9 => {
                let (b, c) = pair(rest)?;
                let core = self.nock(a, &c)?;
                self.nock(&core, &noun!([2 [0 1] 0 b]))
            }
            10 => {
                let (bc, d) = pair(rest)?;
                let (b, c) = pair(&bc)?;
                let r1 = self.nock(a, &c)?;
                let r2 = self.nock(a, &d)?;
                self.pound(b.as_u64().ok_or(())?, r1, &r2)
            }
            _ => {
                let (b, d) = pair(rest)?;
                match b.as_cell() {
                    Some((_, c)) => {
                        let r1 = self.nock(a, c)?;
                        let r2 = self.nock(a, &d)?;
                        self.nock(&Noun::cell(r1, r2), &noun!([0 3]))
                    }
                    None => self.nock(a, &d),
                }
            }
        }
    }
}

fn reference(subject: &Noun, formula: &Noun, budget: u64) -> Result<(Noun, u64), ()> {
    let mut r = Reference { gas: budget };
    let product = r.nock(subject, formula)?;
    Ok((product, budget - r.gas))
}

/// Checks the evaluator against the reference: same product and gas, and
/// the exact budget succeeds while one less fails.
fn check_against_reference(subject: &Noun, formula: &Noun) -> Option<u64> {
    let ours = run(subject, formula);
    let theirs = reference(subject, formula, 1_000_000);
    match (&ours, &theirs) {
        (Ok((p, g)), Ok((q, h))) => {
            assert_eq!(p, q, "product of {formula} on {subject}");
            assert_eq!(g, h, "gas of {formula} on {subject}");
            let mut exact = *g;
            assert_eq!(nock(subject, formula, &mut exact).as_ref(), Ok(p));
            assert_eq!(exact, 0);
            if *g > 0 {
                let mut short = g - 1;
                assert!(matches!(nock(subject, formula, &mut short), Err(NockError::OutOfGas { .. })));
            }
            Some(*g)
        }
        (Err(_), Err(())) => None,
        _ => panic!("{formula} on {subject}: ours {ours:?}, reference {theirs:?}"),
    }
}

/// The 4K docs' decrement: `[8 [1 0] 8 [1 6 [5 [0 7] 4 0 6] [0 6] 9 2 [0 2] [4 0 6] 0 7] 9 2 0 1]`.
fn decrement() -> Noun {
    noun!([8 [1 0] 8 [1 6 [5 [0 7] 4 0 6] [0 6] 9 2 [0 2] [4 0 6] 0 7] 9 2 0 1])
}

// ---------------------------------------------------------------------------
// The rules

#[test]
fn rule_0_slot() {
    let s = noun!([[4 5] [6 14 15]]);
    assert_eq!(eval(s.clone(), noun!([0 1])), s);
    assert_eq!(eval(s.clone(), noun!([0 2])), noun!([4 5]));
    assert_eq!(eval(s.clone(), noun!([0 7])), noun!([14 15]));
    assert_eq!(eval(s.clone(), noun!([0 5])), n(5));
    assert_eq!(eval(s.clone(), noun!([0 14])), n(14));
    assert!(crash_text(s.clone(), noun!([0 13])).contains("axis 13 is not in the subject"));
    assert!(crash_text(s.clone(), noun!([0 0])).contains("axis 0"));
    assert!(crash_text(s.clone(), noun!([0 8])).contains("axis 8 is not in the subject"));
    assert!(crash_text(s, noun!([0 [1 2]])).contains("axis must be an atom"));
}

#[test]
fn rule_1_constant() {
    assert_eq!(eval(n(42), noun!([1 153 218])), noun!([153 218]));
    assert_eq!(eval(n(42), noun!([1 0])), n(0));
}

#[test]
fn rule_2_apply() {
    assert_eq!(eval(n(77), noun!([2 [1 42] [1 1 153 218]])), noun!([153 218]));
    assert!(crash_text(n(77), noun!([2 5])).contains("opcode 2 needs [b c]"));
}

#[test]
fn rule_3_cell_test_is_4k() {
    // 4K: *[a 3 b] -> ?*[a b], the whole operand is the formula. (nspec
    // evaluates only the operand's head, so `[3 0 1]` would fail there.)
    assert_eq!(eval(n(42), noun!([3 0 1])), n(1));
    assert_eq!(eval(noun!([1 2]), noun!([3 0 1])), n(0));
    assert_eq!(eval(noun!([1 2]), noun!([3 0 2])), n(1));
}

#[test]
fn rule_4_increment() {
    assert_eq!(eval(n(57), noun!([4 0 1])), n(58));
    assert_eq!(eval(noun!([132 19]), noun!([4 0 3])), n(20));
    let max = Noun::atom(u64::MAX);
    assert_eq!(eval(max, noun!([4 0 1])).atom_bytes().unwrap(), vec![0, 0, 0, 0, 0, 0, 0, 0, 1]);
    assert!(crash_text(noun!([1 2]), noun!([4 0 1])).contains("cannot increment a cell"));
}

#[test]
fn rule_5_equal() {
    assert_eq!(eval(noun!([1 1]), noun!([5 [0 2] 0 3])), n(0));
    assert_eq!(eval(noun!([1 2]), noun!([5 [0 2] 0 3])), n(1));
    assert_eq!(eval(noun!([[1 2] [1 2]]), noun!([5 [0 2] 0 3])), n(0));
    assert_eq!(eval(noun!([[1 2] 1]), noun!([5 [0 2] 0 3])), n(1));
}

#[test]
fn rule_6_if() {
    assert_eq!(eval(n(42), noun!([6 [1 0] [4 0 1] [1 233]])), n(43));
    assert_eq!(eval(n(42), noun!([6 [1 1] [4 0 1] [1 233]])), n(233));
    assert!(crash_text(n(42), noun!([6 [1 2] [4 0 1] [1 233]])).contains("condition is 2"));
    assert!(crash_text(n(42), noun!([6 [0 1] [0 1]])).contains("condition is 42"));
    assert!(crash_text(n(42), noun!([6 [0 1]])).contains("opcode 6 needs [b c d]"));
}

#[test]
fn rule_7_compose() {
    assert_eq!(eval(n(42), noun!([7 [4 0 1] [4 0 1]])), n(44));
}

#[test]
fn rule_8_push() {
    assert_eq!(eval(n(42), noun!([8 [4 0 1] [0 1]])), noun!([43 42]));
    assert_eq!(eval(n(42), noun!([8 [4 0 1] [4 0 3]])), n(43));
}

#[test]
fn rule_9_invoke() {
    // A core [battery payload] whose arm at axis 2 increments the payload.
    let core = noun!([[4 0 3] 41]);
    assert_eq!(eval(core, noun!([9 2 0 1])), n(42));
    assert_eq!(eval(n(42), decrement()), n(41));
    assert_eq!(eval(n(1), decrement()), n(0));
    assert!(crash_text(n(1), noun!([9 [1 1] 0 1])).contains("arm axis must be an atom"));
}

#[test]
fn rule_10_edit() {
    assert_eq!(eval(noun!([22 33]), noun!([10 [2 1 44] 0 1])), noun!([44 33]));
    assert_eq!(eval(noun!([22 33]), noun!([10 [3 1 44] 0 1])), noun!([22 44]));
    assert_eq!(eval(noun!([22 33]), noun!([10 [1 1 44] 0 1])), n(44));
    assert_eq!(eval(noun!([[1 2] 3]), noun!([10 [5 1 9] 0 1])), noun!([[1 9] 3]));
    assert_eq!(eval(n(0), noun!([10 [1 1 9] 0 1])), n(9));
    assert!(crash_text(noun!([22 33]), noun!([10 [4 1 9] 0 1])).contains("axis 4 is not in the target"));
    assert!(crash_text(noun!([22 33]), noun!([10 [0 1 9] 0 1])).contains("axis 0"));
    assert!(crash_text(n(1), noun!([10 1 0 1])).contains("opcode 10 needs [[b c] d]"));
}

#[test]
fn rule_11_hints() {
    assert_eq!(eval(n(42), noun!([11 1 4 0 1])), n(43));
    assert_eq!(eval(n(42), noun!([11 [1 1 0] 4 0 1])), n(43));
    // A dynamic hint's formula is evaluated: a crash there is a crash.
    assert!(crash_text(n(42), noun!([11 [1 0 0] 4 0 1])).contains("axis 0"));
}

#[test]
fn opcode_12_scry_fails_cleanly() {
    let err = run(&n(0), &noun!([12 [1 0] [1 0] 0 1])).unwrap_err();
    assert_eq!(err, NockError::Scry);
    assert!(err.to_string().contains("scry (opcode 12) failed"));
}

#[test]
fn autocons() {
    assert_eq!(eval(n(42), noun!([[4 0 1] [3 0 1]])), noun!([43 1]));
    assert_eq!(eval(n(42), noun!([[4 0 1] [4 0 1] [1 7]])), noun!([43 43 7]));
}

#[test]
fn invalid_formulas_crash_with_a_reason() {
    assert!(crash_text(n(1), n(5)).contains("formula is an atom: 5"));
    assert!(crash_text(n(1), noun!([13 0 1])).contains("unknown opcode 13"));
    assert!(crash_text(n(1), noun!([(Noun::from_bytes(&[1; 20])) 0 1])).contains("unknown opcode 0x"));
    assert!(crash_text(n(1), noun!([0 1 2 3])).contains("axis must be an atom"));
    assert!(crash_text(n(1), noun!([5 1])).contains("opcode 5 needs [b c]"));
    assert!(crash_text(n(1), noun!([[1 1] 0])).contains("formula is an atom: 0"));
}

// ---------------------------------------------------------------------------
// Gas

#[test]
fn gas_table_values() {
    assert_eq!(gas::axis_walk(1), 0);
    assert_eq!(gas::axis_walk(2), 0);
    assert_eq!(gas::axis_walk(3), 2);
    assert_eq!(gas::edit_walk(1), 0);
    assert_eq!(gas::edit_walk(2), 2);
    assert_eq!(gas::edit_walk(3), 6);
    assert_eq!(gas::IF_TOTAL, 7);
    assert_eq!(gas::invoke_total(2), 6);
}

#[test]
fn exact_gas_of_known_programs() {
    let cases: Vec<(Noun, Noun, u64)> = vec![
        (n(42), noun!([0 1]), 1),
        (noun!([[4 5] [6 14 15]]), noun!([0 7]), 3),  // 1 + 2·(3−2)
        (noun!([[4 5] [6 14 15]]), noun!([0 14]), 5), // 1 + 2·(4−2)
        (n(42), noun!([1 153 218]), 1),
        (n(77), noun!([2 [1 42] [1 1 153 218]]), 4),
        (n(57), noun!([4 0 1]), 2),
        (noun!([1 1]), noun!([5 [0 2] 0 3]), 4),
        (n(42), noun!([[4 0 1] [3 0 1]]), 5),
        (n(42), noun!([6 [1 0] [4 0 1] [1 233]]), 10), // 7 + 1 + 2
        (n(42), noun!([7 [4 0 1] [4 0 1]]), 6),
        (n(42), noun!([8 [4 0 1] [0 1]]), 5),
        (noun!([[4 0 3] 41]), noun!([9 2 0 1]), 9), // 3 + [0 1] 1 + 3 + arm [4 0 3] 2
        (noun!([22 33]), noun!([10 [2 1 44] 0 1]), 5), // 1 + 1 + 1 + 2·1
        (noun!([[1 2] 3]), noun!([10 [5 1 9] 0 1]), 9), // 1 + 1 + 1 + 3·2
        (n(42), noun!([11 1 4 0 1]), 3),
        (n(42), noun!([11 [1 1 0] 4 0 1]), 5),
    ];
    for (subject, formula, expected) in cases {
        let (_, used) = run(&subject, &formula).unwrap();
        assert_eq!(used, expected, "{formula} on {subject}");
        assert_eq!(check_against_reference(&subject, &formula), Some(expected));
    }
}

#[test]
fn decrement_gas() {
    // Decrementing k costs exactly 32·k: setting up the core costs 13 (8: 2
    // + 1, 8: 2 + 1, 9 2 0 1: 7); each of the k tests of the loop body costs
    // 16 (6: 7; [5 [0 7] 4 0 6]: 2 + 3 + 4); each of the k − 1 recursions
    // [9 2 [0 2] [4 0 6] 0 7] costs 16 (9: 3 + 3; the new core: 1 + 1 + 1
    // + 4 + 3); the final [0 6] costs 3. 13 + 16k + 16(k − 1) + 3 = 32k.
    for (k, expected) in [(1u64, 32), (2, 64), (42, 1344), (100, 3200)] {
        let (p, used) = run(&n(k), &decrement()).unwrap();
        assert_eq!(p, n(k - 1));
        assert_eq!(used, expected, "decrement {k}");
        assert_eq!(check_against_reference(&n(k), &decrement()), Some(expected));
    }
}

/// Random formulas, mostly well-formed, over random subjects.
#[test]
fn differential_against_reference() {
    use executor_testkit::Rng;
    fn subject(rng: &mut Rng, depth: u32) -> Noun {
        if depth == 0 || rng.below(3) == 0 {
            n(rng.below(4))
        } else {
            Noun::cell(subject(rng, depth - 1), subject(rng, depth - 1))
        }
    }
    fn formula(rng: &mut Rng, depth: u32) -> Noun {
        let small = |rng: &mut Rng| n(rng.below(8));
        if depth == 0 {
            return match rng.below(2) {
                0 => noun!([0(small(rng))]),
                _ => noun!([1(small(rng))]),
            };
        }
        let mut f = || formula(rng, depth - 1);
        let (a, b, c) = (f(), f(), f());
        match rng.below(16) {
            0 => noun!([a b]),
            1 => noun!([0(rng.below(16))]),
            2 => noun!([1(subject(rng, 2))]),
            3 => noun!([2 [0 1] [1 a]]),
            4 => noun!([3 a]),
            5 => noun!([4 a]),
            6 => noun!([5 a b]),
            7 => noun!([6 [3 a] b c]),
            8 => noun!([6 [5 a (&b)] b c]),
            9 => noun!([7 a b]),
            10 => noun!([8 a b]),
            11 => noun!([9 (rng.below(8)) [1 [a b]]]),
            12 => noun!([10 [(rng.below(8)) a] b]),
            13 => noun!([11 (rng.below(3)) a]),
            14 => noun!([11 [1 b] a]),
            _ => noun!([2 a [1 b]]),
        }
    }
    let mut rng = Rng::new(0x243f_6a88_85a3_08d3);
    let mut ok = 0;
    for _ in 0..20_000 {
        let s = subject(&mut rng, 3);
        let depth = 1 + rng.below(4) as u32;
        let f = formula(&mut rng, depth);
        if check_against_reference(&s, &f).is_some() {
            ok += 1;
        }
    }
    assert!(ok > 2_000, "only {ok} formulas evaluated");
}

// ---------------------------------------------------------------------------
// Hostile and deep

#[test]
fn self_application_runs_out_of_gas() {
    let f = noun!([2 [0 1] [0 1]]);
    let mut left = 2_000_000;
    let err = nock(&f, &f, &mut left).unwrap_err();
    assert!(matches!(err, NockError::OutOfGas { .. }), "{err}");
    assert!(left < 3);
}

#[test]
fn growing_loop_runs_out_of_gas() {
    // F = [2 [[0 2] [0 3] [0 3]] [0 2]] on [F x] loops on [F [x x]]: the
    // subject doubles (shared) every round, 7 gas a round.
    let f = noun!([2 [[0 2] [0 3] [0 3]] [0 2]]);
    let mut left = 700_000;
    let err = nock(&noun!([(&f) 0]), &f, &mut left).unwrap_err();
    assert!(matches!(err, NockError::OutOfGas { .. }), "{err}");
    assert!(left < 7);
}

#[test]
fn back_reference_bomb_formula_runs_out_of_gas() {
    // f_k = [f_{k-1} f_{k-1}]: 2^100 autocons cells from a few hundred bytes.
    let mut f = noun!([1 0]);
    for _ in 0..100 {
        f = Noun::cell(f.clone(), f);
    }
    let bytes = jam(&f);
    assert!(bytes.len() < 2_000);
    let f = cue(&bytes).unwrap();
    let mut left = 1_000_000;
    let err = nock(&n(0), &f, &mut left).unwrap_err();
    assert!(matches!(err, NockError::OutOfGas { .. }));
}

#[test]
fn deep_formulas_and_subjects() {
    const DEPTH: u64 = 1_000_000;
    // [4 [4 [4 ... [0 1]]]]: a million nested increments.
    let mut f = noun!([0 1]);
    for _ in 0..DEPTH {
        f = noun!([4 f]);
    }
    let (p, used) = run(&n(0), &f).unwrap();
    assert_eq!(p, n(DEPTH));
    assert_eq!(used, DEPTH + 1);
    // A million-deep left-leaning autocons tree: [[[... [0 1] ...] [1 0]] [1 0]].
    let mut g = noun!([1 7]);
    for _ in 0..DEPTH {
        g = noun!([g [1 0]]);
    }
    let (p, _) = run(&n(0), &g).unwrap();
    assert!(p.is_cell());
    // A deep axis into a deep subject: walk a million levels of heads.
    let mut s = n(9);
    for _ in 0..10_000 {
        s = noun!([s 0]);
    }
    let axis = Noun::from_bytes(&{
        let mut v = vec![0u8; 10_000 / 8];
        v.push(1 << (10_000 % 8));
        v
    });
    let (p, used) = run(&s, &noun!([0 axis])).unwrap();
    assert_eq!(p, n(9));
    assert_eq!(used, 1 + 2 * (10_001 - 2));
    // A huge axis costs its gas up front: out of gas before any walk.
    let huge = Noun::from_bytes(&vec![0xff; 1 << 20]);
    let mut left = 1_000;
    assert!(matches!(nock(&s, &noun!([0 huge]), &mut left), Err(NockError::OutOfGas { .. })));
    drop((f, g, s));
}
