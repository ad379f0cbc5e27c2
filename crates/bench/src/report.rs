//! Numbers to text: percentiles, the `12.3` / `1.45x` formats, and a report that is either
//! plain aligned text or Markdown.

/// The median (the mean of the two middle values for an even count); NaN when empty.
pub fn p50(values: &[f64]) -> f64 {
    let s = sorted(values);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// The 95th percentile, nearest rank (the smallest value with at least 95% at or below it);
/// NaN when empty.
pub fn p95(values: &[f64]) -> f64 {
    let s = sorted(values);
    if s.is_empty() {
        return f64::NAN;
    }
    let rank = (95 * s.len()).div_ceil(100).max(1);
    s[rank - 1]
}

fn sorted(values: &[f64]) -> Vec<f64> {
    let mut s = values.to_vec();
    s.sort_by(f64::total_cmp);
    s
}

/// Milliseconds: one decimal below 100, none from 100 on; `n/a` for NaN.
pub fn ms(v: f64) -> String {
    if v.is_nan() {
        "n/a".into()
    } else if v < 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

/// `a / b` as `1.45x`; `n/a` when either is NaN or `b` is zero.
pub fn ratio(a: f64, b: f64) -> String {
    if a.is_nan() || b.is_nan() || b == 0.0 {
        "n/a".into()
    } else {
        format!("{:.2}x", a / b)
    }
}

/// kB (as /proc reports them) as `8.5 MiB (8712 kB)`.
pub fn kib(kb: Option<u64>) -> String {
    match kb {
        Some(v) => format!("{} ({v} kB)", mib(v)),
        None => "n/a".into(),
    }
}

/// kB as `8.5 MiB`.
pub fn mib(kb: u64) -> String {
    format!("{:.1} MiB", kb as f64 / 1024.0)
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// The report, built up section by section and printed at the end.
pub struct Report {
    markdown: bool,
    lines: Vec<String>,
}

impl Report {
    pub fn new(markdown: bool) -> Report {
        Report {
            markdown,
            lines: Vec::new(),
        }
    }

    pub fn heading(&mut self, text: &str) {
        self.lines.push(String::new());
        self.lines.push(if self.markdown {
            format!("### {text}")
        } else {
            format!("== {text} ==")
        });
        self.lines.push(String::new());
    }

    pub fn para(&mut self, text: &str) {
        self.lines.push(text.to_string());
        self.lines.push(String::new());
    }

    pub fn items(&mut self, pairs: &[(&str, String)]) {
        for (k, v) in pairs {
            self.lines.push(if self.markdown {
                format!("- **{k}**: {v}")
            } else {
                format!("{k:14} {v}")
            });
        }
        self.lines.push(String::new());
    }

    /// A table; `align` defaults to the first column left, the others right.
    pub fn table(&mut self, headers: &[&str], rows: &[Vec<String>], align: Option<&[Align]>) {
        let align: Vec<Align> = match align {
            Some(a) => a.to_vec(),
            None => (0..headers.len())
                .map(|i| if i == 0 { Align::Left } else { Align::Right })
                .collect(),
        };
        let at = |i: usize| align.get(i).copied().unwrap_or(Align::Right);
        if self.markdown {
            self.lines.push(format!("| {} |", headers.join(" | ")));
            let rule: Vec<&str> = (0..headers.len())
                .map(|i| match at(i) {
                    Align::Left => ":---",
                    Align::Right => "---:",
                })
                .collect();
            self.lines.push(format!("|{}|", rule.join("|")));
            for r in rows {
                self.lines.push(format!("| {} |", r.join(" | ")));
            }
        } else {
            let width = |s: &str| s.chars().count();
            let widths: Vec<usize> = headers
                .iter()
                .enumerate()
                .map(|(i, h)| {
                    rows.iter()
                        .filter_map(|r| r.get(i))
                        .map(|c| width(c))
                        .chain([width(h)])
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            let line = |cells: Vec<&str>| {
                let padded: Vec<String> = cells
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        let pad = " ".repeat(widths[i].saturating_sub(width(c)));
                        match at(i) {
                            Align::Left => format!("{c}{pad}"),
                            Align::Right => format!("{pad}{c}"),
                        }
                    })
                    .collect();
                padded.join("  ").trim_end().to_string()
            };
            self.lines.push(line(headers.to_vec()));
            self.lines.push(
                widths
                    .iter()
                    .map(|w| "-".repeat(*w))
                    .collect::<Vec<_>>()
                    .join("  "),
            );
            for r in rows {
                self.lines.push(line(
                    (0..headers.len())
                        .map(|i| r.get(i).map_or("", String::as_str))
                        .collect(),
                ));
            }
        }
        self.lines.push(String::new());
    }

    pub fn render(&self) -> String {
        self.lines.join("\n").trim_matches('\n').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_match_the_median_and_nearest_rank() {
        assert!(p50(&[]).is_nan() && p95(&[]).is_nan());
        assert_eq!(p50(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(p50(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        let v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(p95(&v), 95.0);
        assert_eq!(p95(&[5.0, 1.0, 2.0, 3.0, 4.0]), 5.0); // ceil(4.75) = rank 5
        let twenty: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(p95(&twenty), 19.0);
        assert_eq!(p95(&[7.0]), 7.0);
    }

    #[test]
    fn numbers_format_as_the_report_shows_them() {
        assert_eq!(ms(15.66), "15.7");
        assert_eq!(ms(99.94), "99.9");
        assert_eq!(ms(134.4), "134");
        assert_eq!(ms(f64::NAN), "n/a");
        assert_eq!(ratio(15.7, 8.7), "1.80x");
        assert_eq!(ratio(1.0, 0.0), "n/a");
        assert_eq!(ratio(f64::NAN, 2.0), "n/a");
        assert_eq!(kib(Some(8712)), "8.5 MiB (8712 kB)");
        assert_eq!(kib(None), "n/a");
    }

    #[test]
    fn tables_render_as_text_and_markdown() {
        let rows = vec![vec!["python".to_string(), "15.7".to_string()]];
        let mut md = Report::new(true);
        md.heading("Latency");
        md.table(&["language", "p50"], &rows, None);
        assert_eq!(
            md.render(),
            "### Latency\n\n| language | p50 |\n|:---|---:|\n| python | 15.7 |"
        );
        let mut text = Report::new(false);
        text.table(&["lang", "p50"], &rows, None);
        assert_eq!(text.render(), "lang     p50\n------  ----\npython  15.7");
    }
}
