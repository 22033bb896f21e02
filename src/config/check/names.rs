//! A name a key refers to that no table defines, with the nearest one
//! that is defined: a misspelling is named with its likely fix.

/// `no upstream named "ecoh"; did you mean "echo"?`: the suggestion only
/// when one of `known` is within a few edits of `written`.
pub(super) fn not_found<'a>(
    what: &str,
    written: &str,
    known: impl IntoIterator<Item = &'a str>,
) -> String {
    match nearest(written, known) {
        Some(near) => format!("no {what} named {written:?}; did you mean {near:?}?"),
        None => format!("no {what} named {written:?}"),
    }
}

/// Names longer than this get no suggestion: the distance costs the
/// product of the two lengths.
const LONGEST_COMPARED: usize = 64;

/// The known name fewest edits away (a swap of two letters is one), if
/// that is at most a third of it: `echo` for `ecoh`, nothing for `billing`.
pub(in crate::config) fn nearest<'a>(
    written: &str,
    known: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    if written.len() > LONGEST_COMPARED {
        return None;
    }
    known
        .into_iter()
        .filter(|name| name.len() <= LONGEST_COMPARED)
        .map(|name| (strsim::damerau_levenshtein(written, name), name))
        .filter(|(edits, name)| *edits <= (name.chars().count() / 3).max(1))
        .min_by_key(|(edits, _)| *edits)
        .map(|(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_near_name_is_suggested_a_far_one_is_not() {
        let known = ["echo", "billing-v2"];
        assert_eq!(
            not_found("upstream", "ecoh", known),
            "no upstream named \"ecoh\"; did you mean \"echo\"?"
        );
        assert_eq!(
            not_found("upstream", "biling-v2", known),
            "no upstream named \"biling-v2\"; did you mean \"billing-v2\"?"
        );
        assert_eq!(
            not_found("upstream", "orders", known),
            "no upstream named \"orders\""
        );
    }
}
