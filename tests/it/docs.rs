//! The documentation (README.md, docs/*.md, BENCHMARKS.md, tests/corpus/README.md) against the
//! repository: every relative Markdown link points at a file that exists (and, with a
//! `#fragment`, at a heading of that file, slugged as GitHub does), and every option shown
//! with a deploy script or `render-policies` is one that the script's or binary's `--help`
//! lists. Each check is proven on a mutated copy of a page.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Markdown pages checked, relative to the repository root.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![
        PathBuf::from("README.md"),
        PathBuf::from("BENCHMARKS.md"),
        PathBuf::from("tests/corpus/README.md"),
    ];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs/ exists")
        .map(|entry| entry.expect("docs/ entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .map(|path| PathBuf::from("docs").join(path.file_name().expect("file name")))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

fn read(page: &Path) -> String {
    std::fs::read_to_string(root().join(page)).unwrap_or_else(|e| panic!("{}: {e}", page.display()))
}

/// The page's text outside fenced code blocks (fence lines and their contents become empty
/// lines, so line numbers stay).
fn prose(text: &str) -> String {
    let mut fenced = false;
    text.lines()
        .map(|line| {
            if line.trim_start().starts_with("```") {
                fenced = !fenced;
                ""
            } else if fenced {
                ""
            } else {
                line
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// GitHub's heading anchor: lower case, punctuation other than `-` and `_` dropped, spaces
/// become `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    prose(text)
        .lines()
        .filter_map(|line| line.strip_prefix('#'))
        .map(|rest| slug(rest.trim_start_matches('#')))
        .collect()
}

/// `(line, target)` of every inline link `[text](target)` outside code blocks.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (number, line) in prose(text).lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            found.push((number + 1, after[..end].to_string()));
            rest = &after[end..];
        }
    }
    found
}

/// Problems with the relative links of `text`, a page at `page` (relative to `base`).
fn link_problems(base: &Path, page: &Path, text: &str) -> Vec<String> {
    let dir = page.parent().unwrap_or(Path::new(""));
    let mut problems = Vec::new();
    for (line, target) in links(text) {
        if target.starts_with("http://")
            || target.starts_with("https://")
            || target.starts_with("mailto:")
        {
            continue;
        }
        let (path, fragment) = match target.split_once('#') {
            Some((path, fragment)) => (path, Some(fragment)),
            None => (target.as_str(), None),
        };
        let file = if path.is_empty() {
            page.to_path_buf()
        } else {
            dir.join(path)
        };
        let where_ = format!("{}:{line}: ({target})", page.display());
        let Ok(target_text) = std::fs::read_to_string(base.join(&file)) else {
            if !base.join(&file).is_dir() {
                problems.push(format!("{where_}: {} does not exist", file.display()));
            }
            continue;
        };
        if let Some(fragment) = fragment {
            if !anchors(&target_text).contains(fragment) {
                problems.push(format!(
                    "{where_}: no heading with the anchor #{fragment} in {}",
                    file.display()
                ));
            }
        }
    }
    problems
}

#[test]
fn every_relative_link_and_anchor_resolves() {
    let mut problems = Vec::new();
    for page in pages() {
        problems.extend(link_problems(&root(), &page, &read(&page)));
    }
    assert!(
        problems.is_empty(),
        "broken links:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_link_check_can_fail() {
    let page = Path::new("README.md");
    let readme = read(page);
    for (from, to) in [
        ("(docs/api.md)", "(docs/no-such-page.md)"),
        ("(docs/api.md#errors)", "(docs/api.md#no-such-heading)"),
    ] {
        assert!(readme.contains(from), "README.md no longer links {from}");
        let mutated = readme.replacen(from, to, 1);
        assert!(
            !link_problems(&root(), page, &mutated).is_empty(),
            "a link {to} was not reported"
        );
    }
    assert_eq!(
        slug("The wait page and B2C's retry limit"),
        "the-wait-page-and-b2cs-retry-limit"
    );
    assert_eq!(
        slug("Running under `func start`"),
        "running-under-func-start"
    );
}

/// The lines inside fenced code blocks.
fn fenced_lines(text: &str) -> Vec<&str> {
    let mut fenced = false;
    let mut lines = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if fenced {
            lines.push(line);
        }
    }
    lines
}

/// `(program, option)` for every `--option` written after a deploy script or
/// `render-policies` on one command line of `text` (a code line, with `\` continuations
/// joined, or an inline code span), up to a `|`, `;`, `&&` or `#`.
fn documented_options(text: &str) -> BTreeSet<(String, String)> {
    let mut commands: Vec<String> = Vec::new();
    let mut pending = String::new();
    for line in fenced_lines(text) {
        let (body, continued) = match line.trim_end().strip_suffix('\\') {
            Some(body) => (body, true),
            None => (line, false),
        };
        pending.push_str(body);
        pending.push(' ');
        if !continued {
            commands.push(std::mem::take(&mut pending));
        }
    }
    // Inline code spans may wrap across lines.
    let prose = prose(text).replace('\n', " ");
    commands.extend(prose.split('`').skip(1).step_by(2).map(str::to_string));
    let mut found = BTreeSet::new();
    for command in commands {
        let command = command
            .split(['|', ';', '#'])
            .next()
            .unwrap_or_default()
            .split("&&")
            .collect::<Vec<_>>();
        for part in command {
            let words: Vec<&str> = part.split_whitespace().collect();
            let mut program: Option<String> = None;
            for (i, word) in words.iter().enumerate() {
                let name = word.rsplit('/').next().unwrap_or(word);
                if name.ends_with(".sh") && root().join("deploy").join(name).is_file() {
                    program = Some(name.to_string());
                } else if *word == "render-policies" {
                    // `cargo run ... --bin render-policies -- OPTIONS`: only what follows `--`.
                    let after = words.get(i + 1).copied();
                    program = match after {
                        Some("--") => Some("render-policies".to_string()),
                        _ if words.get(i.wrapping_sub(1)) == Some(&"--bin") => None,
                        _ => Some("render-policies".to_string()),
                    };
                } else if let Some(program) = &program {
                    let option = word.trim_start_matches('[').trim_end_matches(']');
                    let option = option.split('=').next().unwrap_or(option);
                    if option.starts_with("--") && option.len() > 2 {
                        found.insert((program.clone(), option.to_string()));
                    }
                }
            }
        }
    }
    found
}

fn help_text(program: &str) -> String {
    let output = if program == "render-policies" {
        Command::new(env!("CARGO_BIN_EXE_render-policies"))
            .arg("--help")
            .output()
    } else {
        Command::new("bash")
            .arg(root().join("deploy").join(program))
            .arg("--help")
            .output()
    };
    let output = output.unwrap_or_else(|e| panic!("{program} --help: {e}"));
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn listed(help: &str, option: &str) -> bool {
    help.split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']' || c == '=')
        .any(|word| word == option)
}

fn option_problems(pages: &[(PathBuf, String)]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut helps = std::collections::BTreeMap::new();
    for (page, text) in pages {
        for (program, option) in documented_options(text) {
            let help = helps
                .entry(program.clone())
                .or_insert_with(|| help_text(&program));
            if !listed(help, &option) {
                problems.push(format!(
                    "{}: {program} {option}: not in `{program} --help`",
                    page.display()
                ));
            }
        }
    }
    problems
}

/// Every documentation page with its text.
fn read_pages() -> Vec<(PathBuf, String)> {
    pages()
        .into_iter()
        .map(|page| {
            let text = read(&page);
            (page, text)
        })
        .collect()
}

#[test]
fn every_documented_option_is_in_the_help() {
    let pages = read_pages();
    let problems = option_problems(&pages);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_option_check_can_fail() {
    let page = PathBuf::from("README.md");
    let readme = read(&page);
    let found = documented_options(&readme);
    for (program, option) in [
        ("provision.sh", "--client-cert-thumbprints"),
        ("client-cert.sh", "--pfx"),
        ("render-policies", "--settings"),
        ("upload-policies.sh", "--render-settings"),
    ] {
        assert!(
            found.contains(&(program.to_string(), option.to_string())),
            "{program} {option} not found in README.md: {found:?}"
        );
    }
    let from = "deploy/client-cert.sh --out-dir";
    assert!(readme.contains(from), "README.md no longer shows {from}");
    let mutated = readme.replacen(from, "deploy/client-cert.sh --out-dirr", 1);
    let problems = option_problems(&[(page, mutated)]);
    assert!(
        problems.iter().any(|p| p.contains("--out-dirr")),
        "a misspelt option was not reported: {problems:?}"
    );
}

/// Every `deploy/<name>.sh` the documentation names, in any page: those that are not in `deploy/`.
fn missing_scripts(pages: &[(PathBuf, String)]) -> Vec<String> {
    let mut problems = Vec::new();
    for (page, text) in pages {
        for (at, _) in text.match_indices("deploy/") {
            // Only the repository's deploy/ folder, not tests/it/deploy/ or a URL.
            if text[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c == '/' || c.is_ascii_alphanumeric())
            {
                continue;
            }
            let name: String = text[at + "deploy/".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_' || *c == '.')
                .collect();
            let name = name.trim_end_matches('.');
            if name.ends_with(".sh") && !root().join("deploy").join(name).is_file() {
                problems.push(format!("{}: deploy/{name} does not exist", page.display()));
            }
        }
    }
    problems
}

#[test]
fn every_documented_script_exists() {
    let pages = read_pages();
    let problems = missing_scripts(&pages);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let invented = vec![(
        PathBuf::from("README.md"),
        "Run `deploy/no-such-script.sh --user x`.".to_string(),
    )];
    assert_eq!(missing_scripts(&invented).len(), 1, "the check can fail");
}
