//! Embeds the dashboard: lists every file under `web/app` with its media type and a content
//! hash (the ETag), as a table `src/lib.rs` includes. The files themselves are compiled in with
//! `include_bytes!`, so every host serves exactly the dashboard the binary was built with.

// Cargo reads its instructions (`cargo:rerun-if-changed`) from a build script's stdout.
#![allow(clippy::print_stdout)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web/app");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    walk(&root, &mut files);
    files.sort();
    let mut table = String::from("&[\n");
    for file in &files {
        let rel = file
            .strip_prefix(&root)
            .unwrap_or_else(|_| panic!("{} is outside web/app", file.display()))
            .to_string_lossy()
            .replace('\\', "/");
        let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let hash = Sha256::digest(&bytes);
        let etag: String = hash.iter().take(12).fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        });
        let Some(media_type) = media_type(&rel) else {
            panic!("web/app/{rel}: unknown file type (add it to functions/web/build.rs)");
        };
        let _ = writeln!(
            table,
            "    Asset {{ path: {path:?}, media_type: {media_type:?}, etag: \"\\\"{etag}\\\"\", body: include_bytes!({file:?}) }},",
            path = format!("/{rel}"),
            file = file.display().to_string(),
        );
    }
    table.push(']');
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_else(|_| ".".into()));
    std::fs::write(out.join("assets.rs"), table)
        .unwrap_or_else(|e| panic!("writing the asset table: {e}"));
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .path();
        println!("cargo:rerun-if-changed={}", path.display());
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// The media type of a file the dashboard may contain; anything else fails the build.
fn media_type(path: &str) -> Option<&'static str> {
    let ext = path.rsplit_once('.').map(|(_, ext)| ext)?;
    Some(match ext {
        "html" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" => "text/plain; charset=utf-8",
        "webmanifest" => "application/manifest+json",
        _ => return None,
    })
}
