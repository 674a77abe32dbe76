//! CPR numbers: the Danish personal identification number, `DDMMYYSSSS`.
//!
//! Parsing follows the century table of the CPR office: the first digit of the serial number
//! together with the two-digit year fixes the century. The modulus-11 check is deliberately not
//! applied: numbers issued since 2007 may fail it and are still valid.

use std::fmt;
use std::str::FromStr;

use time::{Date, Month};

use super::IdError;

/// A validated CPR number, held as its numeric value (leading zeros restored by `Display`).
///
/// The value is a person's identity: never log it, never put it in a metric label.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cpr(u64);

impl Cpr {
    /// The numeric value of the ten digits (`0101901234` is `101901234`).
    pub fn value(self) -> u64 {
        self.0
    }

    /// Builds a CPR from its numeric value, checking it like a parsed one.
    pub fn from_value(value: u64) -> Result<Self, IdError> {
        if value > 9_999_999_999 {
            return Err(IdError::cpr(&value.to_string(), "must be 10 digits"));
        }
        format!("{value:010}").parse()
    }

    /// The ten digits as written on a health card, without the dash.
    pub fn digits(self) -> [u8; 10] {
        let mut out = [0u8; 10];
        let mut v = self.0;
        for slot in out.iter_mut().rev() {
            *slot = (v % 10) as u8;
            v /= 10;
        }
        out
    }

    /// The birth date the number encodes (always a real date: parsing checked it).
    pub fn birth_date(self) -> Date {
        let d = self.digits();
        let day = d[0] * 10 + d[1];
        let month = d[2] * 10 + d[3];
        let yy = u16::from(d[4]) * 10 + u16::from(d[5]);
        let year = century(d[6], yy) + yy;
        // Parsing guarantees the date exists; fall back to the epoch rather than panic if a
        // value was ever built around the checks.
        Month::try_from(month)
            .ok()
            .and_then(|m| Date::from_calendar_date(i32::from(year), m, day).ok())
            .unwrap_or(Date::MIN)
    }

    /// Age in whole years on `day` (negative ages, for birth dates after `day`, are 0).
    pub fn age_on(self, day: Date) -> u32 {
        let born = self.birth_date();
        if day < born {
            return 0;
        }
        let mut years = day.year() - born.year();
        if (day.month() as u8, day.day()) < (born.month() as u8, born.day()) {
            years -= 1;
        }
        u32::try_from(years).unwrap_or(0)
    }
}

/// The century of a CPR birth year from the first serial digit and the two-digit year.
fn century(serial_first: u8, yy: u16) -> u16 {
    match serial_first {
        0..=3 => 1900,
        4 | 9 => {
            if yy <= 36 {
                2000
            } else {
                1900
            }
        }
        _ => {
            if yy <= 57 {
                2000
            } else {
                1800
            }
        }
    }
}

const MONTH_NAMES: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

impl FromStr for Cpr {
    type Err = IdError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let s = input.trim();
        let bytes = s.as_bytes();
        let digits: Vec<u8> = match bytes.len() {
            10 => bytes.to_vec(),
            11 if bytes[6] == b'-' => bytes[..6].iter().chain(&bytes[7..]).copied().collect(),
            _ => {
                return Err(IdError::cpr(
                    s,
                    "must be 10 digits, written DDMMYYSSSS or DDMMYY-SSSS",
                ));
            }
        };
        if !digits.iter().all(u8::is_ascii_digit) {
            return Err(IdError::cpr(
                s,
                "must contain only digits (and an optional dash after the birth date)",
            ));
        }
        let d: Vec<u8> = digits.iter().map(|b| b - b'0').collect();
        let day = d[0] * 10 + d[1];
        let month = d[2] * 10 + d[3];
        let yy = u16::from(d[4]) * 10 + u16::from(d[5]);
        let year = century(d[6], yy) + yy;
        let normalised: String = digits.iter().map(|&b| char::from(b)).collect();
        if !(1..=12).contains(&month) {
            return Err(IdError::cpr(
                &normalised,
                &format!("month {month:02} does not exist"),
            ));
        }
        let month_enum = Month::try_from(month)
            .map_err(|_| IdError::cpr(&normalised, &format!("month {month:02} does not exist")))?;
        if Date::from_calendar_date(i32::from(year), month_enum, day).is_err() {
            let name = MONTH_NAMES[usize::from(month - 1)];
            let problem = if day == 29 && month == 2 {
                format!("29 February {year} is not a date ({year} is not a leap year)")
            } else if day == 0 {
                format!("day 00 of {name} is not a date")
            } else {
                format!("{day} {name} is not a date")
            };
            return Err(IdError::cpr(&normalised, &problem));
        }
        let value = digits
            .iter()
            .fold(0u64, |acc, b| acc * 10 + u64::from(b - b'0'));
        Ok(Cpr(value))
    }
}

impl fmt::Display for Cpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:010}", self.0)
    }
}

/// Debug never shows the number: a `{:?}` in a log line must not leak a person's identity.
impl fmt::Debug for Cpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cpr(**********)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn parse(s: &str) -> Result<Cpr, String> {
        s.parse::<Cpr>().map_err(|e| e.to_string())
    }

    #[test]
    fn accepts_both_written_forms_and_normalises() {
        let a = parse("0101901234").unwrap();
        let b = parse("010190-1234").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "0101901234");
        assert_eq!(a.birth_date(), date!(1990 - 01 - 01));
    }

    #[test]
    fn rejects_impossible_dates_with_a_human_message() {
        assert_eq!(
            parse("3102901234").unwrap_err(),
            "CPR 3102901234: 31 February is not a date"
        );
        assert_eq!(
            parse("0113901234").unwrap_err(),
            "CPR 0113901234: month 13 does not exist"
        );
        assert_eq!(
            parse("0001901234").unwrap_err(),
            "CPR 0001901234: day 00 of January is not a date"
        );
        assert_eq!(
            parse("3104901234").unwrap_err(),
            "CPR 3104901234: 31 April is not a date"
        );
    }

    #[test]
    fn leap_years_follow_the_century() {
        // 2000 is a leap year (serial 4, yy 00 -> 2000).
        assert_eq!(
            parse("2902004000").unwrap().birth_date(),
            date!(2000 - 02 - 29)
        );
        // 1900 is not (serial 0 -> 1900s).
        assert_eq!(
            parse("2902000000").unwrap_err(),
            "CPR 2902000000: 29 February 1900 is not a date (1900 is not a leap year)"
        );
        // 1996 is; 1997 is not.
        assert!(parse("2902961234").is_ok());
        assert!(parse("2902971234").is_err());
        // 1800s: serial 5-8 with yy > 57. 1860 is a leap year, 1859 is not.
        assert_eq!(
            parse("2902605000").unwrap().birth_date(),
            date!(1860 - 02 - 29)
        );
        assert!(parse("2902595000").is_err());
    }

    #[test]
    fn century_table() {
        let year = |s: &str| parse(s).unwrap().birth_date().year();
        assert_eq!(year("0101990000"), 1999); // serial 0
        assert_eq!(year("0101993999"), 1999); // serial 3
        assert_eq!(year("0101364000"), 2036); // serial 4, yy <= 36
        assert_eq!(year("0101374000"), 1937); // serial 4, yy > 36
        assert_eq!(year("0101369000"), 2036); // serial 9, yy <= 36
        assert_eq!(year("0101379999"), 1937); // serial 9, yy > 36
        assert_eq!(year("0101575000"), 2057); // serial 5, yy <= 57
        assert_eq!(year("0101585000"), 1858); // serial 5, yy > 57
        assert_eq!(year("0101008999"), 2000); // serial 8, yy <= 57
        assert_eq!(year("0101998999"), 1899); // serial 8, yy > 57
    }

    #[test]
    fn modulus_eleven_is_not_required() {
        // 0101901234 fails mod 11 (weights 4,3,2,7,6,5,4,3,2,1) and is still valid.
        let w = [4u64, 3, 2, 7, 6, 5, 4, 3, 2, 1];
        let cpr = parse("0101901234").unwrap();
        let sum: u64 = cpr
            .digits()
            .iter()
            .zip(w)
            .map(|(d, w)| u64::from(*d) * w)
            .sum();
        assert_ne!(sum % 11, 0);
    }

    #[test]
    fn rejects_malformed_input() {
        assert!(parse("").unwrap_err().contains("must be 10 digits"));
        assert!(
            parse("123456789")
                .unwrap_err()
                .contains("must be 10 digits")
        );
        assert!(parse("01019O1234").unwrap_err().contains("only digits"));
        assert!(
            parse("0101-901234")
                .unwrap_err()
                .contains("must be 10 digits")
        );
        assert!(parse("+101901234").unwrap_err().contains("only digits"));
        assert!(parse("０１０１９０１２３４").is_err());
    }

    #[test]
    fn age_on_a_day() {
        let cpr = parse("1503114000").unwrap(); // born 15 March 2011
        assert_eq!(cpr.age_on(date!(2026 - 03 - 14)), 14);
        assert_eq!(cpr.age_on(date!(2026 - 03 - 15)), 15);
        assert_eq!(cpr.age_on(date!(2000 - 01 - 01)), 0);
    }

    #[test]
    fn debug_hides_the_number() {
        let cpr = parse("0101901234").unwrap();
        assert!(!format!("{cpr:?}").contains("0101901234"));
    }

    #[test]
    fn value_round_trip() {
        let cpr = parse("0101901234").unwrap();
        assert_eq!(Cpr::from_value(cpr.value()).unwrap(), cpr);
        assert!(Cpr::from_value(99_999_999_999).is_err());
    }
}
