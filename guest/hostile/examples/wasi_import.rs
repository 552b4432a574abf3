//! An executor component that also imports a WASI interface (randomness).
//! Ambient authority is forbidden: the host must reject it on load, naming
//! the import.

#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod component {
    wit_bindgen::generate!({
        inline: "
            package hostile:wasi;

            world uses-wasi {
                import wasi:random/random@0.2.0;
                export halted: func(state: list<u8>) -> bool;
            }

            package wasi:random@0.2.0 {
                interface random {
                    get-random-u64: func() -> u64;
                }
            }
        ",
        world: "hostile:wasi/uses-wasi",
        generate_all,
    });

    struct UsesWasi;

    impl Guest for UsesWasi {
        fn halted(_state: Vec<u8>) -> bool {
            wasi::random::random::get_random_u64().is_multiple_of(2)
        }
    }

    export!(UsesWasi);
}
