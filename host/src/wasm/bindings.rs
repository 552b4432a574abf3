//! Host bindings generated from `wit/executor.wit`. Private: the rest of the
//! host speaks [`crate::program`]'s types, never these.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "executor",
    // Arguments are lowered from borrowed slices: an input's key and value
    // go into the guest without an intermediate copy on the host.
    ownership: Borrowing { duplicate_if_necessary: false },
});
