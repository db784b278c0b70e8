//! CURVE keys for daemon-to-daemon forwarding: generating, writing and reading them.
//!
//! Encryption and authentication are libzmq's own CURVE (CurveZMQ over libsodium); nothing here
//! touches a cipher. Key files use CZMQ's certificate layout (`zcert`), so keys made by other
//! ZeroMQ tools can be used and ours read by them:
//!
//! ```text
//! metadata
//! curve
//!     public-key = "<40 Z85 characters>"
//!     secret-key = "<40 Z85 characters>"     (only in the secret file)
//! ```
//!
//! `ziggyd keygen NAME` writes `NAME.secret` (mode 0600: both keys) and `NAME.public`. A secret
//! file that others can read is refused, as ssh refuses such a private key.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A key problem, with the file it concerns.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The key file.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file has no usable key of the kind asked for.
    #[error("{path}: {problem}")]
    Format {
        /// The key file.
        path: String,
        /// What is wrong.
        problem: String,
    },
    /// This build's libzmq has no CURVE.
    #[error("this ziggyd's libzmq was built without CURVE (libsodium); see vendor/zmq-sys")]
    Unsupported,
}

/// One CURVE key pair (raw 32-byte keys).
#[derive(Clone)]
pub struct KeyPair {
    /// The public key, given to peers.
    pub public: [u8; 32],
    /// The secret key, never leaves this host.
    pub secret: [u8; 32],
}

impl std::fmt::Debug for KeyPair {
    // The secret key must not end up in a log through `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "KeyPair {{ public: {}, secret: <hidden> }}",
            z85(&self.public)
        )
    }
}

/// Whether this build's libzmq has CURVE.
pub fn available() -> bool {
    zmq::has("curve").unwrap_or(false)
}

/// The Z85 text of a 32-byte key (40 characters).
pub fn z85(key: &[u8; 32]) -> String {
    zmq::z85_encode(key).expect("32 bytes is a multiple of 4")
}

/// A fresh key pair from libsodium's random source.
pub fn generate() -> Result<KeyPair, KeyError> {
    if !available() {
        return Err(KeyError::Unsupported);
    }
    let pair = zmq::CurveKeyPair::new().map_err(|_| KeyError::Unsupported)?;
    Ok(KeyPair {
        public: pair.public_key,
        secret: pair.secret_key,
    })
}

/// Where [`write_keypair`] wrote a key pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFiles {
    /// `BASE.secret`, mode 0600, for `--curve-secret-key`.
    pub secret: PathBuf,
    /// `BASE.public`, for a master's `--curve-allow` directory or `--curve-master-key`.
    pub public: PathBuf,
}

/// Writes `BASE.secret` (0600, created new: an existing key is never overwritten) and
/// `BASE.public`; returns both paths.
pub fn write_keypair(base: &Path, pair: &KeyPair) -> Result<KeyFiles, KeyError> {
    let secret_path = with_suffix(base, "secret");
    let public_path = with_suffix(base, "public");
    let public = z85(&pair.public);
    let secret_text = format!(
        "#   ZeroMQ CURVE **Secret** Certificate, written by ziggyd keygen\n\
         #   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.\n\n\
         metadata\ncurve\n    public-key = \"{public}\"\n    secret-key = \"{}\"\n",
        z85(&pair.secret)
    );
    let public_text = format!(
        "#   ZeroMQ CURVE Public Certificate, written by ziggyd keygen\n\
         #   Copy it into the master's --curve-allow directory (or give it as --curve-master-key).\n\n\
         metadata\ncurve\n    public-key = \"{public}\"\n"
    );
    for (path, text, mode) in [
        (&secret_path, secret_text, 0o600),
        (&public_path, public_text, 0o644),
    ] {
        let io = |source| KeyError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => KeyError::Format {
                    path: path.display().to_string(),
                    problem: "already exists; keygen never overwrites a key".into(),
                },
                _ => io(e),
            })?;
        file.write_all(text.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
    }
    Ok(KeyFiles {
        secret: secret_path,
        public: public_path,
    })
}

fn with_suffix(base: &Path, suffix: &str) -> PathBuf {
    let mut name = base.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}

/// Reads a secret key file (both keys). Refuses one that group or others can read.
pub fn read_secret_file(path: &Path) -> Result<KeyPair, KeyError> {
    let shown = path.display().to_string();
    let text = read_text(path)?;
    let pair = KeyPair {
        public: find_key(&text, "public-key", &shown)?,
        secret: find_key(&text, "secret-key", &shown)?,
    };
    let meta = fs::metadata(path).map_err(|source| KeyError::Io {
        path: shown.clone(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::Format {
            path: shown,
            problem: format!(
                "secret key file is readable by others (mode {mode:04o}); chmod 600 it"
            ),
        });
    }
    Ok(pair)
}

/// Reads the public key of a key file (public or secret).
pub fn read_public_file(path: &Path) -> Result<[u8; 32], KeyError> {
    let text = read_text(path)?;
    find_key(&text, "public-key", &path.display().to_string())
}

fn read_text(path: &Path) -> Result<String, KeyError> {
    let bytes = fs::read(path).map_err(|source| KeyError::Io {
        path: path.display().to_string(),
        source,
    })?;
    if bytes.len() > 64 << 10 {
        return Err(KeyError::Format {
            path: path.display().to_string(),
            problem: "larger than 64 KiB; not a key file".into(),
        });
    }
    String::from_utf8(bytes).map_err(|_| KeyError::Format {
        path: path.display().to_string(),
        problem: "not UTF-8 text; not a key file".into(),
    })
}

const Z85_ALPHABET: &[u8] =
    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

/// Finds `name = "Z85"` (quotes optional) and decodes it to 32 bytes.
fn find_key(text: &str, name: &str, path: &str) -> Result<[u8; 32], KeyError> {
    let problem = |problem: String| KeyError::Format {
        path: path.to_owned(),
        problem,
    };
    let value = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (key, value) = line.split_once('=')?;
            (key.trim() == name).then(|| value.trim().trim_matches('"').to_owned())
        })
        .ok_or_else(|| problem(format!("no {name} line")))?;
    if value.len() != 40 {
        return Err(problem(format!(
            "{name} is {} characters; a Z85 CURVE key has 40",
            value.len()
        )));
    }
    // libzmq 4.3.4's decoder turns characters outside the alphabet into zeros instead of failing.
    if !value.bytes().all(|b| Z85_ALPHABET.contains(&b)) {
        return Err(problem(format!("{name} is not valid Z85 text")));
    }
    let raw =
        zmq::z85_decode(&value).map_err(|_| problem(format!("{name} is not valid Z85 text")))?;
    raw.try_into()
        .map_err(|_| problem(format!("{name} does not decode to 32 bytes")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_files() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        let pair = generate().unwrap();
        let KeyFiles { secret, public } = write_keypair(&dir.join("node"), &pair).unwrap();
        let back = read_secret_file(&secret).unwrap();
        assert_eq!(back.public, pair.public);
        assert_eq!(back.secret, pair.secret);
        assert_eq!(read_public_file(&public).unwrap(), pair.public);
        assert_eq!(read_public_file(&secret).unwrap(), pair.public);
        assert!(!fs::read_to_string(&public).unwrap().contains("secret-key"));
        // Never overwrites a key.
        let again = write_keypair(&dir.join("node"), &pair).unwrap_err();
        assert!(again.to_string().contains("already exists"), "{again}");
    }

    #[test]
    fn readable_secret_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        let KeyFiles { secret, .. } =
            write_keypair(&dir.join("node"), &generate().unwrap()).unwrap();
        fs::set_permissions(&secret, fs::Permissions::from_mode(0o644)).unwrap();
        let err = read_secret_file(&secret).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }

    #[test]
    fn malformed_key_files_say_what_is_wrong() {
        let cases = [
            ("", "no public-key line"),
            ("public-key = \"short\"", "is 5 characters"),
            (
                "public-key = \"~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~\"",
                "not valid Z85",
            ),
            ("# public-key = \"x\"", "no public-key line"),
        ];
        for (text, expected) in cases {
            let err = find_key(text, "public-key", "f").unwrap_err().to_string();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }

    #[test]
    fn debug_hides_the_secret() {
        let pair = generate().unwrap();
        let shown = format!("{pair:?}");
        assert!(!shown.contains(&z85(&pair.secret)));
        assert!(shown.contains(&z85(&pair.public)));
    }
}
