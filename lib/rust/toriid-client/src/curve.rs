//! CURVE key files, in the format `torii keygen` writes (docs/security.md):
//! one Z85 key of 40 characters, optionally with blank lines and `#`
//! comment lines around it.

use std::path::Path;

use crate::error::{Error, Result};

/// Reads one Z85 key file and returns the raw 32-byte key. Errors name the
/// file and the reason, never the file's text (it may hold a secret key).
pub fn read_key_file(path: impl AsRef<Path>) -> Result<Vec<u8>> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Config(format!("cannot read key file {}: {e}", path.display())))?;
    decode_key_text(&text)
        .map_err(|why| Error::Config(format!("key file {}: {why}", path.display())))
}

/// Decodes the text of a key file (see [`read_key_file`]) to 32 raw bytes.
pub fn decode_key_text(text: &str) -> std::result::Result<Vec<u8>, &'static str> {
    let mut keys = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    let key = keys.next().ok_or("holds no key")?;
    if keys.next().is_some() {
        return Err("holds more than one key");
    }
    decode_z85_key(key)
}

/// Decodes one Z85 key (40 characters) to its 32 raw bytes.
pub fn decode_z85_key(key: &str) -> std::result::Result<Vec<u8>, &'static str> {
    if key.len() != 40 {
        return Err("a key is 40 Z85 characters");
    }
    match zmq::z85_decode(key) {
        Ok(raw) if raw.len() == 32 => Ok(raw),
        _ => Err("not a valid Z85 key"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_keys_with_comments_and_refuses_junk_without_echoing_it() {
        let key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
        let raw = decode_key_text(&format!("# a comment\n\n{key}\n")).unwrap();
        assert_eq!(raw.len(), 32);
        assert!(decode_key_text("").is_err());
        assert!(decode_key_text(&format!("{key}\n{key}")).is_err());
        let dir = std::env::temp_dir().join(format!("toriid-key-{}", std::process::id()));
        std::fs::write(&dir, "secret-looking-junk").unwrap();
        let err = read_key_file(&dir).unwrap_err().to_string();
        assert!(!err.contains("secret-looking-junk"), "{err}");
        std::fs::remove_file(&dir).unwrap();
    }
}
