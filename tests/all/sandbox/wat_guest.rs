//! Hand-written executor components, from WAT: for attacks a Rust guest
//! cannot express (a start function, raw traps, table growth, malformed
//! canonical-ABI values, a bad `cabi_realloc`) and for exports of the right
//! names with the wrong types.
//!
//! [`Wat::BENIGN`] is a complete, working executor core module: every step
//! halts in the state `done` with no requests. A case replaces one piece
//! (a function's prologue, which may `return` early, the memory or table
//! declaration, extra module fields) and [`Wat::component`] embeds the
//! world's WIT and turns the module into a component, as `executor-host
//! build` does for a Rust guest.
//!
//! The core module's layout: `"done"` at 16, the return area of
//! `starting-state` at 64 and of `execute-step` at 128 (both a `result`: a
//! discriminant byte, then the payload at +4), a bump heap from 4096 that
//! `cabi_realloc` grows memory for.

/// The world, as every guest must export it.
pub const EXECUTOR_WIT: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/wit/executor.wit"));

/// One hand-written guest: the benign module with some pieces replaced.
#[derive(Debug, Clone, Copy)]
pub struct Wat {
    /// The memory's limits (pages of 64 KiB), e.g. `1` or `1 2`.
    pub memory: &'static str,
    /// The table's limits (elements), e.g. `1`.
    pub table: &'static str,
    /// Module fields added as they are (a start function, data segments).
    pub extra: &'static str,
    /// Runs first in `cabi_realloc` (params `$old $old_size $align $size`).
    pub realloc: &'static str,
    /// Runs first in `starting-state` (params: the executable's pointer
    /// and length).
    pub starting_state: &'static str,
    /// Runs first in `execute-step` (ten flattened params).
    pub execute_step: &'static str,
    /// Runs first in `halted` (params: the state's pointer and length).
    pub halted: &'static str,
    /// Replacements applied to [`EXECUTOR_WIT`]: exports of the wrong types.
    pub wit_edits: &'static [(&'static str, &'static str)],
}

impl Wat {
    /// A working executor: every step halts at once.
    pub const BENIGN: Self = Self {
        memory: "1",
        table: "1",
        extra: "",
        realloc: "",
        starting_state: "",
        execute_step: "",
        halted: "",
        wit_edits: &[],
    };

    /// The core module's text.
    pub fn text(&self) -> String {
        let Self { memory, table, extra, realloc, starting_state, execute_step, halted, .. } = self;
        format!(
            r#"(module
  (type $void (func))
  (type $takes_i32 (func (param i32)))
  (memory (export "memory") {memory})
  (table $t {table} funcref)
  (global $heap (mut i32) (i32.const 4096))
  (global $zero (mut i32) (i32.const 0))
  (func $nop)
  (data (i32.const 16) "done")
  (func (export "cabi_realloc") (param $old i32) (param $old_size i32) (param $align i32) (param $size i32) (result i32)
    (local $p i32)
    {realloc}
    (local.set $p (i32.and (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1)))
                           (i32.sub (i32.const 0) (local.get $align))))
    (global.set $heap (i32.add (local.get $p) (local.get $size)))
    (block $fits
      (br_if $fits (i32.le_u (global.get $heap) (i32.shl (memory.size) (i32.const 16))))
      (br_if $fits (i32.ne (i32.const -1) (memory.grow
        (i32.add (i32.const 1) (i32.shr_u (i32.sub (global.get $heap) (i32.shl (memory.size) (i32.const 16)))
                                          (i32.const 16))))))
      unreachable)
    (local.get $p))
  (func (export "starting-state") (param i32 i32) (result i32)
    {starting_state}
    (i32.store8 (i32.const 64) (i32.const 0))
    (i32.store (i32.const 68) (i32.const 0))
    (i32.store (i32.const 72) (i32.const 0))
    (i32.const 64))
  (func (export "execute-step") (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)
    {execute_step}
    (i32.store8 (i32.const 128) (i32.const 0))
    (i32.store (i32.const 132) (i32.const 16))
    (i32.store (i32.const 136) (i32.const 4))
    (i32.store (i32.const 140) (i32.const 0))
    (i32.store (i32.const 144) (i32.const 0))
    (i32.const 128))
  (func (export "halted") (param i32 i32) (result i32)
    {halted}
    (i32.const 1))
  {extra}
)"#
        )
    }

    /// The WIT the component claims to export.
    pub fn wit(&self) -> String {
        let mut wit = EXECUTOR_WIT.to_string();
        for (from, to) in self.wit_edits {
            assert!(wit.contains(from), "the WIT has no {from:?}");
            wit = wit.replace(from, to);
        }
        wit
    }

    /// The component: the module with the WIT embedded, componentized.
    pub fn component(&self) -> Vec<u8> {
        let mut module = wat::parse_str(self.text()).unwrap_or_else(|e| panic!("{e}\n{}", self.text()));
        let mut resolve = wit_parser::Resolve::default();
        let package = resolve.push_str("executor.wit", &self.wit()).expect("parsing the WIT");
        let world = resolve.select_world(&[package], Some("executor")).expect("the executor world");
        wit_component::embed_component_metadata(&mut module, &resolve, world, wit_component::StringEncoding::UTF8)
            .expect("embedding the WIT");
        executor_guest_build::componentize(&module).expect("componentizing")
    }
}

/// An `execute-step` prologue that returns a step in the state `done` with
/// `count` requests (a WAT expression: `(local.get 1)` is the
/// executable's length), laid out from 4096, 20 bytes each (a variant: its
/// case byte, then a list or a record of two lists); `request` stores the
/// one at `$a`, whose index is `$i`.
pub fn step_of_requests(count: &str, request: &str) -> &'static str {
    let body = format!(
        r#"
    (local $i i32) (local $a i32)
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) {count}))
      (local.set $a (i32.add (i32.const 4096) (i32.mul (local.get $i) (i32.const 20))))
      {request}
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (i32.store8 (i32.const 128) (i32.const 0))
    (i32.store (i32.const 132) (i32.const 16))
    (i32.store (i32.const 136) (i32.const 4))
    (i32.store (i32.const 140) (i32.const 4096))
    (i32.store (i32.const 144) {count})
    (return (i32.const 128))"#
    );
    // A test's guest lives as long as the test binary.
    Box::leak(body.into_boxed_str())
}

#[test]
fn the_benign_wat_guest_is_a_working_executor() {
    use crate::support::*;
    let program = sandbox().load(&Wat::BENIGN.component()).expect("loads");
    let run = drive(&program, b"anything", &[], GAS);
    assert_eq!(run.result, Ok(()));
    assert!(halted(&run));
    assert_eq!(run.steps[0].state, b"done");
}
