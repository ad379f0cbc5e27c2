//! The languages measured: every file of the languages dir (names, compile and run steps,
//! runtimes), joined by name with what only the benchmark needs: a hello world and the
//! floor, the cheapest way to start that runtime on the host. A language file without bench
//! data is reported as skipped, never silently dropped.

use std::path::Path;

use coderun_engine::LanguageFile;

/// What every hello world prints.
pub const HELLO_OUTPUT: &str = "Hello, World!\n";

/// The benchmark's own data for one language, keyed by the language file's `name`.
pub struct BenchData {
    pub name: &'static str,
    /// A program printing [`HELLO_OUTPUT`].
    pub hello: &'static str,
    /// How a line comment starts: a compiled language's "new source" requests append one with
    /// a nonce, so each is a compile-cache miss.
    pub comment: &'static str,
    /// The bare row runs the compile step every time (`rustc` + run), not once ahead: for a
    /// language whose compiler is the runtime a client would start itself.
    pub bare_compiles_each_time: bool,
    pub floor: Floor,
}

/// The cheapest start of the runtime, run in a scratch dir holding the hello world as the
/// language's `source_file`. In its commands `{run}` is the program of the language's run
/// command on the host, `{compile}` the compile command's, `{source}` the source file's
/// name, `{dir}` the scratch dir.
pub struct Floor {
    /// The row's label, with `{run}` and `{compile}` replaced by the program's file name.
    pub label: &'static str,
    /// Run one after the other; the last one must print [`HELLO_OUTPUT`].
    pub commands: &'static [&'static [&'static str]],
}

pub const BENCH_DATA: &[BenchData] = &[
    BenchData {
        name: "python",
        hello: "print(\"Hello, World!\")",
        comment: "#",
        bare_compiles_each_time: false,
        floor: Floor {
            label: "{run} -I -S -c",
            commands: &[&["{run}", "-I", "-S", "-c", "print(\"Hello, World!\")"]],
        },
    },
    BenchData {
        name: "typescript",
        hello: "const who: string = \"World\";\nconsole.log(`Hello, ${who}!`);",
        comment: "//",
        bare_compiles_each_time: false,
        floor: Floor {
            label: "{run} -e",
            commands: &[&[
                "{run}",
                "-e",
                "const who = \"World\"; console.log(`Hello, ${who}!`);",
            ]],
        },
    },
    BenchData {
        name: "rust",
        hello: "fn main() { println!(\"Hello, World!\"); }",
        comment: "//",
        bare_compiles_each_time: true,
        floor: Floor {
            label: "{compile} main.rs + run",
            commands: &[&["{compile}", "{source}", "-o", "plain"], &["{dir}/plain"]],
        },
    },
];

/// Benchmark only: a language whose only command is /bin/true, on a server of its own: the
/// cost of a fresh box as such. (A version command that prints nothing would make the
/// language unavailable, hence echo.)
pub const TRUE_TOML: &str = r#"# Benchmark only: a box that runs /bin/true, the per-box floor.
name = "true"
display_name = "true"
extensions = ["true"]
source_file = "main.txt"
version_command = ["/bin/echo", "true"]

[run]
command = ["/bin/true"]
"#;

/// One language as the benchmark measures it.
pub struct Lang {
    pub file: LanguageFile,
    /// None for the /bin/true box.
    pub data: Option<&'static BenchData>,
    /// The /bin/true language, on its own server.
    pub is_box: bool,
}

impl Lang {
    pub fn name(&self) -> &str {
        &self.file.name
    }

    pub fn hello(&self) -> &'static str {
        self.data.map_or("", |d| d.hello)
    }

    pub fn expected(&self) -> &'static str {
        if self.is_box {
            ""
        } else {
            HELLO_OUTPUT
        }
    }

    pub fn compiled(&self) -> bool {
        self.file.compile.is_some()
    }

    /// The /bin/true language (its file is the benchmark's own).
    pub fn bin_true() -> Result<Lang, coderun_engine::language::LanguageError> {
        Ok(Lang {
            file: LanguageFile::parse(TRUE_TOML, Path::new("true.toml"))?,
            data: None,
            is_box: true,
        })
    }
}

/// The languages to measure, in [`BENCH_DATA`]'s order, and the others with the reason.
pub struct Selection {
    pub langs: Vec<Lang>,
    pub skipped: Vec<(String, String)>,
}

impl Selection {
    pub fn skip(&mut self, name: &str, reason: String) {
        self.langs.retain(|l| l.name() != name);
        self.skipped.push((name.to_string(), reason));
    }

    pub fn names(&self) -> Vec<&str> {
        self.langs.iter().map(Lang::name).collect()
    }
}

/// Joins the language files with their bench data.
pub fn select(files: Vec<LanguageFile>) -> Selection {
    let mut out = Selection {
        langs: Vec::new(),
        skipped: Vec::new(),
    };
    for file in files {
        match BENCH_DATA.iter().find(|d| d.name == file.name) {
            Some(data) => out.langs.push(Lang {
                file,
                data: Some(data),
                is_box: false,
            }),
            None => out.skipped.push((
                file.name.clone(),
                "no bench data (a hello world and a floor command in crates/bench/src/langs.rs)"
                    .into(),
            )),
        }
    }
    let rank = |l: &Lang| BENCH_DATA.iter().position(|d| d.name == l.name());
    out.langs.sort_by_key(rank);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str) -> LanguageFile {
        let text = format!(
            "name = \"{name}\"\ndisplay_name = \"X\"\nsource_file = \"main.x\"\nversion_command = [\"/bin/x\"]\n[run]\ncommand = [\"/bin/x\", \"{{source}}\"]\n"
        );
        LanguageFile::parse(&text, Path::new("/repo/languages/x.toml")).expect("valid file")
    }

    #[test]
    fn languages_without_bench_data_are_skipped_with_a_reason() {
        let s = select(vec![file("rust"), file("cobol"), file("python")]);
        assert_eq!(s.names(), ["python", "rust"]);
        assert_eq!(s.skipped.len(), 1);
        assert_eq!(s.skipped[0].0, "cobol");
        assert!(
            s.skipped[0].1.contains("no bench data"),
            "{}",
            s.skipped[0].1
        );
    }

    #[test]
    fn the_shipped_languages_are_measured() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../languages");
        let files = coderun_engine::language::load_dir(&dir).expect("the shipped language files");
        let s = select(files);
        for name in ["python", "typescript", "rust"] {
            assert!(s.names().contains(&name), "{name}: {:?}", s.skipped);
        }
    }

    #[test]
    fn the_bin_true_language_is_a_valid_language_file() {
        let t = Lang::bin_true().expect("valid");
        assert!(t.is_box && !t.compiled() && t.expected().is_empty());
    }
}
