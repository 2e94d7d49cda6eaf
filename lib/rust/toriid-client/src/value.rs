//! Building request arguments and reading results: thin helpers over
//! [`rmpv::Value`], which does the msgpack encoding and decoding.

use chrono::{DateTime, TimeZone, Utc};
use rmpv::Value;

use crate::error::{Error, Result};

/// The arguments of a request: a msgpack map with string keys, built one
/// key at a time. `None` values are left out (the protocol treats nil and
/// absent alike), except through [`Args::nil`].
///
/// ```
/// use toriid_client::Args;
/// let args = Args::new().str("email", "ada@example.com").opt_str("name", None::<&str>);
/// assert_eq!(args.len(), 1);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Args(Vec<(Value, Value)>);

impl Args {
    /// No arguments (`{}`).
    pub fn new() -> Args {
        Args(Vec::new())
    }
    /// How many keys are set.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Whether no key is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Sets `key` to any msgpack value.
    pub fn value(mut self, key: &str, value: Value) -> Args {
        self.0.push((Value::from(key), value));
        self
    }
    /// Sets `key` to nil (for the arguments where nil clears a field).
    pub fn nil(self, key: &str) -> Args {
        self.value(key, Value::Nil)
    }
    /// Sets `key` to a string.
    pub fn str(self, key: &str, value: impl AsRef<str>) -> Args {
        self.value(key, Value::from(value.as_ref()))
    }
    /// Sets `key` to a string when `value` is `Some`.
    pub fn opt_str(self, key: &str, value: Option<impl AsRef<str>>) -> Args {
        match value {
            Some(v) => self.str(key, v),
            None => self,
        }
    }
    /// Sets `key` to binary data (msgpack bin).
    pub fn bin(self, key: &str, value: &[u8]) -> Args {
        self.value(key, Value::Binary(value.to_vec()))
    }
    /// Sets `key` to an integer.
    pub fn int(self, key: &str, value: i64) -> Args {
        self.value(key, Value::from(value))
    }
    /// Sets `key` to an integer when `value` is `Some`.
    pub fn opt_int(self, key: &str, value: Option<i64>) -> Args {
        match value {
            Some(v) => self.int(key, v),
            None => self,
        }
    }
    /// Sets `key` to a boolean.
    pub fn bool(self, key: &str, value: bool) -> Args {
        self.value(key, Value::Boolean(value))
    }
    /// Sets `key` to a timestamp (msgpack timestamp extension).
    pub fn time(self, key: &str, value: DateTime<Utc>) -> Args {
        self.value(key, timestamp_value(value))
    }
    /// Sets `key` to a timestamp when `value` is `Some`.
    pub fn opt_time(self, key: &str, value: Option<DateTime<Utc>>) -> Args {
        match value {
            Some(v) => self.time(key, v),
            None => self,
        }
    }
    /// Sets `key` to a timestamp, or to nil (which clears the field).
    pub fn time_or_nil(self, key: &str, value: Option<DateTime<Utc>>) -> Args {
        match value {
            Some(v) => self.time(key, v),
            None => self.nil(key),
        }
    }
    /// The map value.
    pub fn into_value(self) -> Value {
        Value::Map(self.0)
    }
}

/// A timestamp as the msgpack timestamp extension (type -1), 96-bit form.
pub fn timestamp_value(t: DateTime<Utc>) -> Value {
    let mut data = Vec::with_capacity(12);
    data.extend_from_slice(&t.timestamp_subsec_nanos().to_be_bytes());
    data.extend_from_slice(&t.timestamp().to_be_bytes());
    Value::Ext(-1, data)
}

/// Reads a msgpack timestamp (type -1 in its 32, 64 or 96-bit form) or an
/// integer of milliseconds since the epoch.
pub fn timestamp_from_value(v: &Value) -> Option<DateTime<Utc>> {
    match v {
        Value::Ext(-1, data) => {
            let (secs, nanos) = match data.len() {
                4 => (
                    i64::from(u32::from_be_bytes(data[..4].try_into().ok()?)),
                    0u32,
                ),
                8 => {
                    let x = u64::from_be_bytes(data[..8].try_into().ok()?);
                    ((x & 0x3_ffff_ffff) as i64, (x >> 34) as u32)
                }
                12 => (
                    i64::from_be_bytes(data[4..12].try_into().ok()?),
                    u32::from_be_bytes(data[..4].try_into().ok()?),
                ),
                _ => return None,
            };
            Utc.timestamp_opt(secs, nanos).single()
        }
        Value::Integer(i) => Utc.timestamp_millis_opt(i.as_i64()?).single(),
        _ => None,
    }
}

/// Read access to a result map, with errors that name the operation and
/// the key, for decoding replies into typed structs.
pub(crate) struct Fields<'a> {
    op: &'a str,
    map: &'a [(Value, Value)],
}

impl<'a> Fields<'a> {
    pub(crate) fn new(op: &'a str, v: &'a Value) -> Result<Fields<'a>> {
        match v {
            Value::Map(map) => Ok(Fields { op, map }),
            _ => Err(Error::malformed(op, "the result is not a map")),
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&'a Value> {
        self.map
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
            .filter(|v| !v.is_nil())
    }

    fn missing(&self, key: &str, what: &str) -> Error {
        Error::malformed(self.op, format!("`{key}` is missing or not {what}"))
    }

    pub(crate) fn string(&self, key: &str) -> Result<String> {
        self.opt_string(key)?
            .ok_or_else(|| self.missing(key, "a string"))
    }

    pub(crate) fn opt_string(&self, key: &str) -> Result<Option<String>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => match s.as_str() {
                Some(s) => Ok(Some(s.to_string())),
                None => Err(self.missing(key, "UTF-8")),
            },
            Some(_) => Err(self.missing(key, "a string")),
        }
    }

    pub(crate) fn binary(&self, key: &str) -> Result<Vec<u8>> {
        match self.get(key) {
            Some(Value::Binary(b)) => Ok(b.clone()),
            Some(Value::String(s)) => Ok(s.as_bytes().to_vec()),
            _ => Err(self.missing(key, "binary")),
        }
    }

    pub(crate) fn u64(&self, key: &str) -> Result<u64> {
        self.get(key)
            .and_then(Value::as_u64)
            .ok_or_else(|| self.missing(key, "an unsigned integer"))
    }

    pub(crate) fn i64(&self, key: &str) -> Result<i64> {
        self.get(key)
            .and_then(Value::as_i64)
            .ok_or_else(|| self.missing(key, "an integer"))
    }

    pub(crate) fn bool(&self, key: &str) -> Result<bool> {
        self.get(key)
            .and_then(Value::as_bool)
            .ok_or_else(|| self.missing(key, "a boolean"))
    }

    pub(crate) fn time(&self, key: &str) -> Result<DateTime<Utc>> {
        self.opt_time(key)?
            .ok_or_else(|| self.missing(key, "a timestamp"))
    }

    pub(crate) fn opt_time(&self, key: &str) -> Result<Option<DateTime<Utc>>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => timestamp_from_value(v)
                .map(Some)
                .ok_or_else(|| self.missing(key, "a timestamp")),
        }
    }

    pub(crate) fn value(&self, key: &str) -> Value {
        self.get(key).cloned().unwrap_or(Value::Nil)
    }

    pub(crate) fn list(&self, key: &str) -> Result<&'a [Value]> {
        match self.get(key) {
            Some(Value::Array(a)) => Ok(a),
            _ => Err(self.missing(key, "an array")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_in_every_form() {
        let t = Utc
            .timestamp_opt(1_700_000_000, 123_456_000)
            .single()
            .unwrap();
        assert_eq!(timestamp_from_value(&timestamp_value(t)), Some(t));
        let ts32 = Value::Ext(-1, 1_700_000_000u32.to_be_bytes().to_vec());
        assert_eq!(
            timestamp_from_value(&ts32).unwrap().timestamp(),
            1_700_000_000
        );
        let x: u64 = (123_456_000u64 << 34) | 1_700_000_000u64;
        let ts64 = Value::Ext(-1, x.to_be_bytes().to_vec());
        assert_eq!(timestamp_from_value(&ts64), Some(t));
        assert_eq!(timestamp_from_value(&Value::from("x")), None);
        assert_eq!(timestamp_from_value(&Value::Ext(-1, vec![1, 2])), None);
    }
}
