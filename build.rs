//! Embeds every file under `assets/` into the binary (`OUT_DIR/assets.rs`), so the web UI and the
//! browser extension ship inside the one binary and a new asset needs no code change to be served;
//! and sets `cfg(avif)` where the AVIF decoder is built.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    // `cfg(avif)`: the `avif` feature where its decoder builds (see Cargo.toml: not 32-bit ARM).
    println!("cargo::rustc-check-cfg=cfg(avif)");
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    if std::env::var_os("CARGO_FEATURE_AVIF").is_some() && arch != "arm" {
        println!("cargo::rustc-cfg=avif");
    }
    // Read when the script runs, not baked in when it is compiled: a build script compiled for one
    // checkout and reused from a copied target directory would otherwise embed that checkout's files.
    let root =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo")).join("assets");
    println!("cargo:rerun-if-changed=assets");
    let mut files = Vec::new();
    collect(&root, &mut files);
    files.sort();
    let mut out = String::from("pub static FILES: &[(&str, &[u8])] = &[\n");
    for path in files {
        let name = path
            .strip_prefix(&root)
            .expect("under assets/")
            .to_str()
            .expect("asset names are UTF-8")
            .replace('\\', "/");
        writeln!(
            out,
            "    ({name:?}, include_bytes!({:?})),",
            path.display().to_string()
        )
        .unwrap();
    }
    out.push_str("];\n");
    let dest = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("assets.rs");
    std::fs::write(dest, out).expect("write assets.rs");
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        // Editor droppings and dotfiles are not assets.
        if name.to_string_lossy().starts_with('.') || name.to_string_lossy().ends_with('~') {
            continue;
        }
        if path.is_dir() {
            collect(&path, files);
        } else {
            files.push(path);
        }
    }
}
