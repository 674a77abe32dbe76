//! CVR numbers: the Danish business register number, 8 digits with a modulus-11 check.

use std::fmt;
use std::str::FromStr;

use super::IdError;

const WEIGHTS: [u32; 8] = [2, 7, 6, 5, 4, 3, 2, 1];

/// A validated CVR number. Companies are not persons, so a CVR may appear in logs.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Cvr(u32);

impl Cvr {
    pub fn value(self) -> u32 {
        self.0
    }

    /// Builds a CVR from its numeric value, checking it like a parsed one.
    pub fn from_value(value: u32) -> Result<Self, IdError> {
        value.to_string().parse()
    }
}

impl FromStr for Cvr {
    type Err = IdError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let s = input.trim();
        if s.len() != 8 {
            return Err(IdError::cvr(s, "must be 8 digits"));
        }
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(IdError::cvr(s, "must contain only digits"));
        }
        if s.starts_with('0') {
            return Err(IdError::cvr(s, "cannot start with 0"));
        }
        let digits = s.bytes().map(|b| u32::from(b - b'0'));
        let sum: u32 = digits.clone().zip(WEIGHTS).map(|(d, w)| d * w).sum();
        if !sum.is_multiple_of(11) {
            return Err(IdError::cvr(
                s,
                "fails the modulus-11 check (a digit is wrong or two are swapped)",
            ));
        }
        Ok(Cvr(digits.fold(0, |acc, d| acc * 10 + d)))
    }
}

impl fmt::Display for Cvr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08}", self.0)
    }
}

impl serde::Serialize for Cvr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Cvr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Appends the check digit to a 7-digit stem, or `None` when no digit makes it valid.
/// Used by the synthetic registry generator.
pub fn complete_cvr(stem: u32) -> Option<Cvr> {
    if !(1_000_000..=9_999_999).contains(&stem) {
        return None;
    }
    let mut sum = 0;
    let mut v = stem;
    for w in WEIGHTS[..7].iter().rev() {
        sum += (v % 10) * w;
        v /= 10;
    }
    let check = (11 - sum % 11) % 11;
    if check == 10 {
        return None;
    }
    Some(Cvr(stem * 10 + check))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_numbers() {
        for s in ["61126228", "10103940", "25313763", "29403473"] {
            let cvr: Cvr = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(cvr.to_string(), s);
        }
    }

    #[test]
    fn invalid_numbers_say_why() {
        let err = |s: &str| s.parse::<Cvr>().unwrap_err().to_string();
        assert_eq!(
            err("61126229"),
            "CVR 61126229: fails the modulus-11 check (a digit is wrong or two are swapped)"
        );
        assert_eq!(err("01126228"), "CVR 01126228: cannot start with 0");
        assert_eq!(err("6112622"), "CVR 6112622: must be 8 digits");
        assert_eq!(err("6112622a"), "CVR 6112622a: must contain only digits");
    }

    #[test]
    fn complete_cvr_gives_valid_numbers() {
        let mut made = 0;
        for stem in 1_000_000..1_001_000 {
            if let Some(cvr) = complete_cvr(stem) {
                assert!(cvr.to_string().parse::<Cvr>().is_ok());
                made += 1;
            }
        }
        assert!(made > 800);
        assert_eq!(complete_cvr(6_112_622).unwrap().to_string(), "61126228");
    }
}
