//! What the CLI's listings share: tables with a header, columns as wide as their widest cell,
//! a sentence instead of an empty table, and times as people read them.

/// A table printed to standard output.
pub struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&'static str]) -> Table {
        Table {
            header: header.to_vec(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table's lines; `empty` alone when it has no row (`no jobs`).
    pub fn render(&self, empty: &str) -> String {
        if self.rows.is_empty() {
            return format!("{empty}\n");
        }
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                if i < widths.len() {
                    widths[i] = widths[i].max(cell.chars().count());
                }
            }
        }
        let line = |cells: &mut dyn Iterator<Item = &str>| {
            let mut out = String::new();
            for (i, cell) in cells.enumerate() {
                let last = i + 1 == widths.len();
                if last {
                    out.push_str(cell);
                } else {
                    let pad = widths[i].saturating_sub(cell.chars().count());
                    out.push_str(cell);
                    out.push_str(&" ".repeat(pad + 2));
                }
            }
            out.trim_end().to_string() + "\n"
        };
        let mut out = line(&mut self.header.iter().copied());
        for row in &self.rows {
            out.push_str(&line(&mut row.iter().map(String::as_str)));
        }
        out
    }

    pub fn print(&self, empty: &str) {
        print!("{}", self.render(empty));
    }
}

pub use pushgate::web::when;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_fit_their_widest_cell_and_an_empty_table_says_so() {
        let mut t = Table::new(&["ID", "STATE", "MESSAGE"]);
        t.row(vec!["7".into(), "running".into(), "run 3 on dom0".into()]);
        t.row(vec!["12".into(), "ok".into(), "".into()]);
        assert_eq!(
            t.render("no jobs"),
            "ID  STATE    MESSAGE\n7   running  run 3 on dom0\n12  ok\n"
        );
        assert_eq!(Table::new(&["ID"]).render("no jobs"), "no jobs\n");
    }
}
