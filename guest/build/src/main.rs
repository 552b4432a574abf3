//! The steps of building a guest in another language, by hand (the README's
//! "A guest in C"): the two that need this crate, between which your own
//! compiler builds the core module.
//!
//! ```text
//! executor-guest-build c-bindings <wit file or dir> <out dir>
//! executor-guest-build componentize <core module> <component>
//! ```
//!
//! Rust guests need neither: `executor-host build` does all of it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use executor_guest_build::{Error, c, componentize_file};

const USAGE: &str = "\
usage: executor-guest-build c-bindings <wit file or dir> <out dir>
           write the C bindings of the `executor` world (wit-bindgen c):
           executor.h, executor.c, executor_component_type.o
       executor-guest-build componentize <core module> <component>
           turn a core module built against those bindings into a component";

fn main() -> ExitCode {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let result = match args.iter().map(PathBuf::as_path).collect::<Vec<_>>().as_slice() {
        [command, wit, dir] if *command == Path::new("c-bindings") => c::write_bindings(wit, dir).map(|paths| {
            for path in paths {
                println!("wrote {}", path.display());
            }
        }),
        [command, core, output] if *command == Path::new("componentize") => {
            componentize_file(core).and_then(|component| {
                std::fs::write(output, &component)
                    .map_err(|source| Error::Write { path: output.to_path_buf(), source })
                    .map(|()| println!("wrote {} ({} bytes)", output.display(), component.len()))
            })
        }
        [help] if *help == Path::new("--help") || *help == Path::new("-h") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let mut message = format!("error: {error}");
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                message += &format!(": {cause}");
                source = cause.source();
            }
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}
