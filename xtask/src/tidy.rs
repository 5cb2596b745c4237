//! Tidy tests (rust-analyzer's habit): checks of the tree itself that `cargo xtask test` runs
//! with the unit tests, after rustfmt and clippy.

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    fn root() -> PathBuf {
        harness::env::cache::workspace_root()
    }

    /// Every Markdown page of the repository (not target/ or .git/).
    fn pages(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() && name != "target" && name != ".git" {
                pages(&path, out);
            } else if name.ends_with(".md") {
                out.push(path);
            }
        }
    }

    /// The repository paths a page cites: relative Markdown links, and words that start
    /// with a top-level directory of ours or name a `.md` file. Patterns (`<series>`,
    /// `{a,b}`, `*`) are not paths and are passed over.
    fn citations(text: &str) -> Vec<String> {
        const TOP: [&str; 9] = [
            "xtask/", "harness/", "guest/", "proto/", "images/", "tests/", "docs/", "ci/", ".ci/",
        ];
        let mut out = Vec::new();
        let is_path_char = |c: char| c.is_ascii_alphanumeric() || "_./-".contains(c);
        let chars: Vec<char> = text.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            if !is_path_char(chars[i])
                || (i > 0 && (is_path_char(chars[i - 1]) || chars[i - 1] == '~'))
            {
                i += 1;
                continue;
            }
            let start = i;
            while i < chars.len() && is_path_char(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let word = word.trim_end_matches(['.', ',']).to_string();
            let next = chars.get(i).copied().unwrap_or(' ');
            let pattern = matches!(next, '<' | '{' | '*') || (start > 0 && chars[start - 1] == '/');
            let ours = TOP.iter().any(|t| word.starts_with(t)) || word.ends_with(".md");
            if ours && !pattern && !word.contains("..") {
                out.push(word);
            }
        }
        out
    }

    #[test]
    fn every_file_a_page_cites_exists() {
        let root = root();
        let mut all = Vec::new();
        pages(&root, &mut all);
        assert!(all.len() >= 4, "found the pages: {all:?}");
        let mut missing = Vec::new();
        for page in &all {
            let text = std::fs::read_to_string(page).unwrap();
            let dir = page.parent().unwrap();
            for cited in citations(&text) {
                let here = [
                    root.join(&cited),
                    dir.join(&cited),
                    root.join("docs").join(&cited),
                ];
                if !here.iter().any(|p| p.exists()) {
                    missing.push(format!(
                        "{} cites {cited}",
                        page.strip_prefix(&root).unwrap().display()
                    ));
                }
            }
        }
        assert!(
            missing.is_empty(),
            "cited files that do not exist:\n{}",
            missing.join("\n")
        );
    }

    #[test]
    fn citations_are_found_and_patterns_passed_over() {
        let text = "see KERNEL-FACTS.md, `harness/src/run.rs` and [x](docs/cases.md); \
                    not tests/snapshots/linux-<series>.snap, images/kernel/{a,b}.config or ~/x/docs/y";
        assert_eq!(
            citations(text),
            ["KERNEL-FACTS.md", "harness/src/run.rs", "docs/cases.md"]
        );
    }

    /// xtask is a thin layer: `main.rs` only sends each subcommand to its module, and no
    /// module puts runs together itself (the grid of a validation, the kernels `debian:all`
    /// stands for, a page of runs: the harness does that).
    #[test]
    fn xtask_stays_a_thin_layer() {
        let src = root().join("xtask/src");
        let main = std::fs::read_to_string(src.join("main.rs")).unwrap();
        let lines = main.lines().count();
        assert!(
            lines < 300,
            "xtask/src/main.rs has {lines} lines: a command's work goes in a module of its own"
        );
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        for file in files.iter().filter(|f| !f.ends_with("tidy.rs")) {
            let text = std::fs::read_to_string(file).unwrap();
            for orchestration in [
                "KernelChoice::expand(",
                "matrix::of_runs(",
                "validate::validate(",
            ] {
                assert!(
                    !text.contains(&format!("harness::loops::{orchestration}"))
                        && !text.contains(&format!("harness::{orchestration}"))
                        && !text.contains(&format!("harness::kernel::{orchestration}")),
                    "{} calls {orchestration}..): orchestration belongs to harness::loops",
                    file.display()
                );
            }
        }
    }

    /// README.md is the front door, read in ten minutes: what the harness is, the two
    /// commands, the three jobs; the references, figures and history live in docs/.
    #[test]
    fn readme_stays_a_front_door() {
        let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
        let lines = readme.lines().count();
        assert!(
            lines < 300,
            "README.md has {lines} lines: move the reference, figures or history to docs/"
        );
        assert!(
            readme.contains("cargo xtask test"),
            "README.md must give the test command (.ci/run runs it)"
        );
    }

    #[test]
    fn architecture_md_names_every_subcommand() {
        use clap::CommandFactory;
        let arch = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
        for sub in crate::Cli::command().get_subcommands() {
            let name = sub.get_name();
            assert!(
                arch.contains(&format!("`{name}`")),
                "ARCHITECTURE.md does not name `cargo xtask {name}`"
            );
        }
    }

    /// The harness's folders in the order they may import each other: a file may name its
    /// own folder and any folder before it, never one after (harness/src/lib.rs says why).
    const LAYERS: [&str; 8] = [
        "error", "env", "kernel", "results", "boot", "run", "validate", "loops",
    ];

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// The layer of a harness file: its folder, or its own name at the top (run.rs).
    fn layer_of(src: &Path, file: &Path) -> Option<usize> {
        let rel = file.strip_prefix(src).ok()?;
        let first = rel.components().next()?.as_os_str().to_str()?;
        let name = first.trim_end_matches(".rs");
        LAYERS.iter().position(|l| *l == name)
    }

    #[test]
    fn harness_folders_import_only_the_folders_before_them() {
        let src = root().join("harness/src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        let mut upward = Vec::new();
        for file in &files {
            let Some(own) = layer_of(&src, file) else {
                continue;
            };
            let text = std::fs::read_to_string(file).unwrap();
            for (n, line) in text.lines().enumerate() {
                if line.trim_start().starts_with("//") {
                    continue;
                }
                for (at, _) in line.match_indices("crate::") {
                    let rest = &line[at + "crate::".len()..];
                    let name: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if let Some(theirs) = LAYERS.iter().position(|l| *l == name) {
                        if theirs > own {
                            upward.push(format!(
                                "{}:{}: {} imports {name}",
                                file.strip_prefix(&src).unwrap().display(),
                                n + 1,
                                LAYERS[own]
                            ));
                        }
                    }
                }
            }
        }
        assert!(
            upward.is_empty(),
            "imports that run up the harness's layers ({}):\n{}",
            LAYERS.join(" < "),
            upward.join("\n")
        );
    }

    #[test]
    fn every_harness_folder_is_a_layer() {
        let src = root().join("harness/src");
        for entry in std::fs::read_dir(&src).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let name = name.trim_end_matches(".rs");
            assert!(
                name == "lib" || LAYERS.contains(&name),
                "harness/src/{name} is in no layer: add it to tidy's LAYERS and lib.rs"
            );
        }
    }

    /// The values of `proto::observation`'s constants.
    fn observation_keys() -> Vec<String> {
        let text = std::fs::read_to_string(root().join("proto/src/observation.rs")).unwrap();
        text.lines()
            .filter(|l| l.starts_with("pub const ") && l.contains(": &str = \""))
            .filter_map(|l| l.split('"').nth(1).map(String::from))
            .collect()
    }

    #[test]
    fn observation_keys_read_back_are_named_from_proto() {
        let keys = observation_keys();
        assert!(keys.len() >= 10, "read the keys: {keys:?}");
        const READERS: [&str; 6] = [
            "observe(",
            "note(",
            "expect_count(",
            "observations.get(",
            "contains_key(",
            "observations.remove(",
        ];
        let mut files = Vec::new();
        for dir in ["guest/src", "harness/src", "tests", "xtask/src"] {
            rust_files(&root().join(dir), &mut files);
        }
        let mut literal = Vec::new();
        for file in &files {
            let text = std::fs::read_to_string(file).unwrap();
            for (n, line) in text.lines().enumerate() {
                for key in &keys {
                    let quoted = format!("\"{key}\"");
                    if line.contains(&quoted) && READERS.iter().any(|r| line.contains(r)) {
                        literal.push(format!(
                            "{}:{}: {quoted}",
                            file.strip_prefix(root()).unwrap().display(),
                            n + 1
                        ));
                    }
                }
            }
        }
        assert!(
            literal.is_empty(),
            "observation keys written as strings (use proto::observation):\n{}",
            literal.join("\n")
        );
    }

    /// The code paths a page cites in backticks (`harness::run::run`,
    /// `proto::catalog::select`): a crate of ours, then modules, then at most two symbols.
    fn code_paths(text: &str) -> Vec<String> {
        const CRATES: [&str; 4] = ["harness::", "proto::", "guest::", "xtask::"];
        text.split('`')
            .skip(1)
            .step_by(2)
            .map(|span| span.trim_end_matches("()"))
            .filter(|span| CRATES.iter().any(|c| span.starts_with(c)))
            .filter(|span| {
                span.split("::").all(|seg| {
                    !seg.is_empty() && seg.chars().all(|c| c.is_alphanumeric() || c == '_')
                })
            })
            .map(String::from)
            .collect()
    }

    /// Whether `path` names a module of ours and, after it, symbols defined there: `Type`,
    /// `fn`, const, macro or a re-export, then a method or variant of it.
    fn resolves(path: &str) -> Result<(), String> {
        let mut segs = path.split("::");
        let krate = segs.next().unwrap();
        let mut dir = root().join(krate).join("src");
        let mut file = ["lib.rs", "main.rs"]
            .iter()
            .map(|f| dir.join(f))
            .find(|f| f.exists())
            .ok_or_else(|| format!("{krate} has no lib.rs or main.rs"))?;
        let mut rest: Vec<&str> = Vec::new();
        for seg in segs {
            if rest.is_empty() {
                let (flat, nested) = (dir.join(format!("{seg}.rs")), dir.join(seg).join("mod.rs"));
                if flat.exists() || nested.exists() {
                    file = if flat.exists() { flat } else { nested };
                    dir = dir.join(seg);
                    continue;
                }
            }
            rest.push(seg);
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let defines = |name: &str| {
            const KINDS: [&str; 9] = [
                "fn ",
                "struct ",
                "enum ",
                "trait ",
                "type ",
                "const ",
                "static ",
                "mod ",
                "macro_rules! ",
            ];
            text.lines().any(|line| {
                let line = line.trim_start();
                KINDS.iter().any(|k| {
                    line.split(k).skip(1).any(|after| {
                        after.starts_with(name)
                            && !after[name.len()..]
                                .starts_with(|c: char| c.is_alphanumeric() || c == '_')
                    })
                }) || (line.starts_with("pub use ") && line.contains(name))
                    // An enum variant: `Name,`, `Name {`, `Name(`.
                    || [",", " {", "(", " =", ""].iter().any(|end| line == format!("{name}{end}"))
                    || line.starts_with(&format!("{name} {{"))
                    || line.starts_with(&format!("{name}("))
            })
        };
        match rest.as_slice() {
            [] => Ok(()),
            [a] | [a, _] if !defines(a) => Err(format!("{} defines no {a}", file.display())),
            [_, b] if !defines(b) => Err(format!("{} defines no {b}", file.display())),
            [_] | [_, _] => Ok(()),
            _ => Err(format!("{path}: more than two symbols after the module")),
        }
    }

    #[test]
    fn every_code_path_a_page_cites_exists() {
        let mut all = Vec::new();
        pages(&root(), &mut all);
        let mut missing = Vec::new();
        let mut seen = 0;
        for page in &all {
            let text = std::fs::read_to_string(page).unwrap();
            for path in code_paths(&text) {
                seen += 1;
                if let Err(why) = resolves(&path) {
                    missing.push(format!(
                        "{} cites `{path}`: {why}",
                        page.strip_prefix(root()).unwrap().display()
                    ));
                }
            }
        }
        assert!(seen >= 20, "read the citations: {seen}");
        assert!(
            missing.is_empty(),
            "code paths that do not exist:\n{}",
            missing.join("\n")
        );
    }

    #[test]
    fn code_paths_resolve_to_modules_and_symbols() {
        assert!(resolves("harness::run::run").is_ok());
        assert!(resolves("harness::results::snapshot::Policy::settle").is_ok());
        assert!(resolves("proto::catalog::select").is_ok());
        assert!(resolves("harness::boot::vm::supervisor").is_ok());
        assert!(resolves("harness::run::nothing_here").is_err());
        assert!(resolves("harness::no_such_module::x").is_err());
        assert_eq!(
            code_paths("see `harness::run::run()` and `proto::x` but not `a::b` or `harness::<x>`"),
            ["harness::run::run", "proto::x"]
        );
    }
}
