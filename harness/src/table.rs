//! Plain text tables (comfy-table, no borders): columns two spaces apart, no trailing spaces.

use comfy_table::{CellAlignment, Table, presets};

/// Renders `rows` (the first one the header) with the columns `right_aligned` says aligned to
/// the right; with `rule`, a line of dashes under the header.
pub(crate) fn render<R: AsRef<[String]>>(
    rows: &[R],
    right_aligned: impl Fn(usize) -> bool,
    rule: bool,
) -> String {
    let mut table = Table::new();
    table.load_style(presets::NOTHING);
    for row in rows {
        table.add_row(row.as_ref());
    }
    let columns = rows.first().map_or(0, |row| row.as_ref().len());
    for index in 0..columns {
        if let Some(column) = table.column_mut(index) {
            let last = index + 1 == columns;
            column.set_padding((0, if last { 0 } else { 2 }));
            if right_aligned(index) {
                column.set_cell_alignment(CellAlignment::Right);
            }
        }
    }
    let mut out = String::new();
    for (index, line) in table.lines().enumerate() {
        out += line.trim_end();
        out.push('\n');
        if index == 0 && rule {
            out += &"-".repeat(line.trim_end().chars().count());
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_columns_two_spaces_apart() {
        let rows = [
            vec!["name".to_string(), "value".to_string()],
            vec!["a".to_string(), "1.5".to_string()],
            vec!["longer".to_string(), "12.25".to_string()],
        ];
        let text = render(&rows, |index| index == 1, true);
        assert_eq!(
            text,
            "name    value\n-------------\na         1.5\nlonger  12.25\n"
        );
    }
}
