//! Ziggy's patch of zmq-sys 0.12.0's build script: the same vendored libzmq 4.3.4 (through
//! `zeromq-src`), but linked against the system's libsodium so that `ZMQ_CURVE` exists.
//!
//! Upstream passes `with_libsodium(None)`, which builds libzmq without CURVE at all (its own
//! comment says so: tweetnacl is unaudited, so it is left out). libsodium is found with
//! pkg-config (Debian: `apt-get install libsodium-dev`), or through `SODIUM_LIB_DIR` and
//! `SODIUM_INCLUDE_DIR`. A missing libsodium is a build error that names the package, never a
//! silent build without CURVE.

use std::env;
use std::path::PathBuf;

fn libsodium() -> zeromq_src::LibLocation {
    println!("cargo:rerun-if-env-changed=SODIUM_LIB_DIR");
    println!("cargo:rerun-if-env-changed=SODIUM_INCLUDE_DIR");
    if let Ok(lib_dir) = env::var("SODIUM_LIB_DIR") {
        let include_dir = env::var("SODIUM_INCLUDE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| PathBuf::from(&lib_dir).join("../include"));
        return zeromq_src::LibLocation::new(lib_dir, include_dir);
    }
    let found = pkg_config::Config::new()
        .statik(true)
        .cargo_metadata(false)
        .probe("libsodium")
        .unwrap_or_else(|err| {
            panic!(
                "zmq-sys (ziggy patch): libsodium not found, so libzmq cannot have CURVE.\n\
                 Install it (Debian/Ubuntu: `apt-get install libsodium-dev`) or set \
                 SODIUM_LIB_DIR and SODIUM_INCLUDE_DIR.\npkg-config said: {}",
                err
            )
        });
    let lib_dir = found
        .link_paths
        .first()
        .cloned()
        .or_else(|| pkg_config::get_variable("libsodium", "libdir").ok().map(PathBuf::from))
        .expect("pkg-config gave no libdir for libsodium");
    let include_dir = found
        .include_paths
        .first()
        .cloned()
        .or_else(|| {
            pkg_config::get_variable("libsodium", "includedir")
                .ok()
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| PathBuf::from("/usr/include"));
    zeromq_src::LibLocation::new(lib_dir, include_dir)
}

fn main() {
    println!("cargo:rerun-if-changed=build/main.rs");
    println!("cargo:rerun-if-env-changed=PROFILE");
    let sodium = libsodium();
    // zeromq-src prints the search path with `{:?}` (quoted), which rustc does not take as a
    // directory; say it again, plainly.
    println!("cargo:rustc-link-search=native={}", sodium.lib_dir().display());
    zeromq_src::Build::new().with_libsodium(Some(sodium)).build();
}
