//! The contract document (`docs/contract.md`), embedded: `harness cases --explain ID` prints a
//! case's row of its case table and the clauses it traces to, and a test keeps the table in
//! step with the case registry.

/// The contract, as committed.
const CONTRACT: &str = include_str!("../../docs/contract.md");

/// The cells of case `id`'s row in the contract's case table.
fn case_row(id: &str) -> Option<Vec<&'static str>> {
    CONTRACT
        .lines()
        .find(|line| line.starts_with(&format!("| {id} |")))
        .map(|line| line.trim_matches('|').split(" | ").map(str::trim).collect())
}

/// The text of clause `id` (e.g. `C1.1`), its continuation lines joined.
fn clause(id: &str) -> Option<String> {
    let start = format!("- **{id}** — ");
    let mut lines = CONTRACT
        .lines()
        .skip_while(|line| !line.starts_with(&start));
    let first = lines.next()?;
    let mut text = first.trim_start_matches("- ").to_string();
    for line in lines.take_while(|line| line.starts_with("  ")) {
        text.push(' ');
        text.push_str(line.trim());
    }
    Some(text)
}

/// Clause IDs named in a cell such as `C1.1, C1.4–C1.7` (ranges expanded within a section).
fn clause_ids(cell: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for part in cell.split(',').map(str::trim) {
        match part.split_once('–') {
            Some((from, to)) => {
                let (prefix, first) = from.rsplit_once('.').unwrap_or((from, "0"));
                let last = to.rsplit_once('.').map_or(to, |(_, n)| n);
                if let (Ok(first), Ok(last)) = (first.parse::<u32>(), last.parse::<u32>()) {
                    ids.extend((first..=last).map(|n| format!("{prefix}.{n}")));
                }
            }
            None if !part.is_empty() => ids.push(part.to_string()),
            None => {}
        }
    }
    ids
}

/// What `harness cases --explain ID` prints: the case's row and its clauses, or `None` when
/// the contract has no row for it.
pub(crate) fn explain(id: &str) -> Option<String> {
    let row = case_row(id)?;
    let [case, clauses, level, feature, does, failure] = row[..] else {
        return None;
    };
    let mut out = format!(
        "{case} ({level}, feature {feature}; contract {})\n  what it does: {does}\n  a failure usually means: {failure}\n  clauses:\n",
        crate::report::CONTRACT_VERSION
    );
    for id in clause_ids(clauses) {
        match clause(&id) {
            Some(text) => out.push_str(&format!("  - {text}\n")),
            None => out.push_str(&format!("  - {id} (not found in docs/contract.md)\n")),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cases;

    #[test]
    fn every_case_has_a_row_whose_clauses_exist_and_whose_feature_matches() {
        for case in cases::all() {
            let row = case_row(case.id)
                .unwrap_or_else(|| panic!("docs/contract.md has no row for {}", case.id));
            assert_eq!(row.len(), 6, "{}: {row:?}", case.id);
            assert_eq!(row[3], format!("`{}`", case.feature), "{}", case.id);
            let ids = clause_ids(row[1]);
            assert!(!ids.is_empty(), "{} traces to no clause", case.id);
            for id in ids {
                assert!(
                    clause(&id).is_some(),
                    "{}: clause {id} is not in the contract",
                    case.id
                );
            }
        }
    }

    #[test]
    fn ranges_expand_within_a_section_and_explain_names_the_clauses() {
        assert_eq!(
            clause_ids("C1.1, C1.4–C1.6"),
            ["C1.1", "C1.4", "C1.5", "C1.6"]
        );
        let text = explain("REG-001").unwrap();
        assert!(
            text.starts_with("REG-001 (Core, feature `registration`"),
            "{text}"
        );
        assert!(
            text.contains("- **C1.1** — *Core · `registration`.*"),
            "{text}"
        );
        assert!(explain("NOPE-001").is_none());
    }
}
