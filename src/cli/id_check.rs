//! `brevdue id check ID…`: is each id a valid CPR or CVR number, and why not.

use std::io::Write;

use crate::domain::RecipientId;

/// Prints one line per id; returns whether all were valid.
pub fn run(ids: &[String], out: &mut impl Write) -> std::io::Result<bool> {
    let mut all_valid = true;
    for raw in ids {
        match RecipientId::detect(raw) {
            Ok(RecipientId::Cpr(c)) => {
                writeln!(out, "{raw}: valid CPR {c} (born {})", c.birth_date())?;
            }
            Ok(RecipientId::Cvr(c)) => writeln!(out, "{raw}: valid CVR {c}")?,
            Err(e) => {
                all_valid = false;
                writeln!(out, "{raw}: invalid: {e}")?;
            }
        }
    }
    Ok(all_valid)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reports_each_id() {
        let ids: Vec<String> = ["61126228", "0101901234", "3102901234"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut out = Vec::new();
        let ok = super::run(&ids, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(!ok);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "61126228: valid CVR 61126228");
        assert_eq!(
            lines[1],
            "0101901234: valid CPR 0101901234 (born 1990-01-01)"
        );
        assert_eq!(
            lines[2],
            "3102901234: invalid: CPR 3102901234: 31 February is not a date"
        );
    }
}
