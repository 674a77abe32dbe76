//! Matching children against a sequence: the cursor each open element keeps, advanced
//! greedily (MeMo's content models are deterministic, as XSD requires), and the reasons a child
//! does not fit, in words.

use super::schema::{Child, Ns, Particle, describe, name_of};

/// Where an element is in its sequence: the particle and how often it matched so far.
#[derive(Debug, Default)]
pub struct Cursor {
    particle: usize,
    count: u32,
}

/// Why a child element does not fit its parent's sequence.
pub enum Misfit {
    /// Matches a particle already passed.
    OutOfOrder {
        must_precede: &'static Child,
    },
    /// A required particle before it was skipped.
    Missing {
        missing: Vec<&'static Child>,
    },
    TooMany {
        max: u32,
    },
    WrongNamespace {
        expected: &'static Child,
    },
    NotAllowed {
        expected: Vec<&'static Child>,
    },
}

impl Misfit {
    /// In words, for `<qname>` (in namespace `ns`) inside the element named `parent`.
    pub fn render(self, qname: &str, ns: Option<&str>, parent: &str) -> String {
        match self {
            Misfit::OutOfOrder { must_precede } => format!(
                "<{qname}> is out of order: it must come before {}",
                name_of(must_precede)
            ),
            Misfit::Missing { missing } => format!(
                "required element {} is missing before <{qname}>",
                describe(&missing)
            ),
            Misfit::TooMany { max } => format!(
                "<{qname}> may occur at most {max} time{} here",
                if max == 1 { "" } else { "s" }
            ),
            Misfit::WrongNamespace { expected } => format!(
                "<{qname}> is in {}; expected {} in namespace {}",
                ns.map_or("no namespace".to_string(), |u| format!("namespace {u}")),
                name_of(expected),
                expected.ns.uri()
            ),
            Misfit::NotAllowed { expected } => format!(
                "<{qname}> is not allowed in {parent}; expected {}",
                if expected.is_empty() {
                    "its end tag".to_string()
                } else {
                    describe(&expected)
                }
            ),
        }
    }
}

impl Cursor {
    /// Moves the cursor over the sequence `parts` to the child named (`ns`, `local`), returning
    /// its declaration and 1-based occurrence (for repeatable elements).
    pub fn step(
        &mut self,
        parts: &'static [Particle],
        ns: Option<Ns>,
        local: &str,
    ) -> Result<(&'static Child, Option<u32>), Misfit> {
        let matches =
            |p: &'static Particle| p.alts.iter().find(|c| Some(c.ns) == ns && c.name == local);
        let (mut i, mut count) = (self.particle, self.count);
        while i < parts.len() {
            let p = &parts[i];
            if let Some(c) = matches(p) {
                if count >= p.max {
                    return Err(Misfit::TooMany { max: p.max });
                }
                self.particle = i;
                self.count = count + 1;
                return Ok((c, (p.max > 1).then_some(count + 1)));
            }
            if count < p.min {
                // Would skipping it reach a particle that matches? Then the required one is missing.
                if parts[i + 1..].iter().any(|q| matches(q).is_some()) {
                    return Err(Misfit::Missing {
                        missing: p.alts.iter().collect(),
                    });
                }
                break;
            }
            i += 1;
            count = 0;
        }
        if parts[..self.particle].iter().any(|p| matches(p).is_some()) {
            let current = &parts[self.particle];
            return Err(Misfit::OutOfOrder {
                must_precede: &current.alts[0],
            });
        }
        if let Some(expected) = parts
            .iter()
            .flat_map(|p| p.alts.iter())
            .find(|c| c.name == local)
        {
            return Err(Misfit::WrongNamespace { expected });
        }
        Err(Misfit::NotAllowed {
            expected: allowed_next(parts, self.particle, self.count),
        })
    }

    /// The first required child not yet seen, when the element ends here.
    pub fn missing(&self, parts: &'static [Particle]) -> Option<Vec<&'static Child>> {
        first_missing(parts, self.particle, self.count)
    }
}

/// What may come next at this point of a sequence.
fn allowed_next(parts: &'static [Particle], cursor: usize, count: u32) -> Vec<&'static Child> {
    let mut out = Vec::new();
    for (i, p) in parts.iter().enumerate().skip(cursor) {
        let seen = if i == cursor { count } else { 0 };
        if seen < p.max {
            out.extend(p.alts.iter());
        }
        if seen < p.min {
            break;
        }
    }
    out
}

/// The first required particle not yet satisfied at the end of an element.
fn first_missing(
    parts: &'static [Particle],
    cursor: usize,
    count: u32,
) -> Option<Vec<&'static Child>> {
    parts.iter().enumerate().skip(cursor).find_map(|(i, p)| {
        let seen = if i == cursor { count } else { 0 };
        (seen < p.min).then(|| p.alts.iter().collect())
    })
}
