//! Host bindings generated from `wit/executor.wit`. Private: the rest of the
//! host speaks [`crate::program`]'s types, never these.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "executor",
});
