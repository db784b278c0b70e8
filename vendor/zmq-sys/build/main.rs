//! Ziggy's patch of zmq-sys 0.12.0's build script: the same vendored libzmq 4.3.4 (through
//! `zeromq-src`), but linked statically against libsodium so that `ZMQ_CURVE` exists.
//!
//! Upstream passes `with_libsodium(None)`, which builds libzmq without CURVE at all (its own
//! comment says so: tweetnacl is unaudited, so it is left out). libsodium comes from the
//! `libsodium-sys-stable` dependency (`links = "sodium"`): by default its build script builds a
//! static libsodium from the source tarball it ships (offline, signature-checked, `./configure
//! && make`) and hands the install over as `DEP_SODIUM_LIB` / `DEP_SODIUM_INCLUDE`. Nothing but a
//! Rust toolchain and a C/C++ compiler is needed.
//!
//! A system libsodium instead (no source build, faster): `SODIUM_USE_PKG_CONFIG=1` (pkg-config,
//! Debian: `apt-get install pkg-config libsodium-dev`) or `SODIUM_LIB_DIR` (+ `SODIUM_INCLUDE_DIR`,
//! default `$SODIUM_LIB_DIR/../include`). Those are libsodium-sys-stable's own switches: its build
//! script runs before this one, whatever this one decides, so only they can skip the source build.
//! This script then finds the same library (DEP_SODIUM_*, else those variables, else pkg-config).
//!
//! `ZIGGY_SODIUM=vendored` insists on the source-built libsodium (a build error if one of those
//! switches is set); it is how the no-system-libsodium path is checked on a machine that has one.
//! A libzmq without CURVE is never built silently: no libsodium at all is a build error.
//!
//! libzmq's own C++ is compiled without warnings (`-w`): they are upstream's, not actionable
//! here, and cargo would print every one of them to whoever builds Ziggy. Errors still show.

use std::env;
use std::path::PathBuf;

/// `ZIGGY_SODIUM=vendored`: only the libsodium that libsodium-sys-stable built from source.
fn vendored_only() -> bool {
    match env::var("ZIGGY_SODIUM").as_deref() {
        Err(_) | Ok("") | Ok("auto") => false,
        Ok("vendored") => true,
        Ok(other) => panic!(
            "zmq-sys (ziggy patch): ZIGGY_SODIUM={:?}: expected `vendored` or `auto`",
            other
        ),
    }
}

/// `SODIUM_LIB_DIR` / `SODIUM_INCLUDE_DIR`, if set.
fn from_env() -> Option<zeromq_src::LibLocation> {
    let lib_dir = env::var("SODIUM_LIB_DIR").ok()?;
    let include_dir = env::var("SODIUM_INCLUDE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(&lib_dir).join("../include"));
    Some(zeromq_src::LibLocation::new(lib_dir, include_dir))
}

/// A system libsodium, through pkg-config.
fn from_pkg_config() -> Result<zeromq_src::LibLocation, pkg_config::Error> {
    let found = pkg_config::Config::new()
        .statik(true)
        .cargo_metadata(false)
        .probe("libsodium")?;
    let lib_dir = found
        .link_paths
        .first()
        .cloned()
        .or_else(|| {
            pkg_config::get_variable("libsodium", "libdir")
                .ok()
                .map(PathBuf::from)
        })
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
    Ok(zeromq_src::LibLocation::new(lib_dir, include_dir))
}

/// The static libsodium that libsodium-sys-stable points at: `cargo:lib=` and `cargo:include=` in
/// its build script's output become `DEP_SODIUM_LIB` / `DEP_SODIUM_INCLUDE` here. After a source
/// build they name its install; with `SODIUM_USE_PKG_CONFIG` they may name a system directory,
/// or be missing (pkg-config leaves out the default directories).
fn from_dependency() -> Option<zeromq_src::LibLocation> {
    let lib_dir = PathBuf::from(env::var_os("DEP_SODIUM_LIB")?);
    if !lib_dir.join("libsodium.a").is_file() && !lib_dir.join("libsodium.lib").is_file() {
        return None;
    }
    let include_dir = env::var_os("DEP_SODIUM_INCLUDE")
        .map(PathBuf::from)
        .or_else(|| {
            from_pkg_config()
                .ok()
                .map(|l| l.include_dir().to_path_buf())
        })
        .unwrap_or_else(|| PathBuf::from("/usr/include"));
    Some(zeromq_src::LibLocation::new(lib_dir, include_dir))
}

fn libsodium() -> zeromq_src::LibLocation {
    for var in &[
        "ZIGGY_SODIUM",
        "SODIUM_LIB_DIR",
        "SODIUM_INCLUDE_DIR",
        "SODIUM_USE_PKG_CONFIG",
        "PKG_CONFIG_PATH",
    ] {
        println!("cargo:rerun-if-env-changed={}", var);
    }
    let system_asked =
        env::var_os("SODIUM_LIB_DIR").is_some() || env::var_os("SODIUM_USE_PKG_CONFIG").is_some();
    if vendored_only() {
        if system_asked {
            panic!(
                "zmq-sys (ziggy patch): ZIGGY_SODIUM=vendored, but SODIUM_LIB_DIR or \
                 SODIUM_USE_PKG_CONFIG is set, so libsodium-sys-stable did not build libsodium \
                 from source; unset them"
            );
        }
        return from_dependency().unwrap_or_else(|| {
            panic!(
                "zmq-sys (ziggy patch): ZIGGY_SODIUM=vendored, but libsodium-sys-stable gave no \
                 static libsodium (DEP_SODIUM_LIB={:?})",
                env::var_os("DEP_SODIUM_LIB")
            )
        });
    }
    if let Some(location) = from_dependency() {
        return location;
    }
    if let Some(location) = from_env() {
        return location;
    }
    from_pkg_config().unwrap_or_else(|err| {
        panic!(
            "zmq-sys (ziggy patch): no libsodium, so libzmq cannot have CURVE.\n\
             Unset SODIUM_USE_PKG_CONFIG and SODIUM_LIB_DIR to build it from source, or install \
             it (Debian/Ubuntu: `apt-get install pkg-config libsodium-dev`).\n\
             pkg-config said: {}",
            err
        )
    })
}

/// zeromq-src's `cc::Build` takes no flags from outside, but `cc` reads `CXXFLAGS` and its
/// target-suffixed forms from the environment (all of them, concatenated), and zeromq-src
/// compiles in this process: add the no-warnings flag to the most specific one, keeping whatever
/// the user put there. (With any `CXXFLAGS` set, `cc` also leaves out its default `-Wall
/// -Wextra`.)
fn silence_libzmq_warnings() {
    let target = env::var("TARGET").expect("cargo sets TARGET");
    let var = format!("CXXFLAGS_{}", target.replace(['-', '.'], "_"));
    let flag = if target.contains("msvc") { "/w" } else { "-w" };
    let flags = match env::var(&var) {
        Ok(existing) if !existing.trim().is_empty() => format!("{} {}", existing, flag),
        _ => flag.to_string(),
    };
    env::set_var(var, flags);
}

fn main() {
    println!("cargo:rerun-if-changed=build/main.rs");
    println!("cargo:rerun-if-env-changed=PROFILE");
    let sodium = libsodium();
    // zeromq-src prints the search path with `{:?}` (quoted), which rustc does not take as a
    // directory; say it again, plainly.
    println!(
        "cargo:rustc-link-search=native={}",
        sodium.lib_dir().display()
    );
    silence_libzmq_warnings();
    zeromq_src::Build::new()
        .with_libsodium(Some(sodium))
        .build();
}
