//! Every Spin component imports only `wasi:*` interfaces (no `spin:postgres`, `spin:redis`,
//! `spin:key-value`, `spin:variables`, nor anything else a plain `wasi:http` host lacks), and
//! exports the `wasi:http` handler. Reads the built components (`scripts/build-spin.sh`) that
//! `spin.toml` names.

use std::path::Path;

use feen_e2e::spin::{Manifest, component_path};
use wasmparser::{Parser, Payload};

/// The component-level imports and exports of a component (not those of the core modules
/// inside it).
fn interfaces(bytes: &[u8]) -> (Vec<String>, Vec<String>) {
    let (mut imports, mut exports) = (Vec::new(), Vec::new());
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.unwrap_or_else(|e| panic!("not a component: {e}")) {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    imports.push(import.expect("an import").name.0.to_owned());
                }
            }
            Payload::ComponentExportSection(reader) if depth == 0 => {
                for export in reader {
                    exports.push(export.expect("an export").name.0.to_owned());
                }
            }
            _ => {}
        }
    }
    (imports, exports)
}

#[test]
fn every_component_imports_only_wasi_interfaces() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let manifest = Manifest::read(&root.join("spin.toml")).expect("spin.toml");
    let doc: toml::Table = std::fs::read_to_string(root.join("spin.toml"))
        .expect("spin.toml")
        .parse()
        .expect("spin.toml is TOML");
    // One component per function crate.
    let functions = std::fs::read_dir(root.join("functions"))
        .expect("functions/")
        .filter(|d| {
            d.as_ref()
                .is_ok_and(|d| d.path().join("Cargo.toml").exists())
        })
        .count();
    assert_eq!(
        manifest.sources.len(),
        functions,
        "{:?}",
        manifest.sources.keys()
    );
    for (name, source) in &manifest.sources {
        let path = component_path(source);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| {
            panic!("{}: {e} (build with scripts/build-spin.sh)", path.display())
        });
        let (imports, exports) = interfaces(&bytes);
        assert!(!imports.is_empty(), "{name}: no imports found");
        let foreign: Vec<&String> = imports.iter().filter(|i| !i.starts_with("wasi:")).collect();
        assert!(foreign.is_empty(), "{name} imports {foreign:?}");
        // A component makes outbound requests exactly when spin.toml lets it reach a host (the
        // web component, which serves compiled-in files, is granted none and needs none).
        let may_connect = doc
            .get("component")
            .and_then(|c| c.get(name.as_str()))
            .and_then(|c| c.get("allowed_outbound_hosts"))
            .and_then(|h| h.as_array())
            .is_some_and(|h| !h.is_empty());
        assert_eq!(
            imports.iter().any(|i| i.starts_with("wasi:http/client@")),
            may_connect,
            "{name}: {imports:?}"
        );
        assert!(
            exports.iter().any(|e| e.starts_with("wasi:http/handler@")),
            "{name} exports {exports:?}"
        );
    }
}
