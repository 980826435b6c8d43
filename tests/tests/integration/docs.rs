//! The README and the pages under `docs/` hold no dead relative links: every `[text](target)`
//! that is not a web or mail address, nor an anchor on the same page, names a file or folder
//! that exists in the repository.

use std::path::{Path, PathBuf};

use integration_tests::repo_path;

#[test]
fn every_relative_link_in_the_readme_and_docs_resolves() {
    let root = repo_path("");
    let mut pages: Vec<PathBuf> = std::fs::read_dir(repo_path("docs"))
        .expect("reading docs/")
        .map(|entry| entry.expect("reading an entry of docs/").path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "md"))
        .collect();
    pages.sort();
    pages.insert(0, repo_path("README.md"));

    let mut checked = 0;
    let mut dead = Vec::new();
    for page in &pages {
        let markdown = std::fs::read_to_string(page)
            .unwrap_or_else(|error| panic!("reading {}: {error}", page.display()));
        let folder = page.parent().expect("a page lives in a folder");
        for link in relative_links(&markdown) {
            checked += 1;
            let path = link.target.split('#').next().unwrap_or_default();
            if !folder.join(path).exists() {
                dead.push(format!(
                    "{}:{}: {}",
                    shown(page, &root),
                    link.line,
                    link.target
                ));
            }
        }
    }

    assert!(
        checked > 0,
        "no relative link found in the README or docs/*.md: is the link scanner broken?"
    );
    assert!(
        dead.is_empty(),
        "{} dead relative link(s) (file:line: target, resolved from the linking file's folder):\n{}",
        dead.len(),
        dead.join("\n")
    );
}

#[test]
fn the_link_scanner_finds_links_and_skips_code_web_addresses_and_anchors() {
    let markdown = "\
See [the API](docs/api.md#errors) and [`events/`](../events), [a site](https://example.com),
[mail](mailto:ops@example.com), [a section](#layout) and `[not a link](in/code.md)`.
```sh
echo [not a link](in/a/fence.md)
```
| [a table](docs/benchmarks.md \"title\") |
";
    let found: Vec<(usize, String)> = relative_links(markdown)
        .into_iter()
        .map(|link| (link.line, link.target))
        .collect();
    assert_eq!(
        found,
        [
            (1, "docs/api.md#errors".to_owned()),
            (1, "../events".to_owned()),
            (6, "docs/benchmarks.md".to_owned()),
        ]
    );
}

/// A link found in a page: its 1-based line and its target as written.
struct Link {
    line: usize,
    target: String,
}

/// The relative links of a markdown page, outside fenced code blocks and code spans. Web and
/// mail addresses and same-page anchors (`#…`) are left out.
fn relative_links(markdown: &str) -> Vec<Link> {
    let mut links = Vec::new();
    let mut in_fence = false;
    let mut in_code_span = false;
    for (index, line) in markdown.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        // A code span never crosses a paragraph break or a table row.
        if in_fence || trimmed.is_empty() || trimmed.starts_with('|') {
            in_code_span = false;
        }
        if in_fence {
            continue;
        }
        let mut prose = String::with_capacity(line.len());
        for character in line.chars() {
            if character == '`' {
                in_code_span = !in_code_span;
            } else if !in_code_span {
                prose.push(character);
            }
        }
        let mut rest = prose.as_str();
        while let Some(at) = rest.find("](") {
            let opened = rest[..at].contains('[');
            let after = &rest[at + 2..];
            let end = after
                .find(|c: char| c == ')' || c.is_whitespace())
                .unwrap_or(after.len());
            let target = after[..end].trim_start_matches('<').trim_end_matches('>');
            if opened && is_relative(target) {
                links.push(Link {
                    line: index + 1,
                    target: target.to_owned(),
                });
            }
            rest = &after[end..];
        }
    }
    links
}

fn is_relative(target: &str) -> bool {
    !(target.is_empty()
        || target.starts_with('#')
        || target.starts_with("http://")
        || target.starts_with("https://")
        || target.starts_with("mailto:"))
}

fn shown(page: &Path, root: &Path) -> String {
    page.strip_prefix(root)
        .unwrap_or(page)
        .display()
        .to_string()
}
