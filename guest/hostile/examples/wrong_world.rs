//! A well-formed component of the wrong world: it exports `run`, not the
//! executor's operations. The host must reject it on load, naming what is
//! missing.

#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod component {
    wit_bindgen::generate!({
        inline: "
            package hostile:wrong;
            world wrong {
                export run: func() -> u32;
            }
        ",
    });

    struct Wrong;

    impl Guest for Wrong {
        fn run() -> u32 {
            42
        }
    }

    export!(Wrong);
}
