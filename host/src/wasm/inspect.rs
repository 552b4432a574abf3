//! Validation of a guest component against the `executor` world (or, in a
//! dev sandbox, the `executor-debug` world), with errors that name the
//! problem.

use std::error::Error;
use std::fmt;
use std::sync::Arc;

use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime::component::types::{ComponentExtern, ComponentItem};

/// The functions the `executor` world exports.
const EXPORTS: [&str; 3] = ["starting-state", "execute-step", "halted"];

/// Why bytes cannot be loaded as an executor.
///
/// Two errors are equal when they are the same variant with the same
/// details, an underlying cause comparing by its chain of messages: equal
/// means "refused for the same reason", which is what a test asks.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The bytes do not start with the wasm magic number.
    #[error("not a wasm binary (no `\\0asm` header)")]
    NotWasm,
    /// A core module: it has no component-model interface, so it cannot
    /// export the `executor` world.
    #[error(
        "a core wasm module, not a component: turn it into one with `executor-host build` or `wasm-tools component new`"
    )]
    CoreModule,
    /// The bytes have a wasm header but are not a valid component (an
    /// unknown version, or a parse or validation error): the source says
    /// what is wrong. Shared, so that the error stays `Clone`.
    #[error("invalid component")]
    Invalid(#[source] Arc<dyn Error + Send + Sync>),
    /// The component imports something (named here); the host provides no
    /// import at all.
    #[error("forbidden import{}: {} (executor guests may import nothing)", if .0.len() == 1 { "" } else { "s" }, .0.join(", "))]
    ForbiddenImport(Vec<String>),
    /// The component is a debug build: it targets the `executor-debug`
    /// world (its one import is `log`), which only a dev sandbox
    /// ([`SandboxConfig::dev`](crate::SandboxConfig::dev)) runs, and which
    /// is never deployed.
    #[error(
        "this component is a debug build (it imports `log`, for debug output): run it with `executor-host run --dev`, \
         or build it without `--dev` to run it in production or deploy it"
    )]
    DebugBuild,
    /// The component does not export the `executor` world's functions with
    /// the world's types; the text says which are missing or mismatched.
    #[error("not an executor component (wrong world): {0}")]
    WrongWorld(String),
    /// The component is valid but cannot be instantiated within the
    /// sandbox's limits (the text says which), so no transaction could run
    /// it.
    #[error("the component cannot be instantiated within the sandbox's limits: {0}")]
    Uninstantiable(String),
    /// The component is larger than the sandbox loads
    /// ([`SandboxConfig::max_component_bytes`](crate::SandboxConfig::max_component_bytes),
    /// [`max_functions`](crate::SandboxConfig::max_functions)): refused
    /// before compiling it.
    #[error("the component has {size} {what}; this sandbox loads at most {limit} (`{setting}` in `[sandbox]`)")]
    TooLarge {
        /// What is counted: `"bytes"` or `"functions"`.
        what: &'static str,
        /// The component's count.
        size: u64,
        /// The bound.
        limit: u64,
        /// The configuration key of the bound.
        setting: &'static str,
    },
    /// The component compiled, but its artifact could not be written to the
    /// cache directory.
    #[error("artifact cache: {context}")]
    Cache {
        /// What the cache was doing, e.g. `writing <key>.cwasm`.
        context: String,
        /// Why it failed. Shared, so that the error stays `Clone`.
        #[source]
        source: Arc<dyn Error + Send + Sync>,
    },
}

impl PartialEq for LoadError {
    fn eq(&self, other: &Self) -> bool {
        // Matching on `self` alone, exhaustively, so a new variant cannot
        // be forgotten here.
        match self {
            Self::NotWasm => matches!(other, Self::NotWasm),
            Self::CoreModule => matches!(other, Self::CoreModule),
            Self::Invalid(a) => matches!(other, Self::Invalid(b) if same_cause(&**a, &**b)),
            Self::ForbiddenImport(a) => matches!(other, Self::ForbiddenImport(b) if a == b),
            Self::DebugBuild => matches!(other, Self::DebugBuild),
            Self::WrongWorld(a) => matches!(other, Self::WrongWorld(b) if a == b),
            Self::Uninstantiable(a) => matches!(other, Self::Uninstantiable(b) if a == b),
            Self::TooLarge { what, size, limit, setting } => {
                matches!(other, Self::TooLarge { what: w, size: s, limit: l, setting: k }
                    if (what, size, limit, setting) == (w, s, l, k))
            }
            Self::Cache { context: a, source: x } => {
                matches!(other, Self::Cache { context: b, source: y } if a == b && same_cause(&**x, &**y))
            }
        }
    }
}

impl Eq for LoadError {}

/// Whether two errors read the same, down to their root causes.
fn same_cause(a: &(dyn Error + 'static), b: &(dyn Error + 'static)) -> bool {
    fn messages<'a>(error: &'a (dyn Error + 'static)) -> impl Iterator<Item = String> + 'a {
        std::iter::successors(Some(error), |&e| e.source()).map(ToString::to_string)
    }
    messages(a).eq(messages(b))
}

/// Keeps `error` (a wasmtime or I/O error, or a message) as the cause of a
/// [`LoadError`].
pub(super) fn cause(error: impl Into<Box<dyn Error + Send + Sync>>) -> Arc<dyn Error + Send + Sync> {
    Arc::from(error.into())
}

/// Why wasmtime did not compile a component: the component's fault
/// ([`LoadError::Invalid`]), or the sandbox's limits, which wasmtime's
/// pooling allocator checks when it compiles (a memory's minimum past
/// `limits.memory_bytes`, more tables than a slot holds), so that no
/// instance could ever run it ([`LoadError::Uninstantiable`]; without the
/// pool the same component is refused so after compiling).
pub(super) fn compile_error(error: wasmtime::Error) -> LoadError {
    let text = format!("{error:#}");
    if text.contains("pooling allocator") { LoadError::Uninstantiable(text) } else { LoadError::Invalid(cause(error)) }
}

/// What a component exports and imports, for `executor-host check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentInfo {
    /// The component's size in bytes.
    pub size: usize,
    /// Each export's name and kind (a function's kind is its signature), in
    /// the component's order.
    pub exports: Vec<(String, String)>,
    /// Each import's name and kind, in the component's order. An executor
    /// has none.
    pub imports: Vec<(String, String)>,
}

impl fmt::Display for ComponentInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "size: {} bytes", self.size)?;
        for (title, items) in [("exports", &self.exports), ("imports", &self.imports)] {
            if items.is_empty() {
                writeln!(f, "{title}: none")?;
            } else {
                writeln!(f, "{title}:")?;
            }
            for (name, kind) in items {
                writeln!(f, "  {name}: {kind}")?;
            }
        }
        Ok(())
    }
}

/// Tells a component from a core module or from something else entirely,
/// before handing the bytes to the compiler.
pub(super) fn check_header(bytes: &[u8]) -> Result<(), LoadError> {
    match bytes.get(..8) {
        Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => Err(LoadError::CoreModule),
        Some([0, b'a', b's', b'm', _, _, 1, 0]) => Ok(()),
        Some([0, b'a', b's', b'm', ..]) => Err(LoadError::Invalid(cause("unknown wasm version or layer"))),
        _ => Err(LoadError::NotWasm),
    }
}

/// Refuses a component past the sandbox's size bounds, before compiling it.
/// Bytes that do not parse are left to the compiler, which says why.
pub(super) fn check_size(bytes: &[u8], config: &crate::SandboxConfig) -> Result<(), LoadError> {
    let size = bytes.len() as u64;
    if size > config.max_component_bytes {
        let (what, limit, setting) = ("bytes", config.max_component_bytes, "max_component_bytes");
        return Err(LoadError::TooLarge { what, size, limit, setting });
    }
    let mut functions: u64 = 0;
    // Every core module's, nested ones included (`parse_all` walks them).
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        match payload {
            Ok(wasmparser::Payload::FunctionSection(section)) => {
                functions = functions.saturating_add(u64::from(section.count()));
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    if functions > config.max_functions {
        let (what, limit, setting) = ("functions", config.max_functions, "max_functions");
        return Err(LoadError::TooLarge { what, size: functions, limit, setting });
    }
    Ok(())
}

fn kind(item: &ComponentItem) -> String {
    match item {
        ComponentItem::ComponentFunc(func) => {
            let params: Vec<String> = func.params().map(|(name, ty)| format!("{name}: {}", type_name(&ty))).collect();
            let results: Vec<String> = func.results().map(|ty| type_name(&ty)).collect();
            format!(
                "func({}) -> {}",
                params.join(", "),
                if results.is_empty() { "()".into() } else { results.join(", ") }
            )
        }
        ComponentItem::CoreFunc(_) => "core func".into(),
        ComponentItem::Module(_) => "core module".into(),
        ComponentItem::Component(_) => "component".into(),
        ComponentItem::ComponentInstance(_) => "instance".into(),
        ComponentItem::Type(_) => "type".into(),
        ComponentItem::Resource(_) => "resource".into(),
    }
}

fn type_name(ty: &wasmtime::component::types::Type) -> String {
    use wasmtime::component::types::Type as T;
    match ty {
        T::List(list) => match list.ty() {
            T::U8 => "list<u8>".into(),
            inner => format!("list<{}>", type_name(&inner)),
        },
        T::Option(option) => format!("option<{}>", type_name(&option.ty())),
        T::Result(result) => format!(
            "result<{}, {}>",
            result.ok().map_or("_".into(), |t| type_name(&t)),
            result.err().map_or("_".into(), |t| type_name(&t))
        ),
        T::Record(_) => "record".into(),
        T::Variant(_) => "variant".into(),
        T::Bool => "bool".into(),
        T::String => "string".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

pub(super) fn describe(engine: &Engine, component: &Component, size: usize) -> ComponentInfo {
    let ty = component.component_type();
    let list = |items: &mut dyn Iterator<Item = (&str, ComponentExtern<'_>)>| {
        items.map(|(name, item)| (name.to_string(), kind(&item.ty))).collect::<Vec<_>>()
    };
    ComponentInfo { size, exports: list(&mut ty.exports(engine)), imports: list(&mut ty.imports(engine)) }
}

/// Whether `item` is the debug world's `log: func(message: string)`.
fn is_debug_log(name: &str, item: &ComponentItem) -> bool {
    use wasmtime::component::types::Type;
    let ComponentItem::ComponentFunc(func) = item else { return false };
    let params: Vec<_> = func.params().collect();
    name == super::debug::LOG && matches!(params.as_slice(), [(_, Type::String)]) && func.results().next().is_none()
}

/// Whether the component imports the debug world's `log`: a debug build.
pub(super) fn is_debug_build(engine: &Engine, component: &Component) -> bool {
    component.component_type().imports(engine).any(|(name, item)| is_debug_log(name, &item.ty))
}

/// Rejects any import (but the debug world's `log` in a `dev` sandbox; a
/// production sandbox names a debug build as such), and a component that
/// lacks the world's exports. The signatures themselves are checked by the
/// generated bindings on load.
pub(super) fn check_world(engine: &Engine, component: &Component, dev: bool) -> Result<(), LoadError> {
    let ty = component.component_type();
    let mut debug_log = false;
    let mut imports: Vec<String> = Vec::new();
    for (name, item) in ty.imports(engine) {
        if is_debug_log(name, &item.ty) {
            debug_log = true;
        }
        imports.push(name.to_string());
    }
    match (debug_log, imports.len()) {
        (_, 0) => {}
        (true, 1) if dev => {}
        (true, 1) => return Err(LoadError::DebugBuild),
        _ => return Err(LoadError::ForbiddenImport(imports)),
    }
    let missing: Vec<&str> = EXPORTS
        .into_iter()
        .filter(|name| {
            !matches!(ty.get_export(engine, name), Some(ComponentExtern { ty: ComponentItem::ComponentFunc(_), .. }))
        })
        .collect();
    if !missing.is_empty() {
        return Err(LoadError::WrongWorld(format!(
            "missing export{} {}",
            if missing.len() == 1 { "" } else { "s" },
            missing.join(", ")
        )));
    }
    Ok(())
}

impl LoadError {
    /// The refusal's kind (`"not_wasm"`, `"core_module"`, `"invalid"`,
    /// `"forbidden_import"`, `"debug_build"`, `"wrong_world"`,
    /// `"uninstantiable"`, `"too_large"`, `"cache"`):
    /// a stable name for counting and reporting, as
    /// [`crate::Failure::kind`] is for failures.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotWasm => "not_wasm",
            Self::CoreModule => "core_module",
            Self::Invalid(_) => "invalid",
            Self::ForbiddenImport(_) => "forbidden_import",
            Self::DebugBuild => "debug_build",
            Self::WrongWorld(_) => "wrong_world",
            Self::Uninstantiable(_) => "uninstantiable",
            Self::TooLarge { .. } => "too_large",
            Self::Cache { .. } => "cache",
        }
    }
}
