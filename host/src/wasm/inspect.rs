//! Validation of a guest component against the `executor` world, with
//! errors that name the problem.

use std::fmt;

use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime::component::types::{ComponentExtern, ComponentItem};

/// The functions the `executor` world exports.
const EXPORTS: [&str; 3] = ["starting-state", "execute-step", "halted"];

/// Why bytes cannot be loaded as an executor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    #[error("not a wasm binary (no `\\0asm` header)")]
    NotWasm,
    #[error(
        "a core wasm module, not a component: turn it into one with `executor-host build` or `wasm-tools component new`"
    )]
    CoreModule,
    #[error("invalid component: {0}")]
    Invalid(String),
    #[error("forbidden import{}: {} (executor guests may import nothing)", if .0.len() == 1 { "" } else { "s" }, .0.join(", "))]
    ForbiddenImport(Vec<String>),
    #[error("not an executor component (wrong world): {0}")]
    WrongWorld(String),
    #[error("artifact cache: {0}")]
    Cache(String),
}

/// What a component exports and imports, for `executor-host check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentInfo {
    pub size: usize,
    pub exports: Vec<(String, String)>,
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
        Some([0, b'a', b's', b'm', ..]) => Err(LoadError::Invalid("unknown wasm version or layer".into())),
        _ => Err(LoadError::NotWasm),
    }
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

/// Rejects any import, and a component that lacks the world's exports. The
/// signatures themselves are checked by the generated bindings on load.
pub(super) fn check_world(engine: &Engine, component: &Component) -> Result<(), LoadError> {
    let ty = component.component_type();
    let imports: Vec<String> = ty.imports(engine).map(|(name, _)| name.to_string()).collect();
    if !imports.is_empty() {
        return Err(LoadError::ForbiddenImport(imports));
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
