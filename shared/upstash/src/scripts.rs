//! The Lua scripts Feen runs on Redis, shared by the RESP client (native) and the REST client
//! (edge), so both backends have exactly the same semantics.

use feen_core::ports::{Admission, KvError};

/// The admission script. `KEYS[1]` is the guard key (ignored unless `ARGV[1]` is `1`, in which
/// case it must hold `ARGV[2]`); `KEYS[i+1]` are the counters, each with four arguments from
/// `ARGV[4i-1]`: limit, cost, expiry in ms, seed. A missing counter with a seed starts from it.
/// Only if every counter has room are all bumped. Replies `{1, v1, v2, ...}` (new values),
/// `{0, index, value}` (the first counter without room) or `{2}` (the guard failed).
pub const ADMIT_SCRIPT: &str = r"
if ARGV[1] == '1' and redis.call('GET', KEYS[1]) ~= ARGV[2] then
  return {2}
end
local n = #KEYS - 1
for i = 1, n do
  local key, b = KEYS[i + 1], 4 * i - 1
  local raw = redis.call('GET', key)
  local value
  if raw then
    value = tonumber(raw)
  else
    value = tonumber(ARGV[b + 3])
    if value > 0 then redis.call('SET', key, value, 'PX', ARGV[b + 2]) end
  end
  if value + tonumber(ARGV[b + 1]) > tonumber(ARGV[b]) then
    return {0, i - 1, value}
  end
end
local out = {1}
for i = 1, n do
  local key, b = KEYS[i + 1], 4 * i - 1
  local cost = tonumber(ARGV[b + 1])
  local value = redis.call('INCRBY', key, cost)
  if redis.call('PTTL', key) < 0 then
    redis.call('PEXPIRE', key, ARGV[b + 2])
  end
  out[#out + 1] = value
end
return out
";

/// Applies corrections: `ARGV[2i-1]` added to `KEYS[i]`, a fresh key expiring in `ARGV[2i]` ms.
pub const SETTLE_SCRIPT: &str = r"
for i = 1, #KEYS do
  redis.call('INCRBY', KEYS[i], ARGV[2 * i - 1])
  if redis.call('PTTL', KEYS[i]) < 0 then redis.call('PEXPIRE', KEYS[i], ARGV[2 * i]) end
end
return #KEYS
";

/// Adds `ARGV[1]` to `KEYS[1]` and gives a fresh key the expiry `ARGV[2]` ms.
pub const ADD_SCRIPT: &str = r"
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return value
";

/// The admission script's reply as an [`Admission`].
pub fn admission(reply: &[i64]) -> Result<Admission, KvError> {
    let unsigned = |n: i64| u64::try_from(n).unwrap_or(0);
    match reply {
        [1, values @ ..] => Ok(Admission::Admitted {
            values: values.iter().copied().map(unsigned).collect(),
        }),
        [2] => Ok(Admission::Stale),
        [0, index, value] => Ok(Admission::Refused {
            index: unsigned(*index) as usize,
            value: unsigned(*value),
        }),
        _ => Err(KvError("unexpected reply from the admit script".into())),
    }
}

/// The SHA-1 of a script, as `EVALSHA` names it.
pub fn sha1(script: &str) -> String {
    sha1_smol::Sha1::from(script).digest().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_digests_are_redis_sha1_hex() {
        // `SCRIPT LOAD "return 1"` answers this digest.
        assert_eq!(sha1("return 1"), "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
        assert_eq!(sha1(ADMIT_SCRIPT).len(), 40);
    }
}
